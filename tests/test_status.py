"""STEM.status.json and STEM.preview.jpg: what a web app that lets people upload can show them."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET
from helpers import keys_in, pyramid_keys, sample_image, upload_image
from PIL import Image

import lambdazoom
from s3zoom import jobs, status, zoom
from s3zoom.events import s3_event
from s3zoom.sink import S3Sink


def document(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=ZOOM_BUCKET, Key=key)["Body"].read())


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every status document a conversion writes, in order, with no wait between progress writes."""
    seen: list[dict[str, Any]] = []
    write = status.StatusDocument._store

    def recorded(self: status.StatusDocument, **fields: Any) -> None:
        write(self, **fields)
        seen.append(json.loads(json.dumps(self.document)))

    monkeypatch.setattr(status.StatusDocument, "_store", recorded)
    monkeypatch.setattr(status, "EVERY", 0.0)
    return seen


def test_a_conversion_goes_from_converting_with_rising_progress_to_done_with_its_receipt(s3, written):
    upload = upload_image(s3, SOURCE_BUCKET, "photos/a b.png", sample_image(1300, 900), "PNG")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "photos/a b.png"), None)["done"] == 1
    states = [each["state"] for each in written]
    assert states[-1] == "done" and set(states[:-1]) == {"converting"} and len(states) > 3
    progress = [each["progress"]["tiles_written"] for each in written]
    assert progress == sorted(progress) and progress[0] < progress[-1] == written[-1]["progress"]["tiles_expected"]
    final = document(s3, "photos/a b.status.json")
    assert final == written[-1]
    assert final["source"] == {
        "bucket": SOURCE_BUCKET,
        "key": "photos/a b.png",
        "etag": s3.head_object(Bucket=SOURCE_BUCKET, Key="photos/a b.png")["ETag"].strip('"'),
        "version": "",
        "size": len(upload),
    }
    assert final["outputs"] == {"descriptor": "photos/a b.dzi", "page": "photos/a b.html"}
    assert final["receipt"]["requests"]["PutObject"] >= final["progress"]["tiles_expected"]
    assert final["receipt"]["cost_usd"] > 0 and final["started"] <= final["updated"] == final["finished"]
    head = s3.head_object(Bucket=ZOOM_BUCKET, Key="photos/a b.status.json")
    assert head["ContentType"] == "application/json" and head["CacheControl"] == lambdazoom.SETTINGS.index_cache_control
    assert head["Metadata"][zoom.SOURCE_ETAG] == final["source"]["etag"], "the pyramid's markers"


def test_a_bad_upload_is_failed_with_the_reason_of_its_log_line(s3, caplog):
    caplog.set_level("INFO", "lambdazoom")
    s3.put_object(Bucket=SOURCE_BUCKET, Key="notes.jpg", Body=b"these are my notes, not a picture")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "notes.jpg"), None)["failed"] == 1
    line = next(json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage())
    assert keys_in(s3, ZOOM_BUCKET) == ["notes.status.json"]
    failed = document(s3, "notes.status.json")
    assert failed["state"] == "failed" and failed["reason"] == line["reason"] and "finished" in failed


def test_a_source_that_does_not_own_the_stem_leaves_the_owners_status_alone(s3):
    upload_image(s3, SOURCE_BUCKET, "c.jpg", sample_image(300, 200, seed=1))
    time.sleep(1.1)  # S3 keeps times to the second: c.png is the newer one, and owns the stem
    upload_image(s3, SOURCE_BUCKET, "c.png", sample_image(400, 300, seed=2), "PNG")
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "c.png"), None)
    before = s3.head_object(Bucket=ZOOM_BUCKET, Key="c.status.json")["ETag"]
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "c.jpg"), None)["failed"] == 1
    assert s3.head_object(Bucket=ZOOM_BUCKET, Key="c.status.json")["ETag"] == before
    assert document(s3, "c.status.json")["source"]["key"] == "c.png"


def test_removal_leaves_no_status_and_no_preview(s3):
    upload_image(s3, SOURCE_BUCKET, "d.jpg", sample_image(1600, 1200))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "d.jpg"), None)
    assert {"d.status.json", "d.preview.jpg"} <= set(keys_in(s3, ZOOM_BUCKET))
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="d.jpg")
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "d.jpg", "ObjectRemoved:Delete"), None)
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_a_jpegs_preview_is_up_before_its_first_tile(s3, monkeypatch):
    order: list[str] = []
    put, preview = S3Sink.put, jobs._publish_preview

    def tile_put(self: S3Sink, path: str, *args: Any) -> None:
        order.append(path)
        put(self, path, *args)

    def preview_made(*args: Any) -> bool:
        made = preview(*args)
        order.append("preview" if made else "no preview")
        return made

    monkeypatch.setattr(S3Sink, "put", tile_put)
    monkeypatch.setattr(jobs, "_publish_preview", preview_made)
    upload_image(s3, SOURCE_BUCKET, "e.jpg", sample_image(4000, 3000), quality=90)  # 12 MP
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "e.jpg"), None)
    first_tile = next(index for index, path in enumerate(order) if "_files/" in path)
    assert order.index("preview") < first_tile
    picture = Image.open(io.BytesIO(s3.get_object(Bucket=ZOOM_BUCKET, Key="e.preview.jpg")["Body"].read()))
    assert picture.size == (1024, 768)
    assert document(s3, "e.status.json")["outputs"]["preview"] == "e.preview.jpg"
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("e", 4000, 3000, preview=True)


def test_no_preview_where_no_reduced_decode_is_cheap(s3):
    upload_image(s3, SOURCE_BUCKET, "f.png", sample_image(1600, 1200), "PNG")
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "f.png"), None)
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("f", 1600, 1200)
    assert "preview" not in document(s3, "f.status.json")["outputs"]
