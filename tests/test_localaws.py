"""The benchmarks' local S3 (``python -m localaws``): it serves S3 behind its latency proxy, and leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3

from bench.locals3 import local_s3
from localaws.__main__ import _process_tree


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _all_exit(pids: list[int], seconds: float = 10) -> bool:
    """Whether every one of ``pids`` has exited within ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(pid) for pid in pids)


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
    assert _all_exit(pids), "every serving process has exited"


def test_stopped_while_starting_it_leaves_nothing_running():
    rig = subprocess.Popen([sys.executable, "-m", "localaws", "--latency", "0.01"], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (started := _process_tree(rig.pid)[1:]) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert started, "the server process was started"
    rig.terminate()  # granian is still starting, perhaps not even out of Popen(): it answers nothing yet
    output, _ = rig.communicate(timeout=30)  # the pipe closes once every process that shares it has gone
    assert rig.returncode == 0 and output == b"", "stopped cleanly before it was ready"
    assert _all_exit(started), "every process it started has exited"
