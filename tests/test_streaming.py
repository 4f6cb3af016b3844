"""Streaming decode: bands identical to a full decode, memory held to a few bands, and a fallback that says why."""

from __future__ import annotations

import dataclasses
import errno
import io
import logging
import mmap
import os
import struct
import sys
import threading
import weakref
import zlib
from pathlib import Path

import pytest
import pyvips
from helpers import sample_image
from PIL import Image

import deepzoom
from deepzoom import memory, source, streaming
from deepzoom.limits import pillow_pixel_limit_lifted



def saved(tmp_path: Path, image: Image.Image, name: str, **options: object) -> Path:
    path = tmp_path / name
    image.save(path, **options)
    return path


def vips_tiff(tmp_path: Path, image: Image.Image, name: str, **options: object) -> Path:
    png = saved(tmp_path, image, name + ".png")
    path = tmp_path / name
    pyvips.Image.new_from_file(str(png)).tiffsave(str(path), **options)
    return path


# (file name, how to write it): odd sizes, so no band or MCU boundary lines up by luck
STREAMABLE = {
    "420.jpg": lambda p: saved(p, sample_image(333, 517), "420.jpg", quality=90, subsampling="4:2:0"),
    "422.jpg": lambda p: saved(p, sample_image(333, 517), "422.jpg", quality=90, subsampling="4:2:2"),
    "444.jpg": lambda p: saved(p, sample_image(333, 517), "444.jpg", quality=90, subsampling="4:4:4"),
    "grey.jpg": lambda p: saved(p, sample_image(301, 409, "L"), "grey.jpg"),
    "cmyk.jpg": lambda p: saved(p, sample_image(301, 409, "CMYK"), "cmyk.jpg"),
    "one-row.jpg": lambda p: saved(p, sample_image(999, 1), "one-row.jpg"),
    "rgb.png": lambda p: saved(p, sample_image(333, 517), "rgb.png"),
    "rgba.png": lambda p: saved(p, sample_image(333, 517, "RGBA"), "rgba.png"),
    "grey.png": lambda p: saved(p, sample_image(333, 517, "L"), "grey.png"),
    "grey-alpha.png": lambda p: saved(p, sample_image(333, 517, "LA"), "grey-alpha.png"),
    "palette.png": lambda p: saved(p, sample_image(333, 517, "P"), "palette.png", transparency=3),
    "bilevel.png": lambda p: saved(p, sample_image(333, 517, "1"), "bilevel.png"),
    "16-bit-grey.png": lambda p: saved(p, sample_image(333, 517, "L").convert("I;16"), "16-bit-grey.png"),
    "16-bit-rgba.png": lambda p: _vips_png16(p, sample_image(333, 517, "RGBA")),
    "one-row.png": lambda p: saved(p, sample_image(999, 1), "one-row.png"),
    "lzw.tif": lambda p: saved(p, sample_image(333, 517), "lzw.tif", compression="tiff_lzw"),
    "deflate-grey.tif": lambda p: saved(p, sample_image(333, 517, "L"), "deflate-grey.tif", compression="tiff_adobe_deflate"),
    "jpeg.tif": lambda p: vips_tiff(p, sample_image(333, 517), "jpeg.tif", compression="jpeg", Q=90),
    "none-strips.tif": lambda p: vips_tiff(p, sample_image(333, 517), "none-strips.tif", compression="none"),
    "rgba-lzw.tif": lambda p: saved(p, sample_image(333, 517, "RGBA"), "rgba-lzw.tif", compression="tiff_lzw"),
    "tiled.tif": lambda p: vips_tiff(p, sample_image(333, 517), "tiled.tif", tile=True, tile_width=64, tile_height=48, compression="deflate"),
    "tiled-jpeg.tif": lambda p: vips_tiff(p, sample_image(333, 517), "tiled-jpeg.tif", tile=True, tile_width=128, tile_height=128, compression="jpeg"),
    "bigtiff-strips.tif": lambda p: vips_tiff(p, sample_image(333, 517), "bigtiff-strips.tif", compression="lzw", bigtiff=True),
    "bigtiff-tiled.tif": lambda p: vips_tiff(p, sample_image(333, 517), "bigtiff-tiled.tif", tile=True, tile_width=64, tile_height=64, compression="none", bigtiff=True),
}  # fmt: skip


def _vips_png16(folder: Path, image: Image.Image) -> Path:
    """Pillow writes no 16-bit colour PNG; libvips does."""
    png = saved(folder, image, "rgba8.png")
    path = folder / "16-bit-rgba.png"
    pyvips.Image.new_from_file(str(png)).cast("ushort").__mul__(257).cast("ushort").copy(
        interpretation="rgb16"
    ).pngsave(str(path), bitdepth=16)
    return path


def full_decode(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.copy()


@pytest.mark.parametrize("name", sorted(STREAMABLE))
def test_streamed_rows_are_the_full_decode(tmp_path, name):
    path = STREAMABLE[name](tmp_path)
    opened = deepzoom.open_image(path)
    assert opened.decoding == "streamed"
    expected = full_decode(path)
    top = 0
    for band in streaming.stream_rows(Image.open(path), 100):
        assert band.mode == expected.mode and band.width == expected.width
        assert band.tobytes() == expected.crop((0, top, expected.width, top + band.height)).tobytes(), top
        assert band.getpalette() == expected.crop((0, 0, 1, 1)).getpalette()
        top += band.height
    assert top == expected.height


@pytest.mark.parametrize("name", sorted(STREAMABLE))
def test_streamed_bands_are_normalised_as_before(tmp_path, name):
    """Orientation, ICC, 16-bit scaling, palette and alpha come out as from the whole image."""
    path = STREAMABLE[name](tmp_path)
    streamed = deepzoom.open_image(path)
    whole = dataclasses.replace(streamed, image=full_decode(path), streamed=False)
    for flatten_onto in (None, (10, 200, 30)):
        assert _joined(streamed.bands(128, flatten_onto)) == _joined(whole.bands(128, flatten_onto))


def _joined(bands) -> bytes:
    return b"".join(band.tobytes() for band in bands)


def test_a_mirrored_photo_streams_and_comes_out_mirrored(tmp_path):
    exif = Image.Exif()
    exif[source.ORIENTATION_TAG] = 2  # mirrored left to right
    photo = sample_image(301, 211)
    path = saved(tmp_path, photo, "selfie.jpg", exif=exif, quality=95)
    opened = deepzoom.open_image(path)
    assert opened.decoding == "streamed"
    expected = full_decode(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert _joined(opened.bands(64)) == expected.tobytes()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[source.ORIENTATION_TAG] = orientation
    return exif


def _jpeg2000(folder: Path) -> Path:
    return saved(folder, sample_image(64, 48), "master.jp2")


def _heic(folder: Path) -> Path:
    import pillow_heif

    path = folder / "phone.heic"
    pillow_heif.from_pillow(sample_image(64, 48)).save(path, quality=90)
    return path


def _float_tiff(folder: Path) -> Path:
    return saved(folder, sample_image(64, 48, "L").convert("F"), "float.tif")


def _planar_tiff(folder: Path) -> Path:
    """Only the tag says planar (neither Pillow nor libvips writes such files): the choice is made from tags."""
    return saved(folder, sample_image(64, 48), "planar.tif", tiffinfo={284: 2})


# (file name, how to write it, words the reason must contain)
WHOLE = {
    "progressive.jpg": (lambda p: saved(p, sample_image(64, 48), "progressive.jpg", progressive=True), "progressive"),
    "interlaced.png": (lambda p: vips_png(p, "interlaced.png", interlace=True), "interlaced"),
    "single-strip.tif": (lambda p: saved(p, sample_image(64, 48), "single-strip.tif", compression="tiff_lzw"), "single-strip"),
    "turned.jpg": (lambda p: saved(p, sample_image(64, 48), "turned.jpg", exif=_exif(6)), "orientation"),
    "upside-down.jpg": (lambda p: saved(p, sample_image(64, 48), "upside-down.jpg", exif=_exif(4)), "orientation"),
    "photo.webp": (lambda p: saved(p, sample_image(64, 48), "photo.webp"), "WEBP"),
    "anim.gif": (lambda p: saved(p, sample_image(64, 48, "P"), "anim.gif"), "GIF"),
    "master.jp2": (_jpeg2000, "JPEG2000"),
    "phone.heic": (lambda p: _heic(p), "HEIF"),
    "photo.avif": (lambda p: saved(p, sample_image(64, 48), "photo.avif"), "AVIF"),
    "float.tif": (_float_tiff, "float"),
    "planar.tif": (_planar_tiff, "planes"),
}  # fmt: skip


def vips_png(folder: Path, name: str, **options: object) -> Path:
    png = saved(folder, sample_image(64, 48), "plain-" + name)
    path = folder / name
    pyvips.Image.new_from_file(str(png)).pngsave(str(path), **options)
    return path


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_what_cannot_stream_is_decoded_whole_and_says_why(tmp_path, name):
    make, words = WHOLE[name]
    path = make(tmp_path)
    opened = deepzoom.open_image(path)
    assert not opened.streamed
    assert opened.decoding.startswith("decoded whole: ") and words in opened.decoding, opened.decoding
    assert sum(band.height for band in opened.bands(20)) == opened.size[1]


def test_a_tall_streamed_image_holds_a_few_bands_at_most(tmp_path, monkeypatch):
    """Instrumented, not timed: rows resident in the decoder's mapping, and bands alive, at every band."""
    path = saved(tmp_path, sample_image(300, 6000), "tall.jpg", quality=85)
    resident_rows: list[int] = []
    taken: list[weakref.ref[Image.Image]] = []
    most_alive = 0
    take = streaming._RowMap._take

    def counting_take(self: streaming._RowMap, top: int, bottom: int) -> Image.Image:
        nonlocal most_alive
        resident_rows.append(_resident_rows(self))
        band = take(self, top, bottom)
        taken.append(weakref.ref(band))
        most_alive = max(most_alive, sum(ref() is not None for ref in taken))
        return band

    monkeypatch.setattr(streaming._RowMap, "_take", counting_take)
    image = deepzoom.open_image(path)
    stats = deepzoom.write_pyramid(image, deepzoom.DirectorySink(tmp_path / "out"), "tall", workers=2)
    assert stats.height == 6000 and len(resident_rows) == -(-6000 // 254)
    band_rows = 254
    assert max(resident_rows) <= 3 * band_rows, "decoded two bands ahead at most, and rows given back as taken"
    assert most_alive <= 3, "the pyramid lets go of the bands it has cut and halved"


def _resident_rows(row_map: streaming._RowMap) -> int:
    pages = row_map.height * row_map.pages_per_row
    residency = streaming.ctypes.create_string_buffer(pages)
    assert streaming._MINCORE(row_map.address, pages * streaming.PAGE, residency) == 0
    return residency.raw.count(b"\x01") // row_map.pages_per_row


def test_a_truncated_streamed_jpeg_fails_as_bad_input_and_writes_no_descriptor(tmp_path):
    buffer = io.BytesIO()
    sample_image(600, 2000).save(buffer, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    image = deepzoom.open_image(path)
    with pytest.raises(deepzoom.InvalidImage, match="truncated"):
        deepzoom.write_pyramid(image, deepzoom.DirectorySink(tmp_path / "out"), "cut")
    assert any((tmp_path / "out" / "cut_files").rglob("*.jpg")), "tiles were under way when the data ran out"
    assert not (tmp_path / "out" / "cut.dzi").exists()


def test_admission_refuses_what_will_not_fit_naming_both_figures(tmp_path):
    streamed = saved(tmp_path, sample_image(2000, 100), "wide.jpg")
    whole = saved(tmp_path, sample_image(2000, 100), "wide-progressive.jpg", progressive=True)
    need_streamed = memory.estimated_peak(Image.open(streamed), streamed=True)
    need_whole = memory.estimated_peak(Image.open(whole), streamed=False)
    assert need_whole > need_streamed, "a whole decode needs its area on top"
    limit = need_streamed + 1
    assert deepzoom.open_image(streamed, deepzoom.Limits(memory=limit)).streamed
    with pytest.raises(deepzoom.ImageTooLarge) as refused:
        deepzoom.open_image(whole, deepzoom.Limits(memory=limit))
    reason = str(refused.value)
    assert f"{need_whole / 2**20:,.0f} MB" in reason and f"{limit / 2**20:,.0f} MB" in reason
    assert "progressive" in reason


def test_progressive_jpeg_is_estimated_with_its_coefficients():
    """libjpeg keeps 2 bytes a coefficient: 1.5 coefficients a pixel at 4:2:0, 3 at 4:4:4, beside 4 bytes of RGB."""
    estimates = {}
    for subsampling in ("4:2:0", "4:4:4"):
        buffer = io.BytesIO()
        sample_image(1000, 1000).save(buffer, "JPEG", progressive=True, subsampling=subsampling)
        estimates[subsampling] = memory.estimated_peak(Image.open(buffer), streamed=False)
    base = memory.BASE_BYTES + memory.BYTES_PER_COLUMN * 1000
    assert estimates["4:2:0"] - base == pytest.approx(7.0 * 1e6)
    assert estimates["4:4:4"] - base == pytest.approx(10.0 * 1e6)


def test_the_header_alone_refuses_before_the_file_is_fetched():
    buffer = io.BytesIO()
    sample_image(3000, 2000).save(buffer, "JPEG", progressive=True)
    head = buffer.getvalue()[:4096]
    with pytest.raises(deepzoom.ImageTooLarge, match="3000x2000"):
        deepzoom.check_header(head, deepzoom.Limits(memory=20 * 2**20))
    assert deepzoom.check_header(head, deepzoom.Limits(memory=2**40))
    assert not deepzoom.check_header(b"II*\x00"), "too short to tell: judged after the download"


def test_memory_available_prefers_lambda_then_cgroup_then_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    assert memory.memory_available(fallback=5) == 1769 * 2**20
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    limit = tmp_path / "memory.max"
    limit.write_text("536870912\n")
    monkeypatch.setattr(memory, "CGROUP_LIMITS", (str(tmp_path / "missing"), str(limit)))
    assert memory.memory_available(fallback=5) == 512 * 2**20
    limit.write_text("max\n")
    assert memory.memory_available(fallback=5) == 5


def test_a_tiff_with_tall_tiles_is_estimated_with_them(tmp_path):
    """A row of tiles is decoded at once: past a band's height, it counts on top of the bands."""
    short = saved(tmp_path, sample_image(400, 3000, "L"), "short.tif", compression="tiff_lzw")
    tall = vips_tiff(tmp_path, sample_image(400, 3000), "tall.tif", tile=True, tile_width=128, tile_height=1024)
    base = memory.BASE_BYTES + memory.BYTES_PER_COLUMN * 400
    assert memory.estimated_peak(Image.open(short), streamed=True) == base
    assert memory.estimated_peak(Image.open(tall), streamed=True) == base + 2 * 4 * 400 * 1024


def test_decoders_that_hold_more_than_their_image_are_estimated_so(tmp_path):
    """libwebp and openjpeg keep buffers of their own: 16 and 20 bytes a pixel at peak, not Pillow's 4."""
    base = memory.BASE_BYTES + memory.held_rows_bytes(64, 48)
    webp = saved(tmp_path, sample_image(64, 48), "a.webp")
    bmp = saved(tmp_path, sample_image(64, 48), "a.bmp")
    assert memory.estimated_peak(Image.open(webp), streamed=False) == base + 16 * 64 * 48
    assert memory.estimated_peak(Image.open(bmp), streamed=False) == base + 4 * 64 * 48


def test_a_jpeg_whose_first_scan_lacks_colours_is_decoded_whole_with_its_coefficients(tmp_path):
    """Non-interleaved: one scan per component, so libjpeg has no row until the last scan."""
    path = tmp_path / "separate.jpg"
    pyvips.Image.new_from_memory(sample_image(64, 48).tobytes(), 64, 48, 3, "uchar").jpegsave(
        str(path), optimize_scans=False, interlace=False
    )
    interleaved = deepzoom.open_image(path)
    assert interleaved.streamed, "libvips writes one interleaved scan"
    from deepzoom import jpeg

    data = path.read_bytes()
    assert jpeg.first_scan_is_interleaved(data)
    sos = data.index(b"\xff\xda")
    one_component = data[:sos] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + data[sos + 14 :]
    assert not jpeg.first_scan_is_interleaved(one_component)
    header = Image.open(io.BytesIO(one_component))  # Pillow reads no further than the first scan's header
    assert "first scan lacks some colours" in streaming.stream_refusal(header)
    whole_cost = memory.estimated_peak(header, streamed=False) - memory.estimated_peak(Image.open(path), streamed=False)
    assert whole_cost > 0, "its coefficients are counted"


def test_a_decoder_that_cannot_start_fails_the_bands_instead_of_hanging(tmp_path, monkeypatch):
    path = saved(tmp_path, sample_image(300, 700), "a.jpg")
    opened = deepzoom.open_image(path)

    def no_decoder(*args, **kwargs):
        raise OSError("decoder jpeg not available")

    monkeypatch.setattr(Image, "_getdecoder", no_decoder)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: outcome.append(_raised(lambda: list(opened.bands(100)))))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the taker waited for a decode thread that had died"
    assert isinstance(outcome[0], deepzoom.InvalidImage) and "decoder jpeg not available" in str(outcome[0])


def _raised(call) -> BaseException | None:
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - handed back to the test
        return error
    return None


def test_a_png_with_an_empty_idat_chunk_streams(tmp_path):
    path = saved(tmp_path, sample_image(200, 300), "chunks.png")
    data = path.read_bytes()
    empty = struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))
    first = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[first : first + 4])
    after_first = first + 12 + length
    path.write_bytes(data[:after_first] + empty + data[after_first:])
    expected = full_decode(path)
    assert deepzoom.open_image(path).decoding == "streamed"
    assert b"".join(band.tobytes() for band in streaming.stream_rows(Image.open(path), 64)) == expected.tobytes()


def test_a_tiff_claiming_strips_of_no_rows_is_bad_input(tmp_path):
    path = saved(tmp_path, sample_image(64, 600, "L"), "zero.tif", compression="tiff_lzw", strip_size=640)
    data = bytearray(path.read_bytes())
    with Image.open(path) as image:
        assert image.tag_v2[278] == 10
    entry = next(i for i in range(8, len(data) - 12, 2) if data[i : i + 4] == b"\x16\x01\x03\x00")  # 278, SHORT
    data[entry + 8 : entry + 10] = b"\x00\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(deepzoom.InvalidImage):
        deepzoom.write_pyramid(deepzoom.open_image(path), deepzoom.DirectorySink(tmp_path / "out"), "zero")


def test_a_short_wide_image_is_estimated_by_the_rows_it_has():
    """A 240,000 x 100 line scan holds 100 rows, not the rows of a tall image's bands: it fits 1769 MB."""
    buffer = io.BytesIO(_png_header(240_000, 100))
    need = memory.estimated_peak(Image.open(buffer), streamed=True)
    assert need < 1769 * 2**20
    assert need == memory.BASE_BYTES + memory.BYTES_PER_COLUMN_ROW * 100 * 240_000
    assert deepzoom.check_header(buffer.getvalue(), deepzoom.Limits(memory=1769 * 2**20))


def test_a_tall_image_is_estimated_by_its_width_as_before():
    """65,000 pixels wide (about JPEG's widest) and taller than the rows every level holds: unchanged."""
    with pillow_pixel_limit_lifted():
        image = Image.open(io.BytesIO(_jpeg_header(65_000, 4_000)))
    assert image.size == (65_000, 4_000) and streaming.stream_refusal(image) is None
    assert memory.estimated_peak(image, streamed=True) == memory.BASE_BYTES + 8_000 * 65_000
    assert memory.held_rows_bytes(65_000, 800) == memory.held_rows_bytes(65_000, 100_000) == 8_000 * 65_000


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int) -> bytes:
    """A baseline JPEG's header, its frame made to claim ``width`` x ``height`` (Pillow reads no further)."""
    buffer = io.BytesIO()
    sample_image(64, 16).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_a_short_wide_conversion_peaks_below_its_estimate(tmp_path):
    """Measured: the peak RSS of ``python -m deepzoom`` converting 240,000 x 100, above that of a tiny image
    (the interpreter and libraries, which BASE_BYTES covers for the Lambda), within what the estimate adds."""
    from bench.measure import measure

    tiny = saved(tmp_path, sample_image(64, 48), "tiny.png")
    wide = tmp_path / "scan.png"
    ramp = Image.linear_gradient("L").resize((240_000, 100))
    Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ramp)).save(wide, compress_level=1)
    peaks = {}
    for path in (tiny, wide):
        run = measure([sys.executable, "-m", "deepzoom", str(path), str(tmp_path / path.stem)])
        assert "(streamed)" in run.output
        peaks[path.stem] = run.peak_mb * 1e6
    estimate = memory.estimated_peak(Image.open(wide), streamed=True)
    assert peaks["scan"] < estimate
    assert peaks["scan"] - peaks["tiny"] < estimate - memory.BASE_BYTES, (peaks, estimate)


def test_a_decode_that_fails_its_self_test_falls_back_to_a_whole_decode(tmp_path, monkeypatch, caplog):
    """A Pillow upgrade that changed an internal streaming relies on: said once, loudly; the images convert."""
    monkeypatch.setattr(streaming, "_self_test_failures", None)
    monkeypatch.delattr(Image.core, "map_buffer")
    with caplog.at_level(logging.ERROR, "deepzoom"):
        failures = streaming.self_test()
        assert streaming.self_test() is failures, "once"
    assert set(failures) == {"JPEG", "PNG"}, "TIFF streams without it"
    assert all("AttributeError" in failure and "map_buffer" in failure for failure in failures.values())
    said = [record for record in caplog.records if record.name == "deepzoom.streaming"]
    assert len(said) == 2 and all(record.levelno == logging.ERROR and record.exc_info for record in said)
    tiff_strips = {"compression": "tiff_lzw", "strip_size": 9000}
    for name in ("photo.jpg", "photo.png", "strips.tif"):
        path = saved(tmp_path, sample_image(300, 200), name, **(tiff_strips if name.endswith(".tif") else {}))
        image = deepzoom.open_image(path)
        if name.endswith(".tif"):
            assert image.decoding == "streamed"
        else:
            assert image.decoding.startswith("decoded whole: streaming ") and "failed its self-test" in image.decoding
        assert deepzoom.write_pyramid(image, deepzoom.DirectorySink(tmp_path / "out" / name), "photo").width == 300


def test_while_streaming_is_out_of_order_what_fits_only_streamed_is_retried_not_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "_self_test_failures", {"JPEG": "AttributeError: no map_buffer"})
    path = saved(tmp_path, sample_image(2000, 1000), "photo.jpg")
    streamed = memory.estimated_peak(Image.open(path), streamed=True)
    whole = memory.estimated_peak(Image.open(path), streamed=False)
    with pytest.raises(streaming.StreamingUnavailable, match="fits in memory only streamed") as raised:
        deepzoom.open_image(path, deepzoom.Limits(memory=(streamed + whole) // 2))
    assert not isinstance(raised.value, deepzoom.DeepZoomError), "not bad input: retried, and logged as an error"
    with pytest.raises(deepzoom.ImageTooLarge):
        deepzoom.open_image(path, deepzoom.Limits(memory=streamed - 1))  # too large either way
    with pytest.raises(streaming.StreamingUnavailable):
        deepzoom.check_header(path.read_bytes()[:4096], deepzoom.Limits(memory=(streamed + whole) // 2))
    assert not deepzoom.open_image(path, deepzoom.Limits(memory=whole)).streamed


@pytest.mark.parametrize(("code", "passes"), [(errno.EINVAL, True), (errno.ENOMEM, False)])
def test_a_kernel_without_huge_pages_still_streams(tmp_path, monkeypatch, code, passes):
    """MADV_NOHUGEPAGE answers EINVAL where the kernel has no transparent huge pages: nothing to advise against."""

    class Mapping(mmap.mmap):
        def madvise(self, option, *args):
            if option == mmap.MADV_NOHUGEPAGE:
                raise OSError(code, os.strerror(code))
            return super().madvise(option, *args)

    path = saved(tmp_path, sample_image(300, 400), "photo.jpg")
    monkeypatch.setattr(mmap, "mmap", Mapping)
    if passes:
        bands = streaming.stream_rows(Image.open(path), 100)
        assert b"".join(band.tobytes() for band in bands) == full_decode(path).tobytes()
    else:  # another answer is the machine's (a transient failure), as a refused mapping is
        with pytest.raises(streaming.MappingRefused, match="huge pages"):
            next(streaming.stream_rows(Image.open(path), 100))
