"""How much memory, time and scratch space the function needs for an image of a given size.

    make bench-sizing          # or: python -m bench.sizing [--largest 6]

Converts the painting (18 MP) and its mirrored mosaics (3x3 161 MP, 6x6 645 MP) with
``python -m lambdazoom convert``, the handler's own path, as a child process against a local S3
(no added latency), and reads each run's peak resident memory and wall time. A straight line through
the peaks gives the largest image each Lambda memory size can take; zappa_settings.json is set from it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import boto3
from PIL import Image

from . import corpus
from .locals3 import empty_bucket, local_s3
from .measure import measure

SOURCE_BUCKET = "sizing-source"
ZOOM_BUCKET = "sizing-zoom"
LAMBDA_MEMORY_MB = (1769, 3008, 5120, 10240)  # 1769 MB is one full vCPU
HEADROOM = 0.85  # of the Lambda's memory that a conversion may plan to use


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--largest", type=int, default=6, help="largest mosaic, N x N paintings (default 6)")
    args = parser.parse_args(argv)
    sources = [corpus.painting()] + [corpus.mosaic(repeat) for repeat in range(3, args.largest + 1, 3)]
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    rows = []
    with local_s3() as urls:
        s3 = boto3.client("s3", endpoint_url=urls["s3"])
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=ZOOM_BUCKET)
        env = {**os.environ, "AWS_ENDPOINT_URL": urls["endpoint"], "S3_ZOOM_BUCKET": ZOOM_BUCKET}
        for source in sources:
            s3.upload_file(str(source), SOURCE_BUCKET, source.name)
            run = measure([sys.executable, "-m", "lambdazoom", "convert", f"s3://{SOURCE_BUCKET}/{source.name}"], env)
            tiles = empty_bucket(s3, ZOOM_BUCKET)
            s3.delete_object(Bucket=SOURCE_BUCKET, Key=source.name)
            rows.append((source, _pixels(source), run.peak_mb, run.wall, tiles))
    print("\n| image | MP | source MB | peak RSS MB | RSS bytes per pixel | wall s | objects |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for source, pixels, peak_mb, wall, objects in rows:
        print(
            f"| {source.name} | {pixels / 1e6:.0f} | {source.stat().st_size / 1e6:.0f} | {peak_mb:.0f} "
            f"| {peak_mb * 1e6 / pixels:.2f} | {wall:.1f} | {objects} |"
        )
    base_mb, mb_per_mp = _line([(pixels / 1e6, peak_mb) for _, pixels, peak_mb, _, _ in rows])
    seconds_per_mp = max(wall / (pixels / 1e6) for _, pixels, _, wall, _ in rows)
    print(f"\npeak RSS = {base_mb:.0f} MB + {mb_per_mp:.2f} MB per MP; at most {seconds_per_mp:.3f} s per MP here")
    print("\n| Lambda memory MB | largest image MP | its uncompressed 8-bit RGB TIFF MB | time here s |")
    print("|---:|---:|---:|---:|")
    for memory in LAMBDA_MEMORY_MB:
        largest_mp = (HEADROOM * memory - base_mb) / mb_per_mp
        print(f"| {memory} | {largest_mp:.0f} | {largest_mp * 3:.0f} | {largest_mp * seconds_per_mp:.0f} |")
    return 0


def _pixels(path: Path) -> int:
    Image.MAX_IMAGE_PIXELS = None  # the corpus is ours; only the header is read
    with Image.open(path) as image:
        return image.width * image.height


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - slope * mean_x, slope


if __name__ == "__main__":
    raise SystemExit(main())
