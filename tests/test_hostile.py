"""Hostile input: files made to cost much for few bytes, or to run what is not an image decoder.

Each is refused from its header with a one-line reason, or converts; nothing else ever happens.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pytest
from helpers import sample_image
from PIL import Image, ImageFile

import deepzoom
from deepzoom.jpeg import count_jpeg_scans

_spawned: list[str] = []
_watching = False


def _audit(event: str, args: tuple) -> None:
    if _watching and event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork"):
        _spawned.append(f"{event}: {args[:2]}")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while a test watches


@pytest.fixture
def no_programs_started():
    """Fails the test if anything starts a program (Ghostscript for EPS, say) while it runs."""
    global _watching
    _spawned.clear()
    _watching = True
    yield
    _watching = False
    assert _spawned == [], f"a program was started: {_spawned}"


def tile(path: Path, out: Path, limits: deepzoom.Limits = deepzoom.Limits()) -> deepzoom.PyramidStats:
    image = deepzoom.open_image(path, limits)
    return deepzoom.write_pyramid(image, deepzoom.DirectorySink(out), "image")


def eps_file() -> bytes:
    """A PostScript file Pillow would hand to Ghostscript to render."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
        b"newpath 0 0 moveto 100 100 lineto stroke showpage\n%%EOF\n"
    )


def test_an_eps_named_like_a_photo_is_refused_naming_what_it_is_and_runs_nothing(tmp_path, no_programs_started):
    path = tmp_path / "photo.jpg"
    path.write_bytes(eps_file())
    with pytest.raises(deepzoom.InvalidImage, match="the content is EPS, not one of the accepted formats"):
        tile(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_audit_hook_does_see_a_program_start():
    """The fixture above can fail: Pillow's EPS plugin, let loose, starts Ghostscript (or tries to)."""
    global _watching
    _spawned.clear()
    _watching = True
    try:
        with Image.open(io.BytesIO(eps_file())) as image:
            image.load()
    except Exception:  # noqa: BLE001,S110 - without Ghostscript installed the load fails after trying
        pass
    finally:
        _watching = False
    assert _spawned, "starting gs should have been seen"


def test_another_accepted_format_under_the_wrong_extension_converts(tmp_path, no_programs_started):
    path = tmp_path / "scan.jpg"
    sample_image(120, 90).save(path, "PNG")
    assert tile(path, tmp_path / "out").width == 120


def test_a_format_not_accepted_is_refused_even_when_pillow_reads_it(tmp_path):
    path = tmp_path / "photo.png"
    sample_image(40, 30).save(path, "PNG")
    with pytest.raises(deepzoom.InvalidImage, match="the content is PNG, not one of the accepted formats"):
        tile(path, tmp_path / "out", deepzoom.Limits(formats=deepzoom.formats_for({"jpg"})))


@pytest.mark.parametrize(("size", "refused"), [((4_000_000, 1), True), ((1, 2_000_000), True), ((100_000, 60), False)])
def test_absurd_aspect_ratios_are_refused_but_real_strips_convert(tmp_path, size, refused):
    path = tmp_path / "strip.png"
    Image.new("L", size, 200).save(path)
    if refused:
        with pytest.raises(deepzoom.ImageTooLarge, match="past the limit of 10,000"):
            deepzoom.open_image(path)
    else:
        assert deepzoom.open_image(path).size == size


def progressive_with_scans(extra: int) -> bytes:
    """A progressive JPEG whose last scan is repeated ``extra`` more times (libjpeg refines it each time)."""
    buffer = io.BytesIO()
    sample_image(64, 48).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    return data[:-2] + data[last_scan:-2] * extra + b"\xff\xd9"


def test_scans_are_counted_by_the_markers_structure():
    plain = progressive_with_scans(0)
    assert 2 <= count_jpeg_scans(io.BytesIO(plain), stop_after=1000) <= 12
    assert (
        count_jpeg_scans(io.BytesIO(progressive_with_scans(5)), 1000) == count_jpeg_scans(io.BytesIO(plain), 1000) + 5
    )


def test_a_progressive_jpeg_with_thousands_of_scans_is_refused_before_decoding(tmp_path):
    path = tmp_path / "slow.jpg"
    path.write_bytes(progressive_with_scans(2_000))
    with pytest.raises(deepzoom.InvalidImage, match="more than 100 scans"):
        deepzoom.open_image(path)
    path.write_bytes(progressive_with_scans(20))
    assert deepzoom.open_image(path).size == (64, 48), "a few extra scans are fine"


def test_a_tiff_of_absurdly_many_strips_is_refused(tmp_path):
    path = tmp_path / "strips.tif"
    Image.new("L", (100, 100_000), 90).save(path, compression="tiff_lzw", strip_size=100)  # a strip a row
    with Image.open(path) as opened:
        assert len(opened.tag_v2[273]) == 100_000
    with pytest.raises(deepzoom.InvalidImage, match="100,000 strips or tiles"):
        deepzoom.open_image(path)


MUTATED_FORMATS = {
    "jpg": ("JPEG", {"quality": 90}),
    "progressive.jpg": ("JPEG", {"progressive": True}),
    "png": ("PNG", {}),
    "tif": ("TIFF", {"compression": "tiff_lzw"}),
    "gif": ("GIF", {}),
    "webp": ("WEBP", {"quality": 80}),
}


@pytest.mark.parametrize("kind", sorted(MUTATED_FORMATS))
def test_mutated_real_files_convert_or_fail_as_bad_input(tmp_path, kind):
    """Fuzzing by mutation: flipped, zeroed and cut bytes. Any other exception is a bug."""
    image_format, options = MUTATED_FORMATS[kind]
    buffer = io.BytesIO()
    sample_image(150, 110, "P" if image_format == "GIF" else "RGB").save(buffer, image_format, **options)
    original = buffer.getvalue()
    generator = random.Random(kind)
    outcomes = set()
    for attempt in range(40):
        data = bytearray(original)
        for _ in range(generator.randint(1, 8)):
            position = generator.randrange(len(data))
            data[position] = generator.choice((0, 0xFF, generator.randrange(256)))
        if attempt % 5 == 0:
            data = data[: generator.randrange(1, len(data))]
        path = tmp_path / f"{attempt}.{kind.rsplit('.', 1)[-1]}"
        path.write_bytes(bytes(data))
        try:
            tile(path, tmp_path / f"out{attempt}")
            outcomes.add("converted")
        except deepzoom.DeepZoomError as error:
            assert "\n" not in str(error)
            outcomes.add("refused")
    assert outcomes, "every attempt ended one way or the other"


def test_decoder_exceptions_of_any_type_are_bad_input(tmp_path, monkeypatch):
    """NotImplementedError, MemoryError, Pillow's bomb error: none is retried as if S3 had failed."""
    path = tmp_path / "odd.gif"
    sample_image(30, 20, "P").save(path)
    for failure in (NotImplementedError("no such mode"), MemoryError(), Image.DecompressionBombError("bomb")):

        def broken_load(self, failure=failure):
            raise failure

        monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
        with pytest.raises(deepzoom.InvalidImage) as raised:
            deepzoom.open_image(path)
        assert type(failure).__name__ in str(raised.value) and "\n" not in str(raised.value)


def test_the_strip_count_rule_lets_one_row_strips_of_real_scans_through(tmp_path):
    path = tmp_path / "scan.tif"
    Image.new("L", (1200, 3000), 90).save(path, compression="tiff_lzw", strip_size=1200)
    assert len(Image.open(path).tag_v2[273]) == 3000
    assert deepzoom.open_image(path).size == (1200, 3000)


def test_limits_refuse_nonsense_values():
    with pytest.raises(ValueError, match="EPS"):
        deepzoom.Limits(formats=frozenset({"EPS"}))
    with pytest.raises(ValueError, match="ps"):
        deepzoom.formats_for({"jpg", "ps"})


def _tiff_variants(folder: Path) -> dict[str, bytes]:
    """Strips that stream, one strip decoded whole, and uncompressed strips Pillow reads itself."""
    found = {}
    for name, options in {
        "strips": {"compression": "tiff_lzw", "strip_size": 4000},
        "single-strip": {"compression": "tiff_lzw", "strip_size": 10**7},
        "raw": {},
    }.items():
        buffer = io.BytesIO()
        sample_image(150, 110).save(buffer, "TIFF", **options)
        found[name] = buffer.getvalue()
    return found


def test_tiff_tags_of_the_wrong_type_or_count_are_bad_input_not_bugs(tmp_path):
    """Fuzzing a TIFF's directory: each entry's type, count and value mutated. Offsets that are text, fractions
    or below zero must be refused as bad input, not reach code where they would raise a bug's TypeError."""
    outcomes = set()
    for name, original in _tiff_variants(tmp_path).items():
        directory = int.from_bytes(original[4:8], "little")
        entries = int.from_bytes(original[directory : directory + 2], "little")
        generator = random.Random(name)
        for attempt in range(60):
            data = bytearray(original)
            for _ in range(generator.randint(1, 3)):
                entry = directory + 2 + 12 * generator.randrange(entries)
                field, choices = generator.choice(
                    [
                        (slice(2, 4), [1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13, 16, 0, 99]),  # type
                        (slice(4, 8), [0, 1, 2, 3, 1000, 2**31]),  # count
                        (slice(8, 12), [0, 1, 2**31, len(data) - 4, generator.randrange(len(data))]),  # value
                    ]
                )
                size = field.stop - field.start
                data[entry + field.start : entry + field.stop] = generator.choice(choices).to_bytes(size, "little")
            path = tmp_path / f"{name}-{attempt}.tif"
            path.write_bytes(bytes(data))
            try:
                tile(path, tmp_path / f"out-{name}-{attempt}")
                outcomes.add("converted")
            except deepzoom.DeepZoomError as error:
                assert "\n" not in str(error)
                outcomes.add("refused")
    assert outcomes == {"converted", "refused"}
