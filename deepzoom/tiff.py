"""How a TIFF's pixels are cut into strips or tiles, read from its tags (one reading for every module).

Streaming decodes a band of strips (or a row of tiles) at a time, memory admission counts a strip taller
than a band, and the input limits count the pieces: all from :class:`TiffLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from .errors import InvalidImage

IMAGE_LENGTH, ROWS_PER_STRIP, STRIP_OFFSETS, STRIP_COUNTS = 257, 278, 273, 279
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_COUNTS = 322, 323, 324, 325
BITS_PER_SAMPLE, PHOTOMETRIC, SAMPLES_PER_PIXEL, PLANAR_CONFIGURATION = 258, 262, 277, 284
EXTRA_SAMPLES, SAMPLE_FORMAT = 338, 339


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
        """Read from ``image``'s tags (opened, not loaded); :class:`InvalidImage` for sizes no TIFF can have."""
        tags = image.tag_v2  # type: ignore[attr-defined]
        tiled = TILE_OFFSETS in tags
        offsets = tuple(tags.get(TILE_OFFSETS if tiled else STRIP_OFFSETS) or ())
        counts = tuple(tags.get(TILE_COUNTS if tiled else STRIP_COUNTS) or ())
        if tiled:
            unit_rows, tile_width = int(tags[TILE_LENGTH]), int(tags[TILE_WIDTH])
            if tile_width < 1:
                raise InvalidImage(f"TIFF tiles {tile_width} pixels wide")
            across = -(-image.width // tile_width)
        else:
            unit_rows = min(int(tags.get(ROWS_PER_STRIP, image.height)), image.height)
            across = 1
        if unit_rows < 1:
            raise InvalidImage(f"TIFF strips or tiles {unit_rows} rows high")
        return cls(tiled, offsets, counts, unit_rows, across)
