"""Tile encodings: file extension, Content-Type and Pillow save options, and the encoder that uses them."""

from __future__ import annotations

import os
import queue
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image


@dataclass(frozen=True)
class TileFormat:
    name: str
    content_type: str
    keeps_alpha: bool
    uses_quality: bool

    def save_options(self, quality: int) -> dict[str, Any]:
        """Keyword arguments for ``Image.save``: the format's Pillow name and its settings."""
        options: dict[str, Any] = {"quality": quality} if self.uses_quality else {"compress_level": 6}
        return {"format": _PILLOW_NAMES[self.name], **options}


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


class TileEncoder:
    """Encodes tiles to bytes on any number of threads, in parallel.

    Pillow's JPEG encoder lets go of the GIL only when it writes to a file
    descriptor; into a ``BytesIO`` it holds the GIL throughout, so tiles
    encoded on a pool would take turns on one core. So each tile is encoded
    into an in-memory file (a memfd), one per thread at a time, and read back.
    (PNG data goes through a wrapper without a descriptor and WebP lets go of
    the GIL anyway: for those the file gains nothing and costs little.)
    ``close`` releases those files.
    """

    def __init__(self, tile_format: TileFormat, quality: int, **options: Any) -> None:
        """``options`` go to ``Image.save`` beside the format's own (a TIFF's tiles leave out their tables)."""
        self.options = tile_format.save_options(quality) | options
        self._spare: queue.SimpleQueue[BinaryIO] = queue.SimpleQueue()
        self._opened: list[BinaryIO] = []

    def encode(self, tile: Image.Image) -> bytes:
        file = self._take()
        try:
            file.seek(0)
            tile.save(file, **self.options)
            return os.pread(file.fileno(), file.tell(), 0)
        finally:
            self._spare.put(file)

    def close(self) -> None:
        for file in self._opened:
            file.close()

    def _take(self) -> BinaryIO:
        try:
            return self._spare.get_nowait()
        except queue.Empty:
            file = _scratch_file()
            self._opened.append(file)  # list.append is atomic, so threads may race here
            return file


def _scratch_file() -> BinaryIO:
    """An unnamed file in memory (a memfd), or where there is none, an unlinked file in the temporary folder."""
    try:
        return open(os.memfd_create("deepzoom-tile", os.MFD_CLOEXEC), "w+b", buffering=0)
    except (AttributeError, OSError):  # not Linux, or memfd refused
        return tempfile.TemporaryFile(buffering=0)
