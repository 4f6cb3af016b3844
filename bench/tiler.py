"""Benchmark the Deep Zoom engine against libvips dzsave and the deepzoom.py algorithm, and its TIFF against tiffsave.

    make bench      # or: python -m bench.tiler [--rounds N] [--skip-slow] [--images NAME ...]
                    #     [--methods NAME ...] [--scratch DIR ...]

Every method runs in its own child process, in interleaved rounds on the same machine in one run (every
other round in reverse order), tiling to local JPEG files (254/1, q80): the 18 MP painting (a progressive
JPEG, which our engine decodes whole), the 161 MP mosaic and the 644 MP tall mosaic (baseline JPEGs, which it
streams), and our engine once more with a IIIF level-0 service beside the DZI. The deepzoom.py algorithm is
left out at 644 MP: it peaks at 1.8 GB at 161 MP, and would hold several GB for minutes.
"Pillow decode only" is the floor under our engine: its imports and the decode, no tiles.
Pyramidal TIFF (256 px JPEG tiles, q80): libvips tiffsave, and ours through ``python -m deepzoom --output tiff``
(left out, with the reason, while the command line does not take it).

Each image is tiled twice over: into memory (/dev/shm, as the Lambda sends tiles from memory to S3) and onto
an ordinary disk folder (bench/.cache/tiles), each a table of its own. The tables give medians, the range of
wall times and ratios to libvips; the targets follow each table, the wall-time one also for every round.

On disk, outputs are kept until the whole benchmark ends, everything is synced before each run, and a probe
waits until creating a file costs what it should (outside the run's time; see ``bench.disk``): on an ext4
without a journal, as these machines' is, deleting a run's few thousand tiles right before the next run made
each of its creates cost up to a millisecond of system time, 1.4 to 6 s more a run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

import deepzoom

from . import corpus
from .disk import filesystem, settle, spread_subfolders
from .measure import Measurement, measure, verdict

METHODS = (
    "lambdazoom",
    "lambdazoom + IIIF",
    "dzsave",
    "Pillow decode only",
    "deepzoom.py",
    "lambdazoom TIFF",
    "tiffsave",
)
BASELINE = {"lambdazoom TIFF": "tiffsave", "tiffsave": "tiffsave"}  # every other method: dzsave
IMAGES: dict[str, Callable[[], Path]] = {
    "painting": corpus.painting,
    "mosaic": corpus.mosaic,
    "tall": corpus.tall_mosaic,
}
IN_MEMORY = Path("/dev/shm")
ON_DISK = corpus.CACHE / "tiles"
SLOW_UP_TO_PIXELS = 200_000_000  # deepzoom.py resizes from the whole decoded original: skipped above this

Rounds = dict[str, list[Measurement]]  # method -> one measurement a round
PROBES: list[tuple[float, float]] = []  # (microseconds a file, seconds waited) before each run on disk


@dataclass(frozen=True)
class Place:
    """A folder tiles are written under, and the kind of file system it is on."""

    folder: Path
    filesystem: str

    @property
    def keeps_outputs(self) -> bool:
        """Keep every run's tiles until the end (see the module's notes): all but in memory."""
        return self.filesystem != "tmpfs"

    def __str__(self) -> str:
        return f"{self.folder} ({self.filesystem})"


def run(method: str, source: Path, folder: Path, keep: bool) -> Measurement:
    out = Path(tempfile.mkdtemp(prefix=method.replace(" ", "_") + "-", dir=folder))
    os.sync()  # no other run's tiles are written back during this one
    if keep:
        cost, waited = settle(folder)
        PROBES.append((cost, waited))
    try:
        result = measure([sys.executable, "-m", "bench.methods", method, str(source), str(out)])
        if method in BASELINE:
            result = Measurement(result.wall, result.cpu, result.peak_mb, tiff_layout(out / "image.tif"), result.log)
        return result
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


def tiff_layout(path: Path) -> str:
    """What a pyramidal TIFF holds: its levels, first tile size and compression, for the table's notes."""
    with Image.open(path) as tiff:
        tags = tiff.tag_v2
        tile = f"{tags.get(322, '?')}x{tags.get(323, '?')} tiles" if 322 in tags else "strips"
        description = f"{tiff.n_frames} pages, {tile}, {tiff.info.get('compression', '?')}"
    return description


def benchmark(source: Path, methods: tuple[str, ...], rounds: int, place: Place) -> Rounds:
    results: Rounds = {method: [] for method in methods}
    for round_ in range(rounds):
        for method in methods if round_ % 2 == 0 else reversed(methods):
            results[method].append(run(method, source, place.folder, place.keeps_outputs))
    return results


def median(results: list[Measurement]) -> Measurement:
    return Measurement(
        statistics.median(r.wall for r in results),
        statistics.median(r.cpu for r in results),
        statistics.median(r.peak_mb for r in results),
        results[0].output,
    )


def baseline(method: str) -> str:
    return BASELINE.get(method, "dzsave")


def decoding(source: Path) -> str:
    """The path our engine takes for ``source``: "streamed", or "decoded whole: <reason>" (then it is decoded
    here, which the children's peaks do not see: see ``bench.measure``)."""
    return deepzoom.open_image(source).decoding


def probe_note() -> list[str]:
    """What creating a file cost before the runs just reported (on disk), and how long the probe waited."""
    if not PROBES:
        return []
    costs = [cost for cost, _ in PROBES]
    note = (
        f"creating a 16 KB file cost {min(costs):.0f}-{max(costs):.0f} us of CPU before the runs; "
        f"waited {sum(waited for _, waited in PROBES):.0f} s for that"
    )
    PROBES.clear()
    return [note]


def per_round(results: Rounds, method: str) -> list[float]:
    """``method``'s wall time over its baseline's, round by round."""
    return [ours.wall / theirs.wall for ours, theirs in zip(results[method], results[baseline(method)], strict=True)]


def report(source: Path, place: Place, results: Rounds) -> list[str]:
    with Image.open(source) as image:
        width, height = image.size
        decoded_mb = width * height * len(image.getbands()) / 1e6
    medians = {method: median(found) for method, found in results.items()}
    lines = [
        f"\n{source.name}: {width}x{height} ({width * height / 1e6:.0f} MP), decoded {decoded_mb:.0f} MB; "
        f"tiles under {place}",
        f"our engine's decoding: {decoding(source)}",
        *probe_note(),
        "| method | wall s | wall range s | CPU s | peak RSS MB | wall vs libvips | RSS vs decoded |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, result in medians.items():
        walls = [r.wall for r in results[method]]
        versus = medians.get(baseline(method))
        ratio = f"{result.wall / versus.wall:.2f}x" if versus else "-"
        lines.append(
            f"| {method} | {result.wall:.2f} | {min(walls):.2f}-{max(walls):.2f} | {result.cpu:.2f} "
            f"| {result.peak_mb:.0f} | {ratio} | {result.peak_mb / decoded_mb:.2f}x |"
        )
    lines.append("wall vs libvips is dzsave's for the DZI methods, tiffsave's for the TIFF ones")
    for method in ("lambdazoom", "lambdazoom TIFF"):
        if method in results and baseline(method) in results:
            ratios = ", ".join(f"{ratio:.2f}" for ratio in per_round(results, method))
            lines.append(f"{method} vs {baseline(method)}, round by round: {ratios}")
    for method in ("tiffsave", "lambdazoom TIFF"):
        if method in medians:
            lines.append(f"{method} wrote {medians[method].output}")
    ours, both = medians.get("lambdazoom"), medians.get("lambdazoom + IIIF")
    if ours and both:
        lines.append(
            f"IIIF level 0 beside the DZI costs {100 * (both.wall / ours.wall - 1):+.0f}% wall, "
            f"{100 * (both.cpu / ours.cpu - 1):+.0f}% CPU, {both.peak_mb - ours.peak_mb:+.0f} MB peak"
        )
    floor, vips = medians.get("Pillow decode only"), medians.get("dzsave")
    if ours and floor and vips:
        lines.append(
            f"imports and decode alone take {floor.wall:.2f} s ({floor.wall / vips.wall:.2f}x dzsave); "
            f"the pyramid adds {ours.wall - floor.wall:.2f} s to that"
        )
    if ours and "deepzoom.py" in medians:
        speed_up = medians["deepzoom.py"].wall / ours.wall
        lines.append(f"lambdazoom is {speed_up:.1f}x faster than the deepzoom.py algorithm")
    return lines


def verdicts(image: str, results: Rounds, at_161_mp: Rounds | None) -> list[str]:
    """The targets: the 18 MP progressive JPEG within 1.0x dzsave's wall; the 161 MP baseline JPEG
    within 0.8x its wall and 1.0x its peak, and 4x faster than deepzoom.py; the 644 MP one within
    0.8x dzsave's wall, and within 1.15x our own peak at 161 MP (a streamed peak follows the width).
    The TIFF: within 0.8x tiffsave's wall and 1.0x its peak, and at 644 MP within 1.15x its own peak
    at 161 MP. Wall-time targets are checked on the medians and on every round."""
    lines = []
    for ours, theirs in (("lambdazoom", "dzsave"), ("lambdazoom TIFF", "tiffsave")):
        if ours not in results or theirs not in results:
            continue
        mine, vips = median(results[ours]), median(results[theirs])
        limit = 1.0 if image == "painting" else 0.8
        lines.append(verdict(f"{ours} wall vs {theirs}", mine.wall / vips.wall, limit))
        lines.append(verdict(f"{ours} wall vs {theirs} in every round", max(per_round(results, ours)), limit))
        if image == "painting":
            continue
        if image == "mosaic" or ours == "lambdazoom TIFF":
            lines.append(verdict(f"{ours} peak RSS vs {theirs}", mine.peak_mb / vips.peak_mb, 1.0))
        if image == "tall":
            if at_161_mp is not None and ours in at_161_mp:
                before = median(at_161_mp[ours]).peak_mb
                lines.append(verdict(f"{ours} peak RSS vs its own at 161 MP", mine.peak_mb / before, 1.15))
            else:
                lines.append(f"target {ours} peak RSS vs its own at 161 MP <= 1.15: not checked (add --images mosaic)")
    if image == "mosaic" and "lambdazoom" in results and "deepzoom.py" in results:
        speed_up = median(results["deepzoom.py"]).wall / median(results["lambdazoom"]).wall
        lines.append(verdict("speed-up vs deepzoom.py", speed_up, 4.0, ">="))
    return lines


def methods_for(source: Path, chosen: list[str], skip_slow: bool) -> tuple[str, ...]:
    with Image.open(source) as image:
        small = image.width * image.height <= SLOW_UP_TO_PIXELS
    return tuple(method for method in chosen if method != "deepzoom.py" or (small and not skip_slow))


def place_of(folder: Path, stack: contextlib.ExitStack) -> Place:
    """A fresh folder under ``folder`` for this run's tiles, removed when the benchmark ends."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="lambdazoom-bench-", dir=folder))
    place = Place(Path(scratch), filesystem(Path(scratch)))
    if place.keeps_outputs:
        spread_subfolders(place.folder)  # each run's folder in a block group of its own (see bench.disk)
    return place


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each method (median kept)")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the deepzoom.py algorithm")
    parser.add_argument(
        "--scratch",
        nargs="+",
        type=Path,
        default=[IN_MEMORY, ON_DISK] if IN_MEMORY.is_dir() else [ON_DISK],
        help=f"folders the tiles are written under, a table each (default: {IN_MEMORY} and {ON_DISK})",
    )
    parser.add_argument(
        "--images", nargs="+", choices=IMAGES, default=list(IMAGES), help="which images (default: all three)"
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="(default: all)")
    args = parser.parse_args(argv)
    Image.MAX_IMAGE_PIXELS = None  # only to read the size of our own mosaics
    chosen = [method for method in METHODS if method in args.methods]
    with contextlib.ExitStack() as stack:
        places = [place_of(folder, stack) for folder in args.scratch]
        print(f"tiles written under {', '.join(map(str, places))}; {args.rounds} interleaved rounds, medians")
        for place in places:
            if place.filesystem in ("tmpfs", "ramfs") and place.folder.is_relative_to(ON_DISK):
                print(f"note: {ON_DISK} is on {place.filesystem}, not a disk")
        measured: dict[tuple[str, Path], Rounds] = {}
        for image in sorted(args.images, key=list(IMAGES).index):  # the 644 MP targets need the 161 MP peaks first
            source = IMAGES[image]()
            for place in places:
                results = benchmark(source, methods_for(source, chosen, args.skip_slow), args.rounds, place)
                measured[image, place.folder] = results
                at_161_mp = measured.get(("mosaic", place.folder))
                print("\n".join(report(source, place, results) + verdicts(image, results, at_161_mp)), flush=True)
        print(f"\nremoving the tiles under {', '.join(str(place.folder) for place in places)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
