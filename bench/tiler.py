"""Benchmark the Deep Zoom engine against libvips dzsave and the deepzoom.py algorithm.

    make bench                     # or: python -m bench.tiler [--rounds N] [--skip-slow] [--images NAME ...]

Every method runs in its own child process, in interleaved rounds on the same machine in one
run, tiling to local JPEG files (254/1, q80): the 18 MP painting (a progressive JPEG, which our
engine decodes whole), the 161 MP mosaic and the 644 MP tall mosaic (baseline JPEGs, which it
streams), and our engine once more with a IIIF level-0 service beside the DZI. The deepzoom.py
algorithm is left out at 644 MP: it peaks at 1.8 GB at 161 MP, and would hold several GB for minutes.
"Pillow decode only" is the floor under our engine: its imports and the decode, no tiles.
The tables give medians and ratios to dzsave; the targets follow each table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

import deepzoom

from . import corpus
from .measure import Measurement, measure, verdict

METHODS = ("lambdazoom", "lambdazoom + IIIF", "dzsave", "Pillow decode only", "deepzoom.py")
IMAGES: dict[str, Callable[[], Path]] = {
    "painting": corpus.painting,
    "mosaic": corpus.mosaic,
    "tall": corpus.tall_mosaic,
}
# Tiles go to memory, as the Lambda sends them from memory to S3: creating thousands of files on these
# machines' ext4 costs both tools 1.4 to 6 s of system time a run, varying more than either tool's own work.
IN_MEMORY = "/dev/shm"
SLOW_UP_TO_PIXELS = 200_000_000  # deepzoom.py resizes from the whole decoded original: skipped above this

Results = dict[str, Measurement]


def run(method: str, source: Path, scratch: Path) -> Measurement:
    out = scratch / method
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        return measure([sys.executable, "-m", "bench.methods", method, str(source), str(out)])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def median(results: list[Measurement]) -> Measurement:
    return Measurement(
        statistics.median(r.wall for r in results),
        statistics.median(r.cpu for r in results),
        statistics.median(r.peak_mb for r in results),
    )


def benchmark(source: Path, methods: tuple[str, ...], rounds: int, scratch_root: str | None) -> Results:
    results: dict[str, list[Measurement]] = {method: [] for method in methods}
    with tempfile.TemporaryDirectory(prefix="lambdazoom-bench-", dir=scratch_root) as scratch:
        for _ in range(rounds):
            for method in methods:
                results[method].append(run(method, source, Path(scratch)))
    return {method: median(found) for method, found in results.items()}


def decoding(source: Path) -> str:
    """The path our engine takes for ``source``: "streamed", or "decoded whole: <reason>" (then it is decoded
    here, which the children's peaks do not see: see ``bench.measure``)."""
    return deepzoom.open_image(source).decoding


def report(source: Path, results: Results) -> list[str]:
    with Image.open(source) as image:
        width, height = image.size
        decoded_mb = width * height * len(image.getbands()) / 1e6
    base = results["dzsave"]
    lines = [
        f"\n{source.name}: {width}x{height} ({width * height / 1e6:.0f} MP), decoded {decoded_mb:.0f} MB",
        f"our engine's decoding: {decoding(source)}",
        "| method | wall s | CPU s | peak RSS MB | wall vs dzsave | RSS vs decoded |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, result in results.items():
        lines.append(
            f"| {method} | {result.wall:.2f} | {result.cpu:.2f} | {result.peak_mb:.0f} "
            f"| {result.wall / base.wall:.2f}x | {result.peak_mb / decoded_mb:.2f}x |"
        )
    ours = results["lambdazoom"]
    both = results["lambdazoom + IIIF"]
    lines.append(
        f"IIIF level 0 beside the DZI costs {100 * (both.wall / ours.wall - 1):+.0f}% wall, "
        f"{100 * (both.cpu / ours.cpu - 1):+.0f}% CPU, {both.peak_mb - ours.peak_mb:+.0f} MB peak"
    )
    floor = results["Pillow decode only"]
    lines.append(
        f"imports and decode alone take {floor.wall:.2f} s ({floor.wall / base.wall:.2f}x dzsave); "
        f"the pyramid adds {ours.wall - floor.wall:.2f} s to that"
    )
    if "deepzoom.py" in results:
        lines.append(
            f"lambdazoom is {results['deepzoom.py'].wall / ours.wall:.1f}x faster than the deepzoom.py algorithm"
        )
    return lines


def verdicts(image: str, measured: dict[str, Results]) -> list[str]:
    """The targets: the 18 MP progressive JPEG within 1.0x dzsave's wall; the 161 MP baseline JPEG
    within 0.8x its wall and 1.0x its peak, and 4x faster than deepzoom.py; the 644 MP one within
    0.8x dzsave's wall, and within 1.15x our own peak at 161 MP (a streamed peak follows the width)."""
    results = measured[image]
    ours, vips = results["lambdazoom"], results["dzsave"]
    wall = ours.wall / vips.wall
    if image == "painting":
        return [verdict("wall vs dzsave", wall, 1.0)]
    lines = [verdict("wall vs dzsave", wall, 0.8)]
    if image == "mosaic":
        lines.append(verdict("peak RSS vs dzsave", ours.peak_mb / vips.peak_mb, 1.0))
        if "deepzoom.py" in results:
            lines.append(verdict("speed-up vs deepzoom.py", results["deepzoom.py"].wall / ours.wall, 4.0, ">="))
    elif "mosaic" in measured:
        at_161_mp = measured["mosaic"]["lambdazoom"].peak_mb
        lines.append(verdict("peak RSS vs ours at 161 MP", ours.peak_mb / at_161_mp, 1.15))
    else:
        lines.append("target peak RSS vs ours at 161 MP <= 1.15: not checked (run --images mosaic tall)")
    return lines


def methods_for(source: Path, skip_slow: bool) -> tuple[str, ...]:
    with Image.open(source) as image:
        small = image.width * image.height <= SLOW_UP_TO_PIXELS
    return tuple(method for method in METHODS if method != "deepzoom.py" or (small and not skip_slow))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each method (median kept)")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the deepzoom.py algorithm")
    parser.add_argument(
        "--scratch",
        default=IN_MEMORY if os.path.isdir(IN_MEMORY) else None,
        help=f"folder the tiles are written under (default: {IN_MEMORY}, else the system temp folder)",
    )
    parser.add_argument(
        "--images", nargs="+", choices=IMAGES, default=list(IMAGES), help="which images (default: all three)"
    )
    args = parser.parse_args(argv)
    Image.MAX_IMAGE_PIXELS = None  # only to read the size of our own mosaics
    print(f"tiles written under {args.scratch or tempfile.gettempdir()}; {args.rounds} interleaved rounds, medians")
    measured: dict[str, Results] = {}
    for image in sorted(args.images, key=list(IMAGES).index):  # the 644 MP target needs the 161 MP peak first
        source = IMAGES[image]()
        measured[image] = benchmark(source, methods_for(source, args.skip_slow), args.rounds, args.scratch)
        print("\n".join(report(source, measured[image]) + verdicts(image, measured)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
