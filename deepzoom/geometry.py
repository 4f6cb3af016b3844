"""Deep Zoom pyramid geometry: level sizes and tile boxes, in integers only.

This is the arithmetic OpenSeadragon uses to request tiles and libvips
``dzsave`` uses to write them; nothing here touches pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

Box = tuple[int, int, int, int]


def _ceil_shift(value: int, shift: int) -> int:
    """``ceil(value / 2**shift)`` without floats, exact for any size."""
    return (value + (1 << shift) - 1) >> shift


@dataclass(frozen=True)
class DeepZoomGeometry:
    """The levels and tiles of one image's Deep Zoom pyramid.

    Level ``max_level`` is the full image; each level below is the one above
    halved (rounding up), down to level 0, which is 1x1.
    """

    width: int
    height: int
    tile_size: int = 254
    overlap: int = 1

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        check_tiling(self.tile_size, self.overlap)

    @property
    def max_level(self) -> int:
        """Index of the full-resolution level (float log2 is off at 2**k)."""
        return (max(self.width, self.height) - 1).bit_length()

    @property
    def level_count(self) -> int:
        return self.max_level + 1

    def level_size(self, level: int) -> tuple[int, int]:
        self._check_level(level)
        shift = self.max_level - level
        return _ceil_shift(self.width, shift), _ceil_shift(self.height, shift)

    def tile_grid(self, level: int) -> tuple[int, int]:
        """Columns and rows of tiles at ``level``."""
        width, height = self.level_size(level)
        return -(-width // self.tile_size), -(-height // self.tile_size)

    def tile_span(self, index: int, extent: int) -> tuple[int, int]:
        """Start and end, along one axis, of tile ``index`` in a level ``extent`` long.

        Overlap is added on interior edges only; edge tiles are cropped.
        """
        start = index * self.tile_size - (self.overlap if index > 0 else 0)
        end = min((index + 1) * self.tile_size + self.overlap, extent)
        return start, end

    def tile_box(self, level: int, column: int, row: int) -> Box:
        """Pixel box ``(left, top, right, bottom)`` of a tile within its level."""
        columns, rows = self.tile_grid(level)
        if not (0 <= column < columns and 0 <= row < rows):
            raise ValueError(f"no tile ({column}, {row}) at level {level}")
        width, height = self.level_size(level)
        left, right = self.tile_span(column, width)
        top, bottom = self.tile_span(row, height)
        return left, top, right, bottom

    def tiles(self, level: int) -> Iterator[tuple[int, int, Box]]:
        """Every tile of ``level`` as ``(column, row, box)``, row by row."""
        columns, rows = self.tile_grid(level)
        for row in range(rows):
            for column in range(columns):
                yield column, row, self.tile_box(level, column, row)

    @property
    def tile_count(self) -> int:
        total = 0
        for level in range(self.level_count):
            columns, rows = self.tile_grid(level)
            total += columns * rows
        return total

    def _check_level(self, level: int) -> None:
        if not 0 <= level <= self.max_level:
            raise ValueError(f"level must be in 0..{self.max_level}, got {level}")


def check_tiling(tile_size: int, overlap: int) -> None:
    """The one rule for a tile grid (``TileSettings`` holds to it too): a positive tile size, and an
    overlap smaller than a tile."""
    if tile_size < 1:
        raise ValueError(f"tile size must be positive, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in 0..{tile_size - 1}, got {overlap}")
