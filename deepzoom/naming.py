"""Where each file of a pyramid named NAME goes, relative to the folder of its descriptor.

One place for the engine (which writes them), the S3 side (which sweeps, withdraws and deletes
them, and must tell them from anything else in the bucket) and the demo. OpenSeadragon finds the
tiles of ``NAME.dzi`` at ``NAME_files/LEVEL/COLUMN_ROW.EXT``; the IIIF service lives in ``NAME_iiif/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .formats import FORMATS
from .geometry import DeepZoomGeometry
from .iiif import INFO, IIIFLayout

_EXTENSION = f"(?:{'|'.join(FORMATS)})"
_TILE = re.compile(rf"\d+/\d+_\d+\.{_EXTENSION}")
_IIIF_FILE = re.compile(rf"{re.escape(INFO)}|(?:full|\d+,\d+,\d+,\d+)/(?:max|\d+,\d+)/0/default\.{_EXTENSION}")


@dataclass(frozen=True)
class PyramidNames:
    """The paths of pyramid ``name`` (``photos/a b`` gives ``photos/a b.dzi``, ``photos/a b_files/...``)."""

    name: str

    @property
    def descriptor(self) -> str:
        return f"{self.name}.dzi"

    @property
    def page(self) -> str:
        """The viewer page beside the descriptor."""
        return f"{self.name}.html"

    @property
    def status(self) -> str:
        """What became of the conversion, for web apps to poll (s3zoom/status.py)."""
        return f"{self.name}.status.json"

    @property
    def preview(self) -> str:
        """A small picture of the whole image, made within seconds where that is cheap (preview.py)."""
        return f"{self.name}.preview.jpg"

    @property
    def tiff(self) -> str:
        """The pyramidal TIFF: every level in one file."""
        return f"{self.name}.tif"

    @property
    def files_prefix(self) -> str:
        return f"{self.name}_files/"

    @property
    def iiif_prefix(self) -> str:
        """The IIIF service's folder (its ``id`` URL ends here, without the slash)."""
        return f"{self.name}_iiif/"

    @property
    def iiif_info(self) -> str:
        return self.iiif_prefix + INFO

    def tile(self, level: int, column: int, row: int, extension: str) -> str:
        """Where OpenSeadragon looks for a tile."""
        return f"{self.files_prefix}{level}/{column}_{row}.{extension}"

    def tiles(self, geometry: DeepZoomGeometry, extension: str) -> set[str]:
        """Every tile of a pyramid with ``geometry``."""
        return {
            self.tile(level, column, row, extension)
            for level in range(geometry.level_count)
            for column, row, _ in geometry.tiles(level)
        }

    def iiif_files(self, layout: IIIFLayout) -> set[str]:
        """Every file of the IIIF service laid out as ``layout``, ``info.json`` included."""
        return {self.iiif_prefix + path for path in layout.all_paths()}

    def is_tile(self, path: str) -> bool:
        """True for ``NAME_files/L/C_R.ext`` only, not for another image's files that share the prefix."""
        return path.startswith(self.files_prefix) and _TILE.fullmatch(path[len(self.files_prefix) :]) is not None

    def is_iiif_file(self, path: str) -> bool:
        """True for ``NAME_iiif/info.json`` and the IIIF tiles under it, nothing else."""
        return path.startswith(self.iiif_prefix) and _IIIF_FILE.fullmatch(path[len(self.iiif_prefix) :]) is not None


def tile_path(name: str, level: int, column: int, row: int, extension: str) -> str:
    """Where OpenSeadragon looks for a tile of pyramid ``name``."""
    return PyramidNames(name).tile(level, column, row, extension)
