"""What an upload may ask of a conversion, judged from its header before any pixel is decoded.

Anyone who can write to the source bucket chooses the bytes, so the work a
file can cause is bounded by rules that real images never meet:

* **pixels** (``max_pixels``): a cap on work the user sets;
* **memory**: the peak the file's decode path is estimated to reach (see
  :mod:`deepzoom.memory`) must fit the memory there is;
* **aspect ratio** (``max_aspect_ratio``, 10,000:1): a pyramid's tile count
  follows its long side, so a 4,000,000 x 1 PNG of 4 KB asks for 31,512
  tiles, a 100,000,000 x 1 one for about 787,000. Real strips stay far
  below: a 100,000 x 60 line-scan panorama is 1,667:1;
* **progressive JPEG scans** (``max_jpeg_scans``, 100): encoders write 10
  or so (libjpeg's default progression has 10, mozjpeg's about as many);
  every extra scan makes libjpeg pass over every coefficient again, so a
  441 KB file repeating its last scan 2,000 times costs minutes;
* **TIFF strips and tiles** (``min_pixels_per_tiff_piece``, 1,024): each
  strip or tile costs libtiff a fixed overhead, so a file whose pieces
  average under 1,024 pixels (one-row strips of a 1-pixel-wide image, say)
  is refused; 32 x 32 tiles and one-row strips of a 1,024-pixel-wide scan
  still pass, and so does any file of at most 1,000 pieces;
* **formats** (``formats``): only the decoders of the formats we accept are
  tried, by content; nothing else runs (no Ghostscript for an EPS named
  ``photo.jpg``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from .errors import ImageTooLarge, InvalidImage
from .jpeg import count_jpeg_scans
from .memory import estimated_peak
from .settings import DEFAULT_MAX_PIXELS
from .tiff import TiffLayout

# Pillow's name for the formats each accepted extension may hold (by content, whatever the extension says).
FORMATS_BY_EXTENSION = {
    "jpg": ("JPEG",),  # a multi-picture (MPO) file is opened by the JPEG plugin too
    "jpeg": ("JPEG",),
    "png": ("PNG",),
    "tif": ("TIFF",),
    "tiff": ("TIFF",),
    "webp": ("WEBP",),
    "gif": ("GIF",),
    "bmp": ("BMP",),
    "heic": ("HEIF",),
    "heif": ("HEIF",),
    "avif": ("AVIF",),
    "jp2": ("JPEG2000",),
    "j2k": ("JPEG2000",),
    "jpf": ("JPEG2000",),
    "jpx": ("JPEG2000",),
}
IMAGE_FORMATS = frozenset(name for names in FORMATS_BY_EXTENSION.values() for name in names)
_FREE_TIFF_PIECES = 1_000  # any file may have this many strips or tiles, however small
_pillow_limit_lock = threading.RLock()


@contextmanager
def pillow_pixel_limit_lifted() -> Iterator[None]:
    """Pillow refuses images over 179 MP outright; these limits replace that guard."""
    with _pillow_limit_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def formats_for(extensions: frozenset[str] | set[str]) -> frozenset[str]:
    """The Pillow formats files with these extensions may hold; an unknown extension is an error."""
    unknown = sorted(set(extensions) - set(FORMATS_BY_EXTENSION))
    if unknown:
        raise ValueError(f"no image format is known for the extension(s) {', '.join(unknown)}")
    return frozenset(name for extension in extensions for name in FORMATS_BY_EXTENSION[extension])


@dataclass(frozen=True)
class Limits:
    """What a file may ask of a conversion; the defaults suit any real image."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    memory: int | None = None  # bytes the conversion may use; None: not checked
    max_aspect_ratio: float = 10_000
    max_jpeg_scans: int = 100
    min_pixels_per_tiff_piece: int = 1_024
    formats: frozenset[str] = IMAGE_FORMATS

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_aspect_ratio < 1 or self.max_jpeg_scans < 1:
            raise ValueError("max_pixels, max_aspect_ratio and max_jpeg_scans must be at least 1")
        if self.min_pixels_per_tiff_piece < 0:
            raise ValueError("min_pixels_per_tiff_piece must not be negative")
        unknown = sorted(set(self.formats) - IMAGE_FORMATS)
        if unknown:
            raise ValueError(f"formats {', '.join(unknown)} are not among {', '.join(sorted(IMAGE_FORMATS))}")

    def check(self, image: Image.Image, refusal: str | None) -> None:
        """Refuse ``image`` (opened, not decoded; ``refusal``: why it cannot stream, or None) if it asks too much."""
        width, height = image.size
        if width < 1 or height < 1:
            raise InvalidImage(f"image has no pixels ({width}x{height})")
        if width * height > self.max_pixels:
            raise ImageTooLarge(
                f"{width}x{height} is {width * height / 1e6:,.0f} MP, over the limit of {self.max_pixels / 1e6:,.0f} MP"
            )
        if max(width, height) > self.max_aspect_ratio * min(width, height):
            raise ImageTooLarge(
                f"{width}x{height}: its long side is {max(width, height) / min(width, height):,.0f} times its short "
                f"side, past the limit of {self.max_aspect_ratio:,.0f} (a pyramid of almost nothing but tiles)"
            )
        self._check_tiff_pieces(image)
        if self.memory is not None:
            needed = estimated_peak(image, streamed=refusal is None)
            if needed > self.memory:
                path = "streamed" if refusal is None else f"decoded whole: {refusal}"
                raise ImageTooLarge(
                    f"{width}x{height} ({path}) needs about {needed / 2**20:,.0f} MB to convert, "
                    f"more than the {self.memory / 2**20:,.0f} MB there are"
                )

    def check_scans(self, image: Image.Image) -> None:
        """Refuse a progressive JPEG with more scans than any encoder writes (needs the whole file)."""
        if image.format not in ("JPEG", "MPO") or not image.info.get("progressive") or image.fp is None:
            return
        position = image.fp.tell()
        try:
            image.fp.seek(0)
            scans = count_jpeg_scans(image.fp, stop_after=self.max_jpeg_scans)
        finally:
            image.fp.seek(position)
        if scans > self.max_jpeg_scans:
            raise InvalidImage(
                f"progressive JPEG with more than {self.max_jpeg_scans} scans (encoders write about 10): "
                "each one is another pass over the whole image"
            )

    def _check_tiff_pieces(self, image: Image.Image) -> None:
        if image.format != "TIFF":
            return
        pieces = len(TiffLayout.of(image).offsets)
        allowed = max(_FREE_TIFF_PIECES, image.width * image.height // max(self.min_pixels_per_tiff_piece, 1))
        if pieces > allowed:
            raise InvalidImage(
                f"TIFF of {image.width}x{image.height} in {pieces:,} strips or tiles: under "
                f"{self.min_pixels_per_tiff_piece:,} pixels each on average, more pieces than any writer makes"
            )


def format_of(head: bytes) -> str | None:
    """What Pillow would take ``head`` (a file's first bytes) to be, from its plugins' signature checks alone."""
    Image.init()
    for name, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(head):
                return name
        except Exception:  # noqa: BLE001,S112 - a signature check that cannot judge these bytes says nothing
            continue
    return None
