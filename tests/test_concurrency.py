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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, forget_clients, use_settings
from helpers import keys_in, pyramid_keys, sample_image, upload_image

import lambdazoom
from localaws.proxy import FaultyProxy, header, s3_error
from s3zoom import jobs, lease, zoom
from s3zoom.events import s3_event
from s3zoom.keys import PyramidKeys
from s3zoom.lease import LeaseLost, StemBusy, leased, shortest_ttl



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


LEASE = "x_files/lambdazoom.lease"


def wait_until(condition: Callable[[], bool], what: str, deadline: float = 60) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after a generous ``deadline`` (seconds)."""
    give_up = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < give_up, f"{what} did not happen within {deadline:g} s"
        time.sleep(0.01)


def expired(s3: Any, key: str = LEASE) -> bool:
    """Does the lease at ``key`` look expired to a would-be taker, by S3's clock?"""
    found = lease._read(s3, ZOOM_BUCKET, key)
    return found is not None and found.expired


def refused(attempt: Callable[[], Any]) -> bool:
    try:
        attempt()
    except LeaseLost:
        return True
    return False


class Stalling:
    """A holder's renewal client whose PUTs wait while ``stalled`` is set (a holder that stopped renewing for a
    while: a frozen container, a network that holds its packets), then go through."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.stalled = threading.Event()
        self.going = threading.Event()  # set: the stalled PUTs may go
        self.landed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **request: Any) -> Any:
        if self.stalled.is_set():
            assert self.going.wait(60), "the test never let the stalled renewal go"
        try:
            return self.client.put_object(**request)
        finally:
            self.landed += 1


class Taker:
    """Another conversion's client: records the error code of every takeover (a PUT with If-Match) it tries."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.takeovers: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **request: Any) -> Any:
        try:
            answer = self.client.put_object(**request)
        except ClientError as error:
            if "IfMatch" in request:
                self.takeovers.append(error.response["Error"]["Code"])
            raise
        if "IfMatch" in request:
            self.takeovers.append("taken")
        return answer


def test_a_takeover_over_a_renewed_lease_is_refused(stack, monkeypatch):
    """The race that gave a pyramid two writers: a taker reads the lease as expired, its holder renews it, and the
    taker writes with If-Match on the ETag it read. Each renewal writes a new body, so the ETag moved: refused."""
    renewals = Stalling(stack.s3)
    renewals.stalled.set()
    with leased(stack.s3, ZOOM_BUCKET, LEASE, "x.jpg", ttl=1.0, wait=0, renewer=lambda: renewals) as holder:
        wait_until(lambda: expired(stack.s3), "the stalled holder's lease expiring")
        read = lease._read

        def read_then_the_holder_renews(s3: Any, bucket: str, key: str) -> Any:
            found = read(s3, bucket, key)
            if s3 is taker and not renewals.going.is_set():  # the taker has read the lease as expired: now it renews
                renewals.stalled.clear()
                renewals.going.set()
                wait_until(lambda: holder.beat >= 1, "the holder's renewal")
            return found

        taker = Taker(stack.s3)
        monkeypatch.setattr(lease, "_read", read_then_the_holder_renews)
        with pytest.raises(StemBusy), leased(taker, ZOOM_BUCKET, LEASE, "y.jpg", ttl=1.0, wait=0):
            pass
        monkeypatch.setattr(lease, "_read", read)
        assert taker.takeovers == ["PreconditionFailed"], "S3 refused the takeover (412): the ETag had moved on"
        # The stalled renewal was sent before the stall, so the holder counts from then; its next one is fresh.
        wait_until(lambda: holder.beat >= 2, "the holder's next renewal")
        holder.check()
        holder.confirm()  # still the one writer

        # Now it stalls past its ttl for real: the lease passes on, and the holder knows it.
        renewals.going.clear()
        renewals.stalled.set()
        wait_until(lambda: expired(stack.s3), "the stalled holder's lease expiring again")
        with leased(taker, ZOOM_BUCKET, LEASE, "y.jpg", ttl=30.0, wait=0) as successor:
            assert taker.takeovers[-1] == "taken"
            with pytest.raises(LeaseLost):
                holder.confirm()
            renewals.going.set()  # its renewal goes out late, over the old ETag: refused, and the holder learns it
            wait_until(holder.lost.is_set, "the holder learning it lost the lease")
            with pytest.raises(LeaseLost):
                holder.check()
            successor.confirm()
    assert keys_in(stack.s3, ZOOM_BUCKET) == [], "the successor released it; the holder left it alone"


@contextmanager
def kept_leases(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[lease.Lease]]:
    """Every lease a ZoomBucket takes while the block runs, as it is taken."""
    taken: list[lease.Lease] = []
    real = zoom.leased

    @contextmanager
    def keeping(*args: Any, **kwargs: Any) -> Iterator[lease.Lease]:
        with real(*args, **kwargs) as held:
            taken.append(held)
            yield held

    monkeypatch.setattr(zoom, "leased", keeping)
    yield taken


def test_no_deletion_batch_goes_out_once_the_lease_is_lost(s3, monkeypatch):
    """A removal deletes in batches; a holder that stalled past its writable window between two of them sends
    no more: each batch checks the lease first, not only the confirm() before the first."""
    upload_image(s3, SOURCE_BUCKET, "z.jpg", sample_image(600, 400))
    use_settings(monkeypatch, tile_size=64)
    jobs.convert(lambdazoom.SETTINGS, SOURCE_BUCKET, "z.jpg")
    tiles = [key for key in keys_in(s3, ZOOM_BUCKET) if key.endswith(".jpg")]
    assert len(tiles) > 12
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="z.jpg")
    monkeypatch.setattr(zoom, "DELETE_BATCH", 4)
    batches: list[int] = []

    def stall_after_the_second(params: dict[str, Any], **_: Any) -> None:
        batches.append(len(params["Delete"]["Objects"]))
        if len(batches) == 2:  # the .dzi, page and status went, then four tiles: now the holder stalls past its window
            (held,) = leases
            held.renewed_at -= held.ttl

    events = jobs.client(lambdazoom.SETTINGS).meta.events
    events.register("before-parameter-build.s3.DeleteObjects", stall_after_the_second)
    with kept_leases(monkeypatch) as leases, pytest.raises(LeaseLost):
        jobs.remove(lambdazoom.SETTINGS, SOURCE_BUCKET, "z.jpg")
    assert batches == [3, 4], "no batch after the lease was lost"
    assert len([key for key in keys_in(s3, ZOOM_BUCKET) if key.endswith(".jpg")]) == len(tiles) - 4


class Unanswered:
    """A renewal client whose PUTs land but whose answers never come back: each times out, as far as the holder
    knows, so it stops trusting its lease while S3 holds its latest body."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.landed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **request: Any) -> Any:
        self.client.put_object(**request)
        self.landed += 1
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1")


def test_a_lease_lost_only_on_the_holders_clock_is_released(stack):
    """Its renewals timed out, so the holder stopped writing; but they landed, so S3 still has its lease. It is
    released at the end all the same (over the ETag S3 has, which is still this holder's), so the next conversion
    does not wait out a lease that nobody holds."""
    renewals = Unanswered(stack.s3)
    with leased(stack.s3, ZOOM_BUCKET, LEASE, "x.jpg", ttl=1.0, wait=0, renewer=lambda: renewals) as held:
        wait_until(lambda: renewals.landed >= 2, "two renewals landing unanswered")
        wait_until(lambda: refused(held.check), "the holder giving its lease up")
        assert lease._read(stack.s3, ZOOM_BUCKET, LEASE).body != held.body, "S3 has a later renewal than it knows"
    assert keys_in(stack.s3, ZOOM_BUCKET) == [], "released"
    with leased(stack.s3, ZOOM_BUCKET, LEASE, "y.jpg", ttl=30.0, wait=0):
        pass


class TimedOutOnce:
    """A renewal client whose first PUT waits out its whole read timeout and fails; the rest go through."""

    def __init__(self, client: Any, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.attempts: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **request: Any) -> Any:
        self.attempts.append(time.monotonic())
        if len(self.attempts) == 1:
            threading.Event().wait(self.timeout)  # no answer comes
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1")
        return self.client.put_object(**request)


def test_a_lease_at_its_shortest_ttl_survives_a_renewal_that_timed_out(stack):
    """LEASE_SECONDS' minimum, scaled down: a holder whose first renewal waits out its whole timeout keeps writing
    until its second renewal lands (at 100 s against a 75 s write lifetime, the first beat alone lost the lease)."""
    write_lifetime, renewal_lifetime, margin = 3.0, 1.0, 1.0
    ttl = shortest_ttl(write_lifetime, renewal_lifetime, margin)
    renewals = TimedOutOnce(stack.s3, renewal_lifetime)
    with leased(
        stack.s3,
        ZOOM_BUCKET,
        LEASE,
        "x.jpg",
        ttl=ttl,
        wait=0,
        write_lifetime=write_lifetime,
        renewer=lambda: renewals,
        renewal_lifetime=renewal_lifetime,
    ) as held:
        taken = held.renewed_at
        while held.beat < 1:  # as a conversion does: a check before every write
            held.check()
            assert time.monotonic() - taken < 60, "the second renewal never landed"
            time.sleep(0.01)
        held.check()
        assert len(renewals.attempts) == 2
    assert keys_in(stack.s3, ZOOM_BUCKET) == []


class NoConditionalDeletes(FaultyProxy):
    """A stand-in for an S3-compatible store that takes If-Match on a PUT but not on a DELETE (501 NotImplemented)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.refused = 0

    def answer_for(self, head: bytes) -> bytes | None:
        if head.startswith(b"DELETE ") and header(head, b"If-Match") is not None:
            self.refused += 1
            return s3_error(
                b"501 Not Implemented",
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
            )
        return None


@pytest.fixture
def no_conditional_deletes(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler talks to a store that refuses conditional deletes (``stack.proxy``); ``stack.s3`` goes around it."""
    with NoConditionalDeletes(stack.endpoint_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        stack.proxy = proxy
        yield stack


def test_a_store_without_conditional_deletes_keeps_no_lease(no_conditional_deletes, monkeypatch, caplog):
    """Release falls back to a read, a comparison and a plain delete: no lease outlives its conversion or removal,
    and the removal that follows the conversion finds none to wait for."""
    caplog.set_level("INFO", "lambdazoom")
    stack = no_conditional_deletes
    use_settings(monkeypatch, lease_wait_seconds=0)  # a lease left behind would fail the removal at once
    upload_image(stack.s3, SOURCE_BUCKET, "h.jpg", sample_image(500, 300))
    assert lambdazoom.handler(stack.next_event()) == {"done": 1, "skipped": 0, "failed": 0}
    assert stack.proxy.refused == 1, "the conversion's conditional delete was refused"
    assert not [key for key in keys_in(stack.s3, ZOOM_BUCKET) if key.endswith("lambdazoom.lease")]
    stack.s3.delete_object(Bucket=SOURCE_BUCKET, Key="h.jpg")
    started = time.monotonic()
    assert lambdazoom.handler(stack.next_event()) == {"done": 1, "skipped": 0, "failed": 0}
    assert time.monotonic() - started < lambdazoom.SETTINGS.lease_seconds, "it did not wait out a lease"
    assert outcomes(caplog, "h.jpg") == ["converted", "removed"]
    assert stack.proxy.refused == 2
    assert keys_in(stack.s3, ZOOM_BUCKET) == [], "the pyramid and both leases are gone"


def test_without_conditional_deletes_only_ones_own_lease_is_deleted(no_conditional_deletes):
    """The fallback deletes the lease only if it is still this holder's, and only while it surely stays so
    until the delete lands; else it leaves it to its holder, or to expire."""
    stack = no_conditional_deletes
    client = jobs.client(lambdazoom.SETTINGS)
    with leased(client, ZOOM_BUCKET, LEASE, "x.jpg", ttl=30.0, wait=0, renewal_lifetime=5.0):
        thief = json.dumps({"source": "y.jpg", "token": "thief", "ttl": 30.0, "beat": 0})
        stack.s3.put_object(Bucket=ZOOM_BUCKET, Key=LEASE, Body=thief)  # taken over, as this holder has not noticed
    assert stack.s3.get_object(Bucket=ZOOM_BUCKET, Key=LEASE)["Body"].read() == thief.encode(), "not ours to delete"
    stack.s3.delete_object(Bucket=ZOOM_BUCKET, Key=LEASE)
    with leased(client, ZOOM_BUCKET, LEASE, "x.jpg", ttl=3.0, wait=0, renewal_lifetime=5.0):
        pass  # its 3 s are too few for a delete that may take 5 s to land: someone could take it over meanwhile
    assert keys_in(stack.s3, ZOOM_BUCKET) == [LEASE], "left to expire"
    stack.s3.delete_object(Bucket=ZOOM_BUCKET, Key=LEASE)
    with leased(client, ZOOM_BUCKET, LEASE, "x.jpg", ttl=30.0, wait=0, renewal_lifetime=5.0):
        pass
    assert keys_in(stack.s3, ZOOM_BUCKET) == [], "its own, with time to spare: deleted"
    assert stack.proxy.refused == 3
