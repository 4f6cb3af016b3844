"""IIIF Image API 3 level-0 output: info.json as the spec requires, and every file a client asks for.

The requests are computed here from the spec's own formulas (Image API 3.0, "Tiles"), not from
the code under test, and each file is checked against the Deep Zoom level it was cut from.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers import assemble_level, sample_image
from PIL import Image

import deepzoom

SERVICE = "https://images.example.org/zoom/img_iiif"


def spec_requests(info: dict) -> dict[str, tuple[int, int, int, tuple[int, int, int, int]]]:
    """Every request a client may make of this level-0 service:
    path -> (scale factor, width, height, region in full-size pixels)."""
    width, height = info["width"], info["height"]
    requests = {}
    for tiles in info["tiles"]:
        tile_width = tiles["width"]
        tile_height = tiles.get("height", tile_width)
        for scale in tiles["scaleFactors"]:
            for row in range(math.ceil(height / (tile_height * scale))):
                for column in range(math.ceil(width / (tile_width * scale))):
                    x, y = column * tile_width * scale, row * tile_height * scale
                    w, h = min(tile_width * scale, width - x), min(tile_height * scale, height - y)
                    size = (math.ceil(w / scale), math.ceil(h / scale))
                    region_name = "full" if (x, y, w, h) == (0, 0, width, height) else f"{x},{y},{w},{h}"
                    size_name = "max" if size == (width, height) else f"{size[0]},{size[1]}"
                    requests[f"{region_name}/{size_name}/0/default.jpg"] = (scale, *size, (x, y, w, h))
    for entry in info["sizes"]:
        size = (entry["width"], entry["height"])
        scale = round(width / size[0]) if size[0] > 1 else round(height / size[1])
        requests[f"full/{size[0]},{size[1]}/0/default.jpg"] = (scale, *size, (0, 0, width, height))
    return requests


@pytest.mark.parametrize("size", [(1, 1), (300, 200), (513, 1025), (256, 256), (257, 3), (1000, 999)])
def test_every_file_a_iiif_client_asks_for_is_there_and_right(tmp_path, size):
    source = tmp_path / "source.png"
    sample_image(*size).save(source)
    image = deepzoom.open_image(source)
    settings = deepzoom.TileSettings(format="png")  # lossless, so pixels compare exactly
    deepzoom.write_pyramid(
        image, deepzoom.DirectorySink(tmp_path), "img", settings, iiif=deepzoom.IIIFOutput(SERVICE, tile_size=128)
    )
    info = json.loads((tmp_path / "img_iiif" / "info.json").read_text())

    for field in ("@context", "id", "type", "protocol", "profile", "width", "height"):
        assert field in info, field
    assert info["@context"] == "http://iiif.io/api/image/3/context.json"
    assert (info["id"], info["type"], info["protocol"]) == (SERVICE, "ImageService3", "http://iiif.io/api/image")
    assert (info["profile"], info["width"], info["height"]) == ("level0", *size)
    factors = info["tiles"][0]["scaleFactors"]
    assert factors == [2**k for k in range(len(factors))]

    def level_size(scale: int) -> tuple[int, int]:
        return (math.ceil(size[0] / scale), math.ceil(size[1] / scale))

    assert max(level_size(factors[-1])) <= 128, "the smallest scale fits in one tile"
    assert len(factors) == 1 or max(level_size(factors[-2])) > 128, "and is the first that does"
    assert info["preferredFormats"] == ["png"]

    levels = deepzoom.DeepZoomGeometry(*size).max_level
    requests = spec_requests(info)
    served = {path.relative_to(tmp_path / "img_iiif").as_posix() for path in (tmp_path / "img_iiif").rglob("*.*")}
    assert {path.replace(".jpg", ".png") for path in requests} | {"info.json"} == served, (
        "nothing missing, nothing extra"
    )
    assembled: dict[int, Image.Image] = {}
    for path, (scale, width, height, (x, y, _, _)) in requests.items():
        with Image.open(tmp_path / "img_iiif" / path.replace(".jpg", ".png")) as tile:
            assert tile.size == (width, height), path
            level_number = levels - scale.bit_length() + 1
            if level_number not in assembled:
                assembled[level_number] = assemble_level(tmp_path, "img", level_number)
            level = assembled[level_number]
            left, top = x // scale, y // scale
            assert tile.tobytes() == level.crop((left, top, left + width, top + height)).tobytes(), path
