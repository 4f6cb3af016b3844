"""Differential test: our pyramid against libvips dzsave on the same input.

PNG tiles on both sides, so JPEG noise cannot hide a misplaced or mis-averaged pixel.
"""

from pathlib import Path

import pytest
import pyvips
from helpers import convert, psnr, sample_image, tile_files
from PIL import Image

from deepzoom.dzi import read_descriptor



def dzsave(source: Path, out: Path, tile_size: int, overlap: int) -> None:
    image = pyvips.Image.new_from_file(str(source), access="sequential")
    image.dzsave(str(out / "image"), tile_size=tile_size, overlap=overlap, suffix=".png", depth="onepixel")


@pytest.mark.parametrize(
    ("width", "height", "tile_size", "overlap"),
    [
        (1, 1, 254, 1),
        (1, 300, 254, 1),
        (255, 255, 254, 1),
        (256, 257, 256, 0),
        (509, 333, 254, 1),
        (1000, 1, 254, 1),
        (1025, 769, 254, 1),
        (777, 1299, 128, 2),
    ],
)
def test_matches_dzsave(tmp_path, width, height, tile_size, overlap):
    source = tmp_path / "source.png"
    sample_image(width, height).save(source)
    ours, theirs = tmp_path / "ours", tmp_path / "vips"
    convert(source, ours, tile_size=tile_size, overlap=overlap, format="png")
    dzsave(source, theirs, tile_size, overlap)

    our_geometry, our_format = read_descriptor((ours / "image.dzi").read_bytes())
    their_geometry, their_format = read_descriptor((theirs / "image.dzi").read_bytes())
    assert (our_geometry, our_format) == (their_geometry, their_format)

    our_tiles, their_tiles = tile_files(ours, "image"), tile_files(theirs, "image")
    assert sorted(our_tiles) == sorted(their_tiles)
    for key, path in our_tiles.items():
        with Image.open(path) as mine, Image.open(their_tiles[key]) as reference:
            assert mine.size == reference.size, key
            quality = psnr(mine.convert("RGB"), reference.convert("RGB"))
            assert quality >= 40, f"tile {key}: {quality:.1f} dB"
