"""The benchmarks' local S3 (``python -m localaws``): it serves S3 behind its latency proxy, and leaves nothing running."""

from __future__ import annotations

import os
import time

import boto3

from bench.locals3 import local_s3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serves_s3_behind_the_proxy_and_stops_cleanly():
    with local_s3(latency=0.05) as urls:
        assert urls["endpoint"] != urls["s3"] and len(urls["pids"]) >= 3  # granian, its worker, the proxy
        s3 = boto3.client("s3", endpoint_url=urls["endpoint"])
        s3.create_bucket(Bucket="lambdazoom-rig")
        s3.put_object(Bucket="lambdazoom-rig", Key="a b/ü.jpg", Body=b"x" * 100_000, ContentType="image/jpeg")
        started = time.perf_counter()
        got = s3.get_object(Bucket="lambdazoom-rig", Key="a b/ü.jpg", Range="bytes=10-19")
        assert time.perf_counter() - started >= 0.05, "the proxy adds its latency"
        assert got["Body"].read() == b"x" * 10 and got["ContentType"] == "image/jpeg"
        pids = urls["pids"]
        assert all(_alive(pid) for pid in pids)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "every serving process has exited"
