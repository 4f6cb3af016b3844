"""The benchmark images, built from Debian's mate-backgrounds package and cached in bench/.cache.

``Elephants_5640x3172.jpg`` is a scanned painting (18 MP, a progressive JPEG); larger images are
mirrored mosaics of it, so that every seam is continuous, saved as baseline JPEG quality 90 by
libvips, which streams them to disk: 3x3 is 161 MP, 3x12 (that mosaic four times over) 644 MP,
11x20 3.9 GP (62040x63440, near libjpeg's limit of 65,500 pixels a side). libvips holds little
more than the decoded painting while it builds any of them (the 3.9 GP one: 17 s, under 300 MB).
The 161 MP mosaic is also saved as a progressive JPEG and as a PNG, the other kinds of input.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyvips

CACHE = Path(__file__).resolve().parent / ".cache"
PAINTING = "Elephants_5640x3172.jpg"
QUALITY = 90
SUBSAMPLING = "on"  # 4:2:0, as Pillow saves; libvips would keep full chroma at quality 90


def painting() -> Path:
    """The 18 MP painting, fetched with apt-get download and unpacked with dpkg -x."""
    target = CACHE / PAINTING
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        download = ["apt-get", "download", "mate-backgrounds"]
        if subprocess.run(download, cwd=scratch, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)  # a new machine has no package lists yet
            subprocess.run(download, cwd=scratch, check=True, capture_output=True)
        package = next(Path(scratch).glob("mate-backgrounds_*.deb"))
        subprocess.run(["dpkg", "-x", str(package), str(Path(scratch) / "root")], check=True)
        found = next((Path(scratch) / "root").rglob(PAINTING))
        found.replace(target)
    return target


def mosaic(repeat: int = 3) -> Path:
    """A ``repeat`` x ``repeat`` mosaic of the painting: 3 gives the 161 MP one (16920x9516)."""
    return mirrored_mosaic(repeat, repeat)


def tall_mosaic() -> Path:
    """16920x38064 (644 MP): the 161 MP mosaic four times, one above the other, every other copy
    upside down. As wide as that mosaic, so a streamed decode should need about the same memory."""
    return mirrored_mosaic(3, 12)


def wide_mosaic(columns: int = 11, rows: int = 20) -> Path:
    """By default 62040x63440 (3.9 GP): about as wide as a JPEG can be (libjpeg stops at 65,500 pixels),
    to show that even that width streams within the smallest Lambda's memory."""
    return mirrored_mosaic(columns, rows)


def progressive_mosaic() -> Path:
    """The 161 MP mosaic as a progressive JPEG, which cannot stream: the decoded-whole kind at size.
    (libjpeg holds every coefficient to write one, about 1 GB for a few seconds.)"""
    return _resaved("_progressive.jpg", lambda image, path: _save(image, path, interlace=True))


def png_mosaic() -> Path:
    """The 161 MP mosaic as a PNG (433 MB): the other format that streams."""
    return _resaved(".png", lambda image, path: image.pngsave(str(path), keep="none"))


def _resaved(ending: str, save: Callable[[pyvips.Image, Path], None]) -> Path:
    """The 161 MP mosaic saved again by ``save``, which is handed it decoded a few rows at a time."""
    source = mosaic()
    return _cached(
        source.with_name(source.stem + ending),
        lambda partial: save(pyvips.Image.new_from_file(str(source), access="sequential"), partial),
    )


def mirrored_mosaic(columns: int, rows: int) -> Path:
    """``columns`` x ``rows`` paintings, every other one mirrored, so that each seam joins a row or
    column to itself. The painting is held decoded (51 MB); the mosaic streams to the file."""
    tile = pyvips.Image.new_from_file(str(painting()))
    target = CACHE / f"Elephants_mosaic_{columns * tile.width}x{rows * tile.height}.jpg"

    def build(partial: Path) -> None:
        plain = tile.copy_memory()
        mirrored = plain.flip("horizontal")
        flips = {
            (False, False): plain,
            (True, False): mirrored,
            (False, True): plain.flip("vertical"),
            (True, True): mirrored.flip("vertical"),
        }
        tiles = [flips[column % 2 == 1, row % 2 == 1] for row in range(rows) for column in range(columns)]
        _save(pyvips.Image.arrayjoin(tiles, across=columns), partial)

    return _cached(target, build)


def _save(image: pyvips.Image, path: Path, interlace: bool = False) -> None:
    image.jpegsave(str(path), Q=QUALITY, subsample_mode=SUBSAMPLING, interlace=interlace, keep="none")


def _cached(target: Path, build: Callable[[Path], None]) -> Path:
    """``target``, built first if it is not in the cache; written under another name and renamed,
    so that an interrupted build leaves nothing that looks finished."""
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        build(partial)
        partial.replace(target)
    return target
