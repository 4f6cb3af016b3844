"""Where a source image's pyramid lives in the zoom bucket, and which keys are ours."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from deepzoom import PyramidNames

MAX_KEY_BYTES = 1024  # S3's longest key, in UTF-8 bytes
# What the longest output key adds to a pyramid's name: a IIIF tile with every number at its most digits,
# NAME_iiif/{x},{y},{w},{h}/{w},{h}/0/default.webp (a DZI tile, NAME_files/L/C_R.webp, is shorter).
LONGEST_OUTPUT_SUFFIX = len("_iiif/") + (4 * 10 + 3 + 1) + (2 * 10 + 1 + 1) + len("0/default.webp")


@dataclass(frozen=True)
class PyramidKeys(PyramidNames):
    """A source's pyramid in the zoom bucket: ``photos/a b.jpg`` under prefix ``zoom/`` is ``zoom/photos/a b.dzi``,
    ``zoom/photos/a b_files/...``; the engine's names (deepzoom/naming.py), and the lease beside the tiles."""

    @classmethod
    def for_source(cls, source_key: str, dest_prefix: str) -> PyramidKeys:
        stem, _ = posixpath.splitext(source_key)
        return cls(dest_prefix + stem)

    def published(self, outputs: tuple[str, ...]) -> str:
        """The object whose arrival marks the pyramid done: the ``.dzi`` (written last), or the ``.tif`` alone."""
        return self.descriptor if "dzi" in outputs else self.tiff

    @property
    def lease(self) -> str:
        """Held by the one conversion writing this pyramid (see lease.py)."""
        return f"{self.files_prefix}lambdazoom.lease"


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
    return key.endswith((".dzi", ".html", ".status.json", ".preview.jpg")) or "_files/" in key or "_iiif/" in key
