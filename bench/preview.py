"""How soon a conversion can show something: the preview of the 161 MP mosaic of ``make bench``.

    python -m bench.preview [--rounds N]

Times ``deepzoom.preview`` (a JPEG decoded at 1/8 scale by libjpeg, then resized to 1,024 px) in a
child process per round, beside a full decode of the same file by Pillow, interleaved, medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from . import corpus
from .measure import measure, verdict

PREVIEW = "import deepzoom, sys; assert deepzoom.preview(sys.argv[1])"
FULL_DECODE = "from PIL import Image; import sys; Image.MAX_IMAGE_PIXELS = None; Image.open(sys.argv[1]).load()"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each (median kept)")
    args = parser.parse_args(argv)
    source = corpus.mosaic()
    runs: dict[str, list[float]] = {"preview": [], "full decode": []}
    peaks: dict[str, list[float]] = {"preview": [], "full decode": []}
    for _ in range(args.rounds):
        for name, code in (("preview", PREVIEW), ("full decode", FULL_DECODE)):
            result = measure([sys.executable, "-c", code, str(source)])
            runs[name].append(result.wall)
            peaks[name].append(result.peak_mb)
    print(f"\n{source.name}, {args.rounds} rounds, medians (each a fresh interpreter, about 0.1 s of it)")
    print("| what | wall s | each run s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for name in runs:
        each = ", ".join(f"{wall:.2f}" for wall in runs[name])
        print(f"| {name} | {statistics.median(runs[name]):.2f} | {each} | {statistics.median(peaks[name]):.0f} |")
    print(verdict("preview of the 161 MP JPEG, s", statistics.median(runs["preview"]), 2.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
