"""Image normalisation: whatever people upload, handed out as 8-bit sRGB bands.

The file is decoded once, in its own mode: band by band where it can stream
(see :mod:`deepzoom.streaming`), else whole. Everything else (EXIF
orientation, ICC to sRGB, signed, deep or palette or CMYK pixels to RGB(A),
a transparent colour to alpha, alpha flattening) is applied to one
horizontal band at a time, so no image ever needs a second full-size copy.
Where Pillow's reading of the samples differs from libpng's or libtiff's,
it is corrected here (or in the decode, for what a band cannot mend), or
the file refused naming what cannot be shown.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageCms, UnidentifiedImageError

from . import libtiff, tiff
from .errors import DeepZoomError, ImageTooLarge, InvalidImage
from .limits import Limits, format_of, pillow_pixel_limit_lifted
from .streaming import (
    MappingRefused,
    StreamingUnavailable,
    decode_whole,
    self_test_refusal,
    stream_refusal,
    stream_rows,
)

log = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_270,
    Image.Transpose.ROTATE_90,
    Image.Transpose.TRANSVERSE,
}
_DEEP_MODES = {"I", "F"}  # and every "I;16..." variant
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_GREY_MODES = {"1", "L", "LA", "La"}
_ICC_MODES = {"RGB", "RGBA", "CMYK", "L", "LA", "P", "PA"}
_ICC_INPUT_MODE = {"RGBA": "RGB", "LA": "L", "P": "RGB", "PA": "RGB"}  # alpha goes round the transform
_SRGB = ImageCms.createProfile("sRGB")
_PNG_SAMPLE_BITS = {"1": 1, "L;2": 2, "L;4": 4, "L": 8, "I;16B": 16, "RGB": 8}  # Pillow's raw mode: bits a sample
# What code raises when it is wrong, never because of a file's bytes: our code, or a Pillow internal it relies on
# that an upgrade changed (Image._getdecoder, Image.core.map_buffer, tile tuples). Such an exception is a bug,
# raised as it is (the conversion is retried, and logged at error level with its traceback), never bad input.
_BUGS = (AttributeError, TypeError, ImportError, NameError, AssertionError)


@dataclass
class SourceImage:
    """An image that hands out normalised bands of its upright view.

    ``image`` is decoded whole unless ``streamed``: then it is the opened file,
    whose rows are decoded as the bands are asked for. ``decoding`` says which,
    and why, for the conversion's log line.
    """

    image: Image.Image
    transpose: Image.Transpose | None
    icc_transform: ImageCms.ImageCmsTransform | None
    deep_scale: tuple[float, float] | None
    has_alpha: bool
    streamed: bool = False
    decoding: str = "decoded whole"
    sample_table: list[int] | None = None  # applied to 8-bit samples first: see _sample_table_for

    @property
    def size(self) -> tuple[int, int]:
        """Width and height as the image is meant to be seen (after orientation)."""
        width, height = self.image.size
        return (height, width) if self.transpose in _SWAPS_AXES else (width, height)

    def bands(self, height: int, flatten_onto: tuple[int, int, int] | None = None) -> Iterator[Image.Image]:
        """The upright image as RGB or RGBA bands of ``height`` rows, top to bottom.

        Alpha is kept unless ``flatten_onto`` names a colour to composite onto.
        A decoded image that needs no change is handed out whole, with no copy.
        A streamed one is decoded as the bands are taken; its decode errors
        surface here, as :class:`InvalidImage`.
        """
        if self.streamed:  # map() keeps no band alive while the next one decodes, as a loop variable would
            with _decoder_failures_as_bad_input(f"{self.image.format} data"):
                yield from map(
                    functools.partial(self._streamed_band, flatten_onto=flatten_onto), stream_rows(self.image, height)
                )
            return
        if self._needs_no_change(self.image):
            yield self.image
            return
        full_height = self.size[1]
        for top in range(0, full_height, height):
            band = self.image.crop(self._stored_box(top, min(top + height, full_height)))
            if self.transpose is not None:
                band = band.transpose(self.transpose)
            yield self._normalise(band, flatten_onto)

    def _streamed_band(self, band: Image.Image, flatten_onto: tuple[int, int, int] | None) -> Image.Image:
        if self.transpose is not None:  # at most a mirror, or the image would not stream
            band = band.transpose(self.transpose)
        return band if self._needs_no_change(band) else self._normalise(band, flatten_onto)

    def _needs_no_change(self, band: Image.Image) -> bool:
        """Is ``band`` (oriented already if it was streamed) what the tiles need as it is?"""
        plain = band.mode == "RGB" and not self.has_alpha  # so there is no alpha to flatten either
        oriented = self.streamed or self.transpose is None
        return plain and oriented and self.icc_transform is None

    def _stored_box(self, top: int, bottom: int) -> tuple[int, int, int, int]:
        """The box of the stored (not yet oriented) pixels that become those rows."""
        width, height = self.image.size
        match self.transpose:
            case None | Image.Transpose.FLIP_LEFT_RIGHT:
                return 0, top, width, bottom
            case Image.Transpose.ROTATE_180 | Image.Transpose.FLIP_TOP_BOTTOM:
                return 0, height - bottom, width, height - top
            case Image.Transpose.TRANSPOSE | Image.Transpose.ROTATE_270:
                return top, 0, bottom, height
            case _:  # ROTATE_90, TRANSVERSE: rows come from columns counted from the right
                return width - bottom, 0, width - top, height

    def _normalise(self, band: Image.Image, flatten_onto: tuple[int, int, int] | None) -> Image.Image:
        if self.sample_table is not None:
            band = band.point(self.sample_table)
        alpha = None
        if self.deep_scale is not None:
            transparent = band.info.get("transparency")
            if transparent is not None:  # a 16-bit PNG's tRNS grey, matched at full depth: scaled, two may meet
                alpha = band.convert("I").point(_transparent_value_table(transparent), "L")
            scale, offset = self.deep_scale
            band = band.convert("F").point(lambda value: value * scale + offset).convert("L")
            band.info.pop("transparency", None)
        elif self.has_alpha:
            # grey stays grey here, so the colour part is in the mode the ICC transform expects
            band = band.convert("LA" if band.mode in _GREY_MODES else "RGBA")
            alpha = band.getchannel("A")
            band = band.convert(band.mode[:-1])
        if self.icc_transform is not None:
            if band.mode != self.icc_transform.input_mode:  # a palette image's colours
                band = band.convert(self.icc_transform.input_mode)
            band = ImageCms.applyTransform(band, self.icc_transform)
        if band.mode != "RGB":
            band = band.convert("RGB")
        if alpha is None:
            return band
        if flatten_onto is None:
            band.putalpha(alpha)
            return band
        flat = Image.new("RGB", band.size, flatten_onto)
        flat.paste(band, mask=alpha)
        return flat


def open_image(path: str | os.PathLike[str], limits: Limits = Limits()) -> SourceImage:
    """Check ``path`` and prepare its decode; raise :class:`InvalidImage` or :class:`ImageTooLarge` if it won't do.

    Only the decoders of ``limits.formats`` are tried, and ``limits`` is checked
    from the header, before any pixel is decoded. An image that can stream is
    decoded as its bands are taken (its decode errors then surface from
    :meth:`SourceImage.bands`); any other is decoded here. Every complaint a
    decoder makes about the file is :class:`InvalidImage`; its warnings are
    logged at debug level. A bug's error (AttributeError, TypeError...) is
    raised as it is, and so is :class:`~deepzoom.streaming.StreamingUnavailable`
    for an image that fits only streamed while streaming is out of order.
    """
    name = os.fspath(path)
    if os.path.getsize(name) == 0:
        raise InvalidImage("empty file (0 bytes)")
    with _decoder_failures_as_bad_input("image header"):  # a hostile header can break the checks too
        image = _opened(name, limits.formats)
        _correct_png_transparency(image)
        refusal = _stream_refusal(image)
        _check_limits(limits, image, refusal)
    pixels = image
    if refusal is None:
        decoding = "streamed"
    else:
        decoding = f"decoded whole: {refusal}"
        limits.check_scans(image)
        with _decoder_failures_as_bad_input(f"{image.format} data"):
            pixels = decode_whole(image)
    return SourceImage(
        image=pixels,
        transpose=_transpose_for(image),
        icc_transform=_icc_transform_for(image),
        deep_scale=_deep_scale_for(pixels),
        has_alpha=image.mode in _ALPHA_MODES or "transparency" in image.info,
        streamed=refusal is None,
        decoding=decoding,
        sample_table=_sample_table_for(image),
    )


def check_header(head: bytes, limits: Limits = Limits()) -> bool:
    """Apply :func:`open_image`'s limits to the first bytes of a file, before it is fetched whole.

    Raises as :func:`open_image` would; returns False when ``head`` is too
    short to tell (the header runs on, or the format keeps it at the end).
    """
    found = format_of(head)
    if found is not None and found not in limits.formats:
        raise _not_accepted(found, limits.formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _opened(io.BytesIO(head), limits.formats)
            refusal = _stream_refusal(image)
    except Exception:  # noqa: BLE001 - a cut-off header fails in many ways; open_image judges the whole file
        return False
    with _decoder_failures_as_bad_input("image header"):
        _check_limits(limits, image, refusal)
    return True


def _check_limits(limits: Limits, image: Image.Image, refusal: str | None) -> None:
    """``limits.check``, but an image refused only because streaming its kind is out of order (it failed the
    self-test) is not bad input: it fits streamed, so a fixed deployment converts it."""
    try:
        limits.check(image, refusal)
    except ImageTooLarge:
        if refusal is None or refusal != self_test_refusal(image):
            raise
        limits.check(image, None)  # too large even streamed: that refusal stands
        raise StreamingUnavailable(f"{image.width}x{image.height} fits in memory only streamed, and {refusal}") from None


@contextmanager
def _decoder_failures_as_bad_input(what: str) -> Iterator[None]:
    """A decoder's complaint about the file (OSError, SyntaxError, ValueError, EOFError, MemoryError,
    NotImplementedError, Pillow's bomb error, a truncated stream...) is the file's fault: one line, never a
    retry. A bug's error (see :func:`_is_complaint_about_the_file`) is raised as it is. A decoder's warnings,
    and Pillow's log lines, go to the debug log; the latest libtiff error message (libtiff would print it)
    into the one line."""
    libtiff.install()
    _route_pillow_log()
    since = libtiff.mark()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (DeepZoomError, MappingRefused, StreamingUnavailable):
            raise
        except Exception as error:  # noqa: BLE001 - a bug's error is raised again
            if not _is_complaint_about_the_file(error):
                error.add_note(f"(raised while decoding {what}: an error of a bug, so not reported as bad input)")
                raise
            native = libtiff.latest_since(since)
            detail = f" ({native})" if native else ""
            raise InvalidImage(f"cannot decode {what}: {_one_line(error)}{detail}") from None
        finally:
            for warning in caught:
                log.debug("decoder warning: %s", warning.message)


def _is_complaint_about_the_file(error: Exception) -> bool:
    """Is ``error`` what a decoder (or our reading of a header) says of bytes it cannot take, not a bug?

    A bug is one of :data:`_BUGS`, wherever it was raised. A Pillow plugin that trips over a file raises
    SyntaxError, ValueError, KeyError, struct.error or OSError (the fuzzing tests in ``test_hostile.py`` hold
    it to that), and where a file's values reach code that would raise a bug's error (a TIFF's offsets of
    the wrong type, say), they are checked first, as :class:`InvalidImage`.
    """
    return not isinstance(error, _BUGS)


_pillow_log_routed: list[bool] = []


def _route_pillow_log() -> None:
    """Pillow's plugins log what they find wrong in a file (``More samples per pixel than can be decoded``) at
    warning and error level, which Python prints on stderr where logging is not set up (the CLI), or logs
    beside the conversion's one line: they are the decoder's warnings, so they go to the debug log."""
    if _pillow_log_routed:
        return
    _pillow_log_routed.append(True)
    pillow = logging.getLogger("PIL")
    pillow.addHandler(_PillowLogToDebug())
    pillow.propagate = False


class _PillowLogToDebug(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log.debug("decoder log: %s: %s", record.name, record.getMessage())


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return (
        text if isinstance(error, (OSError, SyntaxError, ValueError, EOFError)) else f"{type(error).__name__}: {text}"
    )


def _stream_refusal(image: Image.Image) -> str | None:
    """Why ``image`` must be decoded whole, if it must: its format, an orientation that reorders rows, or
    streaming its kind failed the self-test."""
    refusal = stream_refusal(image)
    if refusal is None and _transpose_for(image) not in (None, Image.Transpose.FLIP_LEFT_RIGHT):
        return "EXIF orientation that turns or flips the rows upside down"
    return refusal if refusal is not None else self_test_refusal(image)


def _opened(file: str | io.BytesIO, formats: frozenset[str]) -> Image.Image:
    """``file`` opened by the first plugin of ``formats`` that knows its content, or InvalidImage naming it."""
    Image.init()  # every built-in plugin registered, or Pillow cannot be told which of them to try
    while True:
        try:
            with pillow_pixel_limit_lifted():
                return Image.open(file, formats=sorted(formats & Image.OPEN.keys()))
        except UnidentifiedImageError:
            if not _registered_heif(formats):
                break
    with open(file, "rb") if isinstance(file, str) else contextlib.nullcontext(file) as stream:
        stream.seek(0)
        found = format_of(stream.read(64))
        reason = tiff.unreadable_reason(stream) if found == "TIFF" and found in formats else None
    if found is None or found in formats:
        raise InvalidImage(reason or "not an image in a format Pillow can read") from None
    raise _not_accepted(found, formats)


def _not_accepted(found: str, formats: frozenset[str]) -> InvalidImage:
    return InvalidImage(f"the content is {found}, not one of the accepted formats ({', '.join(sorted(formats))})")


def _registered_heif(formats: frozenset[str]) -> bool:
    """Register pillow-heif's opener if HEIF is accepted and it is not yet: phones upload HEIC, but the
    plugin takes about 30 ms to import, a few percent of a small conversion, so only files that no
    built-in plugin reads pay for it. True if it was registered now (so opening is worth another try)."""
    if "HEIF" not in formats or "HEIF" in Image.OPEN:
        return False
    import pillow_heif

    pillow_heif.register_heif_opener()
    return True


def _correct_png_transparency(image: Image.Image) -> None:
    """Make a PNG's transparent colour (tRNS) what libpng matches: the stored value, its bits above the
    sample depth masked off (the PNG spec says decoders must), at the scale of Pillow's samples.

    Pillow widens 1-, 2- and 4-bit grey samples to 0..255 but keeps the tRNS grey as stored (a 1-bit
    one it turns into 255 if any bit is set), so a 2-bit image's transparent 1 never meets its pixels'
    85. A 16-bit colour image is refused: Pillow keeps only the high byte of each sample, so its tRNS
    colour cannot be told from its neighbours (a 16-bit grey one keeps all 16 bits, and is matched
    before they are scaled, in :meth:`SourceImage._normalise`).
    """
    if image.format != "PNG" or "transparency" not in image.info or image.mode not in ("1", "L", "I;16", "RGB"):
        return
    rawmode = image.tile[0].args if image.tile else None
    if rawmode == "RGB;16B":
        raise InvalidImage("16-bit colour PNG with a transparent colour (tRNS): Pillow reads 8 of its 16 bits")
    bits = _PNG_SAMPLE_BITS.get(rawmode) if isinstance(rawmode, str) else None
    colour = image.mode == "RGB"
    stored = _png_chunk(image, b"tRNS")
    if bits is None or stored is None or len(stored) < (6 if colour else 2):  # (Pillow refuses a short one)
        return
    mask = (1 << bits) - 1
    widened = 255 // mask if bits <= 8 else 1  # Pillow's factor from fewer than 8 bits to 0..255
    stored_values = struct.unpack(">3H", stored[:6]) if colour else struct.unpack(">H", stored[:2])
    values = [(value & mask) * widened for value in stored_values]
    image.info["transparency"] = tuple(values) if colour else values[0]


def _png_chunk(image: Image.Image, kind: bytes) -> bytes | None:
    """The data of ``image``'s first ``kind`` chunk before its pixel data (IDAT), if it has one."""
    stream = image.fp
    assert stream is not None
    position = stream.tell()
    try:
        stream.seek(8)
        while len(header := stream.read(8)) == 8:
            length, found = struct.unpack(">I4s", header)
            if found == kind:
                return stream.read(length)
            if found == b"IDAT":
                return None
            stream.seek(length + 4, io.SEEK_CUR)
        return None
    finally:
        stream.seek(position)


@functools.lru_cache(maxsize=4)
def _transparent_value_table(value: int) -> list[int]:
    """A point table from 16-bit samples (as Pillow's "I") to alpha: 0 for ``value``, else 255."""
    table = [255] * 65536
    if 0 <= value < 65536:
        table[value] = 0
    return table


def _transpose_for(image: Image.Image) -> Image.Transpose | None:
    if image.format == "PNG" and "exif" not in image.info:
        return None  # else getexif() decodes the whole image to look behind it (streaming checked there is none)
    try:
        orientation = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not cost the picture  # noqa: BLE001
        return None
    return _TRANSPOSE_FOR_ORIENTATION.get(orientation)


def _deep_scale_for(image: Image.Image) -> tuple[float, float] | None:
    """Linear map of 16-bit, 32-bit integer or float samples onto 0..255.

    16-bit data uses its full range (0..65535), and a TIFF's 9- to 15-bit
    data, which Pillow reads unscaled into 16 bits, the range of its bits
    (0..4095 for 12); a TIFF whose 0 is white (PhotometricInterpretation 0,
    which Pillow undoes itself only up to 8 bits) is turned over, as libtiff
    readers do. 32-bit and float data, whose range is not fixed, are
    stretched from their own minimum to maximum.
    The offsets carry +0.5 because Pillow truncates when it converts F to L.
    """
    if image.mode.startswith("I;16"):
        tags = getattr(image, "tag_v2", {}) if image.format == "TIFF" else {}
        bits = tuple(tags.get(tiff.BITS_PER_SAMPLE, (16,)))[0]
        top = (1 << bits) - 1 if 9 <= bits <= 16 else 65535
        if tags.get(tiff.PHOTOMETRIC) == 0:
            return -255 / top, 255.5
        return 255 / top, 0.5
    if image.mode not in _DEEP_MODES:
        return None
    low, high = image.getextrema()
    if high <= low:
        return 0.0, 0.0 if high <= 0 else 255.0
    return 255 / (high - low), 0.5 - low * 255 / (high - low)


def _sample_table_for(image: Image.Image) -> list[int] | None:
    """A point table for signed 8-bit TIFF samples (SampleFormat 2), which Pillow reads as unsigned.

    It moves -128..127 to 0..255: the type's least value is black and its greatest white, as TIFF 6.0's
    defaults for SMinSampleValue and SMaxSampleValue have it. Read unsigned, -1 would be white and 0 black.
    """
    if image.format != "TIFF" or image.mode != "L":
        return None
    sample_format = image.tag_v2.get(tiff.SAMPLE_FORMAT, (1,))  # type: ignore[attr-defined]
    if tuple(sample_format)[:1] != (2,):
        return None
    return [value ^ 0x80 for value in range(256)]  # two's complement plus 128: the top bit flipped


def _icc_transform_for(image: Image.Image) -> ImageCms.ImageCmsTransform | None:
    """A transform from the embedded profile to sRGB, or None if there is nothing to do."""
    data = image.info.get("icc_profile")
    if not data or image.mode not in _ICC_MODES:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
        if ImageCms.getProfileDescription(profile).strip().lower().startswith("srgb"):  # not "Linear sRGB"
            return None
        return ImageCms.buildTransform(profile, _SRGB, _ICC_INPUT_MODE.get(image.mode, image.mode), "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        log.warning("ignoring unusable ICC profile: %s", error)
        return None
