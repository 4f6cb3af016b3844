"""LambdaZoom settings. Each one can be overridden by an environment variable of the same name."""

from __future__ import annotations

import os

from deepzoom import DEFAULT_MAX_PIXELS, TileSettings


def _text(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _number(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a whole number, got {value!r}") from None


# Where pyramids go, and under which key prefix ("" for the bucket's root).
S3_ZOOM_BUCKET = _text("S3_ZOOM_BUCKET", "lambdazoom-zoom")
DEST_PREFIX = _text("DEST_PREFIX", "")

# How tiles are cut and encoded (the original LambdaZoom's defaults).
TILE_SIZE = _number("TILE_SIZE", 254)
TILE_OVERLAP = _number("TILE_OVERLAP", 1)
TILE_FORMAT = _text("TILE_FORMAT", "jpg")
TILE_QUALITY = _number("TILE_QUALITY", 80)
BACKGROUND = _text("BACKGROUND", "#ffffff")

# Images with more pixels than this are refused from their header, before decoding.
MAX_PIXELS = _number("MAX_PIXELS", DEFAULT_MAX_PIXELS)


def tile_settings() -> TileSettings:
    return TileSettings(TILE_SIZE, TILE_OVERLAP, TILE_FORMAT, TILE_QUALITY, BACKGROUND)
