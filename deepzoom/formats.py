"""Tile encodings: file extension, Content-Type and Pillow save options."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class TileFormat:
    name: str
    content_type: str
    keeps_alpha: bool
    uses_quality: bool

    def encode(self, tile: Image.Image, quality: int) -> bytes:
        """Encode one tile; Pillow releases the GIL while it compresses."""
        buffer = io.BytesIO()
        options = {"quality": quality} if self.uses_quality else {"compress_level": 6}
        tile.save(buffer, format=_PILLOW_NAMES[self.name], **options)
        return buffer.getvalue()


_PILLOW_NAMES = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}

FORMATS: dict[str, TileFormat] = {
    "jpg": TileFormat("jpg", "image/jpeg", keeps_alpha=False, uses_quality=True),
    "png": TileFormat("png", "image/png", keeps_alpha=True, uses_quality=False),
    "webp": TileFormat("webp", "image/webp", keeps_alpha=True, uses_quality=True),
}
ALIASES = {"jpeg": "jpg"}


def tile_format(name: str) -> TileFormat:
    """Look a format up by extension, case-insensitively (``jpeg`` is ``jpg``)."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        return FORMATS[key]
    except KeyError:
        raise ValueError(f"unknown tile format {name!r}; choose one of {', '.join(FORMATS)}") from None
