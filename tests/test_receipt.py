"""The cost receipt on every record's log line: its requests are the very ones S3 saw, each conversion's
own even when several run at once, and its price is the price table's."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, forget_clients, use_settings
from helpers import sample_image, upload_image

import config
import lambdazoom
from localaws.proxy import FaultyProxy
from s3zoom import jobs, prices, receipt
from s3zoom.deadline import Deadline
from s3zoom.events import s3_event
from s3zoom.lease import leased


class CountingProxy(FaultyProxy):
    """Forwards every request, counting them by HTTP method."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.methods: Counter[str] = Counter()

    def fault_for(self, method: bytes) -> str | None:
        self.methods[method.decode()] += 1
        return super().fault_for(method)


@pytest.fixture
def counted(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler reaches the stack's S3 only through a proxy that counts what it is sent."""
    with CountingProxy(stack.endpoint_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        stack.proxy = proxy
        yield stack


def by_method(s3: Any, requests: dict[str, int]) -> Counter[str]:
    """A receipt's requests (S3 operation -> count) by the HTTP method each operation is sent with."""
    methods: Counter[str] = Counter()
    for operation, count in requests.items():
        methods[s3.meta.service_model.operation_model(operation).http["method"]] += count
    return methods


def lines(caplog: pytest.LogCaptureFixture) -> dict[str, dict[str, Any]]:
    """The logged report of each key, by key."""
    found = [json.loads(record.getMessage()) for record in caplog.records if record.getMessage().startswith("{")]
    return {line["key"]: line for line in found if "key" in line}


def test_a_conversion_and_a_removal_carry_the_requests_s3_saw(counted, monkeypatch, caplog):
    caplog.set_level("INFO", "lambdazoom")
    use_settings(monkeypatch, lease_seconds=86_400)  # no renewal, however slow the machine: counts are exact
    upload_image(counted.s3, SOURCE_BUCKET, "paid/receipt.jpg", sample_image(600, 400))
    assert lambdazoom.handler(counted.next_event(), None)["done"] == 1
    line = lines(caplog)["paid/receipt.jpg"]
    assert line["action"] == "converted"
    assert by_method(counted.s3, line["requests"]) == counted.proxy.methods, "s3transfer's download GET too"
    assert line["requests"]["HeadBucket"] == 1, "the zoom bucket's region, asked by the first conversion"
    assert line["requests"]["PutObject"] == line["tiles"] + 4, "tiles, page, descriptor, status and the lease"
    assert line["gb_seconds"] > 0
    assert line["cost_usd"] > prices.cost_usd(line["requests"], 0, receipt.ARCHITECTURE)

    counted.proxy.methods.clear()
    counted.s3.delete_object(Bucket=SOURCE_BUCKET, Key="paid/receipt.jpg")
    assert lambdazoom.handler(counted.next_event(), None)["done"] == 1
    line = lines(caplog)["paid/receipt.jpg"]
    assert line["action"] == "removed"
    assert by_method(counted.s3, line["requests"]) == counted.proxy.methods
    assert line["requests"]["DeleteObjects"] >= 1


def test_conversions_at_once_each_get_their_own_requests(counted, monkeypatch, caplog):
    """Two conversions on threads of one process share the obstore store and the session; each receipt
    holds exactly what a conversion alone makes, and together they hold all that S3 saw."""
    caplog.set_level("INFO", "lambdazoom")
    use_settings(monkeypatch, lease_seconds=86_400)  # no renewal, however slow the machine: counts are exact
    upload_image(counted.s3, SOURCE_BUCKET, "alone.jpg", sample_image(300, 200, seed=1))
    lambdazoom.handler(counted.next_event(), None)
    alone = lines(caplog)["alone.jpg"]["requests"]
    assert alone.pop("HeadBucket") == 1, "the zoom bucket's region is asked once a process, by the first"
    upload_image(counted.s3, SOURCE_BUCKET, "small.jpg", sample_image(300, 200, seed=2))
    upload_image(counted.s3, SOURCE_BUCKET, "large.jpg", sample_image(1500, 1000, seed=3))
    events = counted.drain()
    counted.proxy.methods.clear()
    start = threading.Barrier(len(events))

    def handle(event: dict[str, Any]) -> dict[str, Any]:
        start.wait()
        return lambdazoom.handler(event, None)

    with ThreadPoolExecutor(len(events)) as pool:
        assert [answer["done"] for answer in pool.map(handle, events)] == [1, 1]
    reports = lines(caplog)
    small, large = reports["small.jpg"], reports["large.jpg"]
    assert large["tiles"] > 2 * small["tiles"]
    for line in (small, large):  # the tiles, page, descriptor, status and lease, and a JPEG over 1,024 px's preview
        assert line["requests"]["PutObject"] == line["tiles"] + 4 + ("preview" in line)
        assert {op: n for op, n in line["requests"].items() if op != "PutObject"} == {
            op: n for op, n in alone.items() if op != "PutObject"
        }
    assert by_method(counted.s3, Counter(small["requests"]) + Counter(large["requests"])) == counted.proxy.methods


def test_the_lease_threads_renewals_are_on_the_receipt(counted):
    """The lease renews on a thread of its own, through the client the receipt handed out."""
    with receipt.tally(lambdazoom.SETTINGS) as bill:
        s3 = jobs.client(lambdazoom.SETTINGS)
        with leased(s3, ZOOM_BUCKET, "r_files/lambdazoom.lease", "r.jpg", ttl=0.4, wait=0) as lease:
            taken = lease.renewed_at
            deadline = time.monotonic() + 60
            while lease.renewed_at == taken:
                assert time.monotonic() < deadline, "the lease was never renewed"
                time.sleep(0.01)
    assert bill.requests["PutObject"] >= 2, "taken, and renewed at least once"
    assert by_method(counted.s3, bill.requests) == counted.proxy.methods


def test_a_conversions_lease_renews_through_a_short_timeout_client_on_its_receipt(counted):
    """Renewals get a client of their own, made through the receipt (so they are counted): short timeouts and one
    attempt a beat, so a renewal that hangs costs a beat, not the lease."""
    from s3zoom import clients, zoom
    from s3zoom.keys import PyramidKeys

    settings = lambdazoom.SETTINGS
    with receipt.tally(settings) as bill:
        s3 = jobs.client(settings)
        with zoom.ZoomBucket(s3, settings).lease(PyramidKeys("r"), "r.jpg", Deadline()) as lease:
            lease._renew()  # a beat, now
            renewals = lease.renewal_client()
        assert renewals is not s3
        assert renewals is bill.client(**clients.RENEWAL_CLIENT), "the receipt's own"
    assert (renewals.meta.config.connect_timeout, renewals.meta.config.read_timeout) == (
        clients.RENEWAL_CONNECT_TIMEOUT,
        clients.RENEWAL_READ_TIMEOUT,
    )
    assert renewals.meta.config.retries["total_max_attempts"] == 1
    assert bill.requests["PutObject"] == 2, "taken, and renewed once"
    assert by_method(counted.s3, bill.requests) == counted.proxy.methods


@pytest.mark.parametrize(
    ("operation", "per_thousand"),
    [
        ("PutObject", 0.005),
        ("CopyObject", 0.005),
        ("ListObjectsV2", 0.005),
        ("CreateMultipartUpload", 0.005),
        ("UploadPart", 0.005),
        ("CompleteMultipartUpload", 0.005),
        ("GetObject", 0.0004),
        ("HeadObject", 0.0004),
        ("HeadBucket", 0.0004),
        ("DeleteObject", 0.0),
        ("DeleteObjects", 0.0),
        ("AbortMultipartUpload", 0.0),
    ],
)
def test_a_thousand_requests_cost_the_list_price(operation, per_thousand):
    assert prices.cost_usd({operation: 1000}, 0, "x86_64") == pytest.approx(per_thousand)


def test_compute_is_priced_by_architecture_and_adds_to_the_requests():
    assert prices.cost_usd({}, 1.0, "x86_64") == pytest.approx(0.0000166667)
    assert prices.cost_usd({}, 1.0, "arm64") == pytest.approx(0.0000133334)
    mixed = prices.cost_usd({"PutObject": 2000, "GetObject": 3000}, 10.0, "arm64")
    assert mixed == pytest.approx(2 * 0.005 + 3 * 0.0004 + 10 * 0.0000133334)


def test_a_receipt_prices_the_settings_memory_for_its_duration(lambda_config):
    settings = lambdazoom.SETTINGS.replace(limits=dataclasses.replace(lambdazoom.SETTINGS.limits, memory=3008 * 2**20))
    started = time.perf_counter()
    with receipt.tally(settings) as bill:
        bill.count("PutObject")
        time.sleep(0.05)
        fields = bill.fields()
    elapsed = time.perf_counter() - started
    assert 3008 / 1024 * 0.05 <= fields["gb_seconds"] <= 3008 / 1024 * elapsed + 1e-6
    assert fields["requests"] == {"PutObject": 1}
    expected = prices.cost_usd(fields["requests"], fields["gb_seconds"], bill.architecture)
    assert fields["cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert receipt.current() is None, "a receipt is current only within its block"
    dev = json.loads((Path(__file__).parent.parent / "zappa_settings.json").read_text())["dev"]
    with receipt.tally(config.Settings()) as bill:  # settings that know no memory: the dev stage's is priced
        assert bill.memory_mb == dev["memory_size"]


def test_the_embedded_metrics_carry_each_receipt(s3, caplog, capsys):
    caplog.set_level("INFO", "lambdazoom")
    upload_image(s3, SOURCE_BUCKET, "m.jpg", sample_image(400, 300))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="bad.jpg", Body=b"not an image")
    keys = ("m.jpg", "bad.jpg")
    lambdazoom.handler({"Records": [s3_event(SOURCE_BUCKET, key)["Records"][0] for key in keys]}, None)
    reports = [lines(caplog)[key] for key in keys]
    assert [report["action"] for report in reports] == ["converted", "failed"], "a failure costs too, and says so"
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert {"S3Requests", "GBSeconds", "CostUSD"} <= {metric["Name"] for metric in directive["Metrics"]}
    assert line["S3Requests"] == [sum(report["requests"].values()) for report in reports]  # a point per object
    assert line["GBSeconds"] == [report["gb_seconds"] for report in reports]
    assert line["CostUSD"] == [report["cost_usd"] for report in reports]
    assert all(cost > 0 for cost in line["CostUSD"])


def test_a_tiff_conversion_carries_its_multipart_requests(counted, monkeypatch, caplog):
    """OUTPUT=tiff: one object in parts; the receipt still holds exactly what S3 saw, part by part."""
    import random

    from PIL import Image

    from s3zoom import multipart

    caplog.set_level("INFO", "lambdazoom")
    use_settings(monkeypatch, lease_seconds=86_400, output=("tiff",), quality=100)
    monkeypatch.setattr(multipart, "PART_SIZE", multipart.MIN_PART)
    noise = Image.frombytes("RGB", (2600, 2400), random.Random(3).randbytes(2600 * 2400 * 3))  # ~16 MiB of TIFF
    upload_image(counted.s3, SOURCE_BUCKET, "one.png", noise, "PNG")
    assert lambdazoom.handler(counted.next_event(), None)["done"] == 1
    line = lines(caplog)["one.png"]
    assert by_method(counted.s3, line["requests"]) == counted.proxy.methods
    parts = line["requests"]["UploadPart"]
    assert parts == -(-line["tiff_bytes"] // multipart.MIN_PART) >= 3
    assert line["requests"]["CreateMultipartUpload"] == line["requests"]["CompleteMultipartUpload"] == 1
    assert line["requests"]["PutObject"] == 3, "the page, the status and the lease: no tile is an object of its own"


def test_a_small_conversion_makes_at_most_ten_requests_besides_its_tiles(counted, monkeypatch, caplog):
    """One plan per conversion: the source's stem and the pyramid's siblings are listed once, its folders once,
    the source read in one GET; the last look lists the stem again. (The zoom bucket's region is asked once a
    container, so a first conversion: see the receipt test above.)"""
    caplog.set_level("INFO", "lambdazoom")
    use_settings(monkeypatch, lease_seconds=86_400)
    upload_image(counted.s3, SOURCE_BUCKET, "warm.jpg", sample_image(300, 200, seed=1))
    lambdazoom.handler(counted.next_event(), None)  # the container's first: it asks for the zoom bucket's region
    upload_image(counted.s3, SOURCE_BUCKET, "small.jpg", sample_image(700, 500, seed=2))  # 0.35 MP
    event = counted.next_event()
    counted.proxy.methods.clear()
    assert lambdazoom.handler(event, None)["done"] == 1
    line = lines(caplog)["small.jpg"]
    seen = sum(counted.proxy.methods.values())
    assert seen == sum(line["requests"].values())
    assert seen - line["tiles"] <= 10, line["requests"]
    counted.proxy.methods.clear()
    assert lambdazoom.handler(event, None)["skipped"] == 1, "a redelivery"
    assert sum(counted.proxy.methods.values()) <= 3, "the stem's listing, the siblings' listing, the .dzi's HEAD"
