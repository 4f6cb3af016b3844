"""Ways to get an S3 image into a Deep Zoom pyramid in another bucket, each run in a child process.

``python -m bench.upload_methods METHOD BUCKET KEY ZOOM_BUCKET`` prints one JSON
line: the tiles uploaded and the client CPU seconds spent inside the PUT calls (for LambdaZoom, whose
client does its signing and sending on threads of its own, those threads' CPU too).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

from .methods import OVERLAP, QUALITY, TILE_SIZE, deepzoom_py

CONTENT_TYPES = {".jpg": "image/jpeg", ".dzi": "application/xml"}


class PutClock:
    """Adds up the CPU time of the calling thread inside each timed block, across threads.

    ``timed_process`` counts the whole process's CPU instead: for calls that hand
    their work to threads of their own, made when nothing else runs.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def time(self, function, *args, **kwargs):
        return self._timed(time.thread_time, function, *args, **kwargs)

    def timed_process(self, function, *args, **kwargs):
        return self._timed(time.process_time, function, *args, **kwargs)

    def _timed(self, clock, function, *args, **kwargs):
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            spent = clock() - started
            with self._lock:
                self.seconds += spent
                self.calls += 1


LAMBDA_MEMORY_MB = "1769"  # the dev stage's memory_size: what the receipt's GB-seconds are billed at


def handler(bucket: str, key: str, zoom: str, clock: PutClock, output: str = "dzi") -> dict:
    """LambdaZoom's handler on the event S3 sends, tiles streamed from memory (or, with ``output="tiff"``,
    one pyramidal TIFF uploaded in parts). Returns the conversion's receipt from its log line."""
    os.environ.update(S3_ZOOM_BUCKET=zoom, OUTPUT=output, AWS_LAMBDA_FUNCTION_MEMORY_SIZE=LAMBDA_MEMORY_MB)
    import lambdazoom
    from s3zoom.events import s3_event
    from s3zoom.multipart import MultipartStream
    from s3zoom.sink import S3Sink

    put, publish = S3Sink.put, MultipartStream.publish
    S3Sink.put = lambda self, *args: clock.time(put, self, *args)  # type: ignore[method-assign]
    MultipartStream.publish = lambda self, *args: clock.time(publish, self, *args)  # type: ignore[method-assign]
    lines: list[dict] = []
    logging.getLogger("lambdazoom").addHandler(_JsonLines(lines))
    result = lambdazoom.handler(s3_event(bucket, key), None)
    assert result["done"] == 1, result
    clock.seconds += runtime_threads_cpu()  # obstore signs and sends on its runtime's threads, not the callers'
    line = next(line for line in lines if line.get("action") == "converted")
    objects_besides = 1 + ("preview" in line)  # the status document, and a preview where one was made
    return {field: line[field] for field in ("requests", "gb_seconds", "cost_usd", "pixels")} | {
        "objects_besides": objects_besides
    }


class _JsonLines(logging.Handler):
    """Keeps the handler's one-line JSON reports."""

    def __init__(self, lines: list[dict]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("{"):
            self.lines.append(json.loads(message))


def runtime_threads_cpu() -> float:
    """CPU seconds of this process's ``tokio-rt-worker`` threads (obstore's Rust runtime), from /proc."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != "tokio-rt-worker":
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a thread that ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _download(client, bucket: str, key: str, folder: Path) -> Path:
    path = folder / ("source" + Path(key).suffix)
    client.download_file(bucket, key, str(path))
    return path


def _upload_folder(client, folder: Path, zoom: str, clock: PutClock, threads: int) -> None:
    """Every tile file, then the descriptor last, as ``put_object`` calls on ``threads`` threads."""
    files = sorted(folder.rglob("*_files/*/*.jpg"))
    descriptor = next(folder.glob("*.dzi"))

    def put(path: Path) -> None:
        body = path.read_bytes()
        key = path.relative_to(folder).as_posix()
        clock.time(client.put_object, Bucket=zoom, Key=key, Body=body, ContentType=CONTENT_TYPES[path.suffix])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))
    put(descriptor)


def dzsave_then_put(bucket: str, key: str, zoom: str, clock: PutClock) -> None:
    """What a libvips/sharp Lambda does: dzsave to /tmp, then put_object on 10 threads."""
    import pyvips

    client = boto3.client("s3", config=Config(max_pool_connections=10))
    with tempfile.TemporaryDirectory() as scratch:
        source = _download(client, bucket, key, Path(scratch))
        out = Path(scratch) / "out"
        out.mkdir()
        stem = Path(key).stem
        pyvips.Image.new_from_file(str(source), access="sequential").dzsave(
            str(out / stem), tile_size=TILE_SIZE, overlap=OVERLAP, suffix=f".jpg[Q={QUALITY}]"
        )
        (out / f"{stem}_files" / "vips-properties.xml").unlink(missing_ok=True)
        _upload_folder(client, out, zoom, clock, threads=10)


def original(bucket: str, key: str, zoom: str, clock: PutClock) -> None:
    """The original LambdaZoom: the deepzoom.py algorithm to /tmp, then, as its handler did, ``upload_file``
    for the descriptor and then for each tile, one at a time, with no Content-Type (its bare retry loop
    is left out: nothing fails here, and a run must not hang if something did)."""
    client = boto3.client("s3")
    with tempfile.TemporaryDirectory() as scratch:
        source = _download(client, bucket, key, Path(scratch))
        out = Path(scratch) / "out"
        out.mkdir()
        deepzoom_py(source, out)
        stem = Path(key).stem
        (out / "image.dzi").rename(out / f"{stem}.dzi")
        (out / "image_files").rename(out / f"{stem}_files")
        clock.timed_process(client.upload_file, str(out / f"{stem}.dzi"), zoom, f"{stem}.dzi")
        for directory, _, files in os.walk(out / f"{stem}_files", topdown=False):
            for name in files:
                path = Path(directory) / name
                clock.timed_process(client.upload_file, str(path), zoom, path.relative_to(out).as_posix())


METHODS = {
    "lambdazoom": handler,
    "lambdazoom, OUTPUT=tiff": functools.partial(handler, output="tiff"),
    "dzsave + 10 threads": dzsave_then_put,
    "original": original,
}

if __name__ == "__main__":
    method, bucket, key, zoom = sys.argv[1:5]
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the baselines open the 161 MP mosaic with plain Pillow
    clock = PutClock()
    receipt = METHODS[method](bucket, key, zoom, clock) or {}
    print(json.dumps({"puts": clock.calls, "put_cpu": clock.seconds, **receipt}))
