"""Benchmark the whole Lambda path: an S3 event to a complete pyramid in the zoom bucket.

    make bench-upload          # or: python -m bench.upload_path [--rounds N] [--skip-slow]

The 161 MP mosaic sits in a local S3 (moto, in a process of its own, see
``python -m localaws``) behind a proxy that adds 30 ms to every request.
Side by side, in interleaved rounds: LambdaZoom's handler; the same behind a
second proxy that answers 15% of PUTs with 503 SlowDown and drops 3% of them; libvips dzsave to
/tmp then boto3 put_object on 10 threads (what a Node/sharp Lambda does); and
the original LambdaZoom (the deepzoom.py algorithm, then one upload at a time).
Before the first round the server is warmed up with a pyramid's worth of PUTs
(stored, then deleted), so no path pays for the server growing its memory.
Each path runs in a child process of its own (the handler too), whose peak RSS
is read with ``os.wait4`` (see ``bench.measure``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from . import corpus
from .locals3 import empty_bucket, local_s3
from .measure import Measurement, measure, process_cpu, verdict
from .upload_methods import METHODS

SOURCE_BUCKET = "bench-source"
LATENCY = 0.030
FAULTS = (0.15, 0.03)  # PUTs answered 503 SlowDown, and dropped, as S3 does while it splits a busy prefix
UNDER_FAULTS = "lambdazoom, 15% SlowDown + 3% dropped"
TIFF = "lambdazoom, OUTPUT=tiff"
WARM_UP_OBJECTS, WARM_UP_BYTES = 3500, 16_000  # about the tiles of the mosaic's pyramid


def warm_up(s3) -> None:
    """A fresh moto server spends about a second more CPU on its first pyramid than on later ones
    (it grows its heap as objects arrive); fill and empty a bucket once, so the first path timed does not pay it."""
    s3.create_bucket(Bucket="bench-warm-up")
    body = os.urandom(WARM_UP_BYTES)
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(lambda n: s3.put_object(Bucket="bench-warm-up", Key=f"{n}.jpg", Body=body), range(WARM_UP_OBJECTS))
        )
    empty_bucket(s3, "bench-warm-up")


def run(method: str, endpoint: str, server_pids: list[int], key: str, zoom: str, s3) -> dict[str, float]:
    s3.create_bucket(Bucket=zoom)
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    server_before = sum(process_cpu(pid) for pid in server_pids)
    result: Measurement = measure([sys.executable, "-m", "bench.upload_methods", method, SOURCE_BUCKET, key, zoom], env)
    server_cpu = sum(process_cpu(pid) for pid in server_pids) - server_before
    counts = json.loads(result.output.strip().splitlines()[-1])
    stored = empty_bucket(s3, zoom)
    if stored != counts["puts"] + counts.get("objects_besides", 0):
        raise RuntimeError(f"{method}: {counts['puts']} objects put but {stored} in the bucket")
    measured = {
        "wall": result.wall,
        "cpu": result.cpu,
        "peak_mb": result.peak_mb,
        "objects": stored,
        "put_cpu_ms": 1000 * counts["put_cpu"] / counts["puts"],
        "server_cpu": server_cpu,
    }
    if "requests" in counts:  # the handler's own receipt
        gigapixels = counts["pixels"] / 1e9
        measured |= {"requests": sum(counts["requests"].values()), "usd_per_gp": counts["cost_usd"] / gigapixels}
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each method (median kept)")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the original (about two minutes a run)")
    args = parser.parse_args(argv)
    methods = [name for name in METHODS if not (args.skip_slow and name == "original")]
    methods.remove(TIFF)
    methods.insert(1, TIFF)
    methods.insert(1, UNDER_FAULTS)
    source = corpus.mosaic()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    with local_s3(LATENCY, FAULTS) as urls:
        s3 = boto3.client("s3", endpoint_url=urls["s3"], config=Config(max_pool_connections=16))  # skips the proxy
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.upload_file(str(source), SOURCE_BUCKET, source.name)
        warm_up(s3)
        for round_number in range(args.rounds):
            for index, method in enumerate(methods):
                zoom = f"bench-zoom-{round_number}-{index}"
                if method == UNDER_FAULTS:
                    measured = run("lambdazoom", urls["faulty"], urls["pids"], source.name, zoom, s3)
                else:
                    measured = run(method, urls["endpoint"], urls["pids"], source.name, zoom, s3)
                results[method].append(measured)
    medians = {
        name: {field: statistics.median(r[field] for r in runs) for field in runs[0]} for name, runs in results.items()
    }
    print_output_comparison(medians, args.rounds)
    print(f"\n{source.name}, S3 behind +{LATENCY * 1000:.0f} ms a request, {args.rounds} rounds, medians")
    print(
        "| path | wall s | each run s | client CPU s | client CPU ms per PUT | server CPU s | peak RSS MB | objects | wall vs dzsave path |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = medians["dzsave + 10 threads"]["wall"]
    for name, m in medians.items():
        runs = ", ".join(f"{r['wall']:.1f}" for r in results[name])
        print(
            f"| {name} | {m['wall']:.1f} | {runs} | {m['cpu']:.1f} | {m['put_cpu_ms']:.2f} | {m['server_cpu']:.1f} "
            f"| {m['peak_mb']:.0f} | {m['objects']:.0f} | {m['wall'] / base:.2f}x |"
        )
    ours = medians["lambdazoom"]
    print(verdict("wall vs dzsave path", ours["wall"] / base, 0.5))
    if "original" in medians:
        print(verdict("speed-up vs original", medians["original"]["wall"] / ours["wall"], 20, ">="))
    print(verdict("wall under PUT faults vs without", medians[UNDER_FAULTS]["wall"] / ours["wall"], 1.5))
    print(
        verdict(
            "client CPU per tile vs dzsave path", ours["put_cpu_ms"] / medians["dzsave + 10 threads"]["put_cpu_ms"], 0.4
        )
    )
    print(verdict("client CPU vs dzsave path", ours["cpu"] / medians["dzsave + 10 threads"]["cpu"], 0.4))
    print(verdict("handler peak RSS MB", ours["peak_mb"], 400))
    return 0


def print_output_comparison(medians: dict[str, dict[str, float]], rounds: int) -> None:
    """OUTPUT=tiff against OUTPUT=dzi, from each conversion's own receipt (requests, GB-seconds at the dev
    stage's 1,769 MB, list prices)."""
    dzi, tiff = medians["lambdazoom"], medians[TIFF]
    print(f"\nOUTPUT=tiff against OUTPUT=dzi, same image, {rounds} rounds, medians")
    print("| output | wall s | S3 requests | all-in cost per GP (requests + GB-s) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, m in (("dzi", dzi), ("tiff", tiff)):
        print(f"| {name} | {m['wall']:.1f} | {m['requests']:.0f} | ${m['usd_per_gp']:.4f} | {m['peak_mb']:.0f} |")
    print(verdict("tiff requests vs dzi's", tiff["requests"] / dzi["requests"], 0.01))
    print(verdict("tiff wall vs dzi's", tiff["wall"] / dzi["wall"], 0.5))
    print(verdict("tiff all-in cost per GP, USD", tiff["usd_per_gp"], 0.01))


if __name__ == "__main__":
    raise SystemExit(main())
