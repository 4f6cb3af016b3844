"""The demo's own picture, made on the spot so the repo ships no image."""

from __future__ import annotations

import math

from PIL import Image

SIZE = (4096, 3072)
_INSIDE = (14, 22, 48)  # the set itself: deep blue
_PHASES = (0.6, 1.4, 2.6)  # per band, so the colour cycles through gold, teal and violet


def sample_picture(size: tuple[int, int] = SIZE) -> Image.Image:
    """The Mandelbrot set in colour, over a gentle gradient. There is new detail at every zoom level,
    and colour everywhere, so a viewer that draws a tile in the wrong place or the wrong way round
    is caught by comparing a screenshot with this picture."""
    width, height = size
    span_y = 2.4
    span_x = span_y * width / height
    escape = Image.effect_mandelbrot(size, (-0.7 - span_x / 2, -span_y / 2, -0.7 + span_x / 2, span_y / 2), 255)
    bands = [escape.point(_colour_cycle(phase, inside)) for phase, inside in zip(_PHASES, _INSIDE, strict=True)]
    gradient = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").rotate(90).resize(size),
            Image.radial_gradient("L").resize(size),
            Image.linear_gradient("L").resize(size),
        ),
    )
    return Image.blend(Image.merge("RGB", bands), gradient, 0.25)


def _colour_cycle(phase: float, inside: int) -> list[int]:
    """A lookup table from escape count (0 inside the set) to one band's brightness."""
    return [inside] + [round(127.5 + 127.5 * math.sin(math.sqrt(count) * 1.2 + phase)) for count in range(1, 256)]
