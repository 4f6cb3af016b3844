"""Pixels as libpng and libtiff define them, for the kinds Pillow alone reads wrong.

Every file is generated here. Each is converted the way the product converts
(``open_image``, then ``write_pyramid`` to PNG tiles), its full-resolution
level stitched back from the tiles and compared with libvips' decode of the
same file (libvips reads PNG through libspng or libpng and TIFF through
libtiff), both flattened onto one background by the same arithmetic. Each
reference is first checked against the samples the test wrote, so libvips is
shown to follow the formats' rules before it judges. Where it does not (grey
and alpha in separate planes, which libvips 8.18 misreads) or cannot (12-bit
TIFF), tifffile's decode is the reference instead. Every case also pins the
decode path it takes (streamed, or decoded whole), so both paths are covered.

Tiles are small (16 pixels), so even these small images pass through several
bands.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import pyvips
import tifffile
from helpers import assemble_level, convert

import deepzoom


WIDTH, HEIGHT = 61, 43  # odd, so no strip, tile or band boundary lines up by luck
BACKGROUND = np.array([40.0, 160.0, 90.0])  # not grey, so a swapped or dropped channel shows
TOLERANCE = 1.0  # of 255: each side rounds its samples once


def converted(path: Path, out: Path) -> np.ndarray:
    """The product's full-resolution level of ``path`` as RGBA floats (height, width, 4)."""
    stats = convert(path, out, format="png", tile_size=16, overlap=1)
    level = assemble_level(out, "image", stats.levels - 1)
    return np.asarray(level.convert("RGBA"), dtype=float)


def vips_decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """libvips' decode of ``path``: colour (height, width, bands) and alpha (height, width), on 0..255.

    libvips hands associated alpha's colour back un-premultiplied. 16-bit samples are scaled by
    255/65535, and signed 8-bit ones moved up by 128 (the TIFF defaults of SMinSampleValue, -128, and
    SMaxSampleValue, 127, are black and white).
    """
    image = pyvips.Image.new_from_file(str(path))
    data = np.asarray(image, dtype=float).reshape(image.height, image.width, image.bands)
    scale = {"uchar": 1.0, "ushort": 255 / 65535, "char": 1.0}[image.format]
    data = (data + (128.0 if image.format == "char" else 0.0)) * scale
    if image.bands in (2, 4):
        return data[..., :-1], data[..., -1]
    return data, np.full(data.shape[:2], 255.0)


def flattened(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Unassociated ``colour`` composited onto ``BACKGROUND`` by ``alpha``."""
    weight = alpha[..., np.newaxis] / 255
    return colour * weight + BACKGROUND * (1 - weight)


def vips_reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """libvips' decode of ``path`` flattened onto ``BACKGROUND``, and its alpha."""
    colour, alpha = vips_decode(path)
    return flattened(colour, alpha), alpha


def assert_same_pixels(path: Path, out: Path, decoding: str, reference: tuple[np.ndarray, np.ndarray]) -> None:
    """The product's pixels are the reference's: alpha exactly, flattened colour within ``TOLERANCE``."""
    opened = deepzoom.open_image(path)
    assert opened.decoding.startswith(decoding), opened.decoding
    actual = converted(path, out)
    flat, alpha = reference
    assert actual.shape[:2] == alpha.shape
    assert np.array_equal(actual[..., 3], np.round(alpha)), "alpha differs"
    difference = np.abs(flattened(actual[..., :3], actual[..., 3]) - flat)
    assert difference.max() <= TOLERANCE, f"{np.count_nonzero(difference > TOLERANCE)} pixels differ"


# --- PNG: a grey tRNS colour ------------------------------------------------------------------------------

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_rows(samples: np.ndarray, bits: int) -> bytes:
    """Unfiltered scanlines of ``samples`` (height, width * channels), packed at ``bits`` per sample."""
    lines = []
    for row in samples:
        if bits >= 8:
            packed = row.astype(">u2" if bits == 16 else "u1").tobytes()
        else:
            packed = np.packbits(np.unpackbits(row.astype("u1")[:, np.newaxis], axis=1)[:, 8 - bits :]).tobytes()
        lines.append(b"\0" + packed)
    return b"".join(lines)


def png_bytes(samples: np.ndarray, bits: int, colour_type: int, trns: tuple[int, ...], interlace: bool) -> bytes:
    """A PNG of ``samples`` (height, width[, channels]) with a tRNS chunk, written chunk by chunk:
    Pillow writes no 2- or 4-bit greyscale, nor a tRNS chunk that libpng must mask."""
    height, width = samples.shape[:2]
    if interlace:  # Adam7: seven passes, each a small image of its own
        passes = [samples[top::down, left::across] for left, top, across, down in ADAM7]
        data = b"".join(png_rows(part.reshape(part.shape[0], -1), bits) for part in passes if part.size)
    else:
        data = png_rows(samples.reshape(height, -1), bits)
    header = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"tRNS", struct.pack(f">{len(trns)}H", *trns))
        + png_chunk(b"IDAT", zlib.compress(data))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize(("interlace", "decoding"), [(False, "streamed"), (True, "decoded whole")])
@pytest.mark.parametrize("stray_bits", [False, True], ids=["plain", "stray-high-bits"])
def test_png_grey_with_a_transparent_grey(tmp_path, bits, interlace, decoding, stray_bits):
    """The tRNS grey is compared with the samples at their own depth; bits above the depth are masked off
    (PNG spec, tRNS: "decoders must mask the other bits to 0")."""
    if stray_bits and bits == 16:
        pytest.skip("a 16-bit tRNS value has no bits above the depth")
    samples = np.random.default_rng(bits).integers(0, 1 << bits, (HEIGHT, WIDTH))
    transparent = ((1 << bits) - 1) // 3  # 0 at 1 bit: a stray bit then makes the value look non-zero
    samples[::3, ::2] = transparent
    stored = transparent | (1 << bits if stray_bits else 0)
    path = tmp_path / "grey.png"
    path.write_bytes(png_bytes(samples, bits, 0, (stored,), interlace))
    reference = vips_reference(path)
    assert np.array_equal(reference[1], np.where(samples == transparent, 0.0, 255.0)), "libvips masks as libpng"
    assert_same_pixels(path, tmp_path / "out", decoding, reference)


def test_png_16_bit_colour_with_a_transparent_colour_is_refused(tmp_path):
    """Pillow keeps 8 of the 16 bits of each sample, so the tRNS colour cannot be matched exactly."""
    samples = np.random.default_rng(7).integers(0, 1 << 16, (HEIGHT, WIDTH, 3))
    path = tmp_path / "colour16.png"
    path.write_bytes(png_bytes(samples, 16, 2, tuple(int(value) for value in samples[0, 0]), interlace=False))
    with pytest.raises(deepzoom.InvalidImage, match="16-bit colour PNG with a transparent colour") as refused:
        deepzoom.open_image(path)
    assert "\n" not in str(refused.value)


# --- TIFF: how the samples are cut ------------------------------------------------------------------------

TIFF_LAYOUTS = {  # how the samples are cut: tifffile's options, and the decode path the product takes
    "strips": ({"rowsperstrip": 8, "compression": "zlib"}, "streamed"),
    "tiles": ({"tile": (16, 16), "compression": "zlib"}, "streamed"),
    "one-strip": ({"compression": "zlib"}, "decoded whole"),
    "uncompressed": ({"rowsperstrip": 8}, "streamed"),
}


# --- TIFF: grey with an alpha sample ----------------------------------------------------------------------


def grey_and_alpha(rng: np.random.Generator, associated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Grey and alpha planes of 8 bits, every alpha from 0 to 255 among them; associated grey is
    premultiplied (never above its alpha), as ExtraSamples=1 promises."""
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH))
    alpha.flat[:256] = np.arange(256)
    grey = rng.integers(0, 256, (HEIGHT, WIDTH))
    if associated:
        grey = np.round(grey * alpha / 255)
    return grey.astype(np.uint8), alpha.astype(np.uint8)


def tifffile_reference(path: Path, associated: bool) -> tuple[np.ndarray, np.ndarray]:
    """tifffile's decode of a grey and alpha TIFF in separate planes, flattened onto ``BACKGROUND``, and its
    alpha. (libvips 8.18 reads the two planes of such a file into the wrong rows.)"""
    grey, alpha = tifffile.imread(path).astype(float)
    if associated:  # the grey is premultiplied: it is already its share of the composite
        return grey[..., np.newaxis] + BACKGROUND * (1 - alpha[..., np.newaxis] / 255), alpha
    return flattened(grey[..., np.newaxis], alpha), alpha


@pytest.mark.parametrize("layout", sorted(TIFF_LAYOUTS))
@pytest.mark.parametrize("planar", ["contig", "separate"])
@pytest.mark.parametrize("extra", [1, 2], ids=["associated", "unassociated"])
def test_tiff_grey_with_alpha(tmp_path, layout, planar, extra):
    associated = extra == 1
    grey, alpha = grey_and_alpha(np.random.default_rng(extra), associated)
    options, decoding = TIFF_LAYOUTS[layout]
    samples = np.stack([grey, alpha]) if planar == "separate" else np.stack([grey, alpha], axis=-1)
    path = tmp_path / "grey-alpha.tif"
    tifffile.imwrite(path, samples, photometric="minisblack", planarconfig=planar, extrasamples=[extra], **options)
    reference = tifffile_reference(path, associated) if planar == "separate" else vips_reference(path)
    flat, reference_alpha = reference
    assert np.array_equal(reference_alpha, alpha)
    weight = alpha[..., np.newaxis] / 255
    truth = grey[..., np.newaxis] + BACKGROUND * (1 - weight) if associated else flattened(grey[..., np.newaxis], alpha)
    assert np.abs(flat - truth).max() <= TOLERANCE, "associated alpha: the grey is premultiplied"
    assert_same_pixels(path, tmp_path / "out", decoding, reference)


def grey_and_alpha_16(planar: str) -> np.ndarray:
    grey, alpha = (plane.astype(np.uint16) * 257 for plane in grey_and_alpha(np.random.default_rng(3), False))
    return np.stack([grey, alpha]) if planar == "separate" else np.stack([grey, alpha], axis=-1)


UNREADABLE_TIFFS = {  # name: (its samples, tifffile's options, what the reason must name)
    "16-bit-grey-alpha": (lambda: grey_and_alpha_16("contig"), {"extrasamples": [2]}, "16-bit grey with unassociated alpha"),
    "16-bit-grey-alpha-planes": (lambda: grey_and_alpha_16("separate"), {"extrasamples": [1], "planarconfig": "separate"}, "16-bit grey with associated alpha"),
    "white-is-zero-alpha": (lambda: np.zeros((HEIGHT, WIDTH, 2), np.uint8), {"photometric": "miniswhite", "extrasamples": [2]}, "8-bit grey (white is zero) with unassociated alpha"),
    "signed-rgb": (lambda: np.zeros((HEIGHT, WIDTH, 3), np.int8), {"photometric": "rgb"}, "8-bit signed RGB"),
    "lerc": (lambda: np.zeros((HEIGHT, WIDTH), np.uint8), {"compression": "lerc"}, "compression 34887"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(UNREADABLE_TIFFS))
def test_tiffs_pillow_cannot_read_are_refused_naming_what(tmp_path, name):
    """No 16-bit grey-and-alpha mode in Pillow, among others: one line says which trait is unsupported."""
    samples, options, words = UNREADABLE_TIFFS[name]
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, samples(), **{"photometric": "minisblack", "rowsperstrip": 8, **options})
    with pytest.raises(deepzoom.InvalidImage) as refused:
        deepzoom.open_image(path)
    reason = str(refused.value)
    assert words in reason and "not supported" in reason and "\n" not in reason, reason


# --- TIFF: signed samples ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "decoding"), [("strips", "streamed"), ("one-strip", "decoded whole")])
def test_tiff_signed_8_bit_grey(tmp_path, layout, decoding):
    samples = np.random.default_rng(8).integers(-128, 128, (HEIGHT, WIDTH)).astype(np.int8)
    samples.flat[:256] = np.arange(-128, 128)
    path = tmp_path / "signed.tif"
    tifffile.imwrite(path, samples, photometric="minisblack", **TIFF_LAYOUTS[layout][0])
    colour, _ = vips_decode(path)
    assert np.array_equal(colour[..., 0], samples + 128.0), "libvips reads the samples as signed"
    assert_same_pixels(path, tmp_path / "out", decoding, vips_reference(path))


# --- TIFF: deep grey whose 0 is white, or of fewer than 16 bits --------------------------------------------


@pytest.mark.parametrize(("layout", "decoding"), [("strips", "streamed"), ("one-strip", "decoded whole")])
def test_tiff_16_bit_grey_whose_zero_is_white(tmp_path, layout, decoding):
    samples = np.random.default_rng(16).integers(0, 1 << 16, (HEIGHT, WIDTH)).astype(np.uint16)
    path = tmp_path / "white-is-zero.tif"
    tifffile.imwrite(path, samples, photometric="miniswhite", **TIFF_LAYOUTS[layout][0])
    colour, _ = vips_decode(path)
    assert np.allclose(colour[..., 0], (65535.0 - samples) * 255 / 65535), "libvips turns it over"
    assert_same_pixels(path, tmp_path / "out", decoding, vips_reference(path))


@pytest.mark.parametrize(("rows_per_strip", "decoding"), [(8, "streamed"), (None, "decoded whole")])
def test_tiff_12_bit_grey_uses_the_range_of_its_bits(tmp_path, rows_per_strip, decoding):
    """libvips reads no 12-bit TIFF; tifffile does, as libtiff defines the samples."""
    samples = np.random.default_rng(12).integers(0, 1 << 12, (HEIGHT, WIDTH)).astype(np.uint16)
    path = tmp_path / "twelve.tif"
    tifffile.imwrite(path, samples, photometric="minisblack", bitspersample=12, rowsperstrip=rows_per_strip)
    decoded = tifffile.imread(path).astype(float)
    assert np.array_equal(decoded, samples)
    reference = flattened(decoded[..., np.newaxis] * 255 / 4095, np.full(samples.shape, 255.0))
    assert_same_pixels(path, tmp_path / "out", decoding, (reference, np.full(samples.shape, 255.0)))
