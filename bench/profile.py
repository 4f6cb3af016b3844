"""Where a conversion's time goes: its parts measured alone, and the whole, side by side.

    python -m bench.profile [--image mosaic|tall|painting] [--rounds N] [--scratch DIR] [--parts NAME ...]

Each part runs in a child process of its own, in interleaved rounds (every other round in reverse order),
and times only its own work, after its imports and its set-up (the child's peak RSS includes those):

- imports: ``import deepzoom`` in a fresh interpreter (what every conversion pays first; timed from outside)
- decode: our engine's decode of every band, a tile row high, as the pyramid takes them, each dropped at once
- halving: every level made from the one above by ``reduce(2)`` (the 2x2 mean), from the decoded image held
  whole (so its set-up decodes it; memory is not what this part shows)
- encoding: every Deep Zoom tile of every level cropped and JPEG-encoded, one after the other on one thread
  (254/1, q80, through the engine's encoder), from the levels held whole
- writing: the tiles' files written where the whole writes them, by the engine's sink on as many threads as
  it uses, with the sizes the encoding part measured (their bytes do not matter to the file system)
- whole: the engine's conversion (``write_pyramid`` into a ``DirectorySink``), with each thread's CPU time
  and its time runnable but waiting for a CPU, read from the kernel (``/proc/self/task/*/schedstat``)
- dzsave: libvips' conversion of the same image (254/1, q80), for scale

The floor on the machine's cores: the decode cannot be split, the rest can share the other cores, so no
pipeline of these parts finishes before max(decode, sum of the parts / cores). The whole's distance to that
floor is what hand-offs, copies and waiting cost. On a machine that others share, "waiting for a CPU" tells
how much of a thread's time went to them; compare the parts within one run, never seconds across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import corpus
from .measure import measure
from .methods import NAME, OVERLAP, QUALITY, TILE_SIZE
from .disk import filesystem, settle, spread_subfolders
from .tiler import ON_DISK

PARTS = ("imports", "decode", "halving", "encoding", "writing", "whole", "dzsave")
PIPELINE = ("decode", "halving", "encoding", "writing")  # what the whole is made of
IMAGES: dict[str, Callable[[], Path]] = {
    "painting": corpus.painting,
    "mosaic": corpus.mosaic,
    "tall": corpus.tall_mosaic,
}
WORKERS = 4  # write_pyramid's default
SIZES = "tile-sizes.json"  # the encoding part leaves the tiles' sizes here for the writing part

Timing = dict[str, float]


@contextlib.contextmanager
def timed(into: Timing) -> Iterator[None]:
    """Wall, user and system seconds of the whole process (every thread) over the ``with`` block."""
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    yield
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    into.update(wall=wall, user=after.ru_utime - before.ru_utime, sys=after.ru_stime - before.ru_stime)


def _band_height() -> int:
    return TILE_SIZE + TILE_SIZE % 2  # write_pyramid's: one tile row, even


def _decoded_whole(source: Path):  # noqa: ANN202 - a PIL image; PIL is imported by the parts only
    """The source decoded into one image, through the engine's own bands."""
    from PIL import Image

    import deepzoom

    image = deepzoom.open_image(source)
    whole = Image.new("RGB", image.size)
    top = 0
    for band in image.bands(_band_height()):
        whole.paste(band, (0, top))
        top += band.height
    return whole


def _levels(whole, geometry) -> list:  # noqa: ANN001 - PIL images
    """Every level, full size first, each halved from the one above as ``write_pyramid`` does (2x2 mean)."""
    levels = [whole]
    for level in range(geometry.max_level - 1, -1, -1):
        above = levels[-1]
        if above.size == geometry.level_size(level):  # a 1-pixel edge stays
            levels.append(above)
            continue
        levels.append(above.reduce(2))
        assert levels[-1].size == geometry.level_size(level), (levels[-1].size, geometry.level_size(level))
    return levels[::-1]  # by level number


def part_decode(source: Path, out: Path, timing: Timing) -> None:
    import deepzoom

    with timed(timing):
        image = deepzoom.open_image(source)
        for _ in image.bands(_band_height()):
            pass


def part_halving(source: Path, out: Path, timing: Timing) -> None:
    from deepzoom import DeepZoomGeometry

    whole = _decoded_whole(source)
    geometry = DeepZoomGeometry(*whole.size, TILE_SIZE, OVERLAP)
    with timed(timing):
        _levels(whole, geometry)


def part_encoding(source: Path, out: Path, timing: Timing) -> None:
    from deepzoom import FORMATS, DeepZoomGeometry, PyramidNames
    from deepzoom.formats import TileEncoder

    whole = _decoded_whole(source)
    geometry = DeepZoomGeometry(*whole.size, TILE_SIZE, OVERLAP)
    levels = _levels(whole, geometry)
    del whole
    encoder = TileEncoder(FORMATS["jpg"], QUALITY)
    names = PyramidNames(NAME)
    sizes = {}
    with timed(timing):
        for level, image in enumerate(levels):
            for column, row, box in geometry.tiles(level):
                sizes[names.tile(level, column, row, "jpg")] = len(encoder.encode(image.crop(box)))
    encoder.close()
    timing["tiles"] = len(sizes)
    (out.parent / SIZES).write_text(json.dumps(sizes))


def part_writing(source: Path, out: Path, timing: Timing) -> None:
    import deepzoom

    sizes: dict[str, int] = json.loads((out.parent / SIZES).read_text())
    payload = os.urandom(max(sizes.values()))
    tiles = [(path, payload[:size]) for path, size in sizes.items()]
    sink = deepzoom.DirectorySink(out)
    with timed(timing), ThreadPoolExecutor(WORKERS) as pool:
        for _ in pool.map(lambda tile: sink.put(tile[0], tile[1], "image/jpeg"), tiles):
            pass
    timing["tiles"] = len(tiles)


def part_whole(source: Path, out: Path, timing: Timing) -> None:
    import deepzoom

    with _ThreadClock() as clock, timed(timing):
        image = deepzoom.open_image(source)
        settings = deepzoom.TileSettings(TILE_SIZE, OVERLAP, "jpg", QUALITY)
        stats = deepzoom.write_pyramid(image, deepzoom.DirectorySink(out), NAME, settings, workers=WORKERS)
    timing["tiles"] = stats.tiles
    timing["threads"] = clock.threads()  # type: ignore[assignment]


def part_dzsave(source: Path, out: Path, timing: Timing) -> None:
    import pyvips

    with timed(timing):
        image = pyvips.Image.new_from_file(str(source), access="sequential")
        image.dzsave(str(out / NAME), tile_size=TILE_SIZE, overlap=OVERLAP, suffix=f".jpg[Q={QUALITY}]")


class _ThreadClock:
    """Reads every thread's CPU time and run-queue wait (Linux schedstat) every few ms while it runs, so
    threads that end (the tile pool's) are counted with their last reading."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="profile-clock", daemon=True)

    def __enter__(self) -> _ThreadClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def threads(self) -> dict[str, list[float]]:
        """Thread name (the pool's workers as one) -> [CPU s, runnable-but-waiting s]."""
        found: dict[str, list[float]] = {}
        for tid, (cpu, waiting) in self._last.items():
            name = self._names.get(tid, f"thread {tid}")
            if name == "profile-clock":
                continue
            name = "deepzoom-tile (all)" if name.startswith("deepzoom-tile") else name
            totals = found.setdefault(name, [0.0, 0.0])
            totals[0] += cpu
            totals[1] += waiting
        return found

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._read()

    def _read(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self._names[thread.native_id] = thread.name
        with contextlib.suppress(OSError):
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/schedstat") as stat:
                    running, waiting, _ = stat.read().split()
                    self._last[int(tid)] = (int(running) / 1e9, int(waiting) / 1e9)


CHILD_PARTS: dict[str, Callable[[Path, Path, Timing], None]] = {
    "decode": part_decode,
    "halving": part_halving,
    "encoding": part_encoding,
    "writing": part_writing,
    "whole": part_whole,
    "dzsave": part_dzsave,
}


def run_part(part: str, source: Path, folder: Path) -> Timing:
    """One measurement of ``part``; its tiles (if any) stay under ``folder`` until the end."""
    out = Path(tempfile.mkdtemp(prefix=part + "-", dir=folder))
    os.sync()  # no earlier run's files are written back during this one
    if part in ("writing", "whole", "dzsave") and filesystem(folder) != "tmpfs":
        settle(folder)  # creating files costs what it should (see bench.disk)
    if part == "imports":
        started = time.perf_counter()
        result = measure([sys.executable, "-c", "import deepzoom"])
        return {"wall": time.perf_counter() - started, "cpu": result.cpu, "peak_mb": result.peak_mb}
    result = measure([sys.executable, "-m", "bench.profile", "--child", part, str(source), str(out)])
    timing: Timing = json.loads(result.output.strip().splitlines()[-1])
    timing["cpu"] = timing["user"] + timing["sys"]
    timing["peak_mb"] = result.peak_mb
    timing["process_wall"] = result.wall
    return timing


def profile(source: Path, parts: list[str], rounds: int, folder: Path) -> dict[str, list[Timing]]:
    found: dict[str, list[Timing]] = {part: [] for part in parts}
    if "writing" in parts and "encoding" not in parts:
        run_part("encoding", source, folder)  # the writing part needs the tiles' sizes
    for round_ in range(rounds):
        for part in parts if round_ % 2 == 0 else reversed(parts):
            found[part].append(run_part(part, source, folder))
            print(f"  round {round_ + 1}: {part} {found[part][-1]['wall']:.2f} s", file=sys.stderr, flush=True)
    return found


def report(source: Path, folder: Path, found: dict[str, list[Timing]]) -> list[str]:
    cores = os.cpu_count() or 1

    def med(part: str, key: str) -> float:
        return statistics.median(t[key] for t in found[part])

    lines = [
        f"\n{source.name}; files under {folder} ({filesystem(folder)}); {cores} cores; "
        f"{len(next(iter(found.values())))} interleaved rounds, medians",
        "| part | wall s | wall range s | CPU s | user s | sys s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for part, timings in found.items():
        walls = [t["wall"] for t in timings]
        user = f"{med(part, 'user'):.2f}" if "user" in timings[0] else "-"
        system = f"{med(part, 'sys'):.2f}" if "sys" in timings[0] else "-"
        lines.append(
            f"| {part} | {med(part, 'wall'):.2f} | {min(walls):.2f}-{max(walls):.2f} | {med(part, 'cpu'):.2f} "
            f"| {user} | {system} | {med(part, 'peak_mb'):.0f} |"
        )
    if all(part in found for part in PIPELINE):
        total = sum(med(part, "cpu") for part in PIPELINE)
        floor = max(med("decode", "cpu"), total / cores)
        lines.append(
            f"the parts' CPU add up to {total:.2f} s; the floor on {cores} cores is max(decode, sum / {cores}) "
            f"= {floor:.2f} s"
        )
        if "whole" in found:
            whole = med("whole", "wall")
            lines.append(
                f"the whole takes {whole:.2f} s wall ({whole / floor:.2f}x the floor) and {med('whole', 'cpu'):.2f} s "
                f"CPU ({med('whole', 'cpu') - total:+.2f} s beside the parts)"
            )
    if "whole" in found:
        lines.append("the whole's threads (medians): CPU s / runnable but waiting for a CPU s")
        threads: list[dict[str, list[float]]] = [t["threads"] for t in found["whole"]]  # type: ignore[misc]
        for name in sorted({name for each in threads for name in each}):
            cpu = statistics.median(each.get(name, [0, 0])[0] for each in threads)
            wait = statistics.median(each.get(name, [0, 0])[1] for each in threads)
            if cpu + wait >= 0.005:  # not the interpreter's own short-lived helpers
                lines.append(f"  {name}: {cpu:.2f} / {wait:.2f}")
    if "whole" in found and "dzsave" in found:
        lines.append(f"whole vs dzsave, wall: {med('whole', 'wall') / med('dzsave', 'wall'):.2f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", choices=IMAGES, default="mosaic", help="(default: the 161 MP mosaic)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=ON_DISK, help=f"where files go (default: {ON_DISK})")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="(default: all)")
    parser.add_argument("--child", nargs=3, metavar=("PART", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        part, source, out = args.child
        timing: Timing = {}
        if part != "dzsave":
            from deepzoom.memory import keep_freed_memory

            keep_freed_memory()  # malloc set up as write_pyramid sets it, for every part of ours
        CHILD_PARTS[part](Path(source), Path(out), timing)
        print(json.dumps(timing))
        return 0
    source = IMAGES[args.image]()
    args.scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lambdazoom-profile-", dir=args.scratch) as folder:
        spread_subfolders(Path(folder))  # each run's folder in a block group of its own (see bench.disk)
        parts = [part for part in PARTS if part in args.parts]
        found = profile(source, parts, args.rounds, Path(folder))
        print("\n".join(report(source, Path(folder), found)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
