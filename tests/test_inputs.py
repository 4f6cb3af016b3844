"""Every input people upload comes out as upright 8-bit sRGB tiles with the right pixels.

Each case tiles a file to PNG, stitches the full-resolution level back from
its tiles, and compares it with what Pillow's whole-image operations give.
"""

import io
from pathlib import Path

import pytest
import pyvips
from helpers import assemble_level, convert, grey_icc_profile, psnr, sample_image, tile_files
from PIL import Image, ImageCms, ImageOps

WIDTH, HEIGHT = 300, 220  # not square, so a wrong rotation changes the size


def top_level(source: Path, out: Path, **settings: object) -> Image.Image:
    stats = convert(source, out, **{"format": "png", **settings})
    return assemble_level(out, "image", stats.levels - 1)


def assert_same(actual: Image.Image, expected: Image.Image, min_db: float = 99) -> None:
    assert actual.size == expected.size
    assert psnr(actual, expected) >= min_db


def vips_profile(name: str) -> bytes:
    """A built-in libvips ICC profile (Display P3 or a CMYK press profile) as bytes."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    return pixel.icc_transform(name).get("icc-profile-data")


SRGB = ImageCms.createProfile("sRGB")


def save_with(tmp_path: Path, image: Image.Image, name: str, **options: object) -> Path:
    path = tmp_path / name
    image.save(path, **options)
    return path


@pytest.mark.parametrize(
    ("name", "mode", "options"),
    [
        ("photo.jpg", "RGB", {"quality": 95}),
        ("grey.jpg", "L", {"quality": 95}),
        ("plain.png", "RGB", {}),
        ("grey.png", "L", {}),
        ("bilevel.png", "1", {}),
        ("palette.png", "P", {}),
        ("striped.tif", "RGB", {}),
        ("lzw.tif", "RGB", {"compression": "tiff_lzw"}),
        ("deflate.tif", "RGB", {"compression": "tiff_adobe_deflate"}),
        ("lossless.webp", "RGB", {"lossless": True}),
        ("picture.bmp", "RGB", {}),
    ],
)
def test_common_formats_tile_exactly(tmp_path, name, mode, options):
    source = save_with(tmp_path, sample_image(WIDTH, HEIGHT, mode), name, **options)
    with Image.open(source) as decoded:
        expected = decoded.convert("RGB")
    assert_same(top_level(source, tmp_path / "out"), expected)


@pytest.mark.parametrize("bigtiff", [False, True])
def test_tiled_tiff_and_bigtiff(tmp_path, bigtiff):
    source = tmp_path / "tiled.tif"
    original = sample_image(WIDTH, HEIGHT)
    original.save(tmp_path / "plain.png")
    pyvips.Image.new_from_file(str(tmp_path / "plain.png")).tiffsave(
        str(source), tile=True, tile_width=64, tile_height=64, compression="deflate", bigtiff=bigtiff
    )
    assert_same(top_level(source, tmp_path / "out"), original)


def test_animated_gif_uses_its_first_frame(tmp_path):
    first = sample_image(WIDTH, HEIGHT, "P")
    second = Image.new("P", (WIDTH, HEIGHT), 7)
    source = tmp_path / "anim.gif"
    first.save(source, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(source) as decoded:
        expected = decoded.convert("RGB")
    assert_same(top_level(source, tmp_path / "out"), expected)


def test_heic_from_a_phone(tmp_path):
    import pillow_heif

    source = tmp_path / "phone.heic"
    pillow_heif.from_pillow(sample_image(WIDTH, HEIGHT)).save(source, quality=90)
    pillow_heif.register_heif_opener()  # for the reference decode: the engine registers it only when needed
    with Image.open(source) as decoded:
        expected = decoded.convert("RGB")
    assert expected.size == (WIDTH, HEIGHT)
    assert_same(top_level(source, tmp_path / "out"), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_dropped(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = save_with(tmp_path, sample_image(WIDTH, HEIGHT), "rotated.jpg", quality=95, exif=exif)
    with Image.open(source) as decoded:
        expected = ImageOps.exif_transpose(decoded).convert("RGB")
    assert_same(top_level(source, tmp_path / "png"), expected)

    convert(source, tmp_path / "jpg", format="jpg")
    for tile in tile_files(tmp_path / "jpg", "image").values():
        with Image.open(tile) as written:
            assert 0x0112 not in written.getexif()


def test_icc_profile_is_converted_to_srgb(tmp_path):
    p3 = vips_profile("p3")
    original = sample_image(WIDTH, HEIGHT)
    source = save_with(tmp_path, original, "wide.png", icc_profile=p3)
    expected = ImageCms.profileToProfile(original, ImageCms.ImageCmsProfile(io.BytesIO(p3)), SRGB, outputMode="RGB")
    actual = top_level(source, tmp_path / "out")
    assert psnr(actual, original) < 40, "the profile must change the pixels"
    assert_same(actual, expected)


def test_cmyk_jpeg_without_profile(tmp_path):
    source = save_with(tmp_path, sample_image(WIDTH, HEIGHT, "CMYK"), "press.jpg", quality=95)
    with Image.open(source) as decoded:
        assert decoded.mode == "CMYK"
        expected = decoded.convert("RGB")
    assert_same(top_level(source, tmp_path / "out"), expected)


def test_cmyk_jpeg_with_profile(tmp_path):
    cmyk = vips_profile("cmyk")
    source = save_with(tmp_path, sample_image(WIDTH, HEIGHT, "CMYK"), "press.jpg", quality=95, icc_profile=cmyk)
    with Image.open(source) as decoded:
        expected = ImageCms.profileToProfile(
            decoded, ImageCms.ImageCmsProfile(io.BytesIO(cmyk)), SRGB, outputMode="RGB"
        )
        naive = decoded.convert("RGB")
    actual = top_level(source, tmp_path / "out")
    assert psnr(actual, naive) < 40, "the CMYK profile must be used, not a naive conversion"
    assert_same(actual, expected)


def test_sixteen_bit_greyscale_uses_its_full_range(tmp_path):
    ramp = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("I").point(lambda value: value * 257)
    source = save_with(tmp_path, ramp.convert("I;16"), "deep.png")
    with Image.open(source) as decoded:
        assert decoded.mode.startswith("I")
    expected = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    assert_same(top_level(source, tmp_path / "out"), expected)


@pytest.mark.parametrize("mode", ["I", "F"])
def test_thirty_two_bit_greyscale_is_stretched_to_its_range(tmp_path, mode):
    grey = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    deep = grey.convert("F").point(lambda value: value * 1000.0 - 5000.0).convert(mode)
    source = save_with(tmp_path, deep, "deep.tif")
    with Image.open(source) as decoded:
        assert decoded.mode == mode
    assert_same(top_level(source, tmp_path / "out"), grey.convert("RGB"), min_db=45)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_in_png_tiles(tmp_path, mode):
    original = sample_image(WIDTH, HEIGHT, "RGBA").convert(mode)
    source = save_with(tmp_path, original, "cutout.png")
    actual = top_level(source, tmp_path / "out")
    assert actual.mode == "RGBA"
    assert_same(actual, original.convert("RGBA"))


def test_palette_transparency_is_kept(tmp_path):
    original = sample_image(WIDTH, HEIGHT, "P")
    source = save_with(tmp_path, original, "sprite.png", transparency=0)
    with Image.open(source) as decoded:
        expected = decoded.convert("RGBA")
    assert expected.getextrema()[3] == (0, 255)
    assert_same(top_level(source, tmp_path / "out"), expected)


def test_webp_tiles_keep_alpha(tmp_path):
    source = save_with(tmp_path, sample_image(WIDTH, HEIGHT, "RGBA"), "cutout.png")
    convert(source, tmp_path / "out", format="webp", quality=90)
    tiles = tile_files(tmp_path / "out", "image")
    assert tiles and all(path.suffix == ".webp" for path in tiles.values())
    with Image.open(next(iter(tiles.values()))) as tile:
        assert tile.mode == "RGBA"


@pytest.mark.parametrize("background", ["#ffffff", "#ff0000"])
def test_alpha_is_flattened_onto_the_background_for_jpeg(tmp_path, background):
    # smooth colours: JPEG's chroma subsampling would swamp the sample's noise channel
    ramp = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    original = Image.merge("RGBA", (ramp, ramp.transpose(Image.Transpose.ROTATE_180), ramp, ramp.rotate(90)))
    source = save_with(tmp_path, original, "cutout.png")
    stats = convert(source, tmp_path / "out", format="jpg", quality=95, background=background)
    expected = Image.new("RGB", original.size, background)
    expected.paste(original, mask=original.getchannel("A"))
    actual = assemble_level(tmp_path / "out", "image", stats.levels - 1)
    assert actual.mode == "RGB"
    assert_same(actual, expected, min_db=32)


def test_grey_with_a_transparent_colour_and_a_grey_icc_profile(tmp_path):
    profile = grey_icc_profile()
    assert ImageCms.ImageCmsProfile(io.BytesIO(profile)).profile.xcolor_space.strip() == "GRAY"
    ramp = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    source = save_with(tmp_path, ramp, "grey.png", transparency=0, icc_profile=profile)
    actual = top_level(source, tmp_path / "out")
    assert actual.mode == "RGBA"
    assert actual.getchannel("A").getextrema() == (0, 255)
    expected = ImageCms.profileToProfile(ramp, ImageCms.ImageCmsProfile(io.BytesIO(profile)), SRGB, outputMode="RGB")
    assert psnr(actual.convert("RGB"), expected) > 40


def test_la_premultiplied_mode_is_accepted(tmp_path):
    from deepzoom.source import SourceImage

    image = Image.new("La", (20, 10))
    source = SourceImage(image, None, None, None, has_alpha=True)
    (band,) = list(source.bands(10, None))
    assert band.mode == "RGBA" and band.size == (20, 10)


def test_palette_image_with_an_icc_profile(tmp_path):
    p3 = vips_profile("p3")
    palette = sample_image(WIDTH, HEIGHT, "P")
    source = save_with(tmp_path, palette, "wide-palette.png", icc_profile=p3)
    expected = ImageCms.profileToProfile(
        palette.convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(p3)), SRGB, outputMode="RGB"
    )
    actual = top_level(source, tmp_path / "out")
    assert psnr(actual, palette.convert("RGB")) < 40, "the profile must change the pixels"
    assert_same(actual, expected)
