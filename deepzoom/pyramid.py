"""Stream an image through every pyramid level at once and hand tiles to a sink.

Rows of the full-resolution image arrive band by band. Each level cuts a tile
row as soon as it holds all of its rows (overlap included), halves its rows
into the level below with a 2x2 mean, and forgets rows no tile still needs.
So besides the decoded source, memory holds only a few bands per level, and
the level below never exists in full: that is what keeps the peak near the
size of the decode itself.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from . import dzi
from .formats import TileEncoder
from .geometry import DeepZoomGeometry
from .iiif import CONTENT_TYPE as IIIF_CONTENT_TYPE
from .iiif import IIIFLayout
from .memory import keep_freed_memory
from .naming import PyramidNames
from .pyramidal_tiff import PyramidalTiff, tiff_tile_count
from .settings import TileSettings
from .sinks import TileSink
from .source import SourceImage

Progress = Callable[[int], None]
Box = tuple[int, int, int, int]
TileStore = Callable[[int, int, Image.Image, Box], tuple[int, int]]  # (column, row, rows, box) -> (files, bytes)
IN_FLIGHT_BYTES = 32 * 2**20  # pixels of tiles queued for encoding: a few tile rows of a wide level
OUTPUTS = ("dzi", "tiff")


@dataclass(frozen=True)
class PyramidStats:
    width: int
    height: int
    levels: int
    tiles: int  # tiles made: Deep Zoom and IIIF files, and the TIFF's tiles
    bytes: int  # their bytes (a TIFF tile identical to one stored adds none)
    tiff_bytes: int = 0  # the pyramidal TIFF's size, where one was made


@dataclass(frozen=True)
class IIIFOutput:
    """Ask ``write_pyramid`` for a IIIF level-0 service too: its public URL and its tile size."""

    service_id: str
    tile_size: int = 512


def parse_outputs(text: str) -> tuple[str, ...]:
    """``"dzi"``, ``"tiff"`` or ``"dzi,tiff"`` (any order, spaces allowed) as the outputs' names."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",")))
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown or not names:
        raise ValueError(f"output {text!r} is not one of dzi, tiff or dzi,tiff")
    return tuple(name for name in OUTPUTS if name in names)


@dataclass
class _Grid:
    """One way a level is cut into tiles: its spans (tile size and overlap) and where each tile goes."""

    spans: DeepZoomGeometry
    store: TileStore
    next_row: int = 0


def write_pyramid(
    source: SourceImage,
    sink: TileSink,
    name: str,
    settings: TileSettings = TileSettings(),
    *,
    workers: int = 4,
    progress: Progress | None = None,
    iiif: IIIFOutput | None = None,
    outputs: Collection[str] = ("dzi",),
    before_publish: Callable[[], None] | None = None,
) -> PyramidStats:
    """Write every tile of ``source`` to ``sink``, then the ``.dzi`` descriptor.

    Tiles are encoded and stored on ``workers`` threads. If any tile fails,
    its exception is raised and no descriptor is written, so a viewer never
    sees a pyramid with holes. With ``iiif``, the same levels are also cut
    into a IIIF level-0 service under ``NAME_iiif/``, its ``info.json``
    written after its tiles. With ``"tiff"`` in ``outputs`` the same levels
    also fill ``NAME.tif``, a pyramidal TIFF published whole once every tile
    is in (with only ``"tiff"``, no Deep Zoom tiles are made). ``before_publish``
    is called once every tile is stored, before anything is published: it
    raises to publish nothing (the S3 side checks there that its source is
    still current).
    """
    keep_freed_memory()
    geometry = DeepZoomGeometry(*source.size, settings.tile_size, settings.overlap)
    names = PyramidNames(name)
    writer = _TileWriter(sink, settings, workers, progress)
    layout = IIIFLayout(*source.size, iiif.tile_size, writer.extension) if iiif else None
    tiff = None
    if "tiff" in outputs:
        tiff = PyramidalTiff(sink, names.tiff, *source.size, settings.tiff_tile_size, settings.quality)
    band_height = max(settings.tile_size, iiif.tile_size if iiif else 0, settings.tiff_tile_size if tiff else 0)
    band_height += band_height % 2  # one tile row, even so halving never splits a pair
    top = None
    for level in range(geometry.level_count):
        grids = []
        if "dzi" in outputs:
            grids.append(_Grid(geometry, functools.partial(writer.store_files, names, level)))
        if layout is not None and level in layout.levels:
            grids.append(_Grid(layout.grid, functools.partial(writer.store_iiif_files, layout, names, level)))
        if tiff is not None and level in tiff.levels:
            grids.append(_Grid(tiff.grid, functools.partial(_store_in_tiff, tiff, level)))
        top = _Level(level, geometry.level_size(level), grids, writer, band_height, below=top)
    assert top is not None
    try:
        for band in source.bands(band_height, settings.flatten_onto):
            top.push(band)
            del band  # not held while the next band decodes
        top.finish()
        tiles, size = writer.close()
        if before_publish is not None:
            before_publish()
        if tiff is not None:
            tiff.finish()
    except BaseException:
        writer.abort()
        if tiff is not None:
            tiff.abort()
        raise
    if layout is not None and iiif is not None:
        sink.put(names.iiif_info, layout.info_json(iiif.service_id), IIIF_CONTENT_TYPE)
    if "dzi" in outputs:
        sink.put(names.descriptor, dzi.descriptor(geometry, settings.format), dzi.CONTENT_TYPE)
    return PyramidStats(
        geometry.width, geometry.height, geometry.level_count, tiles, size, tiff.size if tiff is not None else 0
    )


def tile_total(
    size: tuple[int, int], settings: TileSettings, outputs: Collection[str], iiif: IIIFOutput | None = None
) -> int:
    """The tiles ``write_pyramid`` makes of an image of ``size`` (what its ``progress`` counts up to)."""
    total = DeepZoomGeometry(*size, settings.tile_size, settings.overlap).tile_count if "dzi" in outputs else 0
    if iiif is not None:
        total += len(IIIFLayout(*size, iiif.tile_size, settings.format).all_paths()) - 1  # not info.json
    if "tiff" in outputs:
        total += tiff_tile_count(*size, settings.tiff_tile_size)
    return total


def _store_in_tiff(
    tiff: PyramidalTiff, level: int, column: int, row: int, rows: Image.Image, box: Box
) -> tuple[int, int]:
    try:
        return 1, tiff.add(level, column, row, rows.crop(box))
    except BaseException as error:
        error.add_note(f"while storing the TIFF's tile ({column}, {row}) of level {level}")
        raise


class _Level:
    """One level of the pyramid, fed its rows top to bottom, in bands of any height.

    Rows are halved into the level below ``chunk`` rows at a time, so even a
    whole image pushed at once reaches the lower levels as small bands. Each
    of its grids cuts a tile row as soon as the rows it spans are held.
    """

    def __init__(
        self,
        level: int,
        size: tuple[int, int],
        grids: list[_Grid],
        writer: _TileWriter,
        chunk: int,
        below: _Level | None,
    ) -> None:
        self.level = level
        self.grids = grids
        self.chunk = chunk
        self.writer = writer
        self.below = below
        self.width, self.height = size
        self.rows: Image.Image | None = None
        self.rows_top = 0  # level row held in self.rows[0]
        self.halved = 0  # rows already passed down to the level below (or, at level 0, done with)

    @property
    def received(self) -> int:
        return self.rows_top + (self.rows.height if self.rows is not None else 0)

    def push(self, band: Image.Image) -> None:
        self._append(band)
        self._advance(until=self.received & ~1 if self.received < self.height else self.height)

    def finish(self) -> None:
        if self.received != self.height:
            raise RuntimeError(f"level {self.level} got {self.received} of {self.height} rows")
        self._advance(until=self.height)
        if self.below is not None:
            self.below.finish()

    def _advance(self, until: int) -> None:
        """Cut the tile rows and halve the rows (an even count, but at the bottom edge) held up to ``until``."""
        while self.halved < until:
            step_end = min(self.halved + self.chunk, until)
            self._cut_tile_rows(ready_until=step_end)
            self._halve(step_end - self.halved)
        self._cut_tile_rows(ready_until=self.received)

    def _append(self, band: Image.Image) -> None:
        """Add rows below those held, dropping the rows no tile or halving still needs."""
        if self.rows is None:
            self.rows = band
            return
        keep_from = self.halved
        for grid in self.grids:
            if grid.next_row < grid.spans.tile_grid(self.level)[1]:
                keep_from = min(keep_from, grid.spans.tile_span(grid.next_row, self.height)[0])
        kept_height = self.received - keep_from
        joined = Image.new(band.mode, (self.width, kept_height + band.height), None)  # None: not filled, all pasted
        joined.paste(self.rows, (0, self.rows_top - keep_from))  # rows above keep_from fall outside and are dropped
        joined.paste(band, (0, kept_height))
        self.rows, self.rows_top = joined, keep_from

    def _cut_tile_rows(self, ready_until: int) -> None:
        assert self.rows is not None
        for grid in self.grids:
            columns, rows = grid.spans.tile_grid(self.level)
            while grid.next_row < rows:
                top, bottom = grid.spans.tile_span(grid.next_row, self.height)
                if bottom > ready_until:
                    break
                for column in range(columns):
                    left, right = grid.spans.tile_span(column, self.width)
                    box = (left, top - self.rows_top, right, bottom - self.rows_top)
                    self.writer.submit(functools.partial(grid.store, column, grid.next_row), self.rows, box)
                grid.next_row += 1

    def _halve(self, count: int) -> None:
        """Pass ``count`` rows from ``self.halved`` on to the level below, as a 2x2 mean."""
        if self.below is not None:
            assert self.rows is not None
            top = self.halved - self.rows_top
            self.below.push(self.rows.reduce(2, (0, top, self.width, top + count)))
        self.halved += count


class _TileWriter:
    """Encodes and stores tiles on a thread pool, with a bounded number, and bytes, in flight.

    A queued tile keeps the rows it is cut from alive, so the pixels of queued tiles are capped
    (``IN_FLIGHT_BYTES``) as well as their count: with 64 upload threads, a count alone would let a
    wide image's tiles hold several bands of every level at once.
    """

    def __init__(self, sink: TileSink, settings: TileSettings, workers: int, progress: Progress | None) -> None:
        self.sink = sink
        self.format = settings.tile_format
        self.encoder = TileEncoder(self.format, settings.quality)
        self.extension = self.format.name
        self.progress = progress
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepzoom-tile")
        self._most_tiles = 2 * workers
        self._room = threading.Condition()
        self._queued_tiles = 0
        self._queued_bytes = 0
        self._error: BaseException | None = None
        self._tiles = 0
        self._bytes = 0

    def store_files(
        self, names: PyramidNames, level: int, column: int, row: int, rows: Image.Image, box: Box
    ) -> tuple[int, int]:
        """Encode a Deep Zoom tile and store it where OpenSeadragon looks for it."""
        return self._put([names.tile(level, column, row, self.extension)], rows, box)

    def store_iiif_files(
        self, layout: IIIFLayout, names: PyramidNames, level: int, column: int, row: int, rows: Image.Image, box: Box
    ) -> tuple[int, int]:
        """Encode a IIIF tile once and store it at each request it answers."""
        return self._put([names.iiif_prefix + path for path in layout.tile_paths(level, column, row)], rows, box)

    def _put(self, paths: list[str], rows: Image.Image, box: Box) -> tuple[int, int]:
        try:
            data = self.encoder.encode(rows, box)  # a JPEG tile is encoded from the rows in place: no crop
            for path in paths:
                self.sink.put(path, data, self.format.content_type)
        except BaseException as error:
            error.add_note(f"while storing tile {paths[0]}")
            raise
        return len(paths), len(data) * len(paths)

    def submit(self, store: Callable[[Image.Image, Box], tuple[int, int]], rows: Image.Image, box: Box) -> None:
        """Have ``store`` take the tile ``box`` of ``rows`` (encoded from ``rows`` in place, or cut).

        That happens on the pool too, so the thread feeding rows only halves and schedules:
        ``rows`` is never changed once made (a level joins new bands into a new image).
        """
        pixel_bytes = (box[2] - box[0]) * (box[3] - box[1]) * 4
        with self._room:
            self._room.wait_for(lambda: self._error is not None or self._has_room(pixel_bytes))
            if self._error is not None:
                raise self._error
            self._queued_tiles += 1
            self._queued_bytes += pixel_bytes
        future = self._pool.submit(self._store, store, rows, box)
        future.add_done_callback(functools.partial(self._release, pixel_bytes))

    def _has_room(self, pixel_bytes: int) -> bool:
        if self._queued_tiles == 0:
            return True  # one tile always goes, however large
        return self._queued_tiles < self._most_tiles and self._queued_bytes + pixel_bytes <= IN_FLIGHT_BYTES

    def _release(self, pixel_bytes: int, future: Future[None]) -> None:
        with self._room:
            self._queued_tiles -= 1
            self._queued_bytes -= pixel_bytes
            self._room.notify_all()

    def _store(self, store: Callable[[Image.Image, Box], tuple[int, int]], rows: Image.Image, box: Box) -> None:
        if self._error is not None:
            return  # a tile failed: those still queued are neither encoded nor sent
        try:
            files, size = store(rows, box)
            with self._room:
                self._tiles += files
                self._bytes += size
            if self.progress is not None:
                self.progress(files)
        except BaseException as error:
            with self._room:
                if self._error is None:
                    self._error = error
                self._room.notify_all()
            raise

    def close(self) -> tuple[int, int]:
        """Wait for every tile; raise the first failure. Returns (tiles, bytes)."""
        self._pool.shutdown(wait=True)
        self.encoder.close()
        if self._error is not None:
            raise self._error
        return self._tiles, self._bytes

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.encoder.close()
