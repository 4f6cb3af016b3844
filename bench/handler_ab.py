"""Did a change make the handler faster or slower? Two revisions' handlers side by side, in one run.

    python -m bench.handler_ab BEFORE [AFTER] [--rounds N]     # AFTER: the working tree

Each revision is checked out in a temporary git worktree; their handlers convert the 161 MP mosaic
on the same local S3 (+30 ms a request, as ``make bench-upload``), interleaved, each run in a
child process of its own. Prints each run and the medians: wall, process CPU, server CPU.
On a shared machine only such interleaved comparisons mean much: absolute times drift by day.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import boto3
from botocore.config import Config

from . import corpus
from .locals3 import empty_bucket, local_s3
from .measure import measure, process_cpu

ROOT = Path(__file__).resolve().parent.parent
LATENCY = 0.030


@contextmanager
def checked_out(revision: str | None) -> Iterator[Path]:
    """A worktree of ``revision`` (None: this working tree itself)."""
    if revision is None:
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="lambdazoom-ab-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), revision], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="a git revision")
    parser.add_argument("after", nargs="?", help="a git revision (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    source = corpus.mosaic()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    labels = {args.before: args.before, args.after: args.after or "working tree"}
    runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label in labels.values()}
    with ExitStack() as stack, local_s3(LATENCY) as urls:
        trees = {labels[revision]: stack.enter_context(checked_out(revision)) for revision in labels}
        s3 = boto3.client("s3", endpoint_url=urls["s3"], config=Config(max_pool_connections=16))
        s3.create_bucket(Bucket="bench-source")
        s3.upload_file(str(source), "bench-source", source.name)
        for round_number in range(args.rounds):
            for index, (label, tree) in enumerate(trees.items()):
                zoom = f"bench-ab-{round_number}-{index}"
                s3.create_bucket(Bucket=zoom)
                server_before = sum(process_cpu(pid) for pid in urls["pids"])
                command = [
                    sys.executable,
                    "-m",
                    "bench.upload_methods",
                    "lambdazoom",
                    "bench-source",
                    source.name,
                    zoom,
                ]
                os.chdir(tree)  # the child imports that revision's code
                result = measure(command, {**os.environ, "AWS_ENDPOINT_URL": urls["endpoint"]})
                server = sum(process_cpu(pid) for pid in urls["pids"]) - server_before
                objects = empty_bucket(s3, zoom)
                runs[label].append((result.wall, result.cpu, server))
                print(
                    f"{label}: wall {result.wall:.1f} s, CPU {result.cpu:.1f} s, server {server:.1f} s, {objects} objects"
                )
        os.chdir(ROOT)
    print(f"\n{source.name}, {args.rounds} interleaved rounds, medians")
    print("| handler of | wall s | process CPU s | server CPU s |\n|---|---:|---:|---:|")
    for label, measured in runs.items():
        wall, cpu, server = (statistics.median(values) for values in zip(*measured, strict=True))
        print(f"| {label} | {wall:.1f} | {cpu:.1f} | {server:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
