"""Test helpers: deterministic pictures, pyramid reading, PSNR, and what a viewer in the browser shows."""

from __future__ import annotations

import io
import math
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

import deepzoom
import lambdazoom
from deepzoom.dzi import read_descriptor
from s3zoom.keys import PyramidKeys

TILE = re.compile(r"(\d+)/(\d+)_(\d+)\.(\w+)$")


def sample_image(width: int, height: int, mode: str = "RGB", seed: int = 1) -> Image.Image:
    """Structure, noise and gradient in separate channels, so misplaced pixels show."""
    fractal = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 64)
    noise = Image.frombytes("L", (width, height), random.Random(seed).randbytes(width * height))
    gradient = Image.linear_gradient("L").resize((width, height))
    rgb = Image.merge("RGB", (fractal, noise, gradient))
    if mode == "RGBA":
        rgb.putalpha(Image.radial_gradient("L").resize((width, height)))
    return rgb if mode in ("RGB", "RGBA") else rgb.convert(mode)


def psnr(first: Image.Image, second: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over all bands; inf when identical."""
    assert first.size == second.size, (first.size, second.size)
    assert first.mode == second.mode, (first.mode, second.mode)
    rms = ImageStat.Stat(ImageChops.difference(first, second)).rms
    mse = sum(value * value for value in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def tile_files(folder: Path, name: str) -> dict[tuple[int, int, int], Path]:
    """Every tile under ``folder/name_files``, keyed by (level, column, row)."""
    found = {}
    for path in (folder / f"{name}_files").rglob("*"):
        match = TILE.search(path.as_posix())
        if match:
            level, column, row = (int(part) for part in match.groups()[:3])
            found[level, column, row] = path
    return found


def assemble_level(folder: Path, name: str, level: int) -> Image.Image:
    """Stitch one level back together from its tiles, dropping the overlap."""
    geometry, _ = read_descriptor((folder / f"{name}.dzi").read_bytes())
    tiles = tile_files(folder, name)
    canvas = None
    for column, row, (left, top, right, bottom) in geometry.tiles(level):
        with Image.open(tiles[level, column, row]) as tile:
            assert tile.size == (right - left, bottom - top), (level, column, row)
            if canvas is None:
                canvas = Image.new(tile.mode, geometry.level_size(level))
            own_left, own_top = column * geometry.tile_size, row * geometry.tile_size
            canvas.paste(tile.crop((own_left - left, own_top - top, tile.width, tile.height)), (own_left, own_top))
    assert canvas is not None
    return canvas


def convert(source: Path, out: Path, name: str = "image", **settings: object) -> deepzoom.PyramidStats:
    """Tile ``source`` into ``out`` the way the CLI does."""
    options = deepzoom.TileSettings(**settings)  # type: ignore[arg-type]
    image = deepzoom.open_image(source)
    return deepzoom.write_pyramid(image, deepzoom.DirectorySink(out), name, options)


def keys_in(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key in ``bucket`` under ``prefix``, sorted."""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(found)


def upload_image(
    client: Any, bucket: str, key: str, image: Image.Image, image_format: str = "JPEG", **options: Any
) -> bytes:
    """Save ``image`` in ``image_format`` and put it at ``key``; returns the bytes."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return buffer.getvalue()


def grey_icc_profile(gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 grey (``GRAY``) display profile: a gamma curve and a D50 white point.

    Neither Pillow nor libvips can make one, and greyscale PNGs may only embed grey profiles.
    """
    import struct

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def padded(data: bytes) -> bytes:
        return data + bytes(-len(data) % 4)

    white = s15(0.9642) + s15(1.0) + s15(0.8249)
    text = b"grey gamma 2.2\0"
    tags = [
        (b"desc", padded(b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67))),
        (b"wtpt", b"XYZ " + bytes(4) + white),
        (b"kTRC", padded(b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)))),
        (b"cprt", padded(b"text" + bytes(4) + b"public domain\0")),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntr"
        + b"GRAY"
        + b"XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8)
        + struct.pack(">I", 0)
        + white
        + bytes(4 + 16 + 28)
    )
    assert len(header) == 128
    return header + table + body


def require(condition: bool, reason: str) -> None:
    """Skip a test whose outside tool is missing, saying why; under CI (LAMBDAZOOM_STRICT=1) fail instead."""
    if condition:
        return
    if os.environ.get("LAMBDAZOOM_STRICT"):
        pytest.fail(reason)
    pytest.skip(reason)


def make_pyramidal_tiff(source: Path, path: Path) -> None:
    """Write ``source`` to ``path`` as the engine's ``--output tiff`` does: JPEG tiles of 256 x 256, full size
    first, then each halving as a reduced-resolution directory, every directory before the first tile."""
    image = deepzoom.open_image(source)
    deepzoom.write_pyramid(image, deepzoom.DirectorySink(path.parent), path.stem, outputs=("tiff",))


def pyramid_keys(name: str, width: int, height: int, preview: bool = False) -> list[str]:
    """Every key a conversion writes for an image of that size, under the current config: the descriptor,
    the viewer page (when on), the status document, the tiles, and the preview (a JPEG over 1,024 px)."""
    settings = lambdazoom.SETTINGS.tiles
    keys = PyramidKeys(name)
    geometry = deepzoom.DeepZoomGeometry(width, height, settings.tile_size, settings.overlap)
    page = [keys.page] if lambdazoom.SETTINGS.viewer_pages else []
    small = [keys.preview] if preview else []
    return sorted([keys.descriptor, *page, keys.status, *small, *keys.tiles(geometry, settings.format)])


WAIT_FOR_TILES = """() => new Promise(resolve => {
    // Settled: every tile needed is loaded and nothing is left to draw, three checks in a row, then two
    // more frames so the drawer has painted what it loaded.
    const item = viewer.world.getItemAt(0);
    let settled = 0;
    const poll = () => {
        settled = item.getFullyLoaded() && !viewer.world.needsDraw() ? settled + 1 : 0;
        if (settled < 3) return setTimeout(poll, 100);
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(true)));
    };
    setTimeout(poll, 100);
})"""


def view_matches_source(page, source: Image.Image) -> float:
    """PSNR between what the viewer shows and the same part of the source, resized alike."""
    shown = page.evaluate(
        """() => {
            const vp = viewer.viewport, size = viewer.world.getItemAt(0).getContentSize();
            const bounds = vp.viewportToImageRectangle(vp.getBoundsNoRotate(true));
            const left = Math.max(0, bounds.x), top = Math.max(0, bounds.y);
            const right = Math.min(size.x, bounds.x + bounds.width), bottom = Math.min(size.y, bounds.y + bounds.height);
            const onScreen = vp.viewportToViewerElementRectangle(
                vp.imageToViewportRectangle(new OpenSeadragon.Rect(left, top, right - left, bottom - top)));
            return {image: [left, top, right, bottom], screen: [onScreen.x, onScreen.y, onScreen.width, onScreen.height]};
        }"""
    )
    x, y, width, height = shown["screen"]
    # Whole pixels inside the drawn area; the source box shrinks by the same fractions.
    box = (int(x) + 1, int(y) + 1, int(x + width) - 1, int(y + height) - 1)
    left, top, right, bottom = shown["image"]
    scale_x, scale_y = (right - left) / width, (bottom - top) / height
    source_box = (
        left + (box[0] - x) * scale_x,
        top + (box[1] - y) * scale_y,
        left + (box[2] - x) * scale_x,
        top + (box[3] - y) * scale_y,
    )
    screenshot = Image.open(io.BytesIO(page.locator("#viewer").screenshot())).convert("RGB").crop(box)
    expected = source.resize(screenshot.size, Image.Resampling.BILINEAR, box=source_box, reducing_gap=2.0)
    return psnr(screenshot, expected)


def assert_failed_and_nothing_else(client: Any, bucket: str, stem: str, reason: str, status: bool = True) -> None:
    """A failed conversion left nothing in ``bucket`` but its status document, which says why (the log's reason);
    not even that (``status`` False) where the key was refused before its conversion took the stem's lease."""
    import json

    assert keys_in(client, bucket) == ([f"{stem}.status.json"] if status else []), "no page, no tile, no descriptor"
    if not status:
        return
    document = json.loads(client.get_object(Bucket=bucket, Key=f"{stem}.status.json")["Body"].read())
    assert document["state"] == "failed" and document["reason"] == reason
