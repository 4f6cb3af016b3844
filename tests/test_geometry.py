"""The pyramid arithmetic, checked against a brute-force model of halving and tiling."""

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from deepzoom import DeepZoomGeometry


def halving_levels(width: int, height: int) -> list[tuple[int, int]]:
    """Level sizes by halving (rounding up) until 1x1, smallest first."""
    sizes = [(width, height)]
    while sizes[-1] != (1, 1):
        w, h = sizes[-1]
        sizes.append(((w + 1) // 2, (h + 1) // 2))
    return sizes[::-1]


def walked_spans(extent: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tile spans along one axis by stepping a cursor, overlap clipped at the edges."""
    spans, start = [], 0
    while start < extent:
        spans.append((max(start - overlap, 0), min(start + tile + overlap, extent)))
        start += tile
    return spans


sizes = st.integers(min_value=1, max_value=1 << 31)
small = st.integers(min_value=1, max_value=3000)
tilings = st.tuples(st.integers(min_value=16, max_value=600), st.integers(min_value=0, max_value=8))


@given(sizes, sizes)
@example(1, 1)
@example(1, 1000)
@example(1 << 29, 3)
@example((1 << 29) + 1, 3)
@example(256, 256)
@example(257, 129)
def test_levels_match_repeated_halving(width, height):
    geometry = DeepZoomGeometry(width, height)
    expected = halving_levels(width, height)
    assert geometry.level_count == len(expected)
    assert [geometry.level_size(level) for level in range(geometry.level_count)] == expected
    assert geometry.level_size(0) == (1, 1)
    assert geometry.level_size(geometry.max_level) == (width, height)


@pytest.mark.parametrize("exponent", range(0, 34))
def test_exact_powers_of_two_need_no_extra_level(exponent):
    assert DeepZoomGeometry(1 << exponent, 1).max_level == exponent
    assert DeepZoomGeometry((1 << exponent) + 1, 1).max_level == exponent + 1


def test_float_log2_would_be_wrong_where_integer_math_is_not():
    # the reason the geometry avoids floats: near 2**53 ceil(log2(x)) is off by one
    width = (1 << 53) + 1
    assert math.ceil(math.log2(width)) == 53
    assert DeepZoomGeometry(width, 1).max_level == 54


@given(small, small, tilings)
@example(1, 1, (254, 1))
@example(255, 1, (254, 1))
@example(509, 254, (254, 1))
@example(1025, 2, (256, 0))
@example(7, 5, (1, 0))
@example(9, 3, (2, 1))
def test_tiles_match_walked_grid(width, height, tiling):
    tile, overlap = tiling
    geometry = DeepZoomGeometry(width, height, tile, overlap)
    for level in range(geometry.level_count):
        level_width, level_height = geometry.level_size(level)
        columns = walked_spans(level_width, tile, overlap)
        rows = walked_spans(level_height, tile, overlap)
        assert geometry.tile_grid(level) == (len(columns), len(rows))
        boxes = {(c, r): box for c, r, box in geometry.tiles(level)}
        expected = {(c, r): (x0, y0, x1, y1) for c, (x0, x1) in enumerate(columns) for r, (y0, y1) in enumerate(rows)}
        assert boxes == expected


@given(small, small, tilings)
def test_tiles_cover_each_level_and_stay_inside_it(width, height, tiling):
    tile, overlap = tiling
    geometry = DeepZoomGeometry(width, height, tile, overlap)
    level = geometry.max_level
    level_width, level_height = geometry.level_size(level)
    covered = 0
    for column, row, (left, top, right, bottom) in geometry.tiles(level):
        assert 0 <= left < right <= level_width and 0 <= top < bottom <= level_height
        assert right - left <= tile + 2 * overlap and bottom - top <= tile + 2 * overlap
        own_right = min((column + 1) * tile, level_width)
        own_bottom = min((row + 1) * tile, level_height)
        covered += (own_right - column * tile) * (own_bottom - row * tile)
    assert covered == level_width * level_height


def test_tile_count_sums_every_level():
    geometry = DeepZoomGeometry(16920, 9516)
    assert geometry.tile_count == sum(len(list(geometry.tiles(level))) for level in range(geometry.level_count))
    assert geometry.tile_grid(geometry.max_level) == (67, 38)


@pytest.mark.parametrize(
    "args",
    [(0, 1), (1, 0), (10, 10, 0, 0), (10, 10, 4, 4), (10, 10, 4, -1)],
)
def test_rejects_impossible_geometry(args):
    with pytest.raises(ValueError):
        DeepZoomGeometry(*args)


def test_rejects_unknown_tiles_and_levels():
    geometry = DeepZoomGeometry(300, 300)
    with pytest.raises(ValueError):
        geometry.level_size(geometry.max_level + 1)
    with pytest.raises(ValueError):
        geometry.tile_box(geometry.max_level, 2, 0)
