"""``python -m deepzoom SRC OUTDIR``: tile one image into a folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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
from .source import open_image


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = TileSettings()
    parser = argparse.ArgumentParser(
        prog="python -m deepzoom",
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
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=None,
        help="refuse images estimated to need more memory (none: the cgroup's limit, if any)",
    )
    parser.add_argument("--name", help="output name (none: SRC without its extension)")
    parser.add_argument("--workers", type=int, default=4, help="threads that encode and write tiles")
    parser.add_argument(
        "--output",
        default="dzi",
        help="dzi (NAME.dzi and NAME_files/), tiff (NAME.tif, one pyramidal TIFF) or dzi,tiff (both, one decode)",
    )
    parser.add_argument("--tiff-tile-size", type=int, default=defaults.tiff_tile_size, help="TIFF tile edge")
    parser.add_argument("--iiif-id", metavar="URL", help="also write a IIIF level-0 service, NAME_iiif/, with this id")
    parser.add_argument("--iiif-tile-size", type=int, default=512, help="tile size of the IIIF service")
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
    try:
        memory = args.memory_mb * 2**20 if args.memory_mb else memory_available()
        image = open_image(args.src, Limits(max_pixels=args.max_pixels, memory=memory))
    except (DeepZoomError, ValueError, OSError) as error:
        print(f"deepzoom: {args.src}: {_reason(error)}", file=sys.stderr)
        return 1
    iiif = IIIFOutput(args.iiif_id, args.iiif_tile_size) if args.iiif_id else None
    total = tile_total(image.size, settings, outputs, iiif)
    with tqdm(total=total, unit="tile", disable=None, file=sys.stderr) as bar:
        try:
            stats = write_pyramid(
                image,
                DirectorySink(args.outdir),
                name,
                settings,
                workers=args.workers,
                progress=bar.update,
                iiif=iiif,
                outputs=outputs,
            )
        except DeepZoomError as error:  # a streamed image's data broke off
            print(f"deepzoom: {args.src}: {error}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"deepzoom: {args.outdir}: {_reason(error)}", file=sys.stderr)
            return 1
    seconds = time.perf_counter() - started
    written = ", ".join(str(args.outdir / f"{name}.{'tif' if output == 'tiff' else output}") for output in outputs)
    print(
        f"{args.src} -> {written}: {stats.width}x{stats.height}, "
        f"{stats.levels} levels, {stats.tiles} tiles, {stats.bytes / 1e6:.1f} MB in {seconds:.2f} s ({image.decoding})"
    )
    return 0


def _reason(error: Exception) -> str:
    """The reason alone: an OSError's text without the errno and the path the line already names."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
