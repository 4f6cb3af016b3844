"""A Pillow-based Deep Zoom (DZI) pyramid generator.

Two steps, so callers can time and handle them apart::

    image = deepzoom.open_image("scan.tif", deepzoom.Limits(memory=deepzoom.memory_available()))
    deepzoom.write_pyramid(image, deepzoom.DirectorySink("out"), "scan")

``open_image`` raises :class:`InvalidImage` or :class:`ImageTooLarge` for what
its header gives away; ``write_pyramid`` writes the tiles, then ``scan.dzi``
(a streamed image's decode errors surface there, and no ``.dzi`` is written).
With ``outputs=("tiff",)`` it writes ``scan.tif`` instead, one pyramidal TIFF,
or both from one decode with ``("dzi", "tiff")``.
"""

from .errors import DeepZoomError, ImageTooLarge, InvalidImage
from .formats import FORMATS, TileFormat, tile_format
from .geometry import DeepZoomGeometry
from .iiif import IIIFLayout
from .limits import IMAGE_FORMATS, Limits, formats_for
from .memory import estimated_peak, memory_available
from .naming import PyramidNames, tile_path
from .preview import SIDE as PREVIEW_SIDE
from .preview import preview
from .pyramid import OUTPUTS, IIIFOutput, PyramidStats, parse_outputs, tile_total, write_pyramid
from .settings import DEFAULT_MAX_PIXELS, TileSettings
from .sinks import DirectorySink, ObjectStream, TileSink
from .source import SourceImage, check_header, open_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "IMAGE_FORMATS",
    "DeepZoomError",
    "DeepZoomGeometry",
    "DirectorySink",
    "IIIFLayout",
    "IIIFOutput",
    "ImageTooLarge",
    "InvalidImage",
    "OUTPUTS",
    "PREVIEW_SIDE",
    "ObjectStream",
    "Limits",
    "PyramidNames",
    "PyramidStats",
    "SourceImage",
    "TileFormat",
    "TileSettings",
    "TileSink",
    "check_header",
    "estimated_peak",
    "formats_for",
    "memory_available",
    "open_image",
    "parse_outputs",
    "preview",
    "tile_format",
    "tile_path",
    "tile_total",
    "write_pyramid",
]
