"""A JPEG's structure, read from its markers as libjpeg reads them (Pillow does not tell it all).

Two things matter for the cost of a decode: how many scans a progressive file has (each is another pass
over every coefficient), and whether libjpeg must keep every coefficient of the image before it gives a
row, as it must for a progressive file or one whose first scan lacks some of the colour components.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from PIL import Image

HEAD_BYTES = 1 << 20  # where a JPEG's first scan starts, at the latest, for this to look


def holds_every_coefficient(image: Image.Image) -> bool:
    """Must libjpeg keep all of ``image``'s coefficients (opened, not loaded) before its first row?"""
    if image.format not in ("JPEG", "MPO"):
        return False
    if image.info.get("progressive"):
        return True
    stream = image.fp
    if stream is None:
        return False
    position = stream.tell()
    try:
        stream.seek(0)
        return not first_scan_is_interleaved(stream.read(HEAD_BYTES))
    finally:
        stream.seek(position)


_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD9)}  # TEM, RST0-7, SOI: no length follows
_SOS, _EOI = 0xDA, 0xD9


def count_jpeg_scans(stream: BinaryIO, stop_after: int) -> int:
    """Start-of-scan markers in the JPEG at ``stream``'s position, counted up to ``stop_after`` + 1."""
    scans = 0
    for marker, _ in _jpeg_segments(stream.read()):
        scans += marker == _SOS
        if scans > stop_after:
            break
    return scans


def first_scan_is_interleaved(head: bytes) -> bool:
    """Does the first scan of the JPEG starting ``head`` carry every component? If it carries fewer, libjpeg
    keeps every coefficient of the image before it gives a row (as for a progressive one). True when ``head``
    ends before the first scan: nothing says otherwise."""
    components = None
    for marker, segment in _jpeg_segments(head):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and len(segment) >= 6:
            components = segment[5]  # SOFn: precision, height, width, components
        elif marker == _SOS and segment:
            return components is None or segment[0] >= components
    return True


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(marker, segment body) for each marker of a JPEG, as libjpeg reads them: bytes between segments
    that are not a marker are skipped, standalone markers have no length, and a scan's entropy-coded data
    runs to the next marker that is not a restart (a 0xFF byte inside it is followed by 0x00)."""
    position = 2  # after SOI
    while (position := data.find(b"\xff", position)) != -1:
        while position + 1 < len(data) and data[position + 1] == 0xFF:  # fill bytes
            position += 1
        if position + 1 >= len(data):
            return
        marker = data[position + 1]
        position += 2
        if marker == 0x00:  # a stuffed byte, not a marker (garbage between segments)
            continue
        if marker == _EOI:
            return
        if marker in _STANDALONE_MARKERS:
            yield marker, b""
            continue
        if position + 2 > len(data):
            return
        (length,) = struct.unpack(">H", data[position : position + 2])
        yield marker, data[position + 2 : position + length]
        position += max(length, 2)
        if marker == _SOS:
            position = _next_marker(data, position)


def _next_marker(data: bytes, position: int) -> int:
    while (position := data.find(b"\xff", position)) != -1 and position + 1 < len(data):
        following = data[position + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return position
        position += 2
    return len(data)
