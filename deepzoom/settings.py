"""The knobs of a pyramid, checked once so the engine can trust them."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import ImageColor

from .formats import TileFormat, tile_format
from .geometry import check_tiling
from .pyramidal_tiff import check_tiff_tile_size

# A cap on work, not on memory (memory admission guards that): 10 GP is about 160,000 tiles,
# some ten minutes of a one-vCPU Lambda, inside its 15-minute limit.
DEFAULT_MAX_PIXELS = 10_000_000_000


@dataclass(frozen=True)
class TileSettings:
    """How tiles are cut and encoded. Defaults match the original LambdaZoom."""

    tile_size: int = 254
    overlap: int = 1
    format: str = "jpg"
    quality: int = 80
    background: str = "#ffffff"
    tiff_tile_size: int = 256  # of a pyramidal TIFF's tiles (no overlap; a multiple of 16)

    def __post_init__(self) -> None:
        check_tiling(self.tile_size, self.overlap)
        check_tiff_tile_size(self.tiff_tile_size)
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")
        object.__setattr__(self, "format", self.tile_format.name)
        parse_colour(self.background)

    @property
    def tile_format(self) -> TileFormat:
        return tile_format(self.format)

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return parse_colour(self.background)

    @property
    def flatten_onto(self) -> tuple[int, int, int] | None:
        """The colour alpha must be flattened onto, or None where the format keeps alpha."""
        return None if self.tile_format.keeps_alpha else self.background_rgb


def parse_colour(text: str) -> tuple[int, int, int]:
    """``'#fff'``, ``'white'``, ``'rgb(0,0,0)'``... as an RGB triple."""
    try:
        red, green, blue, *_ = ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(f"background {text!r} is not a colour") from None
    return red, green, blue
