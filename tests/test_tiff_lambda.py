"""OUTPUT=tiff through the handler: one object per image, uploaded in parts as it is written, published
conditionally and whole, with the pyramid's markers, ownership and removal rules."""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
from typing import Any

import pytest
import tifffile
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, use_settings
from helpers import keys_in, sample_image, upload_image
from PIL import Image
from test_concurrency import outcomes, run_at_once

import deepzoom
import lambdazoom
from s3zoom import handling, multipart, zoom
from s3zoom.events import s3_event
from s3zoom.multipart import MultipartStream, ReplacedMeanwhile

DONE = {"done": 1, "skipped": 0, "failed": 0}


def noise(width: int, height: int, seed: int = 1) -> Image.Image:
    """Pixels JPEG cannot shrink much: a file of several MiB from a few megapixels."""
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def open_uploads(s3: Any) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=ZOOM_BUCKET).get("Uploads", [])


def levels_of(s3: Any, key: str) -> list[tuple[int, ...]]:
    body = s3.get_object(Bucket=ZOOM_BUCKET, Key=key)["Body"].read()
    with tifffile.TiffFile(io.BytesIO(body)) as file:
        return [page.shape for page in file.pages]


@pytest.fixture
def tiff_output(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_settings(monkeypatch, output=("tiff",))
    return s3


def test_one_object_per_image_with_the_pyramids_markers(tiff_output, caplog):
    s3 = tiff_output
    caplog.set_level("INFO", "lambdazoom")
    upload_image(s3, SOURCE_BUCKET, "maps/a b.jpg", sample_image(900, 600), quality=90)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "maps/a b.jpg"), None) == DONE
    assert keys_in(s3, ZOOM_BUCKET) == ["maps/a b.html", "maps/a b.status.json", "maps/a b.tif"]
    tif = s3.head_object(Bucket=ZOOM_BUCKET, Key="maps/a b.tif")
    assert tif["ContentType"] == "image/tiff"
    assert tif["CacheControl"] == lambdazoom.SETTINGS.index_cache_control, "replaced in place: revalidated"
    assert tif["Metadata"][zoom.SOURCE_KEY] == hashlib.sha256(b"maps/a b.jpg").hexdigest()
    assert tif["Metadata"][zoom.SETTINGS] == lambdazoom.SETTINGS.fingerprint
    assert levels_of(s3, "maps/a b.tif") == [(600, 900, 3), (300, 450, 3), (150, 225, 3)]
    line = next(json.loads(r.getMessage()) for r in caplog.records if '"converted"' in r.getMessage())
    assert line["tiff"] == "maps/a b.tif" and line["tiff_bytes"] == tif["ContentLength"]
    assert "descriptor" not in line
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "maps/a b.jpg"), None)["skipped"] == 1, "up to date"
    assert open_uploads(s3) == []


def test_a_large_file_goes_up_in_parts_with_its_head_last(tiff_output, monkeypatch):
    s3 = tiff_output
    sent: list[int] = []
    upload_part = MultipartStream._upload_part

    def recorded(self: MultipartStream, number: int, data: bytes) -> str:
        sent.append(number)
        return upload_part(self, number, data)

    monkeypatch.setattr(MultipartStream, "_upload_part", recorded)
    monkeypatch.setattr(multipart, "PART_SIZE", multipart.MIN_PART)
    use_settings(monkeypatch, quality=100)  # about 16 MiB of TIFF
    upload_image(s3, SOURCE_BUCKET, "noise.png", noise(2600, 2400), "PNG")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "noise.png"), None) == DONE
    assert len(sent) >= 3 and sent[-1] == 1, sent  # part 1 holds the head: it goes last
    assert sorted(sent) == list(range(1, len(sent) + 1))
    assert levels_of(s3, "noise.tif")[0] == (2400, 2600, 3)
    assert open_uploads(s3) == []


def test_a_failure_midway_leaves_no_object_and_no_open_upload(tiff_output, monkeypatch, caplog):
    s3 = tiff_output
    upload_part = MultipartStream._upload_part

    def failing(self: MultipartStream, number: int, data: bytes) -> str:
        if number == 3:
            raise ConnectionError("the network went away")
        return upload_part(self, number, data)

    monkeypatch.setattr(MultipartStream, "_upload_part", failing)
    monkeypatch.setattr(multipart, "PART_SIZE", multipart.MIN_PART)
    use_settings(monkeypatch, quality=100)
    upload_image(s3, SOURCE_BUCKET, "noise.png", noise(2600, 2400), "PNG")
    with pytest.raises(handling.RetryableFailure, match="noise.png: ConnectionError: the network went away"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "noise.png"), None)
    assert open_uploads(s3) == []
    assert [key for key in keys_in(s3, ZOOM_BUCKET) if not key.endswith(".html")] == [], "no .tif, no lease"
    monkeypatch.setattr(MultipartStream, "_upload_part", upload_part)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "noise.png"), None) == DONE, "the retry finishes it"
    assert levels_of(s3, "noise.tif")[0] == (2400, 2600, 3)


def test_a_reconversion_keeps_the_old_file_viewable_until_the_new_one_replaces_it(tiff_output, monkeypatch):
    s3 = tiff_output
    upload_image(s3, SOURCE_BUCKET, "c.jpg", sample_image(700, 500, seed=1))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "c.jpg"), None)
    old = s3.head_object(Bucket=ZOOM_BUCKET, Key="c.tif")["ETag"]
    upload_image(s3, SOURCE_BUCKET, "c.jpg", sample_image(1000, 300, seed=2))
    seen_while_writing = []
    publish = MultipartStream.publish

    def publishing(self: MultipartStream, head: bytes) -> None:
        seen_while_writing.append(s3.head_object(Bucket=ZOOM_BUCKET, Key="c.tif")["ETag"])
        publish(self, head)

    monkeypatch.setattr(MultipartStream, "publish", publishing)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "c.jpg"), None) == DONE
    assert seen_while_writing == [old]
    assert s3.head_object(Bucket=ZOOM_BUCKET, Key="c.tif")["ETag"] != old
    assert levels_of(s3, "c.tif")[0] == (300, 1000, 3)


def test_completion_replaces_only_the_object_it_saw(s3):
    """A conversion that saw ETag A does not replace B, which a newer conversion published meanwhile; one that
    saw nothing does not replace what appeared meanwhile. Neither leaves its upload open."""
    s3.put_object(Bucket=ZOOM_BUCKET, Key="d.tif", Body=b"A")
    seen = s3.head_object(Bucket=ZOOM_BUCKET, Key="d.tif")["ETag"]
    for key, replaces, size in (("d.tif", seen, 6 * 2**20), ("e.tif", None, 100), ("d.tif", seen, 100)):
        stream = MultipartStream(s3, ZOOM_BUCKET, key, 8, replaces=replaces, attributes={})
        stream.write(bytes(size))
        s3.put_object(Bucket=ZOOM_BUCKET, Key=key, Body=b"B, published meanwhile")
        with pytest.raises(ReplacedMeanwhile, match=key):
            stream.publish(bytes(8))
        stream.abort()
        assert s3.get_object(Bucket=ZOOM_BUCKET, Key=key)["Body"].read() == b"B, published meanwhile"
    assert open_uploads(s3) == []
    stream = MultipartStream(s3, ZOOM_BUCKET, "d.tif", 8, replaces=s3.head_object(Bucket=ZOOM_BUCKET, Key="d.tif")["ETag"], attributes={})
    stream.write(bytes(6 * 2**20))
    stream.publish(b"12345678")
    assert s3.get_object(Bucket=ZOOM_BUCKET, Key="d.tif", Range="bytes=0-9")["Body"].read() == b"12345678\0\0"


def test_removal_leaves_nothing(tiff_output):
    s3 = tiff_output
    upload_image(s3, SOURCE_BUCKET, "f.jpg", sample_image(600, 400))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "f.jpg"), None)
    assert keys_in(s3, ZOOM_BUCKET) == ["f.html", "f.status.json", "f.tif"]
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="f.jpg")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "f.jpg", "ObjectRemoved:Delete"), None) == DONE
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_switching_output_leaves_only_the_new_kind(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "g.jpg", sample_image(600, 400))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "g.jpg"), None)
    assert "g.dzi" in keys_in(s3, ZOOM_BUCKET)
    use_settings(monkeypatch, output=("tiff",))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "g.jpg"), None) == DONE
    assert keys_in(s3, ZOOM_BUCKET) == ["g.html", "g.status.json", "g.tif"]
    use_settings(monkeypatch, output=("dzi", "tiff"))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "g.jpg"), None) == DONE
    both = keys_in(s3, ZOOM_BUCKET)
    assert {"g.dzi", "g.tif", "g.html", "g.status.json"} <= set(both)
    assert len(both) == 4 + deepzoom.DeepZoomGeometry(600, 400).tile_count
    use_settings(monkeypatch, output=("dzi",))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "g.jpg"), None) == DONE
    assert "g.tif" not in keys_in(s3, ZOOM_BUCKET)


def test_a_tif_someone_else_put_there_is_left_alone(tiff_output, caplog):
    s3 = tiff_output
    s3.put_object(Bucket=ZOOM_BUCKET, Key="h.tif", Body=b"someone's own file")
    upload_image(s3, SOURCE_BUCKET, "h.jpg", sample_image(300, 200))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "h.jpg"), None)["failed"] == 1
    assert s3.get_object(Bucket=ZOOM_BUCKET, Key="h.tif")["Body"].read() == b"someone's own file"
    assert any("h.tif is in the zoom bucket but LambdaZoom did not write it" in r.getMessage() for r in caplog.records)


def test_tiff_beside_its_sources_needs_a_prefix(s3, monkeypatch, caplog):
    """a.jpg's a.tif in the source bucket itself would be taken for a source of the stem a."""
    use_settings(monkeypatch, output=("tiff",), zoom_bucket=SOURCE_BUCKET)
    upload_image(s3, SOURCE_BUCKET, "i.jpg", sample_image(300, 200))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "i.jpg"), None)["failed"] == 1
    assert any("set DEST_PREFIX" in r.getMessage() for r in caplog.records)
    assert keys_in(s3, SOURCE_BUCKET) == ["i.jpg"]


def test_two_sources_of_one_stem_at_once_publish_only_the_newer(slow_s3, monkeypatch, caplog):
    caplog.set_level("INFO", "lambdazoom")
    use_settings(monkeypatch, output=("tiff",))
    upload_image(slow_s3.s3, SOURCE_BUCKET, "a.jpg", sample_image(700, 500, seed=1))
    time.sleep(1.1)  # S3 keeps times to the second: a.png is the newer one
    upload_image(slow_s3.s3, SOURCE_BUCKET, "a.png", sample_image(900, 300, seed=2), "PNG")
    jpg_event, png_event = slow_s3.drain()
    for _ in range(2):  # the first round and a round of redeliveries, each in both orders at once
        results = run_at_once(*(lambda event=event: lambdazoom.handler(event) for event in 2 * [jpg_event, png_event]))
        assert not [result for result in results if isinstance(result, Exception)], results
        assert keys_in(slow_s3.s3, ZOOM_BUCKET) == ["a.html", "a.status.json", "a.tif"]
        tif = slow_s3.s3.head_object(Bucket=ZOOM_BUCKET, Key="a.tif")
        assert tif["Metadata"][zoom.SOURCE_KEY] == hashlib.sha256(b"a.png").hexdigest()
        assert levels_of(slow_s3.s3, "a.tif")[0] == (300, 900, 3)
    assert outcomes(caplog, "a.png").count("converted") == 1
    assert "converted" not in outcomes(caplog, "a.jpg")
    assert open_uploads(slow_s3.s3) == []


def test_the_page_of_a_tif_opens_it_through_the_pinned_plugin(tiff_output, monkeypatch):
    s3 = tiff_output
    upload_image(s3, SOURCE_BUCKET, "j k.jpg", sample_image(300, 200))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "j k.jpg"), None)
    page = s3.get_object(Bucket=ZOOM_BUCKET, Key="j k.html")["Body"].read().decode()
    settings = lambdazoom.SETTINGS
    assert 'getAllTileSources("j%20k.tif"' in page
    assert f'src="{settings.geotiff_tilesource_url}" integrity="{settings.geotiff_tilesource_sri}"' in page
    before = settings.fingerprint
    use_settings(monkeypatch, geotiff_tilesource_url="https://example.invalid/other.js")
    assert lambdazoom.SETTINGS.fingerprint != before, "a new plugin rewrites the pages"
