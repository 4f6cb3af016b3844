"""IIIF Image API 3, level 0: the static files a IIIF viewer asks for, cut from the Deep Zoom levels.

A level-0 service is a folder: ``info.json``, and one file per request a viewer makes, at
``{region}/{size}/0/default.{format}``. Scale factor ``s`` (a power of two) is the Deep Zoom level
``N - log2(s)``, the same image the halving pyramid already holds, so the tiles are its crops
without overlap: tile ``(c, r)`` at scale ``s`` covers full-size region
``x = c*T*s, y = r*T*s, w = min(T*s, width - x), h = min(T*s, height - y)`` and measures
``ceil(w / s) x ceil(h / s)``. A level small enough for one tile is asked for as ``full``, and the
full-size image as ``max``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from .geometry import DeepZoomGeometry

CONTEXT = "http://iiif.io/api/image/3/context.json"
CONTENT_TYPE = f'application/ld+json;profile="{CONTEXT}"'
INFO = "info.json"
SMALLEST_SIZE = 64  # smaller whole-image sizes are not worth a file each


@dataclass(frozen=True)
class IIIFLayout:
    """Which files a level-0 service of a ``width`` x ``height`` image with ``tile_size`` tiles has."""

    width: int
    height: int
    tile_size: int
    extension: str = "jpg"

    @functools.cached_property
    def grid(self) -> DeepZoomGeometry:
        """Level sizes and tile spans: Deep Zoom's, with no overlap."""
        return DeepZoomGeometry(self.width, self.height, self.tile_size, 0)

    @functools.cached_property
    def _one_tile_levels(self) -> list[int]:
        """The Deep Zoom levels that fit in one tile, smallest first (level 0, 1x1, always does)."""
        grid = self.grid
        return [level for level in range(grid.level_count) if max(grid.level_size(level)) <= self.tile_size]

    @property
    def scale_factors(self) -> list[int]:
        """1, 2, 4, ... up to the first scale at which the whole image fits in one tile."""
        return [1 << shift for shift in range(self.grid.max_level - self._one_tile_levels[-1] + 1)]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Whole-image sizes served as single files, smallest first: those of one tile or less."""
        fitting = [self.grid.level_size(level) for level in self._one_tile_levels]
        large_enough = [size for size in fitting if max(size) >= SMALLEST_SIZE]
        return large_enough or fitting[-1:]

    @property
    def levels(self) -> range:
        """The Deep Zoom levels that have IIIF files: from the smallest of ``sizes`` to full size."""
        grid = self.grid
        first = next(level for level in self._one_tile_levels if grid.level_size(level) == self.sizes[0])
        return range(first, grid.level_count)

    def tile_paths(self, level: int, column: int, row: int) -> list[str]:
        """Where a tile of Deep Zoom level ``level`` goes (two paths for the full-size single tile)."""
        grid = self.grid
        scale = 1 << (grid.max_level - level)
        level_width, level_height = grid.level_size(level)
        name = f"0/default.{self.extension}"
        if level_width <= self.tile_size and level_height <= self.tile_size:
            if scale == 1:
                return [f"full/max/{name}", f"full/{self.width},{self.height}/{name}"]
            return [f"full/{level_width},{level_height}/{name}"]
        span = self.tile_size * scale
        x, y = column * span, row * span
        region = f"{x},{y},{min(span, self.width - x)},{min(span, self.height - y)}"
        left, right = grid.tile_span(column, level_width)
        top, bottom = grid.tile_span(row, level_height)
        return [f"{region}/{right - left},{bottom - top}/{name}"]

    def all_paths(self) -> set[str]:
        """Every file of the service, ``info.json`` included."""
        grid = self.grid
        paths = {INFO}
        for level in self.levels:
            for column, row, _ in grid.tiles(level):
                paths.update(self.tile_paths(level, column, row))
        return paths

    def info(self, service_id: str) -> dict[str, Any]:
        """The ``info.json`` document; ``service_id`` is the public URL of the folder."""
        document: dict[str, Any] = {
            "@context": CONTEXT,
            "id": service_id,
            "type": "ImageService3",
            "protocol": "http://iiif.io/api/image",
            "profile": "level0",
            "width": self.width,
            "height": self.height,
            "tiles": [{"width": self.tile_size, "height": self.tile_size, "scaleFactors": self.scale_factors}],
            "sizes": [{"width": width, "height": height} for width, height in self.sizes],
        }
        if self.extension != "jpg":
            document["preferredFormats"] = [self.extension]
            document["extraFormats"] = [self.extension]
        return document

    def info_json(self, service_id: str) -> bytes:
        return json.dumps(self.info(service_id), indent=1).encode()
