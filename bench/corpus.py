"""The benchmark images, built from Debian's mate-backgrounds package and cached in bench/.cache.

``Elephants_5640x3172.jpg`` is a scanned painting (18 MP); larger images are
mosaics of it (3x3 is 161 MP, 6x6 is 645 MP), mirrored so that every seam is continuous.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from PIL import Image

CACHE = Path(__file__).resolve().parent / ".cache"
PAINTING = "Elephants_5640x3172.jpg"


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
    """A ``repeat`` x ``repeat`` mirrored mosaic of the painting, saved as JPEG quality 90."""
    with Image.open(painting()) as tile:
        width, height = tile.size
        target = CACHE / f"Elephants_mosaic_{repeat * width}x{repeat * height}.jpg"
        if target.exists():
            return target
        tile = tile.convert("RGB")
    flipped_x = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flips = {
        (False, False): tile,
        (True, False): flipped_x,
        (False, True): tile.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        (True, True): flipped_x.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    }
    canvas = Image.new("RGB", (repeat * width, repeat * height))
    for row in range(repeat):
        for column in range(repeat):
            canvas.paste(flips[column % 2 == 1, row % 2 == 1], (column * width, row * height))
    partial = target.with_suffix(".partial")
    canvas.save(partial, "JPEG", quality=90)
    partial.replace(target)
    return target
