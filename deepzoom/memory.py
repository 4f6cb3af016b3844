"""Memory admission: from a header alone, will this image fit in the memory we have?

A conversion's peak is a fixed base (the interpreter and its libraries), the
bands every pyramid level holds (proportional to the width, and to the height
as long as that is less than the rows they hold), and, for images that
cannot stream, the whole decoded image (proportional to the area). The
constants come from ``make bench-sizing`` (``bench/sizing.py``), which
measures the peak of real conversions and prints the fit.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from PIL import Image

from .jpeg import holds_every_coefficient
from .tiff import TiffLayout

BASE_BYTES = (
    185_000_000  # Python, boto3, Pillow, the upload threads and their buffers (make bench-sizing: 166 MB + noise)
)
BYTES_PER_COLUMN = 8_000  # rows every level holds, per pixel of width (make bench-sizing: 7,579 from 17k to 62k wide)
# An image shorter than that (a 240,000 x 100 line scan) holds only the rows it has: per pixel of width and row
# of height, measured converting 30,000-pixel-wide JPEGs 16 to 600 rows high: 8.1 to 8.9 bytes (7.0 at 1,000
# rows, 8,090 per pixel of width at 2,000). A band never has more rows than the image, nor a level below it.
BYTES_PER_COLUMN_ROW = 10
_DECODED_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}  # Pillow's storage; else 4
# Decoders that hold more than the decoded image while they work, bytes a pixel at peak, measured decoding
# a 6 MP RGB image of each (the result included): libwebp and openjpeg keep whole-image buffers of their own.
_DECODER_BYTES_PER_PIXEL = {"JPEG2000": 20, "WEBP": 16, "AVIF": 9, "HEIF": 8}
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1
_BAND_ROWS = 512  # what BYTES_PER_COLUMN already covers of a source band
_COEFFICIENT_BYTES = 2  # libjpeg keeps each DCT coefficient of a progressive JPEG as a 16-bit number
# glibc's mallopt: allocations up to MMAP_THRESHOLD come from the heap, not a mapping of their own, and the
# heap gives back its free top only past TRIM_THRESHOLD. Pillow stores an image in blocks of at most 16 MiB.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest
TRIM_THRESHOLD = 128 * 2**20
_kept = False


def estimated_peak(image: Image.Image, streamed: bool) -> int:
    """Bytes of resident memory converting ``image`` (opened, not decoded) is expected to reach at most."""
    width, height = image.size
    peak = BASE_BYTES + held_rows_bytes(width, height) + _tall_strip_bytes(image)
    if not streamed:
        stored = stored_bytes_per_pixel(image.mode)
        per_pixel = max(stored, _DECODER_BYTES_PER_PIXEL.get(image.format or "", 0))
        peak += (per_pixel + _coefficient_bytes_per_pixel(image)) * width * height
    return peak


def held_rows_bytes(width: int, height: int) -> int:
    """What the decode's bands and every pyramid level's rows take at most: proportional to the width, and to
    the height too where that is less than the rows they would hold of a tall image."""
    return width * min(BYTES_PER_COLUMN, BYTES_PER_COLUMN_ROW * height)


def stored_bytes_per_pixel(mode: str) -> int:
    """What Pillow keeps of a pixel of ``mode``: 1 byte for grey and palette, 2 for 16-bit grey, else 4."""
    return _DECODED_BYTES_PER_PIXEL.get(mode, 4)


def _tall_strip_bytes(image: Image.Image) -> int:
    """A TIFF streams a strip (or a row of tiles) at a time: one taller than a band costs its decode and a copy."""
    if image.format != "TIFF":
        return 0
    rows = TiffLayout.of(image).unit_rows
    return 2 * 4 * image.width * rows if rows > _BAND_ROWS else 0


def _coefficient_bytes_per_pixel(image: Image.Image) -> float:
    """What libjpeg holds besides the output, for a progressive or non-interleaved JPEG: every coefficient,
    one per sample of each component."""
    if not holds_every_coefficient(image):
        return 0
    layers = getattr(image, "layer", [])  # (id, horizontal sampling, vertical sampling, table) per component
    if not layers:
        return 3 * _COEFFICIENT_BYTES
    most = max(h * v for _, h, v, _ in layers) or 1
    return _COEFFICIENT_BYTES * sum(h * v for _, h, v, _ in layers) / most


def memory_available(fallback: int | None = None) -> int | None:
    """The memory this process may use: the Lambda function's size, else the cgroup's limit, else ``fallback``."""
    lambda_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if lambda_mb.isdigit():
        return int(lambda_mb) * 1024 * 1024
    return _cgroup_limit() or fallback


def _cgroup_limit() -> int | None:
    for path in CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # cgroup v1 writes a huge number for "no limit"
            return int(text)
    return None


def keep_freed_memory() -> None:
    """Have malloc reuse the memory of the bands, joins and tiles the pyramid frees, instead of handing it
    back to the kernel and faulting in fresh zeroed pages for the next ones (glibc only; once a process).

    By default glibc maps every allocation over 128 KiB (later: over the largest freed so far, up to
    32 MiB) on its own and unmaps it when freed, and trims the heap's free top past twice that. A pyramid
    allocates and frees its bands and tiles at a steady rate, so every band cost page faults and zeroing
    in the kernel: about 0.5 s of system time on the thread that halves, at 161 MP. Kept, the heap stays
    at the working set's high-water mark, which is the peak anyway (a few MB more, measured).
    """
    global _kept
    if _kept or not sys.platform.startswith("linux"):
        return
    _kept = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)  # setting either also stops glibc adjusting them
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
