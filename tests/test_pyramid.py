"""The streaming pyramid: every level exact, the descriptor last, nothing published on failure."""

import threading

import pytest
from helpers import assemble_level, convert, psnr, sample_image
from PIL import Image

import deepzoom
from deepzoom.dzi import read_descriptor


class RecordingSink:
    def __init__(self, fail_on: int | None = None) -> None:
        self.puts: list[tuple[str, int, str]] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def put(self, path: str, data: bytes, content_type: str) -> None:
        with self._lock:
            if self.fail_on is not None and len(self.puts) == self.fail_on:
                raise ConnectionError("simulated storage outage")
            self.puts.append((path, len(data), content_type))


def opened(tmp_path, width=700, height=450, mode="RGB"):
    source = tmp_path / "source.png"
    sample_image(width, height, mode).save(source)
    return deepzoom.open_image(source)


@pytest.mark.parametrize(
    ("width", "height", "tile_size", "overlap"),
    [(700, 450, 254, 1), (513, 1025, 100, 3), (97, 61, 7, 3), (1, 333, 16, 0), (640, 1, 255, 2)],
)
def test_every_level_is_the_one_above_halved(tmp_path, width, height, tile_size, overlap):
    source = tmp_path / "source.png"
    original = sample_image(width, height)
    original.save(source)
    stats = convert(source, tmp_path / "out", tile_size=tile_size, overlap=overlap, format="png")
    expected = original
    for level in reversed(range(stats.levels)):
        assert psnr(assemble_level(tmp_path / "out", "image", level), expected) == float("inf"), level
        expected = expected.reduce(2)
    assert expected.size == (1, 1)


def test_descriptor_comes_after_every_tile(tmp_path):
    sink = RecordingSink()
    stats = deepzoom.write_pyramid(opened(tmp_path), sink, "photos/a b")
    geometry = deepzoom.DeepZoomGeometry(700, 450)
    expected_tiles = {
        deepzoom.tile_path("photos/a b", level, column, row, "jpg")
        for level in range(geometry.level_count)
        for column, row, _ in geometry.tiles(level)
    }
    paths = [path for path, _, _ in sink.puts]
    assert paths[-1] == "photos/a b.dzi"
    assert sorted(paths[:-1]) == sorted(expected_tiles)
    assert {content_type for _, _, content_type in sink.puts[:-1]} == {"image/jpeg"}
    assert sink.puts[-1][2] == "application/xml"
    assert stats.tiles == len(expected_tiles) == geometry.tile_count
    assert stats.bytes == sum(size for _, size, _ in sink.puts[:-1])


def test_a_failed_tile_means_no_descriptor(tmp_path):
    sink = RecordingSink(fail_on=5)
    with pytest.raises(ConnectionError) as raised:
        deepzoom.write_pyramid(opened(tmp_path), sink, "image", workers=3)
    assert any("while storing tile image_files/" in note for note in raised.value.__notes__)
    assert not any(path.endswith(".dzi") for path, _, _ in sink.puts)


def test_descriptor_round_trips(tmp_path):
    sink = deepzoom.DirectorySink(tmp_path)
    deepzoom.write_pyramid(opened(tmp_path, 300, 200), sink, "image", deepzoom.TileSettings(256, 0, "webp", 70))
    xml = (tmp_path / "image.dzi").read_bytes()
    assert b'xmlns="http://schemas.microsoft.com/deepzoom/2008"' in xml
    geometry, tile_format = read_descriptor(xml)
    assert (geometry, tile_format) == (deepzoom.DeepZoomGeometry(300, 200, 256, 0), "webp")


def test_progress_counts_every_tile(tmp_path):
    done = []
    stats = deepzoom.write_pyramid(opened(tmp_path), RecordingSink(), "image", progress=done.append)
    assert sum(done) == stats.tiles


def test_jpeg_tiles_are_plain_rgb(tmp_path):
    out = tmp_path / "out"
    deepzoom.write_pyramid(opened(tmp_path, mode="RGBA"), deepzoom.DirectorySink(out), "image")
    with Image.open(out / "image_files/10/0_0.jpg") as tile:
        assert (tile.format, tile.mode, tile.size) == ("JPEG", "RGB", (255, 255))


def test_a_failing_progress_callback_is_not_lost(tmp_path):
    def broken(count):
        raise ValueError("progress bar fell over")

    sink = RecordingSink()
    with pytest.raises(ValueError, match="fell over"):
        deepzoom.write_pyramid(opened(tmp_path), sink, "image", progress=broken)
    assert not any(path.endswith(".dzi") for path, _, _ in sink.puts)


def test_after_the_first_failed_tile_no_more_are_encoded_or_sent(tmp_path):
    """Tiles queued behind a failure are dropped: only those already in a worker's hands finish."""
    source = tmp_path / "big.png"
    sample_image(2000, 1500).save(source)

    class FailingSink:
        def __init__(self) -> None:
            self.puts = 0
            self.lock = threading.Lock()

        def put(self, path: str, data: bytes, content_type: str) -> None:
            with self.lock:
                self.puts += 1
                if self.puts == 5:
                    raise OSError("disk full")

    sink = FailingSink()
    workers = 4
    with pytest.raises(OSError, match="disk full"):
        deepzoom.write_pyramid(deepzoom.open_image(source), sink, "big", workers=workers)
    assert sink.puts <= 5 + (workers - 1), sink.puts
