"""The issue's list of awkward uploads, through the handler: each converts correctly or fails cleanly."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, use_settings
from helpers import assert_failed_and_nothing_else, sample_image
from PIL import Image
from test_bad_input import jpeg_bytes, png_header

import deepzoom
import lambdazoom
from deepzoom.dzi import read_descriptor
from s3zoom import jobs
from s3zoom.events import s3_event


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def rotated_photo() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    return encoded(sample_image(120, 80), "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [sample_image(64, 48, "P"), Image.new("P", (64, 48), 3)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def sixteen_bit_png() -> bytes:
    return encoded(Image.linear_gradient("L").convert("I").point(lambda v: v * 257).convert("I;16"), "PNG")


def heic_photo() -> bytes:
    import pillow_heif

    buffer = io.BytesIO()
    pillow_heif.from_pillow(sample_image(64, 48)).save(buffer, quality=90)
    return buffer.getvalue()


CONVERTS = {
    "one-pixel.png": (lambda: encoded(Image.new("RGB", (1, 1), "red"), "PNG"), (1, 1)),
    "ribbon.png": (lambda: encoded(Image.new("L", (65000, 7), 128), "PNG"), (65000, 7)),  # 9,286:1
    "press.jpg": (lambda: encoded(sample_image(90, 60, "CMYK"), "JPEG"), (90, 60)),
    "deep.png": (sixteen_bit_png, (256, 256)),
    "sprite.png": (lambda: encoded(sample_image(50, 40, "P"), "PNG", transparency=0), (50, 40)),
    "anim.gif": (animated_gif, (64, 48)),
    "rotated.jpg": (rotated_photo, (80, 120)),
    "with space.jpg": (lambda: encoded(sample_image(30, 20), "JPEG"), (30, 20)),
    "with+plus.jpg": (lambda: encoded(sample_image(30, 20), "JPEG"), (30, 20)),
    "ünï cödé/写真.jpg": (lambda: encoded(sample_image(30, 20), "JPEG"), (30, 20)),
    "phone.heic": (heic_photo, (64, 48)),
}

FAILS = {
    "empty.jpg": (lambda: b"", "empty file"),
    "truncated.jpg": (lambda: jpeg_bytes()[:2500], "truncated"),
    "letter.jpg": (lambda: b"Dear Sir,\nplease find attached...\n" * 10, "not an image"),
    "bomb.png": (lambda: png_header(200_000, 200_000), "over the limit"),
    "notes.txt": (lambda: b"hello", "not in ACCEPTED_EXTENSIONS"),
    "thread.png": (lambda: encoded(Image.new("L", (4_000_000, 1)), "PNG"), "past the limit of 10,000"),
    "../escape.jpg": (lambda: encoded(sample_image(30, 20), "JPEG"), "'..' path segments"),
    "a/./b.jpg": (lambda: encoded(sample_image(30, 20), "JPEG"), "'..' path segments"),
}


@pytest.mark.parametrize("key", sorted(CONVERTS))
def test_converts(s3, key):
    make, size = CONVERTS[key]
    s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=make())
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, key), None) == {"done": 1, "skipped": 0, "failed": 0}
    stem = key.rsplit(".", 1)[0]
    geometry, _ = read_descriptor(s3.get_object(Bucket=ZOOM_BUCKET, Key=f"{stem}.dzi")["Body"].read())
    assert (geometry.width, geometry.height) == size
    top = s3.get_object(Bucket=ZOOM_BUCKET, Key=f"{stem}_files/{geometry.max_level}/0_0.jpg")["Body"].read()
    with Image.open(io.BytesIO(top)) as tile:
        assert tile.mode == "RGB" and 0x0112 not in tile.getexif()


@pytest.mark.parametrize("key", sorted(FAILS))
def test_fails_cleanly(s3, key, caplog):
    make, reason = FAILS[key]
    s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=make())
    caplog.set_level(logging.INFO, "lambdazoom")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, key), None) == {"done": 0, "skipped": 0, "failed": 1}
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage()]
    assert line["key"] == key and reason in line["reason"]
    refused_by_name = jobs.unconvertible_reason(lambdazoom.SETTINGS, key) is not None  # before taking the stem
    assert_failed_and_nothing_else(s3, ZOOM_BUCKET, key.rsplit(".", 1)[0], line["reason"], not refused_by_name)


def test_an_image_over_the_functions_memory_is_refused_from_its_header_before_download(s3, caplog, monkeypatch):
    """Admission: a ranged GET of the header decides, and the reason names both figures."""
    photo = encoded(sample_image(1500, 1000), "JPEG", progressive=True)
    fits_streamed = deepzoom.estimated_peak(Image.open(io.BytesIO(encoded(sample_image(1500, 1000), "JPEG"))), True)
    use_settings(monkeypatch, limits=dataclasses.replace(lambdazoom.SETTINGS.limits, memory=fits_streamed + 2**20))
    downloads = []
    monkeypatch.setattr(jobs, "scratch_folder", lambda *args: downloads.append(args))
    monkeypatch.setattr(jobs, "JUDGED_AFTER_DOWNLOAD", 0)  # a file this small is otherwise judged once downloaded
    s3.put_object(Bucket=SOURCE_BUCKET, Key="big.jpg", Body=photo)
    caplog.set_level(logging.INFO, "lambdazoom")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "big.jpg"), None) == {"done": 0, "skipped": 0, "failed": 1}
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage()]
    needed = deepzoom.estimated_peak(Image.open(io.BytesIO(photo)), False)
    assert f"needs about {needed / 2**20:,.0f} MB" in line["reason"]
    assert (
        f"the {lambdazoom.SETTINGS.limits.memory / 2**20:,.0f} MB there are" in line["reason"]
        and "progressive" in line["reason"]
    )
    assert downloads == [], "refused from the header, before any download"
    assert_failed_and_nothing_else(s3, ZOOM_BUCKET, "big", line["reason"])


def test_a_streamed_image_whose_data_breaks_off_leaves_nothing_behind(s3, caplog):
    whole = encoded(sample_image(800, 3000), "JPEG", quality=90)
    s3.put_object(Bucket=SOURCE_BUCKET, Key="cut.jpg", Body=whole[: len(whole) * 2 // 3])
    caplog.set_level(logging.INFO, "lambdazoom")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "cut.jpg"), None) == {"done": 0, "skipped": 0, "failed": 1}
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage()]
    assert "truncated" in line["reason"] and "tiles written before that were deleted" in line["reason"]
    assert_failed_and_nothing_else(s3, ZOOM_BUCKET, "cut", line["reason"])
