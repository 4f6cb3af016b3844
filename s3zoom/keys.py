"""Where a source image's pyramid lives in the zoom bucket, and which keys are ours."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from deepzoom import FORMATS, DeepZoomGeometry, IIIFLayout, iiif_folder, tile_path

MAX_KEY_BYTES = 1024  # S3's longest key, in UTF-8 bytes
# What the longest output key adds to a pyramid's name: a IIIF tile with every number at its most digits,
# NAME_iiif/{x},{y},{w},{h}/{w},{h}/0/default.webp (a DZI tile, NAME_files/L/C_R.webp, is shorter).
LONGEST_OUTPUT_SUFFIX = len("_iiif/") + (4 * 10 + 3 + 1) + (2 * 10 + 1 + 1) + len("0/default.webp")

_TILE = re.compile(rf"\d+/\d+_\d+\.(?:{'|'.join(FORMATS)})")
_IIIF_FILE = re.compile(rf"info\.json|(?:full|\d+,\d+,\d+,\d+)/(?:max|\d+,\d+)/0/default\.(?:{'|'.join(FORMATS)})")


@dataclass(frozen=True)
class PyramidKeys:
    """``photos/a b.jpg`` under prefix ``zoom/`` is ``zoom/photos/a b.dzi`` and ``zoom/photos/a b_files/...``."""

    name: str

    @classmethod
    def for_source(cls, source_key: str, dest_prefix: str) -> PyramidKeys:
        stem, _ = posixpath.splitext(source_key)
        return cls(dest_prefix + stem)

    @property
    def descriptor(self) -> str:
        return f"{self.name}.dzi"

    @property
    def page(self) -> str:
        """The viewer page beside the descriptor."""
        return f"{self.name}.html"

    @property
    def files_prefix(self) -> str:
        return f"{self.name}_files/"

    @property
    def lease(self) -> str:
        """Held by the one conversion writing this pyramid (see lease.py)."""
        return f"{self.name}_files/lambdazoom.lease"

    def is_tile(self, key: str) -> bool:
        """True for ``NAME_files/L/C_R.ext`` only, not for another image's keys that share the prefix."""
        return key.startswith(self.files_prefix) and _TILE.fullmatch(key[len(self.files_prefix) :]) is not None

    @property
    def iiif_prefix(self) -> str:
        return iiif_folder(self.name)

    def is_iiif_file(self, key: str) -> bool:
        """True for ``NAME_iiif/info.json`` and the IIIF tiles under it, nothing else."""
        return key.startswith(self.iiif_prefix) and _IIIF_FILE.fullmatch(key[len(self.iiif_prefix) :]) is not None

    def iiif_files(self, layout: IIIFLayout) -> set[str]:
        """Every key of the IIIF service laid out as ``layout``."""
        return {self.iiif_prefix + path for path in layout.all_paths()}

    def tiles(self, geometry: DeepZoomGeometry, extension: str) -> set[str]:
        """Every tile key of a pyramid with ``geometry``."""
        return {
            tile_path(self.name, level, column, row, extension)
            for level in range(geometry.level_count)
            for column, row, _ in geometry.tiles(level)
        }


def extension_of(key: str) -> str:
    return posixpath.splitext(key)[1].lower().lstrip(".")


def path_problem(key: str) -> str | None:
    """Why ``key`` cannot name a pyramid's files intact, if it cannot: browsers and URL libraries rewrite
    ``.`` and ``..`` segments, and obstore (the tile PUTs) refuses those, empty segments (``a//b``, a
    leading or trailing ``/``) and control characters rather than send them."""
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "'.' or '..' path segments"
    if "" in segments:
        return "an empty path segment (a leading, trailing or doubled '/')"
    if any(ord(character) < 32 or ord(character) == 127 for character in key):
        return "control characters"
    return None


def is_own_output(key: str, dest_prefix: str) -> bool:
    """Could this key have been written by LambdaZoom (so converting it would loop)?"""
    if dest_prefix and key.startswith(dest_prefix):
        return True
    return key.endswith((".dzi", ".html")) or "_files/" in key or "_iiif/" in key
