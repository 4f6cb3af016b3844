"""Bad input gets a typed exception with a one-line reason, and never a descriptor.

An image decoded whole fails in ``open_image``, before any tile exists; one
that streams may fail once tiling has begun, but its ``.dzi`` is never written.
"""

import io
import logging
import struct
import zlib

import pytest
from helpers import sample_image
from PIL import Image

import deepzoom


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` but whose pixel data is empty."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"") + png_chunk(b"IEND", b"")


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    sample_image(400, 300).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def corrupt_png() -> bytes:
    buffer = io.BytesIO()
    sample_image(200, 100).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    idat = data.index(b"IDAT")
    data[idat + 40 : idat + 60] = bytes(20)  # the chunk's CRC no longer matches
    return bytes(data)


BAD_FILES = {
    "empty.jpg": (b"", "empty file"),
    "truncated.jpg": (jpeg_bytes()[:3000], "truncated"),
    "notes.jpg": (b"shopping list: eggs, milk\n" * 20, "not an image"),
    "corrupt.png": (corrupt_png(), "cannot decode"),
    "header-only.png": (png_header(640, 480), "cannot decode"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unusable_files_raise_invalid_image(tmp_path, name):
    content, reason = BAD_FILES[name]
    source = tmp_path / name
    source.write_bytes(content)
    with pytest.raises(deepzoom.InvalidImage) as raised:
        tile(source, tmp_path / "out")
    message = str(raised.value)
    assert reason in message and "\n" not in message
    assert not (tmp_path / "out" / "image.dzi").exists()


def tile(source, out):
    image = deepzoom.open_image(source)
    deepzoom.write_pyramid(image, deepzoom.DirectorySink(out), "image")


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    source = tmp_path / "huge.png"
    source.write_bytes(png_header(200_000, 200_000))  # 40 GP claimed, 45 bytes on disk
    with pytest.raises(deepzoom.ImageTooLarge, match="200000x200000"):
        deepzoom.open_image(source)


def test_pixel_limit_is_configurable(tmp_path):
    source = tmp_path / "small.png"
    sample_image(40, 30).save(source)
    with pytest.raises(deepzoom.ImageTooLarge, match="over the limit"):
        deepzoom.open_image(source, deepzoom.Limits(max_pixels=1000))
    assert deepzoom.open_image(source, deepzoom.Limits(max_pixels=1200)).size == (40, 30)


def test_pillow_bomb_guard_does_not_refuse_large_scans(tmp_path):
    # 200 MP is past Pillow's own 179 MP refusal but well under our limit:
    # the file must get as far as decoding (where this one, having no data, fails).
    source = tmp_path / "scan.png"
    source.write_bytes(png_header(20_000, 10_000))
    with pytest.raises(deepzoom.InvalidImage, match="cannot decode"):
        tile(source, tmp_path / "out")
    assert Image.MAX_IMAGE_PIXELS is not None, "Pillow's guard is restored for everyone else"


@pytest.mark.parametrize(
    "settings",
    [
        {"tile_size": 0},
        {"overlap": 254},
        {"format": "gif"},
        {"quality": 0},
        {"background": "not-a-colour"},
    ],
)
def test_impossible_settings_are_refused(settings):
    with pytest.raises(ValueError):
        deepzoom.TileSettings(**settings)


def _changed_decoder_api(*args, **kwargs):
    raise TypeError("_getdecoder() takes 4 positional arguments but 5 were given")


# A Pillow upgrade that changed an internal the streaming decoder relies on: what it raises is a bug, not the file's
CHANGED_INTERNALS = {
    "Image.core.map_buffer gone": lambda patch: patch.delattr(Image.core, "map_buffer"),
    "Image._getdecoder gone": lambda patch: patch.delattr(Image, "_getdecoder"),
    "Image._getdecoder changed": lambda patch: patch.setattr(Image, "_getdecoder", _changed_decoder_api),
}


@pytest.mark.parametrize("change", sorted(CHANGED_INTERNALS))
@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_a_changed_pillow_internal_is_raised_as_a_bug_not_reported_as_bad_input(tmp_path, monkeypatch, change, kind):
    from deepzoom import streaming

    source = tmp_path / f"photo.{kind.lower()}"
    sample_image(300, 200).save(source, kind)
    monkeypatch.setattr(streaming, "_self_test_failures", {}, raising=False)  # it broke after the self-test
    image = deepzoom.open_image(source)
    assert image.streamed
    CHANGED_INTERNALS[change](monkeypatch)
    with pytest.raises((AttributeError, TypeError)) as raised:
        deepzoom.write_pyramid(image, deepzoom.DirectorySink(tmp_path / "out"), "photo")
    assert not isinstance(raised.value, deepzoom.DeepZoomError)
    assert not (tmp_path / "out" / "photo.dzi").exists()


def test_a_bug_in_our_own_header_code_is_raised_as_a_bug(tmp_path, monkeypatch):
    from deepzoom import limits

    source = tmp_path / "photo.jpg"
    sample_image(60, 40).save(source)

    def broken(*args, **kwargs):
        raise NameError("name 'widht' is not defined")

    monkeypatch.setattr(limits, "estimated_peak", broken)
    with pytest.raises(NameError):
        deepzoom.open_image(source, deepzoom.Limits(memory=2**30))


@pytest.mark.parametrize(
    "failure",
    [OSError("broken data stream"), SyntaxError("not a TIFF file"), ValueError("Invalid dimensions"), EOFError()],
)
def test_what_decoders_say_of_a_file_is_bad_input(tmp_path, monkeypatch, failure):
    """The other side: the complaints Pillow's decoders make about a file stay one line, never retried."""
    from PIL import ImageFile

    source = tmp_path / "photo.jpg"
    sample_image(60, 40).save(source, progressive=True)  # decoded whole, by ImageFile.load

    def broken_load(self):
        raise failure

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
    with pytest.raises(deepzoom.InvalidImage, match="cannot decode JPEG data") as raised:
        deepzoom.open_image(source)
    assert "\n" not in str(raised.value)


def _tiff_with(tmp_path, name: str, change) -> str:
    """A single-strip LZW TIFF (Pillow hands it to libtiff whole) with its directory changed by ``change``."""
    path = tmp_path / name
    sample_image(300, 200).save(path, compression="tiff_lzw", strip_size=10**7)
    data = bytearray(path.read_bytes())
    directory = int.from_bytes(data[4:8], "little")
    entries = [directory + 2 + 12 * index for index in range(int.from_bytes(data[directory : directory + 2], "little"))]
    change(data, entries)
    path.write_bytes(bytes(data))
    return str(path)


def _unsorted(data: bytearray, entries: list[int]) -> None:
    first, second = entries[0], entries[1]  # libtiff warns: tags are not sorted in ascending order
    data[first : first + 12], data[second : second + 12] = data[second : second + 12], data[first : first + 12]


def _samples_per_pixel(data: bytearray, entries: list[int]) -> None:
    (entry,) = [entry for entry in entries if data[entry : entry + 2] == (277).to_bytes(2, "little")]
    data[entry + 8 : entry + 10] = (300).to_bytes(2, "little")  # more samples than can be decoded


def test_what_libtiff_and_pillow_warn_of_stays_off_stderr(tmp_path):
    """``python -m deepzoom`` prints its one line, and nothing beside it, however much the decoders complain."""
    import subprocess
    import sys

    def run(path):
        command = [sys.executable, "-m", "deepzoom", path, tmp_path / "out"]
        return subprocess.run(command, capture_output=True, text=True)

    warned = run(_tiff_with(tmp_path, "unsorted.tif", _unsorted))
    assert warned.returncode == 0 and warned.stderr == "", warned.stderr
    refused = run(_tiff_with(tmp_path, "samples.tif", _samples_per_pixel))
    assert refused.returncode == 1 and refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    assert line.startswith("deepzoom: ") and "not an image" in line, refused.stderr


def test_libtiff_warnings_go_to_the_debug_log(caplog, capfd):

    from deepzoom import libtiff

    with Image.open(_tiff_with_pillow()) as image:
        image.load()  # Pillow's decoder sets libtiff's warning handler to none...
    libtiff.install()  # ...and each decode's guard puts ours back
    library = libtiff._installed[0][0]
    with caplog.at_level(logging.DEBUG, "deepzoom"):
        library.TIFFWarning(b"TIFFReadDirectory", b"%s", b"Unknown field with tag 65000 (0xfde8) encountered")
    assert "libtiff warning: TIFFReadDirectory: Unknown field with tag 65000" in caplog.text
    assert capfd.readouterr().err == ""


def _tiff_with_pillow() -> io.BytesIO:
    buffer = io.BytesIO()
    sample_image(40, 30).save(buffer, "TIFF", compression="tiff_lzw")
    buffer.seek(0)
    return buffer
