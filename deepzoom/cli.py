"""``python -m deepzoom SRC OUTDIR`` (or the installed ``deepzoom``): tile one image into a folder.

Every mistake is one line on stderr: a usage mistake (an option out of range) exits 2 before anything is
read, a failure (the image, the folder) exits 1. A conversion that fails part way removes the files it
wrote, and only those: whatever was in OUTDIR before, an earlier pyramid of the same name too, stays.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

from . import (
    DEFAULT_MAX_PIXELS,
    FORMATS,
    DeepZoomError,
    DirectorySink,
    IIIFOutput,
    Limits,
    TileSettings,
    memory_available,
)
from .pyramid import parse_outputs, tile_total, write_pyramid
from .sinks import ObjectStream
from .source import open_image


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (what is wrong, and where the help is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number no smaller than ``minimum``, or a one-line refusal."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return whole_number


def command_name(command: str) -> str:
    """How the user ran it: ``deepzoom`` as the installed command, else ``python -m deepzoom``."""
    return command if Path(sys.argv[0]).name == command else f"python -m {command}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = TileSettings()
    parser = OneLineParser(
        prog=command_name("deepzoom"),
        description='Write a Deep Zoom (DZI) pyramid of SRC into OUTDIR. Quote names with spaces: "my photo.jpg".',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("src", type=Path, help="image file (JPEG, PNG, TIFF, WebP, GIF, BMP, HEIC, AVIF, JPEG 2000)")
    parser.add_argument("outdir", type=Path, help="folder for NAME.dzi and NAME_files/ (or NAME.tif)")
    parser.add_argument("--tile-size", type=int, default=defaults.tile_size, help="tile edge in pixels, overlap aside")
    parser.add_argument(
        "--overlap", type=int, default=defaults.overlap, help="pixels each tile repeats of its neighbours"
    )
    parser.add_argument(
        "--format", default=defaults.format, choices=sorted([*FORMATS, "jpeg"]), help="tile image format"
    )
    parser.add_argument("--quality", type=int, default=defaults.quality, help="JPEG/WebP quality, 1-100")
    parser.add_argument(
        "--background", default=defaults.background, help="colour that alpha is flattened onto for JPEG"
    )
    parser.add_argument("--max-pixels", type=at_least(1), default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    parser.add_argument(
        "--memory-mb",
        type=at_least(1),
        default=None,
        help="refuse images estimated to need more memory (none: the cgroup's limit, if any)",
    )
    parser.add_argument("--name", help="output name (none: SRC without its extension)")
    parser.add_argument("--workers", type=at_least(1), default=4, help="threads that encode and write tiles")
    parser.add_argument(
        "--output",
        default="dzi",
        help="dzi (NAME.dzi and NAME_files/), tiff (NAME.tif, one pyramidal TIFF) or dzi,tiff (both, one decode)",
    )
    parser.add_argument("--tiff-tile-size", type=int, default=defaults.tiff_tile_size, help="TIFF tile edge")
    parser.add_argument("--iiif-id", metavar="URL", help="also write a IIIF level-0 service, NAME_iiif/, with this id")
    parser.add_argument("--iiif-tile-size", type=at_least(1), default=512, help="tile size of the IIIF service")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = args.name or args.src.stem
    started = time.perf_counter()
    try:
        settings = TileSettings(
            args.tile_size, args.overlap, args.format, args.quality, args.background, args.tiff_tile_size
        )
        outputs = parse_outputs(args.output)
    except ValueError as error:  # the options' fault, not the image's
        print(f"deepzoom: {error}", file=sys.stderr)
        return 2
    if args.src.is_dir():
        print(f"deepzoom: {args.src}: is a folder, not an image file: name one image in it", file=sys.stderr)
        return 1
    try:
        memory = args.memory_mb * 2**20 if args.memory_mb else memory_available()
        image = open_image(args.src, Limits(max_pixels=args.max_pixels, memory=memory))
    except (DeepZoomError, ValueError, OSError) as error:
        print(f"deepzoom: {args.src}: {_reason(error)}", file=sys.stderr)
        return 1
    iiif = IIIFOutput(args.iiif_id, args.iiif_tile_size) if args.iiif_id else None
    total = tile_total(image.size, settings, outputs, iiif)
    sink = UndoableSink(args.outdir)
    failure = None
    with tqdm(total=total, unit="tile", disable=None, file=sys.stderr) as bar:
        try:
            stats = write_pyramid(
                image,
                sink,
                name,
                settings,
                workers=args.workers,
                progress=bar.update,
                iiif=iiif,
                outputs=outputs,
            )
        except DeepZoomError as error:  # a streamed image's data broke off
            failure = f"{args.src}: {error}"
        except OSError as error:
            failure = f"{args.outdir}: {_reason(error)}"
        except KeyboardInterrupt:
            failure = "interrupted"
        except BaseException:  # a bug: its traceback, but not its tiles
            sink.undo()
            raise
    if failure is not None:
        print(f"deepzoom: {failure}{_undone(sink, name)}", file=sys.stderr)
        return 130 if failure == "interrupted" else 1
    seconds = time.perf_counter() - started
    written = ", ".join(str(args.outdir / f"{name}.{'tif' if output == 'tiff' else output}") for output in outputs)
    print(
        f"{args.src} -> {written}: {stats.width}x{stats.height}, "
        f"{stats.levels} levels, {stats.tiles} tiles, {stats.bytes / 1e6:.1f} MB in {seconds:.2f} s ({image.decoding})"
    )
    return 0


class UndoableSink:
    """A :class:`DirectorySink` that notes each file and folder it creates, so that a conversion that fails
    can take back exactly those. A file that was there before (an earlier pyramid's tile) is overwritten as
    usual, and never removed: it is only counted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sink = DirectorySink(root)
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # folders (relative) already looked at
        self._folders: set[Path] = set()  # folders this run created (OUTDIR too, if it did)
        self._files: list[Path] = []  # files this run created
        self.overwritten = 0

    def put(self, path: str, data: bytes, content_type: str) -> None:
        self._note(path)
        self._sink.put(path, data, content_type)

    def open(self, path: str, content_type: str, head_size: int) -> ObjectStream:
        self._note(path)  # published whole or aborted by the engine; noted in case it was published
        return self._sink.open(path, content_type, head_size)

    def _note(self, path: str) -> None:
        full = self.root / path
        folder = path.rpartition("/")[0]
        with self._lock:
            if folder not in self._checked:
                self._checked.add(folder)
                missing = full.parent
                while not missing.exists():
                    self._folders.add(missing)
                    missing = missing.parent
            if os.path.lexists(full):
                self.overwritten += 1
            else:
                self._files.append(full)

    def undo(self) -> int:
        """Remove the files and then the (empty) folders this run created; how many files were removed."""
        removed = 0
        for file in self._files:
            try:
                file.unlink()
            except OSError:  # never written (a TIFF that was not published, a folder that could not be made)
                continue
            removed += 1
        for folder in sorted(self._folders, key=lambda folder: len(folder.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:  # something else is in it: not ours to remove
                pass
        return removed


def _undone(sink: UndoableSink, name: str) -> str:
    """Undo what a failed run wrote, and say so (nothing, if it had written nothing)."""
    removed = sink.undo()
    said = []
    if removed:
        said.append(f"the {removed} files it wrote were removed")
    if sink.overwritten:
        said.append(
            f"it had overwritten {sink.overwritten} files of an earlier {name!r} pyramid: convert that image again"
        )
    return f" ({'; '.join(said)})" if said else ""


def _reason(error: Exception) -> str:
    """The reason alone: an OSError's text without the errno and the path the line already names."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
