"""The pyramidal TIFF output: right pixels at every level, read by other readers, compact, and all or nothing."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
import pyvips
import tifffile
from PIL import Image

import deepzoom
from deepzoom import pyramidal_tiff
from deepzoom.cli import main as deepzoom_main
from tests.helpers import assemble_level, psnr


def smooth_picture(width: int, height: int) -> Image.Image:
    """A photo-like picture (no pixel noise, which JPEG cannot keep at any grid): edges, curves, gradients."""
    fractal = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 64)
    return Image.merge(
        "RGB",
        (fractal, Image.linear_gradient("L").resize((width, height)), Image.radial_gradient("L").resize((width, height))),
    )


def jpeg_at_80(image: Image.Image) -> Image.Image:
    """``image`` through the JPEG encoder at the tiles' quality and chroma subsampling, as one piece."""
    encoded = io.BytesIO()
    image.save(encoded, "JPEG", quality=80, subsampling=2)
    return Image.open(encoded).convert("RGB")


def write(source: Path, out: Path, outputs: tuple[str, ...], **settings: object) -> deepzoom.PyramidStats:
    image = deepzoom.open_image(source)
    return deepzoom.write_pyramid(
        image, deepzoom.DirectorySink(out), "image", deepzoom.TileSettings(**settings), outputs=outputs  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 1,500 x 1,100 picture made into a TIFF and, from the same decode, lossless PNG Deep Zoom tiles."""
    folder = tmp_path_factory.mktemp("tiff")
    source = folder / "picture.png"
    smooth_picture(1500, 1100).save(source)
    write(source, folder, ("dzi", "tiff"), format="png")
    return source, folder, folder / "image.tif"


def test_levels_are_libvips_layout_and_match_the_deep_zoom_levels(made: tuple[Path, Path, Path]) -> None:
    _, folder, tif = made
    geometry = deepzoom.DeepZoomGeometry(1500, 1100)
    with tifffile.TiffFile(tif) as file:
        pages = list(file.pages)
        assert not file.is_bigtiff
        assert [page.shape for page in pages] == [(1100, 1500, 3), (550, 750, 3), (275, 375, 3), (138, 188, 3)]
        assert [page.is_reduced for page in pages] == [False, True, True, True]
        for number, page in enumerate(pages):
            assert page.is_tiled and (page.tilewidth, page.tilelength) == (256, 256)
            assert page.compression == tifffile.COMPRESSION.JPEG
            level = geometry.max_level - number
            exact = assemble_level(folder, "image", level).convert("RGB")
            decoded = Image.fromarray(page.asarray())
            assert psnr(decoded, exact) > psnr(jpeg_at_80(exact), exact) - 1, level  # as good as JPEG can be


def test_pyvips_and_pillow_read_every_level_as_tifffile_does(made: tuple[Path, Path, Path]) -> None:
    _, _, tif = made
    with tifffile.TiffFile(tif) as file:
        by_tifffile = [Image.fromarray(page.asarray()) for page in file.pages]
    for number, expected in enumerate(by_tifffile):
        level = pyvips.Image.new_from_file(str(tif), page=number)
        by_vips = Image.frombytes("RGB", (level.width, level.height), level.write_to_memory())
        assert psnr(by_vips, expected) > 45, number  # one JPEG, two decoders: equal up to IDCT rounding
        with Image.open(tif) as pillow:
            pillow.seek(number)
            assert psnr(pillow.convert("RGB"), expected) > 45, number


def test_edge_tiles_are_padded_by_repeating_the_edge(made: tuple[Path, Path, Path]) -> None:
    """Past the image's right and bottom edge a tile repeats its last column and row, so no black block ringing
    leaks into the visible pixels."""
    _, _, tif = made
    with tifffile.TiffFile(tif) as file:
        page = file.pages[3]  # 188 x 138: one tile, mostly padding
        tables, offset, length = page.jpegtables, page.dataoffsets[0], page.databytecounts[0]
    data = tif.read_bytes()[offset : offset + length]
    padded = Image.open(io.BytesIO(tables[:-2] + data[2:]))  # the tables' SOI, then the tile but its SOI
    assert padded.size == (256, 256)
    assert padded.getpixel((250, 60)) == pytest.approx(padded.getpixel((187, 60)), abs=12)
    assert padded.getpixel((100, 250)) == pytest.approx(padded.getpixel((100, 137)), abs=12)


def test_index_comes_first_and_whole(made: tuple[Path, Path, Path]) -> None:
    """Every IFD and tile table lies before the first tile, so one range read of the head has all of them."""
    _, _, tif = made
    with tifffile.TiffFile(tif) as file:
        first_tile = min(offset for page in file.pages for offset in page.dataoffsets)
        ifds = [page.offset for page in file.pages]
        tables = [page.tags["TileOffsets"].valueoffset for page in file.pages]
        jpeg_tables = [page.tags["JPEGTables"].valueoffset for page in file.pages]
    assert max(ifds + tables + jpeg_tables) < first_tile
    assert first_tile < 4096


def test_identical_tiles_are_stored_once(tmp_path: Path) -> None:
    """16,000 x 16,000 white with a 1,000-pixel picture in one corner: barely more than the picture's own."""
    picture = smooth_picture(1000, 1000)
    picture.save(tmp_path / "picture.png")
    canvas = Image.new("P", (16000, 16000), 255)
    quantised = picture.quantize(255)
    canvas.putpalette(quantised.getpalette()[: 255 * 3] + [255, 255, 255])
    canvas.paste(quantised, (0, 0))
    canvas.save(tmp_path / "canvas.png", compress_level=1)
    del canvas
    write(tmp_path / "picture.png", tmp_path / "alone", ("tiff",))
    stats = write(tmp_path / "canvas.png", tmp_path / "canvas", ("tiff",))
    alone = (tmp_path / "alone" / "image.tif").stat().st_size
    assert stats.tiff_bytes == (tmp_path / "canvas" / "image.tif").stat().st_size
    assert stats.tiles == pyramidal_tiff.tiff_tile_count(16000, 16000, 256) == 5334
    assert stats.tiff_bytes < 1.25 * alone + 64 * 1024, (stats.tiff_bytes, alone)


def test_bigtiff_only_where_the_file_could_pass_4_gb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = deepzoom.DirectorySink(tmp_path)
    assert not pyramidal_tiff.PyramidalTiff(sink, "a.tif", 40_000, 40_000, 256, 80).big  # 1.6 GP at quality 80
    assert pyramidal_tiff.PyramidalTiff(sink, "b.tif", 80_000, 80_000, 256, 80).big  # 6.4 GP
    assert pyramidal_tiff.PyramidalTiff(sink, "c.tif", 40_000, 40_000, 256, 100).big  # noise at 100 takes 2 B/px
    # A BigTIFF the readers take: the same small picture, with the 4 GB line moved below it.
    smooth_picture(700, 500).save(tmp_path / "small.png")
    monkeypatch.setattr(pyramidal_tiff, "_CLASSIC_LIMIT", 1)
    write(tmp_path / "small.png", tmp_path / "big", ("tiff",))
    tif = tmp_path / "big" / "image.tif"
    assert tif.read_bytes()[:4] == b"II+\x00"
    with tifffile.TiffFile(tif) as file:
        assert file.is_bigtiff and [page.shape for page in file.pages] == [(500, 700, 3), (250, 350, 3), (125, 175, 3)]
        full = Image.fromarray(file.pages[0].asarray())
    assert psnr(full, smooth_picture(700, 500)) > psnr(jpeg_at_80(smooth_picture(700, 500)), smooth_picture(700, 500)) - 1
    assert pyvips.Image.new_from_file(str(tif), page=1).width == 350


def test_both_outputs_come_from_one_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smooth_picture(600, 400).save(tmp_path / "picture.png")
    calls = []
    bands = deepzoom.SourceImage.bands

    def counted(self: deepzoom.SourceImage, *args: object) -> object:
        calls.append(args)
        return bands(self, *args)

    monkeypatch.setattr(deepzoom.SourceImage, "bands", counted)
    stats = write(tmp_path / "picture.png", tmp_path / "out", ("dzi", "tiff"))
    assert len(calls) == 1
    assert (tmp_path / "out" / "image.dzi").exists() and (tmp_path / "out" / "image.tif").exists()
    assert stats.tiles == deepzoom.DeepZoomGeometry(600, 400).tile_count + 9  # TIFF: 3x2, 2x1 and 1 tiles


def test_tiff_alone_writes_no_deep_zoom_files(tmp_path: Path) -> None:
    smooth_picture(600, 400).save(tmp_path / "picture.png")
    write(tmp_path / "picture.png", tmp_path / "out", ("tiff",))
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["image.tif"]


class BreaksAfter(deepzoom.DirectorySink):
    """Fails the TIFF's stream once some bytes are in."""

    def open(self, path: str, content_type: str, head_size: int) -> deepzoom.ObjectStream:
        stream = super().open(path, content_type, head_size)
        written = []

        def write(data: bytes) -> None:
            written.append(data)
            if len(written) == 3:
                raise OSError(28, "No space left on device")
            original(data)

        original, stream.write = stream.write, write  # type: ignore[method-assign]
        return stream


def test_a_failure_midway_leaves_no_file_and_the_old_one_whole(tmp_path: Path) -> None:
    smooth_picture(900, 700).save(tmp_path / "picture.png")
    write(tmp_path / "picture.png", tmp_path, ("tiff",))
    before = (tmp_path / "image.tif").read_bytes()
    image = deepzoom.open_image(tmp_path / "picture.png")
    with pytest.raises(OSError, match="No space"):
        deepzoom.write_pyramid(image, BreaksAfter(tmp_path), "image", outputs=("tiff",))
    assert (tmp_path / "image.tif").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["image.tif", "picture.png"]


def test_cli_writes_the_tiff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smooth_picture(300, 200).save(tmp_path / "photo.png")
    assert deepzoom_main([str(tmp_path / "photo.png"), str(tmp_path / "out"), "--output", "tiff"]) == 0
    assert str(tmp_path / "out" / "photo.tif") in capsys.readouterr().out
    header = (tmp_path / "out" / "photo.tif").read_bytes()[:8]
    assert header[:4] == b"II*\x00" and struct.unpack("<I", header[4:])[0] == 8  # the first IFD right behind it


def test_cli_refuses_an_unknown_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smooth_picture(30, 20).save(tmp_path / "photo.png")
    assert deepzoom_main([str(tmp_path / "photo.png"), str(tmp_path / "out"), "--output", "zip"]) == 2
    assert "output 'zip' is not one of dzi, tiff or dzi,tiff" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
