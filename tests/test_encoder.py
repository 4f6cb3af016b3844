"""TileEncoder: the bytes Pillow would write, from many threads at once, through in-memory files it closes."""

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import sample_image
from PIL import Image

from deepzoom.formats import FORMATS, TileEncoder


def pillow_bytes(tile: Image.Image, format_name: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    tile.save(buffer, **FORMATS[format_name].save_options(quality))
    return buffer.getvalue()


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(("format_name", "mode"), [("jpg", "RGB"), ("png", "RGBA"), ("webp", "RGBA")])
def test_bytes_are_those_pillow_writes(format_name, mode):
    tile = sample_image(254, 190, mode)
    encoder = TileEncoder(FORMATS[format_name], 70)
    try:
        assert encoder.encode(tile) == pillow_bytes(tile, format_name, 70)
    finally:
        encoder.close()


def test_a_small_tile_after_a_large_one_carries_nothing_of_it():
    large, small = sample_image(512, 512, seed=2), sample_image(3, 2, seed=3)
    encoder = TileEncoder(FORMATS["png"], 80)
    try:
        assert encoder.encode(large) == pillow_bytes(large, "png", 80)
        assert encoder.encode(small) == pillow_bytes(small, "png", 80)
    finally:
        encoder.close()


def test_tiles_encoded_on_many_threads_do_not_mix():
    tiles = [sample_image(64 + seed % 7 * 30, 50 + seed % 5 * 40, seed=seed) for seed in range(120)]
    encoder = TileEncoder(FORMATS["jpg"], 80)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            encoded = list(pool.map(encoder.encode, tiles))
    finally:
        encoder.close()
    assert encoded == [pillow_bytes(tile, "jpg", 80) for tile in tiles]


def test_close_releases_every_scratch_file():
    before = open_descriptors()
    encoder = TileEncoder(FORMATS["jpg"], 80)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(encoder.encode, [sample_image(254, 254, seed=seed) for seed in range(16)]))
    assert open_descriptors() - before, "the encoder should hold its scratch files open between tiles"
    encoder.close()
    assert open_descriptors() - before == set()


def test_without_memfd_an_unlinked_temporary_file_does_the_same(monkeypatch):
    def refused(*args: object) -> int:
        raise OSError("memfd_create refused")

    monkeypatch.setattr(os, "memfd_create", refused)
    tile = sample_image(100, 80)
    encoder = TileEncoder(FORMATS["jpg"], 80)
    try:
        assert encoder.encode(tile) == pillow_bytes(tile, "jpg", 80)
    finally:
        encoder.close()


@pytest.mark.parametrize(
    ("mode", "options"),
    [("RGB", {}), ("L", {}), ("RGB", {"subsampling": 2, "streamtype": 2}), ("RGB", {"subsampling": 2, "streamtype": 1})],
)
def test_jpeg_tiles_after_the_first_are_still_the_bytes_save_writes(mode, options):
    """After the first tile of a mode, JPEG tiles go straight to Pillow's encoder: every size, every one."""
    encoder = TileEncoder(FORMATS["jpg"], 75, **options)
    tiles = [sample_image(1 + seed * 37 % 300, 1 + seed * 53 % 260, mode, seed=seed) for seed in range(40)]
    try:
        encoded = [encoder.encode(tile) for tile in tiles]
        assert mode in encoder._jpeg_settings, "the settings of the first tile should be kept"
    finally:
        encoder.close()
    expected = []
    for tile in tiles:
        buffer = io.BytesIO()
        tile.save(buffer, **FORMATS["jpg"].save_options(75), **options)
        expected.append(buffer.getvalue())
    assert encoded == expected


def test_a_tile_with_a_comment_of_its_own_keeps_it():
    encoder = TileEncoder(FORMATS["jpg"], 80)
    plain, commented = sample_image(64, 64, seed=4), sample_image(64, 64, seed=5)
    commented.info["comment"] = b"from the source"
    try:
        encoder.encode(plain)
        assert encoder.encode(commented) == pillow_bytes(commented, "jpg", 80)
        assert encoder.encode(plain) == pillow_bytes(plain, "jpg", 80)
    finally:
        encoder.close()


@pytest.mark.parametrize(("format_name", "mode"), [("jpg", "RGB"), ("jpg", "L"), ("png", "RGBA")])
def test_a_box_of_an_image_is_encoded_as_its_crop(format_name, mode):
    """A tile given as a box of the rows it is cut from: the bytes of the crop, the first tile and later ones."""
    rows = sample_image(700, 300, mode, seed=9)
    boxes = [(0, 0, 256, 256), (253, 0, 511, 258), (509, 41, 700, 300), (0, 299, 1, 300), (0, 0, 700, 300)]
    encoder = TileEncoder(FORMATS[format_name], 80)
    try:
        encoded = [encoder.encode(rows, box) for box in boxes]
    finally:
        encoder.close()
    assert encoded == [pillow_bytes(rows.crop(box), format_name, 80) for box in boxes]


def test_a_box_outside_the_image_is_refused():
    rows = sample_image(300, 200)
    encoder = TileEncoder(FORMATS["jpg"], 80)
    try:
        encoder.encode(rows, (0, 0, 100, 100))
        with pytest.raises(ValueError, match="not inside"):
            encoder.encode(rows, (250, 0, 301, 100))
    finally:
        encoder.close()
