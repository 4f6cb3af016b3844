"""The benchmarks' local S3: moto in child processes (``python -m localaws``), and emptying a bucket."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def local_s3(latency: float = 0.0, faults: tuple[float, float] | None = None) -> Iterator[dict]:
    """A local S3 in child processes: its URLs, and the pids whose CPU is the server's. With ``faults``
    (shares of PUTs failed with SlowDown and dropped), ``urls["faulty"]`` is a proxy that injects them."""
    command = [sys.executable, "-m", "localaws", "--latency", str(latency)]
    if faults:
        command += ["--faults", f"{faults[0]},{faults[1]}"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield json.loads(server.stdout.readline())
    finally:
        server.terminate()
        server.wait()


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object, so each run starts from the same server state; returns how many there were."""
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True}
        )
    return len(keys)
