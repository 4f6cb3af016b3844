"""``python -m deepzoom``: a summary line on success; one line on stderr and status 1 on bad input, 2 on a bad
option; a failed conversion takes back what it wrote."""

import json
import re
import subprocess
import sys

import pytest
from helpers import sample_image
from PIL import Image


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepzoom", *map(str, args)], capture_output=True, text=True)


def test_writes_a_pyramid_and_one_summary_line(tmp_path):
    source = tmp_path / "harbour view.jpg"
    sample_image(600, 400).save(source)
    result = run(source, tmp_path / "out", "--tile-size", "256", "--overlap", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "600x400" in lines[0] and "11 levels" in lines[0] and "(streamed)" in lines[0]
    assert (tmp_path / "out/harbour view.dzi").is_file()
    assert (tmp_path / "out/harbour view_files/10/2_1.jpg").is_file()


def test_name_and_format_options(tmp_path):
    source = tmp_path / "a.png"
    sample_image(50, 40, "RGBA").save(source)
    result = run(source, tmp_path / "out", "--name", "renamed", "--format", "png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/renamed_files/6/0_0.png").is_file()


def test_iiif_service_beside_the_pyramid(tmp_path):
    source = tmp_path / "map.jpg"
    sample_image(600, 400).save(source)
    result = run(source, tmp_path / "out", "--iiif-id", "https://example.org/map_iiif", "--iiif-tile-size", "256")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "out/map_iiif/info.json").read_text())
    assert info["id"] == "https://example.org/map_iiif" and info["tiles"][0]["scaleFactors"] == [1, 2, 4]
    assert (tmp_path / "out/map_iiif/512,0,88,256/88,256/0/default.jpg").is_file()
    assert (tmp_path / "out/map_iiif/full/150,100/0/default.jpg").is_file()


def test_bad_input_exits_with_one_line_and_writes_nothing(tmp_path):
    source = tmp_path / "not-a-photo.jpg"
    source.write_text("hello\n")
    result = run(source, tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "not-a-photo.jpg" in result.stderr and "not an image" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_source_and_unwritable_output_are_one_line_each(tmp_path):
    missing = run(tmp_path / "gone.jpg", tmp_path / "out")
    assert missing.returncode == 1
    assert missing.stderr == f"deepzoom: {tmp_path / 'gone.jpg'}: No such file or directory\n"
    source = tmp_path / "a.png"
    sample_image(10, 10).save(source)
    (tmp_path / "file").write_text("in the way")
    blocked = run(source, tmp_path / "file")
    assert blocked.returncode == 1
    assert blocked.stderr == f"deepzoom: {tmp_path / 'file'}: Not a directory\n"


def test_over_the_pixel_limit(tmp_path):
    source = tmp_path / "big.png"
    sample_image(100, 100).save(source)
    result = run(source, tmp_path / "out", "--max-pixels", "5000")
    assert result.returncode == 1 and "over the limit" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_setting_is_one_line(tmp_path):
    source = tmp_path / "a.png"
    sample_image(10, 10).save(source)
    result = run(source, tmp_path / "out", "--overlap", "300")
    assert result.returncode == 2, "a usage error, as argparse's own"
    assert result.stderr.splitlines() == ["deepzoom: overlap must be in 0..253, got 300"]


def test_a_streamed_image_cut_short_gives_one_line_and_no_descriptor(tmp_path):
    source = tmp_path / "cut.jpg"
    sample_image(600, 2000).save(source, quality=90)
    source.write_bytes(source.read_bytes()[:60_000])
    result = run(source, tmp_path / "out")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"deepzoom: {source}: cannot decode JPEG data: image file is truncated"]
    assert not (tmp_path / "out/cut.dzi").exists()


def test_memory_admission_from_the_command_line(tmp_path):
    source = tmp_path / "wide.jpg"
    sample_image(3000, 20).save(source, progressive=True)
    result = run(source, tmp_path / "out", "--memory-mb", "150")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "decoded whole: progressive JPEG" in line and "more than the 150 MB there are" in line


def test_a_bad_option_is_named_as_such_not_blamed_on_the_image(tmp_path):
    source = tmp_path / "fine.jpg"
    sample_image(60, 40).save(source)
    result = run(source, tmp_path / "out", "--quality", "0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["deepzoom: quality must be in 1..100, got 0"]


def test_help_shows_the_defaults():
    result = run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(default: 254)" in text and "(default: 80)" in text and "(default: jpg)" in text


def test_libtiff_errors_end_up_in_the_one_line_not_beside_it(tmp_path):
    """libtiff prints its errors to stderr itself unless a handler takes them: here they join the reason."""
    source = tmp_path / "broken.tif"
    sample_image(300, 200).save(source, compression="tiff_lzw")
    with Image.open(source) as image:
        first_strip = image.tag_v2[273][0]
    data = bytearray(source.read_bytes())
    for position in range(first_strip + 50, first_strip + 300, 7):
        data[position] ^= 0xFF  # LZW codes libtiff cannot follow
    source.write_bytes(bytes(data))
    result = run(source, tmp_path / "out")
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"deepzoom: {source}: cannot decode TIFF data: ") and "(" in line, line


def broken_jpeg(path, width=2000, height=4000):
    """A baseline JPEG cut off at 60%: it streams, so tiles are written before its data breaks off."""
    sample_image(width, height).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


def files_in(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize("output", ["dzi", "tiff", "dzi,tiff"])
def test_a_failed_conversion_removes_what_it_wrote_and_nothing_else(tmp_path, output):
    source = tmp_path / "broken.jpg"
    broken_jpeg(source)
    out = tmp_path / "out"
    result = run(source, out, "--output", output, "--iiif-id", "https://example.org/broken_iiif")
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"deepzoom: {source}: cannot decode JPEG data: image file is truncated"), line
    if output != "tiff":
        assert re.search(r"\(the \d+ files it wrote were removed\)$", line), line
    assert not out.exists(), "the folder it made for them too"


def test_a_failed_conversion_keeps_what_was_in_the_folder_before(tmp_path):
    out = tmp_path / "out"
    earlier = tmp_path / "earlier.png"
    sample_image(2000, 1000).save(earlier)
    assert run(earlier, out, "--name", "broken").returncode == 0  # an earlier pyramid of the same name
    assert run(earlier, out, "--name", "other").returncode == 0
    (out / "notes.txt").write_text("mine")
    (out / "broken_files" / "keep.txt").write_text("mine too")
    before = files_in(out)
    source = tmp_path / "broken.jpg"
    broken_jpeg(source)
    result = run(source, out)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "files it wrote were removed; it had overwritten" in line and "'broken' pyramid" in line, line
    assert files_in(out) == before


def test_a_folder_given_as_the_image_is_one_line(tmp_path):
    result = run(tmp_path, tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"deepzoom: {tmp_path}: is a folder, not an image file: name one image in it"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--workers", "0", "must be at least 1, got 0"),
        ("--workers", "-3", "must be at least 1, got -3"),
        ("--max-pixels", "0", "must be at least 1, got 0"),
        ("--memory-mb", "-1", "must be at least 1, got -1"),
        ("--iiif-tile-size", "0", "must be at least 1, got 0"),
        ("--workers", "two", "expected a whole number, got 'two'"),
    ],
)
def test_numeric_options_are_checked_before_the_image_is_read(tmp_path, option, value, said):
    result = run(tmp_path / "not even there.jpg", tmp_path / "out", option, value)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"python -m deepzoom: argument {option}: {said} (see python -m deepzoom --help)"
    ]
