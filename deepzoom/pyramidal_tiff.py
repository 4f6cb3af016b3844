"""One tiled pyramidal TIFF per image, written as the halving pass makes its tiles, in any order.

The layout is libvips' ``tiffsave --tile --pyramid`` (full size first, then each halving as a
reduced-resolution IFD, down to the first level that fits one tile; JPEG tiles in YCbCr 4:2:0 with
their quantisation and Huffman tables once per IFD in ``JPEGTables``), with the index of a Cloud
Optimized GeoTIFF: the header, every IFD and every tile table come first, together, so a reader that
fetches by range has all levels' indexes after one or two reads. Their size is known before any
tile is made (a level's tile count is), so that head is reserved, tiles are appended behind it in
the order they are finished, and the head is written last (:class:`~deepzoom.sinks.ObjectStream`
puts it in front). Identical tiles (flat backgrounds, blank margins) are stored once and every
offset that needs them points at that copy.

Classic TIFF addresses 4 GB; BigTIFF is chosen only when the file could pass that, judged before
the first tile from the tile count and the most a JPEG tile can take at the quality used.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import dataclass

from PIL import Image

from .formats import TileEncoder, TileFormat
from .geometry import DeepZoomGeometry
from .sinks import TileSink

CONTENT_TYPE = "image/tiff"
EXTENSION = "tif"
DEDUPLICATED_SIZE = 16 * 1024  # tiles this small (flat ones) are looked up by content; bigger ones never repeat
_JPEG = TileFormat("jpg", "image/jpeg", keeps_alpha=False, uses_quality=True)
_CLASSIC_LIMIT = 2**32

# The most a 4:2:0 JPEG tile takes per pixel at a quality up to the key, measured on random noise (the worst
# case): 0.67 B/px at 80, 1.17 at 95, 1.98 at 100.
_WORST_BYTES_PER_PIXEL = ((80, 0.7), (95, 1.2), (100, 2.0))

# TIFF tag numbers and field types.
_NEW_SUBFILE_TYPE, _WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC = 254, 256, 257, 258, 259, 262
_SAMPLES, _PLANAR, _TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_COUNTS = 277, 284, 322, 323, 324, 325
_JPEG_TABLES, _YCBCR_SUBSAMPLING = 347, 530
_SHORT, _LONG, _UNDEFINED, _LONG8 = 3, 4, 7, 16
_JPEG_COMPRESSION, _YCBCR, _REDUCED = 7, 6, 1
_ENTRIES = 13  # in the full-size IFD


def tiff_levels(width: int, height: int, tile_size: int) -> list[int]:
    """The Deep Zoom levels the file holds, full size first: each halving down to the first that fits a tile."""
    geometry = DeepZoomGeometry(width, height, tile_size, 0)
    levels = []
    for level in range(geometry.max_level, -1, -1):
        levels.append(level)
        if max(geometry.level_size(level)) <= tile_size:
            break
    return levels


def tiff_tile_count(width: int, height: int, tile_size: int) -> int:
    """Tiles in the file of a ``width`` x ``height`` image (identical ones counted each time)."""
    grid = DeepZoomGeometry(width, height, tile_size, 0)
    return sum(grid.tile_grid(level)[0] * grid.tile_grid(level)[1] for level in tiff_levels(width, height, tile_size))


def check_tiff_tile_size(tile_size: int) -> None:
    """TIFF tiles measure a multiple of 16 pixels a side."""
    if tile_size < 16 or tile_size % 16:
        raise ValueError(f"TIFF tile size must be a positive multiple of 16, got {tile_size}")


@dataclass(frozen=True)
class _Directory:
    """One IFD: a level's size, its tile grid, and where its entries and tile tables sit in the head."""

    width: int
    height: int
    columns: int
    rows: int
    offset: int  # of the IFD itself
    tables: int  # of its TileOffsets array, the TileByteCounts array right behind it

    @property
    def tiles(self) -> int:
        return self.columns * self.rows


class PyramidalTiff:
    """Collects the JPEG tiles of one image's levels into ``path`` of ``sink`` and writes the head when all
    are in.

    ``add`` is called from many threads, each tile once, in any order; ``finish`` checks that every tile
    came and puts the head in front. ``levels`` are the Deep Zoom levels it holds (see :func:`tiff_levels`),
    cut by ``grid``.
    """

    def __init__(self, sink: TileSink, path: str, width: int, height: int, tile_size: int, quality: int) -> None:
        check_tiff_tile_size(tile_size)
        self.tile_size = tile_size
        self.grid = DeepZoomGeometry(width, height, tile_size, 0)
        self.levels = tiff_levels(width, height, tile_size)
        self.encoder = TileEncoder(_JPEG, quality, subsampling=2, streamtype=2)  # tables go in JPEGTables
        self.jpeg_tables = _tables(quality)
        sizes = [self.grid.level_size(level) for level in self.levels]
        grids = [self.grid.tile_grid(level) for level in self.levels]
        self.big = _may_pass_4gb(tiff_tile_count(width, height, tile_size), tile_size, quality)
        self._format = _BIG if self.big else _CLASSIC
        self._directories, self._shared, self.head_size = self._plan_head(sizes, grids)
        self._index = {level: number for number, level in enumerate(self.levels)}
        self._offsets = [[0] * directory.tiles for directory in self._directories]
        self._counts = [[0] * directory.tiles for directory in self._directories]
        self._stored: dict[bytes, tuple[int, int]] = {}  # content digest -> (offset, length) of a small tile
        self._end = self.head_size
        self.stream = sink.open(path, CONTENT_TYPE, self.head_size)
        self._lock = threading.Lock()

    def add(self, level: int, column: int, row: int, tile: Image.Image) -> int:
        """Encode the tile of ``level`` at (``column``, ``row``), cut from the level (edge tiles short), and
        append it; returns the bytes appended (0 for a tile identical to one already stored)."""
        data = _without_jfif(self.encoder.encode(_full_tile(tile, self.tile_size)))
        directory = self._index[level]
        slot = row * self._directories[directory].columns + column
        digest = hashlib.blake2b(data, digest_size=16).digest() if len(data) <= DEDUPLICATED_SIZE else None
        with self._lock:
            known = self._stored.get(digest) if digest is not None else None
            appended = 0
            if known is None:
                known = (self._end, len(data))
                self.stream.write(data)  # under the lock: the tile's offset is the stream's end
                appended = len(data)
                self._end += appended
                if digest is not None:
                    self._stored[digest] = known
            self._offsets[directory][slot], self._counts[directory][slot] = known
        return appended

    @property
    def size(self) -> int:
        """The file's size so far (the head included)."""
        return self._end

    def finish(self) -> None:
        """Write the head and publish the file (see :meth:`ObjectStream.publish`)."""
        missing = sum(counts.count(0) for counts in self._counts)
        if missing:
            raise RuntimeError(f"{missing} TIFF tiles were never made")
        self.encoder.close()
        self.stream.publish(self._head())

    def abort(self) -> None:
        self.encoder.close()
        self.stream.abort()

    def _plan_head(
        self, sizes: list[tuple[int, int]], grids: list[tuple[int, int]]
    ) -> tuple[list[_Directory], int, int]:
        """Where each IFD and its tile tables go, where the values all IFDs share (JPEGTables, BitsPerSample)
        go after them, and the head's size."""
        layout = self._format
        position = layout.header_size
        directories = []
        for (width, height), (columns, rows) in zip(sizes, grids, strict=True):
            entries = _ENTRIES + (1 if directories else 0)  # a reduced level adds NewSubfileType
            table = position + layout.directory_size(entries)
            directories.append(_Directory(width, height, columns, rows, position, table))
            position = table + 2 * columns * rows * layout.offset_size
        return directories, position, position + _word_aligned(len(self.jpeg_tables)) + 6

    def _head(self) -> bytes:
        layout = self._format
        head = bytearray(self.head_size)
        tables_at, bits_at = self._shared, self._shared + _word_aligned(len(self.jpeg_tables))
        head[: layout.header_size] = layout.header(self._directories[0].offset)
        for number, directory in enumerate(self._directories):
            following = self._directories[number + 1].offset if number + 1 < len(self._directories) else 0
            array = f"<{directory.tiles}{layout.offset_code}"
            counts_at = directory.tables + struct.calcsize(array)
            entries = [
                *([_Entry(_NEW_SUBFILE_TYPE, _LONG, struct.pack("<I", _REDUCED))] if number else []),
                _Entry(_WIDTH, _LONG, struct.pack("<I", directory.width)),
                _Entry(_LENGTH, _LONG, struct.pack("<I", directory.height)),
                _Entry(_BITS, _SHORT, struct.pack("<3H", 8, 8, 8), bits_at),
                _Entry(_COMPRESSION, _SHORT, struct.pack("<H", _JPEG_COMPRESSION)),
                _Entry(_PHOTOMETRIC, _SHORT, struct.pack("<H", _YCBCR)),
                _Entry(_SAMPLES, _SHORT, struct.pack("<H", 3)),
                _Entry(_PLANAR, _SHORT, struct.pack("<H", 1)),
                _Entry(_TILE_WIDTH, _LONG, struct.pack("<I", self.tile_size)),
                _Entry(_TILE_LENGTH, _LONG, struct.pack("<I", self.tile_size)),
                _Entry(_TILE_OFFSETS, layout.offset_type, struct.pack(array, *self._offsets[number]), directory.tables),
                _Entry(_TILE_COUNTS, layout.offset_type, struct.pack(array, *self._counts[number]), counts_at),
                _Entry(_JPEG_TABLES, _UNDEFINED, self.jpeg_tables, tables_at),
                _Entry(_YCBCR_SUBSAMPLING, _SHORT, struct.pack("<2H", 2, 2)),
            ]
            layout.pack_directory(head, directory.offset, entries, following)
        return bytes(head)


_SIZES = {_SHORT: 2, _LONG: 4, _UNDEFINED: 1, _LONG8: 8}


@dataclass(frozen=True)
class _Entry:
    """An IFD entry: its tag, type and values; ``at`` is where the values go when they do not fit inside it."""

    tag: int
    kind: int
    values: bytes
    at: int | None = None

    @property
    def count(self) -> int:
        return len(self.values) // _SIZES[self.kind]


@dataclass(frozen=True)
class _Layout:
    """What differs between classic TIFF and BigTIFF: the header, and the widths of counts and offsets."""

    header_size: int
    count_code: str  # struct code of an IFD's entry count
    offset_code: str  # of an offset, and of an entry's count and value
    offset_type: int  # TIFF type of tile offsets and byte counts
    magic: int

    @property
    def offset_size(self) -> int:
        return struct.calcsize("<" + self.offset_code)

    def directory_size(self, entries: int) -> int:
        count = struct.calcsize("<" + self.count_code)
        return count + entries * (4 + 2 * self.offset_size) + self.offset_size

    def header(self, first_directory: int) -> bytes:
        if self.magic == 42:
            return struct.pack("<2sHI", b"II", 42, first_directory)
        return struct.pack("<2sHHHQ", b"II", 43, 8, 0, first_directory)

    def pack_directory(self, head: bytearray, at: int, entries: list[_Entry], following: int) -> None:
        """An IFD at ``at``: its entries in tag order, then the next IFD's offset. Values that fit inside an
        entry are stored there, left-justified as TIFF wants; the others at their own place in ``head``."""
        count_size = struct.calcsize("<" + self.count_code)
        struct.pack_into("<" + self.count_code, head, at, len(entries))
        position = at + count_size
        for entry in sorted(entries, key=lambda entry: entry.tag):
            struct.pack_into(f"<HH{self.offset_code}", head, position, entry.tag, entry.kind, entry.count)
            position += 4 + self.offset_size
            if len(entry.values) <= self.offset_size:
                head[position : position + len(entry.values)] = entry.values
            else:
                assert entry.at is not None, f"tag {entry.tag} needs a place of its own"
                head[entry.at : entry.at + len(entry.values)] = entry.values
                struct.pack_into("<" + self.offset_code, head, position, entry.at)
            position += self.offset_size
        struct.pack_into("<" + self.offset_code, head, position, following)


_CLASSIC = _Layout(header_size=8, count_code="H", offset_code="I", offset_type=_LONG, magic=42)
_BIG = _Layout(header_size=16, count_code="Q", offset_code="Q", offset_type=_LONG8, magic=43)


def _may_pass_4gb(tiles: int, tile_size: int, quality: int) -> bool:
    per_pixel = next(worst for highest, worst in _WORST_BYTES_PER_PIXEL if quality <= highest)
    return tiles * (tile_size * tile_size * per_pixel + 1024) + 2**20 >= _CLASSIC_LIMIT


def _tables(quality: int) -> bytes:
    """The quantisation and Huffman tables every tile at ``quality`` uses, as a tables-only JPEG."""
    return TileEncoder(_JPEG, quality, subsampling=2, streamtype=1).encode(Image.new("RGB", (16, 16)))


def _full_tile(tile: Image.Image, size: int) -> Image.Image:
    """A tile as TIFF stores it: ``size`` square, RGB. Edge tiles are padded by repeating their last column
    and row (no sharp edge for JPEG to ring on; readers crop it away)."""
    if tile.mode != "RGB":  # RGBA when the Deep Zoom tiles keep alpha: JPEG flattens onto black as libvips does
        tile = tile.convert("RGB")
    width, height = tile.size
    if (width, height) == (size, size):
        return tile
    full = Image.new("RGB", (size, size))
    full.paste(tile)
    if width < size:
        full.paste(tile.crop((width - 1, 0, width, height)).resize((size - width, height)), (width, 0))
    if height < size:
        full.paste(full.crop((0, height - 1, size, height)).resize((size, size - height)), (0, height))
    return full


def _without_jfif(data: bytes) -> bytes:
    """A tile's JPEG without its JFIF segment: TIFF's own tags say what it holds."""
    if data[2:4] == b"\xff\xe0":
        (length,) = struct.unpack(">H", data[4:6])
        return data[:2] + data[4 + length :]
    return data


def _word_aligned(size: int) -> int:
    return size + size % 2
