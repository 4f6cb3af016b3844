"""Decode an image band by band, so memory follows its width and not its area.

Pillow decodes a whole image at once, but its decoders can be driven by hand.
Two ways, both with Pillow's own decoders, so the pixels are those of a full
decode bit for bit:

* **JPEG and PNG** decoders pause and resume: each ``decode(chunk)`` writes
  every row the data so far allows. They write into an image whose memory is
  an anonymous mapping with every row on pages of its own. Untouched pages
  cost nothing, so the mapping can have the image's whole area; the kernel
  (``mincore``) tells which rows have been written, each finished band is
  copied out and its pages handed back (``MADV_DONTNEED``).
* **Striped and tiled TIFF**: libtiff decodes a whole image in one call, so
  each band's strips (or one row of tiles) are wrapped as a small TIFF of
  their own, which Pillow then decodes in full. Grey and alpha stored in
  separate planes, which Pillow's own decode gets wrong, make two such
  TIFFs a band, one a plane (and are decoded whole that way too).

Why not pyvips (libvips decodes sequentially too)? Measured on the 161 MP
mosaic, driving Pillow peaks at 97 MB against libvips' 145 MB, it needs no
second imaging library in the Lambda package, it covers the same formats the
full decode does, and its pixels need no proof of equality. Both lean on
Pillow internals that ``ImageFile.load`` itself uses (``Image._getdecoder``,
``Image.core.map_buffer``, tile tuples): Pillow is pinned, and the tests
compare every band with a full decode, so an upgrade that changes them fails.

What cannot stream (progressive JPEG, interlaced PNG, single-strip compressed
TIFF, other formats) says why in :func:`stream_refusal`, and is decoded whole.
So is every image of a kind whose streaming failed :func:`self_test` (run once
per process, on a cold start): a Pillow upgrade that breaks the internals
above costs memory, not every conversion.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import itertools
import logging
import mmap
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from PIL import Image, ImageFile, TiffImagePlugin, TiffTags

from . import libtiff, tiff
from .errors import InvalidImage
from .jpeg import holds_every_coefficient
from .limits import pillow_pixel_limit_lifted
from .memory import stored_bytes_per_pixel
from .tiff import TiffLayout

PAGE = mmap.PAGESIZE
MIN_BLOCK, MAX_BLOCK = 1 << 10, 1 << 16  # compressed bytes fed to a decoder at a time
STREAMED_FORMATS = {"JPEG", "MPO", "PNG", "TIFF"}
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Linux's value; Python 3.11 lacks the name
_TIFF_KEPT_TAGS = {  # what libtiff needs to decode the pixels of a band; pointers to other IFDs are dropped
    254, 256, 257, 258, 259, 262, 266, 277, 278, 284, 317, 320, 322, 323, 338, 339, 347, 529, 530, 531, 532,
}  # fmt: skip
_BIGTIFF_TYPES = {16, 17, 18}  # 64-bit types: a band's TIFF is a classic one

log = logging.getLogger(__name__)


class MappingRefused(RuntimeError):
    """The machine would not give the decode its address space (``ulimit -v``, strict overcommit): not the
    file's fault, so not bad input; a retry, or a machine that allows it, may succeed."""


class StreamingUnavailable(RuntimeError):
    """An image that would fit in memory streamed, but not decoded whole, while streaming its kind is out of
    order (it failed :func:`self_test`): our fault, not the file's, so not bad input; retried, it converts
    once a fixed deployment streams again."""


def _mincore() -> ctypes._CFuncPtr | None:
    if not sys.platform.startswith("linux"):
        return None
    function = ctypes.CDLL(None, use_errno=True).mincore  # the C library the interpreter itself links
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return function


_MINCORE = _mincore()


def stream_refusal(image: ImageFile.ImageFile) -> str | None:
    """Why ``image`` (opened, not loaded) must be decoded whole; None if it can stream."""
    if image.format not in STREAMED_FORMATS:
        return f"{image.format} is decoded whole"
    if image.mode in ("I", "F"):
        return "32-bit and float samples are scaled by their whole range"
    if len(image.tile) == 0:
        return "no pixel data"
    if image.format in ("JPEG", "MPO"):
        return _jpeg_refusal(image)
    if image.format == "PNG":
        return _png_refusal(image)
    return _tiff_refusal(image)


def _jpeg_refusal(image: ImageFile.ImageFile) -> str | None:
    if image.info.get("progressive") or image.info.get("progression"):
        return "progressive JPEG (libjpeg holds every coefficient before the first row)"
    if holds_every_coefficient(image):
        return "JPEG whose first scan lacks some colours (libjpeg holds every coefficient before the first row)"
    return _row_map_refusal()


def _png_refusal(image: ImageFile.ImageFile) -> str | None:
    if image.info.get("interlace"):
        return "interlaced PNG"
    if getattr(image, "is_animated", False):
        return "animated PNG"
    if image.tile[0].extents != (0, 0, *image.size):
        return "PNG whose pixels are not one block"
    if "exif" not in image.info and _png_has_trailing_exif(image):
        return "PNG with its EXIF after the pixel data"
    return _row_map_refusal()


def _png_has_trailing_exif(image: ImageFile.ImageFile) -> bool:
    """Does an eXIf chunk follow the pixel data? (Its orientation is known only after a full read.)"""
    stream = image.fp
    assert stream is not None
    position = stream.tell()
    try:
        stream.seek(image.tile[0].offset - 8)
        while len(header := stream.read(8)) == 8:
            length, kind = struct.unpack(">I4s", header)
            if kind == b"eXIf":
                return True
            if kind == b"IEND":
                return False
            stream.seek(length + 4, io.SEEK_CUR)
        return False
    finally:
        stream.seek(position)


def _row_map_refusal() -> str | None:
    if _MINCORE is None:
        return "streaming JPEG and PNG needs Linux (mincore)"
    return None


def _tiff_refusal(image: ImageFile.ImageFile) -> str | None:
    tags = image.tag_v2
    planes = 2 if separate_grey_and_alpha(image) else 1
    if planes == 1 and tags.get(tiff.PLANAR_CONFIGURATION, 1) != 1:
        return "TIFF with separate colour planes"
    if image.info.get("compression") == "raw" and len(image.tile) == 1:
        return "uncompressed single-strip TIFF (read from the file as it is)"
    if tiff.TILE_OFFSETS in tags:
        return None
    offsets = tags.get(tiff.STRIP_OFFSETS)
    if offsets is None or len(tuple(offsets)) < 2 * planes:
        if planes > 1:
            return "single-strip TIFF of separate planes (one strip holds every row)"
        return "single-strip compressed TIFF (one strip holds every row)"
    return None


def separate_grey_and_alpha(image: Image.Image) -> bool:
    """Is ``image`` (opened) a TIFF of grey and alpha in separate planes?

    Pillow's decoder puts separate planes' samples in the bytes of its pixel in plane order, right for
    RGB(A) and CMYK; but "LA" keeps its alpha in the last of four bytes, so the alpha plane lands in a
    byte nothing reads and every pixel comes out transparent. Such a TIFF is decoded a plane at a time
    instead (:func:`_tiff_bands`).
    """
    if image.format != "TIFF" or image.mode not in ("LA", "La"):  # (Pillow opens no other two-sample grey)
        return False
    return image.tag_v2.get(tiff.PLANAR_CONFIGURATION, 1) == 2  # type: ignore[attr-defined]


def stream_rows(image: ImageFile.ImageFile, height: int) -> Iterator[Image.Image]:
    """The stored rows of ``image`` (opened, not loaded) top to bottom, in bands of about ``height`` rows.

    Every band has the mode, palette and info of ``image``, as a crop of the full decode would.
    """
    if image.format == "TIFF":
        return _tiff_bands(image, height)
    return _RowMap(image).bands(height)


_SELF_TEST_FILES: dict[str, dict[str, object]] = {  # Pillow's save options of each kind checked
    "JPEG": {"quality": 90},  # baseline
    "PNG": {},  # not interlaced
    "TIFF": {"compression": "tiff_lzw", "strip_size": 16 * 3 * 8},  # strips of 8 rows
}
_self_test_lock = threading.Lock()
_self_test_failures: dict[str, str] | None = None  # None until the self-test has run


def self_test() -> dict[str, str]:
    """Stream a tiny JPEG, PNG and striped TIFF (made here, 16 x 24) and compare each with its full decode.

    Runs once per process (a cold start runs it before the first event); returns why each kind that failed
    cannot stream, by format (empty: every kind streams), and logs each failure at error level with its
    traceback. Images of a kind that failed are decoded whole, where memory allows (see
    :func:`self_test_refusal`), instead of failing as bad input one by one.
    """
    global _self_test_failures
    with _self_test_lock:
        if _self_test_failures is None:
            _self_test_failures = _run_self_test()
        return _self_test_failures


def self_test_refusal(image: ImageFile.ImageFile) -> str | None:
    """Why ``image``, which :func:`stream_refusal` lets stream, must be decoded whole after all: streaming
    its kind failed :func:`self_test`. None if it passed."""
    kind = "JPEG" if image.format == "MPO" else str(image.format)
    failure = self_test().get(kind)
    return f"streaming {kind} failed its self-test ({failure})" if failure else None


def _run_self_test() -> dict[str, str]:
    failures = {}
    for kind in _SELF_TEST_FILES:
        if kind != "TIFF" and _MINCORE is None:
            continue  # JPEG and PNG are not streamed here at all (see _row_map_refusal)
        error: Exception | None = None
        try:
            failure = _self_test_failure(kind)
        except Exception as caught:  # noqa: BLE001 - whatever broke, it is reported, and the kind decoded whole
            error = caught
            failure = f"{type(caught).__name__}: {' '.join(str(caught).split())}"
        if failure is not None:
            failures[kind] = failure
            log.error(
                "the streaming decoder failed its self-test on a %s: %s; every %s will be decoded whole, "
                "where memory allows",
                kind,
                failure,
                kind,
                exc_info=error,
            )
    return failures


def _self_test_failure(kind: str) -> str | None:
    """What is wrong with streaming a tiny image of ``kind``, if anything."""
    libtiff.install()  # libtiff's complaints go to the log, not stderr
    ramp = Image.linear_gradient("L").resize((16, 24))
    sample = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ramp.rotate(180)))
    encoded = io.BytesIO()
    sample.save(encoded, kind, **_SELF_TEST_FILES[kind])
    with Image.open(io.BytesIO(encoded.getvalue()), formats=[kind]) as whole:
        whole.load()
        expected = whole.tobytes()
    with Image.open(io.BytesIO(encoded.getvalue()), formats=[kind]) as opened:
        refusal = stream_refusal(opened)
        if refusal is not None:
            return f"refused to stream it: {refusal}"
        bands = list(stream_rows(opened, 8))
    if [band.size for band in bands] != [(16, 8)] * 3 or b"".join(band.tobytes() for band in bands) != expected:
        return "its bands differ from a full decode"
    return None


class _RowMap:
    """An image in an anonymous mapping that a paused and resumed Pillow decoder fills row by row.

    Each row starts on a page of its own, so a page the kernel reports resident
    belongs to exactly one row, which the decoder has therefore written (it
    writes a row in one call, and rows in order).
    """

    def __init__(self, image: ImageFile.ImageFile) -> None:
        self.image = image
        self.width, self.height = image.size
        line = self.width * stored_bytes_per_pixel(image.mode)
        self.stride = -(-line // PAGE) * PAGE
        self.pages_per_row = self.stride // PAGE
        try:
            self.memory = mmap.mmap(
                -1, self.stride * self.height, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
            )
        except OSError as error:
            raise MappingRefused(f"cannot map {self.stride * self.height:,} bytes to decode into: {error}") from None
        _no_huge_pages(self.memory)
        self.core = Image.core.map_buffer(self.memory, image.size, "raw", 0, (image.mode, self.stride, 1))
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.memory))
        self._progress = threading.Condition()  # guards what the decoding thread and the taker share:
        self.written = 0  # rows known to be written
        self.taken = 0  # rows the taker has copied out
        self.done = False  # the decoder has written every row
        self.stopped = False  # the taker wants no more
        self.error: Exception | None = None

    def bands(self, height: int) -> Iterator[Image.Image]:
        """Bands of ``height`` rows, decoded on a thread of their own up to two bands ahead of the taker.

        Pillow lets go of the GIL while it decodes, so the decode overlaps the pyramid's work on the bands.
        """
        self._ahead_limit = 2 * height
        decoding = threading.Thread(target=self._decode, args=(height,), name="deepzoom-decode", daemon=True)
        decoding.start()
        handed = 0
        try:
            while handed < self.height:
                with self._progress:
                    self._progress.wait_for(functools.partial(self._band_ready, handed + height))
                    if self.error is not None:
                        raise self.error
                bottom = min(handed + height, self.height)
                yield self._take(handed, bottom)
                handed = bottom
                with self._progress:
                    self.taken = handed
                    self._progress.notify_all()
        finally:
            with self._progress:
                self.stopped = True
                self._progress.notify_all()
            decoding.join()
            self.memory.madvise(mmap.MADV_DONTNEED)

    def _band_ready(self, bottom: int) -> bool:
        return self.error is not None or self.done or self.written >= bottom

    def _decode(self, height: int) -> None:
        """Feed the decoder until every row is written, pausing while two bands wait to be taken."""
        tile = self.image.tile[0]
        decoder = None
        try:
            decoder = Image._getdecoder(self.image.mode, tile.codec_name, tile.args, self.image.decoderconfig)
            decoder.setimage(self.core, tile.extents)
            read = self._reader(tile.offset)
            fed, block, pending = 0, MIN_BLOCK, b""
            while True:
                with self._progress:
                    self._progress.wait_for(lambda: self.stopped or self.written - self.taken < self._ahead_limit)
                    if self.stopped:
                        return
                chunk = read(block)
                if not chunk:
                    raise InvalidImage(f"cannot decode {self.image.format} data: image file is truncated")
                fed += len(chunk)
                consumed, error = decoder.decode(pending + chunk)
                if consumed < 0:  # the decoder is done, or failed
                    if error < 0:
                        raise InvalidImage(f"cannot decode {self.image.format} data: {_decoder_error(error)}")
                    with self._progress:
                        self.written, self.done = self.height, True
                        self._progress.notify_all()
                    return
                pending = (pending + chunk)[consumed:]
                written = self._written_from(self.written, window=2 * height)
                with self._progress:
                    self.written = written
                    self._progress.notify_all()
                block = self._next_block(fed, height)
        except Exception as error:  # noqa: BLE001 - handed to the taker, which raises it
            with self._progress:
                self.error = error
                self._progress.notify_all()
        finally:
            if decoder is not None:
                decoder.cleanup()

    def _next_block(self, fed: int, height: int) -> int:
        """Compressed bytes that should decode to about a quarter band, at the rate seen so far.

        A fixed block would decode a few rows of a wide photo but thousands of a flat or narrow one.
        """
        written = self.written
        if written == 0:
            return min(2 * fed, MAX_BLOCK)
        return max(MIN_BLOCK, min(MAX_BLOCK, fed * height // (4 * written)))

    def _reader(self, offset: int) -> Callable[[int], bytes]:
        """Reads the compressed pixel data: a JPEG's whole stream, or a PNG's IDAT chunks' contents."""
        stream = self.image.fp
        assert stream is not None
        if self.image.format == "PNG":
            return _IdatReader(stream, offset).read
        stream.seek(offset)
        return stream.read

    def _written_from(self, first: int, window: int) -> int:
        """The row just past the last one with a resident page, looking from row ``first`` on.

        Rows are looked at ``window`` at a time, and further only while a window's last row is written:
        asking the kernel about every row left would cost time quadratic in the height.
        """
        assert _MINCORE is not None
        while first < self.height:
            rows = min(window, self.height - first)
            pages = rows * self.pages_per_row
            residency = ctypes.create_string_buffer(pages)
            if _MINCORE(self.address + first * self.stride, pages * PAGE, residency) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            last = residency.raw.rfind(b"\x01")  # the low bit is residency; the others are reserved as zero
            if last < 0:
                return first
            written = first + last // self.pages_per_row + 1
            if written < first + rows:
                return written
            first = written
        return first

    def _take(self, top: int, bottom: int) -> Image.Image:
        """Copy rows ``top:bottom`` out as an image of their own and give their pages back."""
        band = self.image._new(self.core.crop((0, top, self.width, bottom)))
        self.memory.madvise(mmap.MADV_DONTNEED, top * self.stride, (bottom - top) * self.stride)
        return band


def _no_huge_pages(memory: mmap.mmap) -> None:
    """A huge page would make rows look written that are not. A kernel built without transparent huge pages
    answers the advice with EINVAL: it has none to give, so there is nothing to advise against."""
    try:
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise MappingRefused(f"cannot keep huge pages out of the decode's mapping: {error}") from None


class _IdatReader:
    """The contents of a PNG's consecutive IDAT chunks as one stream, the first chunk's data at ``offset``."""

    def __init__(self, stream: BinaryIO, offset: int) -> None:
        self.stream = stream
        stream.seek(offset - 8)
        self.left = 0  # bytes of the current chunk not read yet
        self.ended = False
        self._next_chunk()

    def read(self, size: int) -> bytes:
        while self.left == 0 and not self.ended:  # an IDAT chunk may be empty
            self.stream.seek(4, io.SEEK_CUR)  # the chunk's CRC
            self._next_chunk()
        if self.ended:
            return b""
        data = self.stream.read(min(size, self.left))
        if not data:
            raise InvalidImage("cannot decode PNG data: image file is truncated")
        self.left -= len(data)
        return data

    def _next_chunk(self) -> None:
        header = self.stream.read(8)
        if len(header) < 8:
            raise InvalidImage("cannot decode PNG data: image file is truncated")
        length, kind = struct.unpack(">I4s", header)
        self.left, self.ended = length, kind != b"IDAT"


def _decoder_error(code: int) -> str:
    return str(ImageFile._get_oserror(code, encoder=False))


def _tiff_bands(image: ImageFile.ImageFile, height: int) -> Iterator[Image.Image]:
    """Bands of whole strips (or of one row of tiles), each decoded from a small TIFF of its own.

    Grey and alpha in separate planes (see :func:`separate_grey_and_alpha`) are decoded as two grey
    TIFFs, one a plane, and merged.
    """
    layout = TiffLayout.of(image)
    full_height = image.height
    units = -(-full_height // layout.unit_rows)
    per_plane = units * layout.across
    planes = 2 if separate_grey_and_alpha(image) else 1
    if len(layout.offsets) < per_plane * planes or len(layout.counts) < len(layout.offsets):
        raise InvalidImage(f"TIFF lists {len(layout.offsets)} strips or tiles; its size needs {per_plane * planes}")
    group = 1 if layout.tiled else max(1, height // layout.unit_rows)  # a tile row is cut in one piece
    stream = image.fp
    assert stream is not None

    def read(pieces: range) -> list[bytes]:
        data = []
        for piece in pieces:
            stream.seek(layout.offsets[piece])
            data.append(stream.read(layout.counts[piece]))
            if len(data[-1]) != layout.counts[piece]:
                raise InvalidImage("cannot decode TIFF data: image file is truncated")
        return data

    for first in range(0, units, group):
        last = min(first + group, units)
        rows = min(last * layout.unit_rows, full_height) - first * layout.unit_rows
        pieces = range(first * layout.across, last * layout.across)
        if planes == 1:
            yield _decode_tiff_band(image, rows, read(pieces), layout.tiled)
            continue
        grey, alpha = (
            _decode_tiff_band(image, rows, read(range(start, start + len(pieces))), layout.tiled, one_plane=True)
            for start in (pieces.start, pieces.start + per_plane)
        )
        yield image._new(Image.merge(image.mode, (grey, alpha)).im)


def decode_whole(image: ImageFile.ImageFile, band_rows: int = 256) -> Image.Image:
    """``image`` (opened) decoded whole: by Pillow, unless Pillow gets its pixels wrong.

    A TIFF of grey and alpha in separate planes (see :func:`separate_grey_and_alpha`) is put together
    from its bands of ``band_rows`` rows, each decoded a plane at a time; its peak is the whole image
    and one band, as Pillow's own decode would be.
    """
    if not separate_grey_and_alpha(image):
        image.load()
        return image
    whole = Image.new(image.mode, image.size)
    top = 0
    for band in _tiff_bands(image, band_rows):
        whole.paste(band, (0, top))
        top += band.height
    return image._new(whole.im)


def _decode_tiff_band(
    image: ImageFile.ImageFile, rows: int, data: list[bytes], tiled: bool, one_plane: bool = False
) -> Image.Image:
    """Wrap ``data`` (a band's strips or tiles, in order) in a TIFF of ``rows`` rows and decode it.

    With ``one_plane``, ``data`` is one plane of a TIFF of separate 8-bit planes, and is decoded as a
    grey ("L") TIFF of one sample a pixel.
    """
    directory = TiffImagePlugin.ImageFileDirectory_v2(prefix=image.tag_v2.prefix)
    for tag, value in image.tag_v2.items():
        if tag in _TIFF_KEPT_TAGS:  # (not the whole file's offsets: a band sets its own)
            directory[tag] = value
            kind = image.tag_v2.tagtype[tag]
            directory.tagtype[tag] = TiffTags.LONG if kind in _BIGTIFF_TYPES else kind
    mode = image.mode
    if one_plane:  # an alpha plane too: black is 0, as Pillow reads a grey sample
        directory.pop(tiff.EXTRA_SAMPLES, None)
        directory[tiff.SAMPLES_PER_PIXEL], directory[tiff.PLANAR_CONFIGURATION] = 1, 1
        directory[tiff.BITS_PER_SAMPLE], directory[tiff.PHOTOMETRIC] = (8,), 1
        if tiff.SAMPLE_FORMAT in directory:
            directory[tiff.SAMPLE_FORMAT] = (1,)
        mode = "L"
    directory[tiff.IMAGE_LENGTH] = rows
    sizes = tuple(len(piece) for piece in data)
    relative = (0, *itertools.accumulate(sizes[:-1]))  # where each piece starts in the data
    offsets_tag = tiff.TILE_OFFSETS if tiled else tiff.STRIP_OFFSETS
    counts_tag = tiff.TILE_COUNTS if tiled else tiff.STRIP_COUNTS
    directory[counts_tag] = sizes
    directory[offsets_tag] = relative
    directory.tagtype[counts_tag] = directory.tagtype[offsets_tag] = TiffTags.LONG
    if tiled:  # the IFD writer moves strip offsets past itself, but writes tile offsets as given
        data_start = 8 + len(directory.tobytes(8))
        directory[offsets_tag] = tuple(data_start + offset for offset in relative)
    little = image.tag_v2.prefix == b"II"
    header = b"II\x2a\x00\x08\x00\x00\x00" if little else b"MM\x00\x2a\x00\x00\x00\x08"  # first IFD at 8
    band_file = io.BytesIO(header + directory.tobytes(8) + b"".join(data))
    with pillow_pixel_limit_lifted(), Image.open(band_file, formats=["TIFF"]) as band:  # its errors: source.py's
        band.load()
        if band.mode != mode or band.size != (image.width, rows):
            raise InvalidImage(f"a TIFF band decoded as {band.mode} {band.size}, not {mode}")
        return (band if one_plane else image)._new(band.im)
