"""Conversions that race: whatever order S3's events and their redeliveries run in, the published
pyramid comes whole from one source object and version, the current one's, and nothing is mixed.

The races run against moto's HTTP server behind a proxy that delays every request (a slow S3), on
threads, with the events S3 itself sent. Each source of a stem has another size, so a mixture would
show in the set of keys as well as in the metadata every object carries.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, forget_clients, use_settings
from helpers import keys_in, pyramid_keys, sample_image, upload_image

import lambdazoom
from localaws.proxy import FaultyProxy
from s3zoom import jobs, zoom
from s3zoom.events import s3_event
from s3zoom.keys import PyramidKeys
from s3zoom.lease import LeaseLost, StemBusy, leased

SLOW = 0.03  # seconds the proxy holds each request


def run_at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Start every call on a thread of its own at the same moment; their results (or exceptions)."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - returned for the test to judge
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def assert_whole_pyramid_of(s3: Any, name: str, source_key: str, size: tuple[int, int]) -> None:
    """The zoom bucket holds exactly ``source_key``'s current pyramid, every object made from that version."""
    current = s3.head_object(Bucket=SOURCE_BUCKET, Key=source_key)
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys(name, *size), "the keys of one pyramid, and no lease left"
    for key in keys_in(s3, ZOOM_BUCKET):
        metadata = s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["Metadata"]
        assert metadata[zoom.SOURCE_KEY] == hashlib.sha256(source_key.encode()).hexdigest(), key
        assert metadata[zoom.SOURCE_ETAG] == current["ETag"].strip('"'), key
        assert metadata[zoom.SOURCE_VERSION] == current.get("VersionId", ""), key


def outcomes(caplog: pytest.LogCaptureFixture, key: str) -> list[str]:
    """The action of every logged report about ``key``, in order."""
    found = []
    for record in caplog.records:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("key") == key:
            found.append(line["action"])
    return found


@pytest.fixture
def slow_s3(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler talks to S3 through a proxy that holds each request ``SLOW`` seconds."""
    with FaultyProxy(stack.endpoint_url, latency=SLOW) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        yield stack


def test_two_sources_of_one_stem_at_once_publish_the_newest_only(slow_s3, caplog):
    caplog.set_level("INFO", "lambdazoom")
    upload_image(slow_s3.s3, SOURCE_BUCKET, "a.jpg", sample_image(700, 500, seed=1))
    time.sleep(1.1)  # S3 keeps times to the second: a.png is the newer one
    upload_image(slow_s3.s3, SOURCE_BUCKET, "a.png", sample_image(900, 300, seed=2), "PNG")
    jpg_event, png_event = slow_s3.drain()
    for _ in range(2):  # the first round and a round of redeliveries, each in both orders at once
        results = run_at_once(*(lambda event=event: lambdazoom.handler(event) for event in 2 * [jpg_event, png_event]))
        assert not [result for result in results if isinstance(result, Exception)], results
        assert_whole_pyramid_of(slow_s3.s3, "a", "a.png", (900, 300))
    assert outcomes(caplog, "a.png").count("converted") == 1
    assert "converted" not in outcomes(caplog, "a.jpg")
    failures = [r.getMessage() for r in caplog.records if '"a.jpg"' in r.getMessage() and '"failed"' in r.getMessage()]
    assert failures and all("belongs to 'a.png'" in failure for failure in failures)


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_an_overwrite_during_a_conversion_publishes_only_the_new_version(slow_s3, versioned, caplog):
    caplog.set_level("INFO", "lambdazoom")
    if versioned:
        slow_s3.s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    upload_image(slow_s3.s3, SOURCE_BUCKET, "b.jpg", sample_image(1500, 1100, seed=3))
    old_event = slow_s3.next_event()
    older = threading.Thread(target=lambdazoom.handler, args=(old_event,))
    older.start()
    deadline = time.monotonic() + 60
    while not [key for key in keys_in(slow_s3.s3, ZOOM_BUCKET) if key.endswith(".jpg")]:
        assert time.monotonic() < deadline, "the first conversion never wrote a tile"
        time.sleep(0.005)
    upload_image(slow_s3.s3, SOURCE_BUCKET, "b.jpg", sample_image(800, 600, seed=4))  # while tiles are going up
    new_event = slow_s3.next_event()
    newer = run_at_once(lambda: lambdazoom.handler(new_event))
    older.join()
    assert not isinstance(newer[0], Exception), newer
    assert outcomes(caplog, "b.jpg")[:2] == ["superseded", "converted"]
    assert_whole_pyramid_of(slow_s3.s3, "b", "b.jpg", (800, 600))
    results = run_at_once(*(lambda event=event: lambdazoom.handler(event) for event in [old_event, new_event] * 2))
    assert results == [{"done": 0, "skipped": 1, "failed": 0}] * 4, "redeliveries find it up to date"
    assert_whole_pyramid_of(slow_s3.s3, "b", "b.jpg", (800, 600))


def test_deleting_the_owner_hands_the_stem_to_the_next_newest(stack, caplog):
    caplog.set_level("INFO", "lambdazoom")
    upload_image(stack.s3, SOURCE_BUCKET, "c.jpg", sample_image(500, 400, seed=5))
    time.sleep(1.1)
    upload_image(stack.s3, SOURCE_BUCKET, "c.png", sample_image(300, 600, seed=6), "PNG")
    for event in stack.drain():
        lambdazoom.handler(event)
    assert_whole_pyramid_of(stack.s3, "c", "c.png", (300, 600))
    stack.s3.delete_object(Bucket=SOURCE_BUCKET, Key="c.png")
    assert lambdazoom.handler(stack.next_event()) == {"done": 1, "skipped": 0, "failed": 0}
    assert_whole_pyramid_of(stack.s3, "c", "c.jpg", (500, 400))
    removal = next(json.loads(r.getMessage()) for r in caplog.records if '"removed"' in r.getMessage())
    assert removal["successor"] == {"key": "c.jpg", "action": "converted"}
    stack.s3.delete_object(Bucket=SOURCE_BUCKET, Key="c.jpg")
    lambdazoom.handler(stack.next_event())
    assert keys_in(stack.s3, ZOOM_BUCKET) == []


def test_deleting_a_source_that_does_not_own_the_stem_changes_nothing(stack):
    upload_image(stack.s3, SOURCE_BUCKET, "d.png", sample_image(300, 200, seed=7), "PNG")
    time.sleep(1.1)
    upload_image(stack.s3, SOURCE_BUCKET, "d.jpg", sample_image(400, 200, seed=8))
    for event in stack.drain():
        lambdazoom.handler(event)
    before = {key: stack.s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["ETag"] for key in keys_in(stack.s3, ZOOM_BUCKET)}
    stack.s3.delete_object(Bucket=SOURCE_BUCKET, Key="d.png")
    assert lambdazoom.handler(stack.next_event()) == {"done": 0, "skipped": 1, "failed": 0}
    assert {
        key: stack.s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["ETag"] for key in keys_in(stack.s3, ZOOM_BUCKET)
    } == before
    assert_whole_pyramid_of(stack.s3, "d", "d.jpg", (400, 200))


def test_a_tie_in_time_goes_to_the_smallest_key(s3):
    """Same second: the rule still names one owner, the same for every event."""
    for key, image_format in (("e.png", "PNG"), ("e.jpg", "JPEG"), ("e.JPG", "JPEG")):
        upload_image(s3, SOURCE_BUCKET, key, sample_image(200, 100), image_format)
    times = {s3.head_object(Bucket=SOURCE_BUCKET, Key=key)["LastModified"] for key in ("e.png", "e.jpg", "e.JPG")}
    if len(times) > 1:
        pytest.skip("the uploads straddled a second")
    for key in ("e.png", "e.jpg", "e.JPG"):
        lambdazoom.handler(s3_event(SOURCE_BUCKET, key))
    assert_whole_pyramid_of(s3, "e", "e.JPG", (200, 100))  # "J" sorts before "j" and "p"


def test_a_live_lease_makes_others_wait_and_then_give_up(s3):
    with leased(s3, ZOOM_BUCKET, "x_files/lambdazoom.lease", "x.jpg", ttl=2.0, wait=0):
        time.sleep(3.5)  # longer than the ttl: only the renewals keep it
        started = time.monotonic()
        with (
            pytest.raises(StemBusy, match=r"of x\.jpg"),
            leased(s3, ZOOM_BUCKET, "x_files/lambdazoom.lease", "y.jpg", ttl=2.0, wait=0.3),
        ):
            pass
        assert time.monotonic() - started >= 0.3
    assert keys_in(s3, ZOOM_BUCKET) == [], "released"
    with leased(s3, ZOOM_BUCKET, "x_files/lambdazoom.lease", "y.jpg", ttl=1.0, wait=0):
        pass


def test_a_dead_holders_lease_is_taken_over_after_its_ttl(s3):
    s3.put_object(
        Bucket=ZOOM_BUCKET,
        Key="x_files/lambdazoom.lease",
        Body=json.dumps({"source": "x.jpg", "ttl": 0.5, "token": "dead"}),
    )
    time.sleep(2.6)  # its ttl and the second that Last-Modified may lag
    with leased(s3, ZOOM_BUCKET, "x_files/lambdazoom.lease", "y.jpg", ttl=5.0, wait=0) as lease:
        lease.confirm()


def test_a_lost_lease_publishes_nothing(s3, monkeypatch, caplog):
    """Someone took the lease over (this holder stalled past its ttl): the last look before publishing sees it."""
    upload_image(s3, SOURCE_BUCKET, "f.jpg", sample_image(900, 900))
    real_put = jobs.S3Sink.put
    stolen = []

    def put_then_steal(self, path, data, content_type):
        if not stolen:  # the first tile: another conversion takes the lease
            s3.put_object(Bucket=ZOOM_BUCKET, Key=PyramidKeys("f").lease, Body=b'{"source": "thief", "ttl": 60}')
            stolen.append(path)
        return real_put(self, path, data, content_type)

    monkeypatch.setattr(jobs.S3Sink, "put", put_then_steal)
    use_settings(monkeypatch, upload_concurrency=1)
    with pytest.raises(LeaseLost):
        jobs.convert(lambdazoom.SETTINGS, SOURCE_BUCKET, "f.jpg")
    assert not [key for key in keys_in(s3, ZOOM_BUCKET) if key.endswith(".dzi")]


def test_the_lease_is_released_when_a_conversion_fails(s3):
    s3.put_object(Bucket=SOURCE_BUCKET, Key="g.jpg", Body=b"not an image at all")
    with pytest.raises(jobs.PermanentFailure):
        jobs.convert(lambdazoom.SETTINGS, SOURCE_BUCKET, "g.jpg")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=ZOOM_BUCKET, Key=PyramidKeys("g").lease)
