"""A small picture of the whole image within seconds, where a reduced decode is cheap: a JPEG's DCT scaling
(libjpeg decodes at 1/8 size, skipping most of the inverse transform) or a TIFF's reduced-resolution page
(a pyramidal TIFF carries its own). Other formats would need the full decode the pyramid is about to do, so
they go without one.
"""

from __future__ import annotations

import io
import logging
import os

from PIL import Image, ImageCms

from .limits import pillow_pixel_limit_lifted

log = logging.getLogger(__name__)
SIDE = 1024  # the longest side of a preview
CONTENT_TYPE = "image/jpeg"
_SRGB = ImageCms.createProfile("sRGB")
_T = Image.Transpose
_ORIENTATIONS = {  # EXIF orientation -> the turn that shows the picture upright, as ImageOps.exif_transpose
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}


def preview(path: str | os.PathLike[str], side: int = SIDE, quality: int = 85) -> bytes | None:
    """A JPEG of the image at ``path``, at most ``side`` pixels a side, oriented and in sRGB; None where
    no reduced decode is cheap, or the reduced decode fails (the pyramid's own decode then judges the file).
    ``path`` was admitted by ``open_image`` already (its limits checked)."""
    try:
        return _preview(path, side, quality)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        log.debug("no preview of %s: %s", path, error)
        return None


def _preview(path: str | os.PathLike[str], side: int, quality: int) -> bytes | None:
    with pillow_pixel_limit_lifted(), Image.open(path, formats=("JPEG", "TIFF")) as image:  # JPEG opens MPO too
        small = _reduced(image, side)
        if small is None:
            return None
        small = _in_srgb(small, image.info.get("icc_profile"))
        if turn := _ORIENTATIONS.get(image.getexif().get(0x0112, 1)):
            small = small.transpose(turn)
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        encoded = io.BytesIO()
        small.save(encoded, "JPEG", quality=quality)
        return encoded.getvalue()


def _reduced(image: Image.Image, side: int) -> Image.Image | None:
    """The image decoded at a reduced size no smaller than ``side``, or None."""
    if image.format in ("JPEG", "MPO") and image.mode in ("L", "RGB", "CMYK"):
        image.draft(image.mode, (side, side))  # the smallest DCT scale (1/2 to 1/8) still at least side x side
        image.load()
        return image
    if image.format == "TIFF" and getattr(image, "n_frames", 1) > 1:
        pages = []
        for number in range(image.n_frames):
            image.seek(number)
            pages.append((max(image.size), number))
        fitting = [page for page in pages if page[0] >= side and page[0] <= 4 * side]
        if not fitting:
            return None
        image.seek(min(fitting)[1])
        image.load()
        return image.copy()
    return None


def _in_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    mode = "RGB" if image.mode in ("RGB", "CMYK") else "L" if image.mode == "L" else None
    if profile and mode is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: the preview is shown as is, as the pyramid logs its own judgement
    return image.convert("RGB")
