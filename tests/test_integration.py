"""The handler against moto's HTTP server on 127.0.0.1, fed the events S3 itself produced.

The source bucket notifies an SQS queue (moto delivers that without Docker);
each test reads the message and passes its body to the handler, as Lambda would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, forget_clients, use_settings
from helpers import keys_in, pyramid_keys, sample_image, upload_image

import deepzoom
import lambdazoom
from localaws.proxy import FaultyProxy
from localaws.tls import TlsProxy, make_certificates
from s3zoom import jobs

ROOT = Path(__file__).resolve().parent.parent


def test_s3_sends_a_test_event_that_is_ignored(stack):
    (test_event,) = stack.setup_events
    assert test_event["Event"] == "s3:TestEvent"
    assert lambdazoom.handler(test_event, None) == {"done": 0, "skipped": 0, "failed": 0}


@pytest.mark.parametrize(
    "key", ["holiday/beach day.jpg", "tom+jerry.jpg", "straße/東京 ☃.jpg", "what?.jpg", "100%20 off.jpg"]
)
def test_real_events_convert_with_keys_intact(stack, key, caplog):
    caplog.set_level("INFO", "lambdazoom")
    upload_image(stack.s3, SOURCE_BUCKET, key, sample_image(600, 300))
    event = stack.next_event()
    assert event["Records"][0]["eventName"].startswith("ObjectCreated:")
    assert lambdazoom.handler(event, None)["done"] == 1
    stem = key.rsplit(".", 1)[0]
    assert keys_in(stack.s3, ZOOM_BUCKET) == pyramid_keys(stem, 600, 300)
    metadata = stack.s3.head_object(Bucket=ZOOM_BUCKET, Key=f"{stem}_files/0/0_0.jpg")["Metadata"]
    assert metadata["lambdazoom-settings"] == lambdazoom.SETTINGS.fingerprint


def test_real_delete_event_removes_the_pyramid(stack):
    upload_image(stack.s3, SOURCE_BUCKET, "old/scan.png", sample_image(500, 500), "PNG")
    lambdazoom.handler(stack.next_event(), None)
    stack.s3.delete_object(Bucket=SOURCE_BUCKET, Key="old/scan.png")
    event = stack.next_event()
    assert event["Records"][0]["eventName"].startswith("ObjectRemoved:")
    assert lambdazoom.handler(event, None)["done"] == 1
    assert keys_in(stack.s3, ZOOM_BUCKET) == []


def test_slowdown_and_dropped_connections_still_give_the_identical_pyramid(stack, monkeypatch, tmp_path):
    image = sample_image(900, 700)
    upload_image(stack.s3, SOURCE_BUCKET, "storm.jpg", image, quality=92)
    event = stack.next_event()
    reference = tmp_path / "reference"
    source = tmp_path / "storm.jpg"
    source.write_bytes(stack.s3.get_object(Bucket=SOURCE_BUCKET, Key="storm.jpg")["Body"].read())
    deepzoom.write_pyramid(
        deepzoom.open_image(source, lambdazoom.SETTINGS.limits), deepzoom.DirectorySink(reference), "storm"
    )
    use_settings(monkeypatch, s3_retry_mode="standard")  # adaptive mode would pace the test itself
    with FaultyProxy(stack.endpoint_url, fail_puts=0.25, drop_puts=0.1, seed=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        assert lambdazoom.handler(event, None)["done"] == 1
    assert proxy.counts["failed"] >= 3 and proxy.counts["dropped"] >= 1, proxy.counts
    written = keys_in(stack.s3, ZOOM_BUCKET)
    assert written == pyramid_keys("storm", 900, 700)
    for key in written:
        if key in ("storm.html", "storm.status.json"):  # the viewer page and status: the engine alone writes neither
            continue
        body = stack.s3.get_object(Bucket=ZOOM_BUCKET, Key=key)["Body"].read()
        assert body == (reference / key).read_bytes(), key


def test_cli_converts_one_object(stack, lambda_config):
    upload_image(stack.s3, SOURCE_BUCKET, "cli/one.jpg", sample_image(300, 200))
    stack.s3.put_object(Bucket=SOURCE_BUCKET, Key="cli/bad.jpg", Body=b"nope")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "S3_ZOOM_BUCKET": ZOOM_BUCKET,
        "TMP_DIR": str(lambda_config),
    }
    run = [sys.executable, "-m", "lambdazoom", "convert"]
    good = subprocess.run(
        [*run, f"s3://{SOURCE_BUCKET}/cli/one.jpg"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stderr.strip().splitlines()[-1])["action"] == "converted"
    assert keys_in(stack.s3, ZOOM_BUCKET) == pyramid_keys("cli/one", 300, 200)
    bad = subprocess.run([*run, f"s3://{SOURCE_BUCKET}/cli/bad.jpg"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1
    (line,) = bad.stderr.strip().splitlines()
    assert "cli/bad.jpg" in line and "not an image" in line


def test_an_https_endpoint_with_a_certificate_authority_of_its_own(stack, monkeypatch, tmp_path):
    """A private S3 behind TLS: boto3 and the tile PUTs both trust AWS_CA_BUNDLE, and nothing else does."""
    ca, certificate, key = make_certificates(tmp_path)
    upload_image(stack.s3, SOURCE_BUCKET, "vault/secure scan.jpg", sample_image(500, 300))
    event = stack.next_event()
    use_settings(monkeypatch, s3_max_attempts=1)  # a refused certificate is not worth retrying here
    with TlsProxy(stack.endpoint_url, certificate, key) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        with pytest.raises(lambdazoom.RetryableFailure, match="SSL|certificate"):
            lambdazoom.handler(event, None)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
        forget_clients()
        assert lambdazoom.handler(event, None)["done"] == 1
    assert keys_in(stack.s3, ZOOM_BUCKET) == pyramid_keys("vault/secure scan", 500, 300)


def test_a_zoom_bucket_in_another_region_gets_puts_signed_for_its_own(stack, monkeypatch):
    """The tile store is built for the region S3 names in the bucket's HEAD, not the function's own."""
    stack.s3.create_bucket(Bucket="zoom-in-ireland", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    use_settings(monkeypatch, zoom_bucket="zoom-in-ireland")
    upload_image(stack.s3, SOURCE_BUCKET, "far.jpg", sample_image(300, 200))
    assert lambdazoom.handler(stack.next_event(), None)["done"] == 1
    assert jobs._regions["zoom-in-ireland"] == "eu-west-1"
    assert keys_in(stack.s3, "zoom-in-ireland") == pyramid_keys("far", 300, 200)
