"""The Lambda handler against moto's in-process S3 (mock_aws)."""

from __future__ import annotations

import io
import json
import logging
import shutil

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, use_settings
from helpers import keys_in, pyramid_keys, sample_image, upload_image
from PIL import Image

import deepzoom
import lambdazoom
from deepzoom.dzi import read_descriptor
from s3zoom import cli, handling, jobs, scratch, zoom
from s3zoom.events import s3_event
from s3zoom.keys import PyramidKeys
from s3zoom.sink import S3Sink
from s3zoom.zoom import ZoomBucket


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.getMessage().startswith("{")]


def test_converts_an_upload_into_a_complete_pyramid(s3, caplog):
    caplog.set_level(logging.INFO, "lambdazoom")
    upload_image(s3, SOURCE_BUCKET, "photos/a b.jpg", sample_image(700, 450), quality=90)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "photos/a b.jpg"), None) == {"done": 1, "skipped": 0, "failed": 0}

    written = keys_in(s3, ZOOM_BUCKET)
    assert written == pyramid_keys("photos/a b", 700, 450)
    descriptor = s3.get_object(Bucket=ZOOM_BUCKET, Key="photos/a b.dzi")
    assert descriptor["ContentType"] == "application/xml"
    assert read_descriptor(descriptor["Body"].read())[0] == deepzoom.DeepZoomGeometry(700, 450)
    tile = s3.get_object(Bucket=ZOOM_BUCKET, Key="photos/a b_files/10/1_0.jpg")
    assert tile["ContentType"] == "image/jpeg"
    assert tile["CacheControl"] == lambdazoom.SETTINGS.cache_control
    assert Image.open(io.BytesIO(tile["Body"].read())).size == (1 + 254 + 1, 254 + 1)  # interior column, top row
    assert descriptor["Metadata"][zoom.SETTINGS] == lambdazoom.SETTINGS.fingerprint
    page = s3.get_object(Bucket=ZOOM_BUCKET, Key="photos/a b.html")
    assert page["ContentType"] == "text/html; charset=utf-8"
    html = page["Body"].read().decode()
    assert 'viewer.open("a%20b.dzi")' in html, "the descriptor beside the page, by a relative URL"
    assert 'fetch("a%20b.status.json"' in html, "it opens once the status says done"
    assert (
        f'<script src="{lambdazoom.SETTINGS.openseadragon_url}openseadragon.min.js" integrity="{lambdazoom.SETTINGS.openseadragon_sri}" '
        'crossorigin="anonymous">' in html
    )

    (line,) = [line for line in json_lines(caplog) if line["action"] == "converted"]
    assert line["key"] == "photos/a b.jpg" and line["pixels"] == 700 * 450 and line["tiles"] == len(written) - 3  # the .dzi, page and status
    assert line["bytes"] > 0 and line["output_bytes"] > 0 and line["levels"] == 11
    assert set(line["seconds"]) == {"download", "open", "tile_upload"}
    assert line["decoding"] == "streamed"


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("a b.jpg", "a+b.jpg"),
        ("plus+sign.jpg", "plus%2Bsign.jpg"),
        ("unicodé/東京 ☃.jpg", "unicod%C3%A9/%E6%9D%B1%E4%BA%AC+%E2%98%83.jpg"),
        ("deep/nested/folders/x.jpeg", "deep/nested/folders/x.jpeg"),
    ],
)
def test_keys_are_decoded_as_s3_encodes_them(s3, key, encoded):
    event = s3_event(SOURCE_BUCKET, key)
    assert event["Records"][0]["s3"]["object"]["key"] == encoded
    upload_image(s3, SOURCE_BUCKET, key, sample_image(40, 30))
    lambdazoom.handler(event, None)
    stem = key.rsplit(".", 1)[0]
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys(stem, 40, 30)


def test_dest_prefix_and_every_record(s3, monkeypatch):
    use_settings(monkeypatch, dest_prefix="zoom/")
    event = {"Records": []}
    for name in ("one.jpg", "two.png", "three.webp"):
        upload_image(s3, SOURCE_BUCKET, name, sample_image(30, 20), name.rsplit(".", 1)[1].replace("jpg", "jpeg"))
        event["Records"] += s3_event(SOURCE_BUCKET, name)["Records"]
    assert lambdazoom.handler(event, None)["done"] == 3
    assert [key for key in keys_in(s3, ZOOM_BUCKET) if key.endswith(".dzi")] == [
        "zoom/one.dzi",
        "zoom/three.dzi",
        "zoom/two.dzi",
    ]


def test_scratch_folder_is_removed_after_success_and_failure(s3, lambda_config):
    upload_image(s3, SOURCE_BUCKET, "good.jpg", sample_image(50, 50))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="bad.jpg", Body=b"not a picture")
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "good.jpg"), None)
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "bad.jpg"), None)
    assert list(lambda_config.iterdir()) == []


def test_redelivered_event_does_no_work(s3, caplog):
    caplog.set_level(logging.INFO, "lambdazoom")
    upload_image(s3, SOURCE_BUCKET, "once.jpg", sample_image(300, 200))
    event = s3_event(SOURCE_BUCKET, "once.jpg")
    lambdazoom.handler(event, None)
    before = {key: s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["LastModified"] for key in keys_in(s3, ZOOM_BUCKET)}
    assert lambdazoom.handler(event, None) == {"done": 0, "skipped": 1, "failed": 0}
    after = {key: s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["LastModified"] for key in keys_in(s3, ZOOM_BUCKET)}
    assert after == before
    assert json_lines(caplog)[-1]["reason"] == "pyramid already up to date"


def test_changed_settings_reconvert(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "img.jpg", sample_image(300, 200))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "img.jpg"), None)
    use_settings(monkeypatch, format="png")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "img.jpg"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("img", 300, 200)
    assert all(key.endswith(".png") for key in keys_in(s3, ZOOM_BUCKET, "img_files/"))


def test_switching_viewer_pages_off_reconverts_and_takes_the_page_away(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "pic.jpg", sample_image(300, 200))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "pic.jpg"), None)
    assert "pic.html" in keys_in(s3, ZOOM_BUCKET)
    use_settings(monkeypatch, viewer_pages=False)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "pic.jpg"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("pic", 300, 200)
    assert "pic.html" not in keys_in(s3, ZOOM_BUCKET)


def test_a_sweep_that_fails_is_finished_by_the_retry(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "plan.jpg", sample_image(1200, 900))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "plan.jpg"), None)
    upload_image(s3, SOURCE_BUCKET, "plan.jpg", sample_image(300, 100))
    real_delete = ZoomBucket.delete

    def fails_on_tiles_once(self, keys):
        keys = list(keys)
        if any("_files/" in key for key in keys) and not fails_on_tiles_once.failed:
            fails_on_tiles_once.failed = True
            raise ConnectionResetError("network went away")
        return real_delete(self, keys)

    fails_on_tiles_once.failed = False
    monkeypatch.setattr(ZoomBucket, "delete", fails_on_tiles_once)
    with pytest.raises(lambdazoom.RetryableFailure, match="network went away"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "plan.jpg"), None)
    assert "plan.dzi" not in keys_in(s3, ZOOM_BUCKET), "nothing marks the conversion done"
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "plan.jpg"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("plan", 300, 100)


def test_smaller_reupload_leaves_no_orphans(s3):
    upload_image(s3, SOURCE_BUCKET, "map.jpg", sample_image(1200, 900))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "map.jpg"), None)
    upload_image(s3, SOURCE_BUCKET, "map.jpg", sample_image(300, 100))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "map.jpg"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("map", 300, 100)
    geometry, _ = read_descriptor(s3.get_object(Bucket=ZOOM_BUCKET, Key="map.dzi")["Body"].read())
    assert (geometry.width, geometry.height) == (300, 100)


def test_delete_event_removes_everything_in_batches(s3, monkeypatch):
    use_settings(monkeypatch, tile_size=32)  # about 250 tiles...
    monkeypatch.setattr(zoom, "DELETE_BATCH", 40)  # ...so several DeleteObjects batches (1000 in production)
    upload_image(s3, SOURCE_BUCKET, "gone.png", sample_image(400, 400), "PNG")
    upload_image(s3, SOURCE_BUCKET, "gone_files/keep.jpg", sample_image(20, 20))  # another image sharing the prefix
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "gone.png"), None)
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "gone_files/keep.jpg"), None)
    assert len(keys_in(s3, ZOOM_BUCKET, "gone_files/")) > 5 * zoom.DELETE_BATCH
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="gone.png")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "gone.png", "ObjectRemoved:Delete"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("gone_files/keep", 20, 20)


def test_delete_event_for_an_object_that_exists_again_keeps_its_pyramid(s3):
    upload_image(s3, SOURCE_BUCKET, "back.jpg", sample_image(40, 40))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "back.jpg"), None)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "back.jpg", "ObjectRemoved:Delete"), None)["skipped"] == 1
    assert "back.dzi" in keys_in(s3, ZOOM_BUCKET)


@pytest.mark.parametrize(
    "event",
    [
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": SOURCE_BUCKET},
        {"source": "aws.s3", "detail-type": "Object Restore Completed", "detail": {"bucket": {"name": SOURCE_BUCKET}}},
        s3_event(SOURCE_BUCKET, "x.jpg", "ObjectRestore:Completed"),
        {},
    ],
)
def test_other_events_are_ignored(s3, event):
    result = lambdazoom.handler(event, None)
    assert result["done"] == 0 and result["failed"] == 0
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_malformed_event_is_retryable_never_a_type_error(s3):
    with pytest.raises(lambdazoom.RetryableFailure):
        lambdazoom.handler({"Records": [{"s3": {"bucket": "not-a-dict", "object": {}}}]}, None)


def test_zoom_bucket_as_source_does_not_loop(s3, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "lambdazoom")
    use_settings(monkeypatch, zoom_bucket=SOURCE_BUCKET)
    monkeypatch.setattr(handling, "_warned", set())
    upload_image(s3, SOURCE_BUCKET, "pic.jpg", sample_image(300, 300))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "pic.jpg"), None)["done"] == 1
    written = [key for key in keys_in(s3, SOURCE_BUCKET) if key != "pic.jpg"]
    follow_ups = {"Records": [s3_event(SOURCE_BUCKET, key)["Records"][0] for key in written]}
    assert lambdazoom.handler(follow_ups, None) == {"done": 0, "skipped": len(written), "failed": 0}
    assert any("also the source bucket" in record.getMessage() for record in caplog.records)


def test_dest_prefix_keeps_outputs_apart_in_one_bucket(s3, monkeypatch):
    use_settings(monkeypatch, zoom_bucket=SOURCE_BUCKET)
    use_settings(monkeypatch, dest_prefix="zoom/")
    upload_image(s3, SOURCE_BUCKET, "in/pic.jpg", sample_image(30, 30))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "in/pic.jpg"), None)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "zoom/in/pic_files/0/0_0.jpg"), None)["skipped"] == 1


def test_crash_mid_pyramid_publishes_nothing_and_the_retry_completes(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "big.jpg", sample_image(1000, 800))
    real_put = S3Sink.put
    calls = {"n": 0}

    def crash_after_20(self, path, data, content_type):
        calls["n"] += 1
        if calls["n"] > 20:
            raise ConnectionResetError("network went away")
        real_put(self, path, data, content_type)

    monkeypatch.setattr(S3Sink, "put", crash_after_20)
    with pytest.raises(lambdazoom.RetryableFailure, match="big.jpg.*network went away"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "big.jpg"), None)
    partial = keys_in(s3, ZOOM_BUCKET)
    assert 0 < len(partial) <= 20 and "big.dzi" not in partial

    monkeypatch.setattr(S3Sink, "put", real_put)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "big.jpg"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("big", 1000, 800)


def test_s3_errors_are_retryable(s3, monkeypatch):
    use_settings(monkeypatch, zoom_bucket="lambdazoom-no-such-bucket")
    upload_image(s3, SOURCE_BUCKET, "x.jpg", sample_image(30, 30))
    with pytest.raises(lambdazoom.RetryableFailure, match="x.jpg.*NoSuchBucket"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "x.jpg"), None)


def test_bugs_are_retryable_not_type_errors(s3, monkeypatch):
    def broken(settings, bucket, key, **options):
        raise TypeError("a bug")

    monkeypatch.setattr(jobs, "convert", broken)
    with pytest.raises(lambdazoom.RetryableFailure, match="TypeError: a bug"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "x.jpg"), None)


def test_object_bigger_than_free_scratch_space_fails_cleanly(s3, monkeypatch, caplog):
    upload_image(s3, SOURCE_BUCKET, "huge.jpg", sample_image(30, 30))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 5))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "huge.jpg"), None)["failed"] == 1
    assert "ephemeral storage" in caplog.text and keys_in(s3, ZOOM_BUCKET) == ["huge.status.json"]
    status = json.loads(s3.get_object(Bucket=ZOOM_BUCKET, Key="huge.status.json")["Body"].read())
    assert status["state"] == "failed" and "raise the function's ephemeral storage" in status["reason"]


def test_object_deleted_before_conversion_is_skipped(s3):
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "never-was.jpg"), None)["skipped"] == 1


def test_cli_error_for_a_bad_url():
    with pytest.raises(SystemExit):
        cli.main(["convert", "http://not-s3/x.jpg"])


@pytest.mark.parametrize("removed", ["shared.xmp", "shared", "shared.png"])
def test_deleting_another_object_with_the_same_stem_keeps_the_pyramid(s3, removed):
    upload_image(s3, SOURCE_BUCKET, "shared.jpg", sample_image(60, 40))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "shared.jpg"), None)
    before = keys_in(s3, ZOOM_BUCKET)
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, removed, "ObjectRemoved:Delete"), None)["skipped"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == before


def test_delete_after_a_crash_before_the_descriptor_removes_the_tiles(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "half.jpg", sample_image(600, 400))
    real_put = S3Sink.put

    def fail_descriptor(self, path, data, content_type):
        if path.endswith(".dzi"):
            raise ConnectionResetError("gone")
        real_put(self, path, data, content_type)

    monkeypatch.setattr(S3Sink, "put", fail_descriptor)
    with pytest.raises(lambdazoom.RetryableFailure):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "half.jpg"), None)
    assert keys_in(s3, ZOOM_BUCKET) and "half.dzi" not in keys_in(s3, ZOOM_BUCKET)
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="half.jpg")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "half.jpg", "ObjectRemoved:Delete"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_scratch_left_by_a_timed_out_invocation_is_removed(s3, lambda_config):
    import os
    import time

    stale = lambda_config / "lambdazoom-killed"
    (stale / "big").mkdir(parents=True)
    (stale / "big" / "source.jpg").write_bytes(b"x" * 1000)
    (stale / scratch.MARK).touch()
    not_ours = lambda_config / "lambdazoom-report"  # another program's folder with a name like ours
    not_ours.mkdir()
    old = time.time() - scratch.STALE_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(not_ours, (old, old))
    recent = lambda_config / "lambdazoom-running"  # another conversion still at work
    recent.mkdir()
    upload_image(s3, SOURCE_BUCKET, "next.jpg", sample_image(30, 30))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "next.jpg"), None)["done"] == 1
    assert sorted(path.name for path in lambda_config.iterdir()) == ["lambdazoom-report", "lambdazoom-running"]


def test_iiif_service_beside_the_pyramid_follows_its_source(s3, monkeypatch):
    use_settings(
        monkeypatch,
        iiif_output=True,
        iiif_base_url="https://zoom.example.org/",
        iiif_tile_size=128,
        dest_prefix="zoom/",
    )
    upload_image(s3, SOURCE_BUCKET, "maps/old town.jpg", sample_image(700, 300))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "maps/old town.jpg"), None)["done"] == 1
    keys = PyramidKeys("zoom/maps/old town")
    iiif = set(keys_in(s3, ZOOM_BUCKET, keys.iiif_prefix))
    assert iiif == keys.iiif_files(deepzoom.IIIFLayout(700, 300, 128))
    info = s3.get_object(Bucket=ZOOM_BUCKET, Key="zoom/maps/old town_iiif/info.json")
    assert info["ContentType"].startswith("application/ld+json")
    document = json.loads(info["Body"].read())
    assert document["id"] == "https://zoom.example.org/zoom/maps/old%20town_iiif", "the id is where the files are"
    assert (document["width"], document["height"], document["profile"]) == (700, 300, "level0")

    upload_image(s3, SOURCE_BUCKET, "maps/old town.jpg", sample_image(200, 100))  # smaller: fewer files
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "maps/old town.jpg"), None)["done"] == 1
    assert set(keys_in(s3, ZOOM_BUCKET, keys.iiif_prefix)) == keys.iiif_files(deepzoom.IIIFLayout(200, 100, 128))

    s3.delete_object(Bucket=SOURCE_BUCKET, Key="maps/old town.jpg")
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "maps/old town.jpg", "ObjectRemoved:Delete"), None)
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_a_pyramid_made_before_key_hashes_still_has_an_owner(s3):
    """Pyramids of earlier versions carry the URL-quoted key: deleting another source with its stem leaves them."""
    upload_image(s3, SOURCE_BUCKET, "a.jpg", sample_image(60, 40))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "a.jpg"), None)["done"] == 1
    descriptor = s3.get_object(Bucket=ZOOM_BUCKET, Key="a.dzi")
    metadata = {name: value for name, value in descriptor["Metadata"].items() if name != zoom.SOURCE_KEY}
    s3.put_object(
        Bucket=ZOOM_BUCKET,
        Key="a.dzi",
        Body=descriptor["Body"].read(),
        Metadata={**metadata, zoom.OLD_SOURCE_KEY: "a.jpg"},
    )
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "a.png", "ObjectRemoved:Delete"), None)["skipped"] == 1
    assert "a.dzi" in keys_in(s3, ZOOM_BUCKET)


def test_scratch_space_taken_by_others_for_now_is_retried_not_failed_for_good(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "fits.jpg", sample_image(30, 30))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5, 5))
    with pytest.raises(lambdazoom.RetryableFailure, match="ephemeral storage"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, "fits.jpg"), None)


def test_a_changed_pillow_internal_is_retried_and_logged_as_an_error_while_bad_files_fail_once(
    s3, monkeypatch, caplog
):
    """A Pillow upgrade that breaks what streaming relies on is our bug: every image failing as bad input,
    logged once and never retried, would hide it. It is retried, at error level with its traceback."""
    from deepzoom import streaming

    caplog.set_level(logging.INFO, "lambdazoom")
    upload_image(s3, SOURCE_BUCKET, "photo.jpg", sample_image(300, 200))
    buffer = io.BytesIO()
    sample_image(600, 2000).save(buffer, "JPEG")
    s3.put_object(Bucket=SOURCE_BUCKET, Key="cut.jpg", Body=buffer.getvalue()[:20_000])
    monkeypatch.setattr(streaming, "_self_test_failures", {}, raising=False)  # it broke after the self-test
    with pytest.MonkeyPatch.context() as upgrade:
        upgrade.delattr(Image.core, "map_buffer")
        with pytest.raises(lambdazoom.RetryableFailure, match="photo.jpg: AttributeError: .*map_buffer"):
            lambdazoom.handler(s3_event(SOURCE_BUCKET, "photo.jpg"), None)
    (logged,) = [record for record in caplog.records if '"photo.jpg"' in record.getMessage()]
    assert logged.levelno == logging.ERROR and json.loads(logged.getMessage())["action"] == "error"
    assert logged.exc_info and logged.exc_info[0] is AttributeError, "with its traceback"
    # the fix is deployed: the retry converts it
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "photo.jpg"), None)["done"] == 1
    caplog.clear()
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "cut.jpg"), None) == {"done": 0, "skipped": 0, "failed": 1}
    (line,) = json_lines(caplog)
    assert line["action"] == "failed" and "truncated" in line["reason"], "a truncated file is still bad input"


def test_a_cold_start_whose_streaming_fails_its_self_test_says_so_and_still_converts(s3, monkeypatch, caplog):
    from deepzoom import streaming
    from s3zoom import metrics

    monkeypatch.setattr(streaming, "_self_test_failures", None)  # a cold start
    monkeypatch.setattr(metrics, "_pending", [])
    monkeypatch.delattr(Image.core, "map_buffer")
    with caplog.at_level(logging.ERROR):
        lambdazoom.self_test_streaming()
    said = [record for record in caplog.records if "self-test" in record.getMessage()]
    assert [record.levelno for record in said] == [logging.ERROR] * 2 and all(record.exc_info for record in said)
    assert metrics._pending == [("StreamingSelfTestFailed", "Count", 2)], "published with the first invocation"
    caplog.set_level(logging.INFO, "lambdazoom")
    upload_image(s3, SOURCE_BUCKET, "photo.jpg", sample_image(300, 200))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "photo.jpg"), None)["done"] == 1
    (line,) = [line for line in json_lines(caplog) if line["action"] == "converted"]
    assert line["decoding"].startswith("decoded whole: streaming JPEG failed its self-test (AttributeError")
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("photo", 300, 200)
