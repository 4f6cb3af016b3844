"""Tile encodings: file extension, Content-Type and Pillow save options, and the encoder that uses them."""

from __future__ import annotations

import os
import queue
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image, ImageFile, JpegImagePlugin


@dataclass(frozen=True)
class TileFormat:
    name: str
    content_type: str
    keeps_alpha: bool
    uses_quality: bool

    def save_options(self, quality: int) -> dict[str, Any]:
        """Keyword arguments for ``Image.save``: the format's Pillow name and its settings."""
        options: dict[str, Any] = {"quality": quality} if self.uses_quality else {"compress_level": 6}
        return {"format": _PILLOW_NAMES[self.name], **options}


_PILLOW_NAMES = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}

FORMATS: dict[str, TileFormat] = {
    "jpg": TileFormat("jpg", "image/jpeg", keeps_alpha=False, uses_quality=True),
    "png": TileFormat("png", "image/png", keeps_alpha=True, uses_quality=False),
    "webp": TileFormat("webp", "image/webp", keeps_alpha=True, uses_quality=True),
}
ALIASES = {"jpeg": "jpg"}


def tile_format(name: str) -> TileFormat:
    """Look a format up by extension, case-insensitively (``jpeg`` is ``jpg``)."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        return FORMATS[key]
    except KeyError:
        raise ValueError(f"unknown tile format {name!r}; choose one of {', '.join(FORMATS)}") from None


class TileEncoder:
    """Encodes tiles to bytes on any number of threads, in parallel.

    Pillow's JPEG encoder lets go of the GIL only when it writes to a file
    descriptor; into a ``BytesIO`` it holds the GIL throughout, so tiles
    encoded on a pool would take turns on one core. So each tile is encoded
    into an in-memory file (a memfd), one per thread at a time, and read back.
    (PNG data goes through a wrapper without a descriptor and WebP lets go of
    the GIL anyway: for those the file gains nothing and costs little.)
    ``close`` releases those files.

    A JPEG tile is handed to Pillow's encoder directly once ``Image.save`` has
    encoded the first tile of its mode: ``save`` works out the encoder's
    settings from its options anew for every tile, some 30 microseconds of
    Python under the GIL, the same settings each time. They are taken from
    that first tile, and the bytes are those ``save`` writes (tests compare).
    A tile with a comment of its own (``save`` copies ``info["comment"]``
    into the file) still goes through ``save``.
    """

    def __init__(self, tile_format: TileFormat, quality: int, **options: Any) -> None:
        """``options`` go to ``Image.save`` beside the format's own (a TIFF's tiles leave out their tables)."""
        self.options = tile_format.save_options(quality) | options
        self._spare: queue.SimpleQueue[BinaryIO] = queue.SimpleQueue()
        self._opened: list[BinaryIO] = []
        self._jpeg_settings: dict[str, tuple[Any, ...]] = {}  # mode -> what save gave Pillow's JPEG encoder

    def encode(self, image: Image.Image, box: tuple[int, int, int, int] | None = None) -> bytes:
        """The encoded bytes of ``image``, or of its ``box`` as ``image.crop(box)`` would give it (a JPEG
        tile is then read from ``image`` in place, without the copy a crop makes)."""
        file = self._take()
        try:
            file.seek(0)
            settings = self._jpeg_settings.get(image.mode)
            if settings is not None and not image.info.get("comment"):
                _encode_jpeg(image, box or (0, 0, *image.size), settings, file.fileno())
            else:
                tile = image if box is None else image.crop(box)
                tile.save(file, **self.options)
                self._remember_jpeg_settings(tile)
            return os.pread(file.fileno(), file.tell(), 0)
        finally:
            self._spare.put(file)

    def _remember_jpeg_settings(self, tile: Image.Image) -> None:
        """Keep the settings ``save`` gave the JPEG encoder, where they hold for every tile of the mode:
        Pillow 13's 14 of them, none from the tile itself (comment, EXIF, ICC, XMP), no progressive or
        optimised coding (whose buffer size depends on the tile)."""
        settings = getattr(tile, "encoderconfig", None)
        if self.options["format"] != "JPEG" or not isinstance(settings, tuple) or len(settings) != 14:
            return
        progressive, optimize, comment, extra, exif = settings[1], settings[3], settings[11], settings[12], settings[13]
        if not (progressive or optimize or comment or extra or exif):
            self._jpeg_settings[tile.mode] = settings  # a dict item is set atomically

    def close(self) -> None:
        for file in self._opened:
            file.close()

    def _take(self) -> BinaryIO:
        try:
            return self._spare.get_nowait()
        except queue.Empty:
            file = _scratch_file()
            self._opened.append(file)  # list.append is atomic, so threads may race here
            return file


def _encode_jpeg(
    image: Image.Image, box: tuple[int, int, int, int], settings: tuple[Any, ...], descriptor: int
) -> None:
    """What ``Image.save`` does for a JPEG once it has its settings (``ImageFile._save``): the pixels in
    ``box`` (the encoder reads a region of an image as it reads a whole one), into the descriptor, in
    blocks of at least a row; the GIL is let go while it encodes and writes."""
    image.load()
    left, top, right, bottom = box
    if not (0 <= left < right <= image.width and 0 <= top < bottom <= image.height):
        raise ValueError(f"tile {box} is not inside the {image.width}x{image.height} image")
    encoder = Image._getencoder(image.mode, "jpeg", JpegImagePlugin.RAWMODE[image.mode], settings)
    try:
        encoder.setimage(image.im, box)
        status = encoder.encode_to_file(descriptor, max(ImageFile.MAXBLOCK, (right - left) * 4))
    finally:
        encoder.cleanup()
    if status < 0:
        raise ImageFile._get_oserror(status, encoder=True)


def _scratch_file() -> BinaryIO:
    """An unnamed file in memory (a memfd), or where there is none, an unlinked file in the temporary folder."""
    try:
        return open(os.memfd_create("deepzoom-tile", os.MFD_CLOEXEC), "w+b", buffering=0)
    except (AttributeError, OSError):  # not Linux, or memfd refused
        return tempfile.TemporaryFile(buffering=0)
