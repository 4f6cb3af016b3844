"""What real S3 enforces and moto does not (2 KB of user metadata, 1,024-byte keys), how long viewers may cache,
and what in the zoom bucket is not ours to overwrite or delete."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, use_settings
from helpers import keys_in, sample_image, upload_image

import lambdazoom
from s3zoom import zoom
from s3zoom.events import s3_event

S3_METADATA_BYTES = 2048  # names and values of all x-amz-meta-* headers, as UTF-8


def metadata_bytes(head: dict) -> int:
    return sum(len(f"x-amz-meta-{name}".encode()) + len(value.encode()) for name, value in head["Metadata"].items())


def test_a_long_unicode_key_keeps_every_objects_metadata_under_2_kb(s3):
    key = "ü" * 400 + ".jpg"  # 804 bytes; URL-quoted it was 2,544 bytes of metadata on every object
    upload_image(s3, SOURCE_BUCKET, key, sample_image(300, 200))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, key), None)["done"] == 1
    written = keys_in(s3, ZOOM_BUCKET)
    assert written and all(len(found.encode()) <= 1024 for found in written)
    for found in written:
        assert metadata_bytes(s3.head_object(Bucket=ZOOM_BUCKET, Key=found)) < S3_METADATA_BYTES


def test_the_marker_of_a_1000_byte_key_is_small():
    marker = zoom.marker(
        "k" * 996 + ".jpg", {"ETag": '"' + "e" * 32 + '-9999"', "VersionId": "v" * 32}, lambdazoom.SETTINGS
    )
    assert sum(len(f"x-amz-meta-{name}") + len(value) for name, value in marker.items()) < 400


def test_a_key_whose_outputs_would_pass_1024_bytes_is_refused_before_any_work(s3, caplog):
    key = "k" * 950 + ".jpg"
    upload_image(s3, SOURCE_BUCKET, key, sample_image(30, 20))
    caplog.set_level(logging.INFO, "lambdazoom")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, key), None) == {"done": 0, "skipped": 0, "failed": 1}
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage()]
    assert "over S3's 1024" in line["reason"] and "shorten the key" in line["reason"]
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_descriptors_pages_and_iiif_info_are_revalidated_while_tiles_are_cached(s3, monkeypatch):
    use_settings(monkeypatch, iiif_output=True, iiif_base_url="https://zoom.example.org")
    upload_image(s3, SOURCE_BUCKET, "a.jpg", sample_image(600, 400))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "a.jpg"), None)["done"] == 1
    for index in ("a.dzi", "a.html", "a_iiif/info.json"):
        assert (
            s3.head_object(Bucket=ZOOM_BUCKET, Key=index)["CacheControl"]
            == lambdazoom.SETTINGS.index_cache_control
            == "no-cache"
        )
    tiles = [key for key in keys_in(s3, ZOOM_BUCKET) if key.endswith(".jpg")]
    assert tiles and {s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["CacheControl"] for key in tiles} == {
        lambdazoom.SETTINGS.cache_control
    }


def test_a_hand_written_page_survives_conversion_and_deletion(s3):
    s3.put_object(Bucket=ZOOM_BUCKET, Key="about.html", Body=b"<h1>About us</h1>", ContentType="text/html")
    upload_image(s3, SOURCE_BUCKET, "about.jpg", sample_image(300, 200))
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "about.jpg"), None)["done"] == 1
    assert "about.dzi" in keys_in(s3, ZOOM_BUCKET)
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="about.jpg")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "about.jpg", "ObjectRemoved:Delete"), None)["done"] == 1
    assert keys_in(s3, ZOOM_BUCKET) == ["about.html"]
    assert s3.get_object(Bucket=ZOOM_BUCKET, Key="about.html")["Body"].read() == b"<h1>About us</h1>"


def test_with_viewer_pages_off_a_page_not_ours_is_not_swept(s3, monkeypatch):
    use_settings(monkeypatch, viewer_pages=False)
    s3.put_object(Bucket=ZOOM_BUCKET, Key="docs.html", Body=b"<p>docs</p>")
    upload_image(s3, SOURCE_BUCKET, "docs.png", sample_image(40, 30), "PNG")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "docs.png"), None)["done"] == 1
    assert "docs.html" in keys_in(s3, ZOOM_BUCKET)


def test_a_descriptor_not_ours_is_never_replaced(s3, caplog):
    s3.put_object(Bucket=ZOOM_BUCKET, Key="map.dzi", Body=b"<Image/>")
    upload_image(s3, SOURCE_BUCKET, "map.jpg", sample_image(60, 40))
    caplog.set_level(logging.INFO, "lambdazoom")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "map.jpg"), None)["failed"] == 1
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage()]
    assert "map.dzi is in the zoom bucket but LambdaZoom did not write it" in line["reason"]
    assert keys_in(s3, ZOOM_BUCKET) == ["map.dzi"]
    assert s3.get_object(Bucket=ZOOM_BUCKET, Key="map.dzi")["Body"].read() == b"<Image/>"


@pytest.mark.parametrize(
    ("package", "script", "setting", "url_names"),
    [
        ("openseadragon", "build/openseadragon/openseadragon.min.js", "openseadragon", "/openseadragon/{version}/"),
        (  # the npm package's own path to the very file
            "geotiff-tilesource",
            "dist/geotiff-tilesource.min.js",
            "geotiff_tilesource",
            "/geotiff-tilesource@{version}/dist/geotiff-tilesource.min.js",
        ),
    ],
    ids=["openseadragon", "geotiff-tilesource"],
)
def test_each_default_integrity_is_that_of_the_pinned_package(package, script, setting, url_names):
    """OPENSEADRAGON_SRI and GEOTIFF_TILESOURCE_SRI must match the script of the version package-lock.json
    pins, which is the version the default URL names; the browser tests then run that very check in chromium."""
    import base64
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    lock = json.loads((root / "package-lock.json").read_text())
    version = lock["packages"][f"node_modules/{package}"]["version"]
    assert url_names.format(version=version) in getattr(lambdazoom.SETTINGS, f"{setting}_url")
    digest = base64.b64encode(hashlib.sha384((root / "node_modules" / package / script).read_bytes()).digest())
    assert getattr(lambdazoom.SETTINGS, f"{setting}_sri") == f"sha384-{digest.decode()}"


def test_hand_made_tiles_at_a_pyramids_keys_are_neither_overwritten_nor_deleted(s3, caplog):
    """Someone's own Deep Zoom folder (no LambdaZoom metadata) where a source's pyramid would go."""
    theirs = {f"atlas_files/{level}/0_0.jpg": b"their tile %d" % level for level in range(3)}
    for key, body in theirs.items():
        s3.put_object(Bucket=ZOOM_BUCKET, Key=key, Body=body)
    upload_image(s3, SOURCE_BUCKET, "atlas.jpg", sample_image(300, 200))
    caplog.set_level(logging.INFO, "lambdazoom")
    assert lambdazoom.handler(s3_event(SOURCE_BUCKET, "atlas.jpg"), None)["failed"] == 1
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if '"failed"' in r.getMessage()]
    assert "LambdaZoom did not write it" in line["reason"] and "atlas_files/" in line["reason"]
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="atlas.jpg")
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "atlas.jpg", "ObjectRemoved:Delete"), None)
    assert keys_in(s3, ZOOM_BUCKET) == sorted(theirs)
    assert {key: s3.get_object(Bucket=ZOOM_BUCKET, Key=key)["Body"].read() for key in theirs} == theirs
