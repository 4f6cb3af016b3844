"""What a receipt's S3 client of its own costs (s3zoom/receipt.py): making it, and its first connection.

    python -m bench.receipt_client [--rounds N]

Prints the medians of: a new client from the cached session (wall, CPU, bytes allocated); a new
client's first HEAD, which opens a TLS connection, against moto behind a local TLS proxy; and a HEAD on
a warm client, whose connection is kept. On loopback a handshake costs its CPU only; in a region, add its
round trips.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from localaws.server import LocalS3
from localaws.tls import TlsProxy, make_certificates
from s3zoom import clients

BUCKET = "receipt-bench"
OPTIONS = (72, "standard", 10)  # the function's defaults: UPLOAD_CONCURRENCY + 8, S3_RETRY_MODE, S3_MAX_ATTEMPTS


def timed(rounds: int, run: Callable[[], object]) -> str:
    """Median wall and CPU milliseconds of ``run``."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return f"{statistics.median(walls) * 1e3:.1f} ms wall, {statistics.median(cpus) * 1e3:.1f} ms CPU"


def first_head() -> None:
    client = clients.new_s3_client(*OPTIONS)
    client.head_object(Bucket=BUCKET, Key="k")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    with LocalS3() as server, tempfile.TemporaryDirectory() as folder:
        ca, certificate, key = make_certificates(Path(folder))
        with TlsProxy(server.endpoint_url, certificate, key) as proxy:
            os.environ.update(AWS_ENDPOINT_URL=proxy.endpoint_url, AWS_CA_BUNDLE=str(ca))
            warm = clients.s3_client(*OPTIONS)  # makes the session, and loads the S3 model once
            warm.create_bucket(Bucket=BUCKET)
            warm.put_object(Bucket=BUCKET, Key="k", Body=b"k")
            print("new client:             ", timed(rounds, lambda: clients.new_s3_client(*OPTIONS)))
            tracemalloc.start()
            clients.new_s3_client(*OPTIONS)
            print(f"new client allocates:    {tracemalloc.get_traced_memory()[0] / 1024:.0f} KB")
            tracemalloc.stop()
            print("new client + first HEAD:", timed(rounds, first_head))
            print("HEAD on a warm client:  ", timed(rounds, lambda: warm.head_object(Bucket=BUCKET, Key="k")))


if __name__ == "__main__":
    main()
