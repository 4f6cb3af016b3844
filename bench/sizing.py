"""How much memory and time the function needs, per kind of input.

    make bench-sizing          # or: python -m bench.sizing [--images NAME ...]

Converts each image with ``python -m lambdazoom convert``, the handler's own path, as a child process
against a local S3 (no added latency), and reads each run's peak resident memory and wall time.
Decoded whole: the 18 MP painting and the 161 MP mosaic as progressive JPEGs. Streamed: the 161 MP
mosaic as baseline JPEG and as PNG, the 644 MP tall mosaic (as wide) and the 3.9 GP one (62040 px
wide). A streamed conversion's peak follows the image's width, one decoded whole its area: a line
through each kind's peaks gives the largest image each Lambda memory size can take, and the constants
``deepzoom/memory.py`` admits images by. The 3.9 GP run takes most of the time (several minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from PIL import Image

import deepzoom
from deepzoom.memory import BASE_BYTES, BYTES_PER_COLUMN, held_rows_bytes

from . import corpus
from .locals3 import empty_bucket, local_s3
from .measure import Measurement, measure, verdict

SOURCE_BUCKET = "sizing-source"
ZOOM_BUCKET = "sizing-zoom"
LAMBDA_MEMORY_MB = (1769, 3008, 5120, 10240)  # 1769 MB is one full vCPU
HEADROOM = 0.85  # of the Lambda's memory that a conversion may plan to use
STREAMED = "streamed"  # SourceImage.decoding of an image decoded band by band
CORES_HERE = os.cpu_count() or 1
IMAGES: dict[str, Callable[[], Path]] = {
    "painting": corpus.painting,
    "progressive": corpus.progressive_mosaic,
    "mosaic": corpus.mosaic,
    "png": corpus.png_mosaic,
    "tall": corpus.tall_mosaic,
    "wide": corpus.wide_mosaic,
}


@dataclass(frozen=True)
class Run:
    """One conversion: what the handler reported, what it cost, and what memory admission expected."""

    name: str
    decoding: str  # "streamed", or "decoded whole: <reason>"
    format: str
    width: int
    height: int
    peak: float  # bytes
    wall: float
    cpu: float
    estimate: int  # deepzoom.estimated_peak, bytes

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def streamed(self) -> bool:
        return self.decoding == STREAMED

    @property
    def kind(self) -> str:
        """What decides the peak: "streamed", or the reason it is decoded whole, without its explanation."""
        return self.decoding.split(" (")[0]

    @property
    def timing_kind(self) -> str:
        """What decides the time as well: the format decoded."""
        return f"{self.format} {self.kind}"


def convert(s3: Any, env: dict[str, str], name: str, source: Path) -> Run:
    """Upload ``source``, convert it in a child process, and empty both buckets again."""
    s3.upload_file(str(source), SOURCE_BUCKET, source.name)
    run = measure([sys.executable, "-m", "lambdazoom", "convert", f"s3://{SOURCE_BUCKET}/{source.name}"], env)
    empty_bucket(s3, ZOOM_BUCKET)
    s3.delete_object(Bucket=SOURCE_BUCKET, Key=source.name)
    report = _converted_report(run)
    with Image.open(source) as image:
        estimate = deepzoom.estimated_peak(image, streamed=report["decoding"] == STREAMED)
        file_format = image.format or "?"
    width, height = report["width"], report["height"]
    return Run(name, report["decoding"], file_format, width, height, run.peak_mb * 1e6, run.wall, run.cpu, estimate)


def _converted_report(run: Measurement) -> dict[str, Any]:
    """The JSON line the handler logs for a conversion (on stderr, with the lambdazoom logger)."""
    for line in reversed(run.log.splitlines()):
        if line.startswith("{") and json.loads(line).get("action") == "converted":
            return json.loads(line)
    raise RuntimeError(f"no conversion report in the handler's log:\n{run.log}")


RUN_TABLE = (
    "| image | kind | MP | width | peak RSS MB | admission estimate MB | wall s | CPU s |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
)


def run_row(run: Run) -> str:
    return (
        f"| {run.name} | {run.decoding} | {run.pixels / 1e6:.0f} | {run.width} | {run.peak / 1e6:.0f} "
        f"| {run.estimate / 1e6:.0f} | {run.wall:.1f} | {run.cpu:.1f} |"
    )


def memory_fits(runs: list[Run]) -> dict[str, tuple[float, float]]:
    """Per kind, peak bytes = intercept + slope x: x is the width for streamed runs, the pixels for the others
    (a kind run at a single size has no line)."""
    fits = {}
    for kind in dict.fromkeys(run.kind for run in runs):
        points = [(run.width if run.streamed else run.pixels, run.peak) for run in runs if run.kind == kind]
        if len({x for x, _ in points}) >= 2:
            fits[kind] = _line(points)
    return fits


def constants(runs: list[Run], fits: dict[str, tuple[float, float]]) -> list[str]:
    """The fitted lines beside what deepzoom/memory.py assumes, so its constants can be updated."""
    lines = ["\npeak RSS, fitted through the runs, beside deepzoom/memory.py:"]
    for kind in dict.fromkeys(run.kind for run in runs):
        of_kind = [run for run in runs if run.kind == kind]
        if kind not in fits:
            lines.append(f"{kind}: runs of two {'widths' if of_kind[0].streamed else 'sizes'} are needed for a line")
            continue
        intercept, slope = fits[kind]
        if of_kind[0].streamed:
            lines.append(
                f"{kind}: {intercept / 1e6:.0f} MB + {slope:,.0f} bytes per pixel of width "
                f"(memory.py: BASE_BYTES {BASE_BYTES / 1e6:.0f} MB, BYTES_PER_COLUMN {BYTES_PER_COLUMN:,})"
            )
            continue
        largest = max(of_kind, key=lambda run: run.pixels)
        assumed = (largest.estimate - BASE_BYTES - held_rows_bytes(largest.width, largest.height)) / largest.pixels
        lines.append(
            f"{kind}: {intercept / 1e6:.0f} MB + {slope:.2f} bytes per pixel "
            f"(memory.py: BASE_BYTES + BYTES_PER_COLUMN x width + {assumed:.2f} bytes per pixel at {largest.name})"
        )
    return lines


def largest_images(fits: dict[str, tuple[float, float]]) -> list[str]:
    """The widest streamed image, and the largest of each kind decoded whole, that each Lambda size takes."""
    if not fits:
        return []
    kinds = list(fits)
    lines = [
        f"\nlargest image per Lambda memory size, per kind of input ({HEADROOM:.0%} of the memory planned for):",
        "| Lambda memory MB | " + " | ".join(_limit_heading(kind) for kind in kinds) + " |",
        "|---:|" + "---:|" * len(kinds),
    ]
    for memory in LAMBDA_MEMORY_MB:
        usable = HEADROOM * memory * 2**20
        limits = [(usable - intercept) / slope for intercept, slope in fits.values()]
        cells = [f"{limit:,.0f}" if kind == STREAMED else f"{limit / 1e6:,.0f}" for kind, limit in zip(kinds, limits)]
        lines.append(f"| {memory} | " + " | ".join(cells) + " |")
    return lines


def _limit_heading(kind: str) -> str:
    return f"{STREAMED}: widest image px" if kind == STREAMED else f"{kind}: largest MP"


def timings(runs: list[Run]) -> list[str]:
    """Seconds per 100 MP, from the largest run of each format and kind (fixed costs weigh least there).

    On a 1769 MB Lambda (one vCPU) a conversion's own work runs on that one core, so it takes about its CPU
    time here (the local S3's CPU is not counted; real S3 costs the function none). Wall time here is not a
    guide: two cores, shared with the local S3, which serves one request at a time and reads a whole object
    for every ranged GET. Bigger Lambdas have more vCPUs, and take between CPU / vCPUs and CPU.
    """
    largest: dict[str, Run] = {}
    for run in runs:
        if run.timing_kind not in largest or run.pixels > largest[run.timing_kind].pixels:
            largest[run.timing_kind] = run
    lines = [
        f"\nseconds per 100 MP, from the largest run of each kind ({CORES_HERE} cores here, a 1769 MB Lambda's one vCPU):",
        "| kind | from | wall here | CPU here: about a 1769 MB Lambda's wall |",
        "|---|---|---:|---:|",
    ]
    for kind, run in largest.items():
        per_100 = 100e6 / run.pixels
        lines.append(f"| {kind} | {run.name} | {run.wall * per_100:.1f} | {run.cpu * per_100:.1f} |")
    for run in largest.values():
        if run.streamed and run.format == "JPEG":
            seconds = run.cpu * deepzoom.DEFAULT_MAX_PIXELS / run.pixels
            lines.append(
                f"a streamed JPEG of MAX_PIXELS ({deepzoom.DEFAULT_MAX_PIXELS / 1e9:.0f} GP) would take about "
                f"{seconds:.0f} s on a 1769 MB Lambda (Lambda's timeout is at most 900 s)"
            )
    return lines


def smallest_lambda_target(runs: list[Run]) -> list[str]:
    """The widest streamed image must convert within the smallest Lambda that has a whole vCPU."""
    streamed = [run for run in runs if run.streamed]
    if not streamed:
        return []
    widest = max(streamed, key=lambda run: (run.width, run.pixels))
    label = f"peak RSS MB streaming {widest.name} ({widest.pixels / 1e9:.1f} GP, {widest.width} px wide)"
    return [verdict(label, widest.peak / 1e6, LAMBDA_MEMORY_MB[0])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", nargs="+", choices=IMAGES, default=list(IMAGES), help="which images (default: all)")
    args = parser.parse_args(argv)
    Image.MAX_IMAGE_PIXELS = None  # the corpus is ours; only headers are read here
    names = sorted(args.images, key=list(IMAGES).index)
    sources = {name: IMAGES[name]() for name in names}  # built before anything is timed
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    runs = []
    print("\n".join(RUN_TABLE), flush=True)
    with local_s3() as urls:
        s3 = boto3.client("s3", endpoint_url=urls["s3"])
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=ZOOM_BUCKET)
        env = {**os.environ, "AWS_ENDPOINT_URL": urls["endpoint"], "S3_ZOOM_BUCKET": ZOOM_BUCKET, "LOG_LEVEL": "INFO"}
        for name, source in sources.items():
            runs.append(convert(s3, env, name, source))
            print(run_row(runs[-1]), flush=True)
    fits = memory_fits(runs)
    print("\n".join(constants(runs, fits) + largest_images(fits) + timings(runs) + smallest_lambda_target(runs)))
    return 0


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - slope * mean_x, slope


if __name__ == "__main__":
    raise SystemExit(main())
