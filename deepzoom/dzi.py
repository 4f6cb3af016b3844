"""The ``.dzi`` descriptor: the XML that tells a viewer how to read the tiles."""

from __future__ import annotations

from xml.etree import ElementTree

from .geometry import DeepZoomGeometry

NAMESPACE = "http://schemas.microsoft.com/deepzoom/2008"
CONTENT_TYPE = "application/xml"


def descriptor(geometry: DeepZoomGeometry, format_name: str) -> bytes:
    """Serialise the descriptor for ``geometry`` with tiles in ``format_name``."""
    image = ElementTree.Element(
        "Image",
        {
            "xmlns": NAMESPACE,
            "TileSize": str(geometry.tile_size),
            "Overlap": str(geometry.overlap),
            "Format": format_name,
        },
    )
    ElementTree.SubElement(image, "Size", {"Width": str(geometry.width), "Height": str(geometry.height)})
    return ElementTree.tostring(image, encoding="UTF-8", xml_declaration=True) + b"\n"


def read_descriptor(data: bytes) -> tuple[DeepZoomGeometry, str]:
    """Parse a descriptor back into its geometry and tile format."""
    root = ElementTree.fromstring(data)
    size = root.find(f"{{{NAMESPACE}}}Size")
    if root.tag != f"{{{NAMESPACE}}}Image" or size is None:
        raise ValueError("not a Deep Zoom descriptor")
    geometry = DeepZoomGeometry(
        int(size.get("Width", "0")),
        int(size.get("Height", "0")),
        int(root.get("TileSize", "0")),
        int(root.get("Overlap", "0")),
    )
    return geometry, root.get("Format", "")
