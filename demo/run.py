"""Put images through the real handler on a local S3, then serve the viewer until interrupted."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from config import Settings
from deepzoom import tile_path
from deepzoom.dzi import read_descriptor
from demo.buckets import open_to_browsers
from demo.pages import Entry
from demo.sample import sample_picture
from demo.web import VIEWER_FILES, viewer_server
from localaws.buckets import WatchedBuckets
from localaws.server import LocalS3
from s3zoom.handling import RetryableFailure, handle_event
from s3zoom.keys import PyramidKeys

SOURCE_BUCKET = "lambdazoom-source"
SAMPLE_KEY = "samples/mandelbrot set.jpg"  # a folder and a space, as people name things


def run_demo(images: list[Path], host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Convert ``images`` (or the demo's own picture), print the viewer's URL, serve until Ctrl-C.

    ``settings`` (the environment's, from the command line) are the function's; the demo changes only
    where OpenSeadragon and the IIIF service are, in a copy of its own.
    """
    settings = settings or Settings()
    folders = [str(image) for image in images if image.is_dir()]
    if folders:
        what = "a folder, not an image file" if len(folders) == 1 else "folders, not image files"
        raise SystemExit(f"{', '.join(folders)}: {what}: name the images in it ({folders[0]}/*.jpg, ...)")
    missing = [str(image) for image in images if not image.is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    if not (VIEWER_FILES / "openseadragon.min.js").is_file():
        raise SystemExit(f"OpenSeadragon is not installed in {VIEWER_FILES}: run `npm ci` (or `make demo`)")
    # SIGTERM (a script or a test stopping the demo) unwinds like Ctrl-C, so the scratch folder is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # Only the local S3 is ever asked, so no real credentials are looked up (or used).
    os.environ.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1")
    with LocalS3() as s3_server, tempfile.TemporaryDirectory(prefix="lambdazoom-demo-") as scratch:
        os.environ["AWS_ENDPOINT_URL"] = s3_server.endpoint_url
        buckets = WatchedBuckets(s3_server.endpoint_url, SOURCE_BUCKET, settings.zoom_bucket)
        open_to_browsers(buckets.s3, settings.zoom_bucket)
        print(f"Local S3 at {s3_server.endpoint_url}: s3://{SOURCE_BUCKET} -> s3://{settings.zoom_bucket}", flush=True)
        entries: list[Entry] = []
        try:
            server = viewer_server(entries, host, port)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise SystemExit(
                f"port {port} is in use: pick another (PORT=8080 make demo, or --port 8080), or --port 0 for any free one"
            ) from None
        viewer_url = f"http://{host}:{server.server_address[1]}/"
        # The STEM.html pages in the bucket load OpenSeadragon from this server, so they work offline too;
        # each image gets a pyramidal TIFF and a IIIF service too, the latter's id its URL in the local zoom bucket.
        demo_settings = settings.replace(
            openseadragon_url=viewer_url + "openseadragon/",
            output=("dzi", "tiff"),  # both kinds, from one decode
            iiif_output=True,
            iiif_base_url=f"{s3_server.endpoint_url}/{settings.zoom_bucket}",
        )
        entries.extend(
            _convert(buckets, path, key, demo_settings) for key, path in _uploads(images, Path(scratch)).items()
        )
        print(f"Viewer: {viewer_url}  (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


class _FailureRecorder(logging.Handler):
    """Keeps the reason of each conversion the handler logs as failed, for the list page."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.reasons = reasons

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logged = json.loads(record.getMessage())
        except ValueError:
            return
        if logged.get("action") == "failed":
            self.reasons.append(logged["reason"])


@contextmanager
def _failures_recorded(reasons: list[str]) -> Iterator[None]:
    recorder = _FailureRecorder(reasons)
    logging.getLogger("lambdazoom").addHandler(recorder)
    try:
        yield
    finally:
        logging.getLogger("lambdazoom").removeHandler(recorder)


def _uploads(images: list[Path], scratch: Path) -> dict[str, Path]:
    """Source key for each file: its name, or a numbered folder when two share a name."""
    if not images:
        sample = scratch / "sample.jpg"
        sample_picture().save(sample, quality=92)
        return {SAMPLE_KEY: sample}
    keys: dict[str, Path] = {}
    for number, image in enumerate(images, 1):
        key = image.name if image.name not in keys else f"{number}/{image.name}"
        keys[key] = image
    return keys


def _convert(buckets: WatchedBuckets, path: Path, key: str, settings: Settings) -> Entry:
    """Upload, then hand the handler each event S3 sent for it, as Lambda would.

    A large file goes up in parts, and S3 may send more than one event for it: the later ones find the
    pyramid up to date, as a redelivery would.
    """
    buckets.s3.upload_file(str(path), buckets.source_bucket, key)
    started = time.perf_counter()
    reasons: list[str] = []
    with _failures_recorded(reasons):
        for event in buckets.drain():
            try:
                handle_event(event, settings)
            except RetryableFailure as failure:
                reasons.append(str(failure))
    pyramid = PyramidKeys.for_source(key, settings.dest_prefix)
    try:
        descriptor = buckets.s3.get_object(Bucket=buckets.zoom_bucket, Key=pyramid.descriptor)["Body"].read()
    except buckets.s3.exceptions.NoSuchKey:
        reasons = list(dict.fromkeys(reasons)) or ["S3 sent no event for it"]
        for reason in reasons:  # each on a line of its own, beside the handler's JSON lines
            print(f"{key}: no pyramid: {reason}", file=sys.stderr, flush=True)
        return Entry(key, problem="; ".join(reasons))
    print(f"{key}: pyramid ready in {time.perf_counter() - started:.1f} s", flush=True)
    geometry, extension = read_descriptor(descriptor)
    thumbnail_level = max(level for level in range(geometry.level_count) if geometry.tile_grid(level) == (1, 1))
    base = f"{buckets.endpoint_url}/{buckets.zoom_bucket}/"
    return Entry(
        key,
        descriptor_url=base + quote(pyramid.descriptor),
        page_url=base + quote(pyramid.page) if settings.viewer_pages else None,
        iiif_url=base + quote(pyramid.iiif_prefix + "info.json"),
        tiff_url=base + quote(pyramid.tiff),
        thumbnail_url=base + quote(tile_path(pyramid.name, thumbnail_level, 0, 0, extension)),
        size=(geometry.width, geometry.height),
    )
