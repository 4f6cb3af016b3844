"""The ways to make a pyramid that the benchmark compares, each run in a child process.

``python -m bench.methods METHOD SOURCE OUTDIR`` tiles SOURCE into OUTDIR/image.dzi (the TIFF methods:
OUTDIR/image.tif).
"""

from __future__ import annotations

import collections
import functools
import sys
from pathlib import Path

from PIL import Image

TILE_SIZE, OVERLAP, QUALITY = 254, 1, 80
TIFF_TILE_SIZE = 256
NAME = "image"
TIFF_ARGUMENTS = ["--output", "tiff", "--tiff-tile-size", str(TIFF_TILE_SIZE), "--quality", str(QUALITY)]


def lambdazoom(source: Path, out: Path, iiif: bool = False) -> None:
    """Our engine: one decode, every level streamed by halving, tiles on a thread pool;
    with ``iiif``, a IIIF level-0 service (512 px tiles) cut from the same levels as well."""
    import deepzoom

    image = deepzoom.open_image(source)
    settings = deepzoom.TileSettings(TILE_SIZE, OVERLAP, "jpg", QUALITY)
    service = deepzoom.IIIFOutput("https://example.org/image_iiif", 512) if iiif else None
    deepzoom.write_pyramid(image, deepzoom.DirectorySink(out), NAME, settings, iiif=service)


def lambdazoom_tiff(source: Path, out: Path) -> None:
    """Our engine's pyramidal TIFF (256 px JPEG tiles, q80), through its command line as a user runs it."""
    from deepzoom import cli

    status = cli.main([str(source), str(out), "--name", NAME, *TIFF_ARGUMENTS])
    if status != 0:
        raise SystemExit(status)


def decode_only(source: Path, out: Path) -> None:
    """Our engine's imports and its decode of the source, and nothing else: the floor under ``lambdazoom``.

    A streamed image is decoded as its bands are taken, so all of them are taken, a tile row high as the
    pyramid takes them, each dropped at once. One decoded whole is decoded by ``open_image``; its bands
    then cost only what normalising them costs (nothing, for plain RGB).
    """
    import deepzoom
    from deepzoom.memory import keep_freed_memory

    keep_freed_memory()  # as write_pyramid does before it takes the first band
    image = deepzoom.open_image(source)
    collections.deque(image.bands(TILE_SIZE), maxlen=0)


def dzsave(source: Path, out: Path) -> None:
    """libvips dzsave with the same tile size, overlap and JPEG quality."""
    import pyvips

    image = pyvips.Image.new_from_file(str(source), access="sequential")
    image.dzsave(str(out / NAME), tile_size=TILE_SIZE, overlap=OVERLAP, suffix=f".jpg[Q={QUALITY}]")


def tiffsave(source: Path, out: Path) -> None:
    """libvips' pyramidal TIFF: 256 px JPEG tiles, q80, every level halved from the one above."""
    import pyvips

    image = pyvips.Image.new_from_file(str(source), access="sequential")
    image.tiffsave(
        str(out / f"{NAME}.tif"),
        tile=True,
        pyramid=True,
        compression="jpeg",
        Q=QUALITY,
        tile_width=TIFF_TILE_SIZE,
        tile_height=TIFF_TILE_SIZE,
    )


def deepzoom_py(source: Path, out: Path) -> None:
    """The algorithm of openzoom's deepzoom.py, which the original LambdaZoom used:
    every level resized from the full original with Lanczos, tiles saved one at a time."""
    from deepzoom import DeepZoomGeometry, dzi

    with Image.open(source) as opened:
        original = opened.convert("RGB")
    geometry = DeepZoomGeometry(*original.size, TILE_SIZE, OVERLAP)
    for level in range(geometry.level_count):
        size = geometry.level_size(level)
        scaled = original if size == original.size else original.resize(size, Image.Resampling.LANCZOS)
        folder = out / f"{NAME}_files" / str(level)
        folder.mkdir(parents=True, exist_ok=True)
        for column, row, box in geometry.tiles(level):
            scaled.crop(box).save(folder / f"{column}_{row}.jpg", "JPEG", quality=QUALITY)
    (out / f"{NAME}.dzi").write_bytes(dzi.descriptor(geometry, "jpg"))


METHODS = {
    "lambdazoom": lambdazoom,
    "lambdazoom + IIIF": functools.partial(lambdazoom, iiif=True),
    "dzsave": dzsave,
    "Pillow decode only": decode_only,
    "deepzoom.py": deepzoom_py,
    "lambdazoom TIFF": lambdazoom_tiff,
    "tiffsave": tiffsave,
}

if __name__ == "__main__":
    method, source, out = sys.argv[1:4]
    Image.MAX_IMAGE_PIXELS = None  # the baselines open the 161 MP mosaic with plain Pillow
    METHODS[method](Path(source), Path(out))
