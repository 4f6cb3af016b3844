"""How a TIFF's pixels are cut into strips or tiles, read from its tags (one reading for every module).

Streaming decodes a band of strips (or a row of tiles) at a time, memory admission counts a strip taller
than a band, and the input limits count the pieces: all from :class:`TiffLayout`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from PIL import Image

from .errors import InvalidImage

IMAGE_LENGTH, ROWS_PER_STRIP, STRIP_OFFSETS, STRIP_COUNTS = 257, 278, 273, 279
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_COUNTS = 322, 323, 324, 325
PLANAR_CONFIGURATION = 284


@dataclass(frozen=True)
class TiffLayout:
    """A TIFF's pieces: ``unit_rows`` rows each (a strip, or a row of ``across`` tiles), in file order."""

    tiled: bool
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    unit_rows: int
    across: int  # pieces side by side in a unit: tiles across, or 1 for strips

    @classmethod
    def of(cls, image: Image.Image) -> TiffLayout:
        """Read from ``image``'s tags (opened, not loaded); :class:`InvalidImage` for sizes no TIFF can have,
        or tags of the wrong type (a hostile file's, which would otherwise fail as TypeError: a bug's error)."""
        tags = image.tag_v2  # type: ignore[attr-defined]
        tiled = TILE_OFFSETS in tags
        offsets = _positions(tags.get(TILE_OFFSETS if tiled else STRIP_OFFSETS), "offsets")
        counts = _positions(tags.get(TILE_COUNTS if tiled else STRIP_COUNTS), "byte counts")
        if tiled:
            if TILE_LENGTH not in tags or TILE_WIDTH not in tags:
                raise InvalidImage("TIFF with tile offsets but no tile size")
            unit_rows, tile_width = _number(tags[TILE_LENGTH], "tile length"), _number(tags[TILE_WIDTH], "tile width")
            if tile_width < 1:
                raise InvalidImage(f"TIFF tiles {tile_width} pixels wide")
            across = -(-image.width // tile_width)
        else:
            unit_rows = min(_number(tags.get(ROWS_PER_STRIP, image.height), "rows per strip"), image.height)
            across = 1
        if unit_rows < 1:
            raise InvalidImage(f"TIFF strips or tiles {unit_rows} rows high")
        return cls(tiled, offsets, counts, unit_rows, across)


def _positions(value: object, what: str) -> tuple[int, ...]:
    """A tag's offsets or byte counts: whole numbers, none negative (and none at all if the tag is missing)."""
    try:
        numbers = tuple(operator.index(number) for number in value or ())  # type: ignore[attr-defined]
    except TypeError:
        raise InvalidImage(f"TIFF strip or tile {what} that are not whole numbers") from None
    if any(number < 0 for number in numbers):
        raise InvalidImage(f"TIFF strip or tile {what} below zero")
    return numbers


def _number(value: object, what: str) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise InvalidImage(f"TIFF {what} {str(value)[:40]!r} is not a number") from None
