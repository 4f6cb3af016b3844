"""How a TIFF's pixels are cut into strips or tiles, read from its tags (one reading for every module).

Streaming decodes a band of strips (or a row of tiles) at a time, memory admission counts a strip taller
than a band, and the input limits count the pieces: all from :class:`TiffLayout`. And when Pillow will
not open a TIFF at all, :func:`unreadable_reason` says which of its pixels' traits is to blame.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, TiffImagePlugin

from .errors import InvalidImage

IMAGE_LENGTH, ROWS_PER_STRIP, STRIP_OFFSETS, STRIP_COUNTS = 257, 278, 273, 279
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_COUNTS = 322, 323, 324, 325
BITS_PER_SAMPLE, PHOTOMETRIC, SAMPLES_PER_PIXEL, PLANAR_CONFIGURATION = 258, 262, 277, 284
EXTRA_SAMPLES, SAMPLE_FORMAT, COMPRESSION, FILL_ORDER = 338, 339, 259, 266
_KINDS = {0: "grey (white is zero)", 1: "grey", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK", 6: "YCbCr", 8: "CIELab"}
_SAMPLE_FORMATS = {1: "", 2: "signed ", 3: "floating-point "}
_EXTRA_SAMPLES = {0: "an unspecified extra sample", 1: "associated alpha", 2: "unassociated alpha"}


@dataclass(frozen=True)
class TiffLayout:
    """A TIFF's pieces: ``unit_rows`` rows each (a strip, or a row of ``across`` tiles), in file order."""

    tiled: bool
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    unit_rows: int
    across: int  # pieces side by side in a unit: tiles across, or 1 for strips

    @classmethod
    def of(cls, image: Image.Image) -> TiffLayout:
        """Read from ``image``'s tags (opened, not loaded); :class:`InvalidImage` for sizes no TIFF can have,
        or tags of the wrong type (a hostile file's, which would otherwise fail as TypeError: a bug's error)."""
        tags = image.tag_v2  # type: ignore[attr-defined]
        tiled = TILE_OFFSETS in tags
        offsets = _positions(tags.get(TILE_OFFSETS if tiled else STRIP_OFFSETS), "offsets")
        counts = _positions(tags.get(TILE_COUNTS if tiled else STRIP_COUNTS), "byte counts")
        if tiled:
            if TILE_LENGTH not in tags or TILE_WIDTH not in tags:
                raise InvalidImage("TIFF with tile offsets but no tile size")
            unit_rows, tile_width = _number(tags[TILE_LENGTH], "tile length"), _number(tags[TILE_WIDTH], "tile width")
            if tile_width < 1:
                raise InvalidImage(f"TIFF tiles {tile_width} pixels wide")
            across = -(-image.width // tile_width)
        else:
            unit_rows = min(_number(tags.get(ROWS_PER_STRIP, image.height), "rows per strip"), image.height)
            across = 1
        if unit_rows < 1:
            raise InvalidImage(f"TIFF strips or tiles {unit_rows} rows high")
        return cls(tiled, offsets, counts, unit_rows, across)


def unreadable_reason(stream: BinaryIO) -> str | None:
    """Why Pillow would not open the TIFF in ``stream``, if its first image's tags tell: a compression it
    lacks, or samples it has no mode for, named (``TIFF of 16-bit grey with unassociated alpha``...).

    None when they do not tell (the tags look like a kind Pillow reads, or cannot be read themselves).
    The sample layouts Pillow reads are the keys of its ``TiffImagePlugin.OPEN_INFO``.
    """
    try:
        stream.seek(0)
        head = stream.read(16)
        directory = TiffImagePlugin.ImageFileDirectory_v2(head if head[2:3] == b"\x2b" else head[:8])
        stream.seek(directory.next)
        directory.load(stream)
        compression = directory.get(COMPRESSION, 1)
        if compression not in TiffImagePlugin.COMPRESSION_INFO:
            return f"TIFF compression {compression} is not supported"
        kind = int(directory.get(PHOTOMETRIC, 0))
        formats = tuple(directory.get(SAMPLE_FORMAT, (1,)))
        formats = formats[:1] if len(set(formats)) == 1 else formats
        bits = tuple(directory.get(BITS_PER_SAMPLE, (1,)))
        samples = int(directory.get(SAMPLES_PER_PIXEL, 1))
        bits = bits * samples if len(bits) == 1 else bits
        extra = tuple(directory.get(EXTRA_SAMPLES, ()))
        key = (directory.prefix, kind, formats, directory.get(FILL_ORDER, 1), bits, extra)
        if key in TiffImagePlugin.OPEN_INFO:
            return None
    except Exception:  # noqa: BLE001 - a header too broken to read says nothing more than Pillow did
        return None
    depth = "/".join(str(value) for value in sorted(set(bits)))
    sample_format = "/".join(_SAMPLE_FORMATS.get(value, f"sample format {value} ") for value in formats)
    words = f"{depth}-bit {sample_format}{_KINDS.get(kind, f'photometric {kind}')}"
    if extra:
        words += " with " + " and ".join(_EXTRA_SAMPLES.get(value, f"extra sample {value}") for value in extra)
    return f"TIFF of {words} is not supported (Pillow has no mode for such pixels)"


def _positions(value: object, what: str) -> tuple[int, ...]:
    """A tag's offsets or byte counts: whole numbers, none negative (and none at all if the tag is missing)."""
    try:
        numbers = tuple(operator.index(number) for number in value or ())  # type: ignore[attr-defined]
    except TypeError:
        raise InvalidImage(f"TIFF strip or tile {what} that are not whole numbers") from None
    if any(number < 0 for number in numbers):
        raise InvalidImage(f"TIFF strip or tile {what} below zero")
    return numbers


def _number(value: object, what: str) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise InvalidImage(f"TIFF {what} {str(value)[:40]!r} is not a number") from None
