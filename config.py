"""LambdaZoom settings.

Each setting below can be overridden by an environment variable of the same
name (in Zappa: ``aws_environment_variables``). Values are read when the
function starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import quote

from deepzoom import DEFAULT_MAX_PIXELS, IIIFOutput, Limits, TileSettings, formats_for, memory_available


def _text(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _number(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"environment variable {name} must be a whole number, got {value!r}") from None


def _switch(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name} must be true or false, got {value!r}")


# Where pyramids go: the bucket, and a key prefix ("" for the bucket's root, else e.g. "zoom/").
S3_ZOOM_BUCKET = _text("S3_ZOOM_BUCKET", "lambdazoom-zoom")
DEST_PREFIX = _text("DEST_PREFIX", "")

# How tiles are cut and encoded (the original LambdaZoom's defaults).
TILE_SIZE = _number("TILE_SIZE", 254)
TILE_OVERLAP = _number("TILE_OVERLAP", 1)
TILE_FORMAT = _text("TILE_FORMAT", "jpg")  # jpg, png or webp
TILE_QUALITY = _number("TILE_QUALITY", 80)  # JPEG and WebP, 1-100
BACKGROUND = _text("BACKGROUND", "#ffffff")  # what transparency is flattened onto in JPEG tiles

# Images whose header declares more pixels than this are refused before decoding: a cap on work and time.
MAX_PIXELS = _number("MAX_PIXELS", DEFAULT_MAX_PIXELS)
# Memory admission: an image whose conversion is estimated (from its header) to need more memory than the
# function has is refused before it is downloaded. The function's memory is Lambda's memory size, else the
# cgroup's limit, else this many MB (0: this machine's physical memory).
MEMORY_LIMIT_MB = _number("MEMORY_LIMIT_MB", 0)
# What an upload may ask before it is refused unread (see deepzoom/limits.py for why these numbers): a long
# side at most this many times the short one (a 100,000 x 60 panorama is 1,667:1), at most this many scans
# in a progressive JPEG (encoders write about 10), and TIFF strips or tiles of at least this many pixels on
# average (any file may have 1,000).
MAX_ASPECT_RATIO = _number("MAX_ASPECT_RATIO", 10_000)
MAX_JPEG_SCANS = _number("MAX_JPEG_SCANS", 100)
MIN_PIXELS_PER_TIFF_PIECE = _number("MIN_PIXELS_PER_TIFF_PIECE", 1_024)

# Source keys with other extensions are skipped (case-insensitive, comma-separated). A file is opened by its
# content, but only as one of the formats these extensions stand for: a PNG named .jpg converts, an EPS does not.
ACCEPTED_EXTENSIONS = frozenset(
    extension.strip().lower().lstrip(".")
    for extension in _text(
        "ACCEPTED_EXTENSIONS", "jpg,jpeg,png,tif,tiff,webp,gif,bmp,heic,heif,avif,jp2,j2k,jpf,jpx"
    ).split(",")
    if extension.strip()
)

# Uploads in flight at once. S3 answers a PUT in tens of milliseconds; 64 hides that.
UPLOAD_CONCURRENCY = _number("UPLOAD_CONCURRENCY", 64)
# Cache-Control on every object written. A re-uploaded image rewrites its tiles at the same keys,
# so keep this short unless your sources never change.
CACHE_CONTROL = _text("CACHE_CONTROL", "public, max-age=86400")
# Cache-Control of the descriptors, viewer pages and IIIF info.json, which name the tiles: revalidated on every
# view, so that after a re-upload no browser or CDN pairs an old descriptor with new tiles.
INDEX_CACHE_CONTROL = _text("INDEX_CACHE_CONTROL", "no-cache")
# How S3 requests ride out SlowDown, 5xx and dropped connections. boto3 (HEAD, list, delete, download) uses
# botocore's retry mode: "standard" (each request backs off on its own) or "adaptive" (the whole client slows
# down after throttling, which costs a conversion far more than the throttled requests). Tile PUTs (obstore)
# back off per request from 100 ms to 15 s. Both make at most S3_MAX_ATTEMPTS attempts a request.
S3_RETRY_MODE = _text("S3_RETRY_MODE", "standard")
S3_MAX_ATTEMPTS = _number("S3_MAX_ATTEMPTS", 10)

# A STEM.html beside each .dzi that shows it in OpenSeadragon, loaded from OPENSEADRAGON_URL
# (a folder holding openseadragon.min.js and images/; pin the version).
VIEWER_PAGES = _switch("VIEWER_PAGES", True)
OPENSEADRAGON_URL = _text("OPENSEADRAGON_URL", "https://cdnjs.cloudflare.com/ajax/libs/openseadragon/6.1.1/")
# Subresource Integrity of OPENSEADRAGON_URL's openseadragon.min.js (that of the npm package 6.1.1, which
# package-lock.json pins; a test holds it to that file): a browser runs the script only if it is that very file.
# Change it with OPENSEADRAGON_URL; empty turns the check off.
OPENSEADRAGON_SRI = _text(
    "OPENSEADRAGON_SRI", "sha384-KKly+4vqqBHitr2XfNKWa3+0asIVpzYs2HijkM/zz0X6rgnyLuQEVERX9HqkM5/P"
)

# A IIIF Image API 3 level-0 service beside each .dzi (STEM_iiif/info.json and its tiles), cut from
# the same levels. Its "id" is IIIF_BASE_URL + "/" + DEST_PREFIX + STEM + "_iiif": IIIF_BASE_URL is the
# public URL of the zoom bucket's root, e.g. https://lambdazoom-zoom.s3.amazonaws.com or a CloudFront URL.
IIIF_OUTPUT = _switch("IIIF_OUTPUT", False)
IIIF_BASE_URL = _text("IIIF_BASE_URL", "")
IIIF_TILE_SIZE = _number("IIIF_TILE_SIZE", 512)

# Everything an upload is judged by before it is decoded, built once here so a bad value stops the start.
try:
    LIMITS = Limits(
        max_pixels=MAX_PIXELS,
        memory=memory_available(MEMORY_LIMIT_MB * 2**20 or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
        max_aspect_ratio=MAX_ASPECT_RATIO,
        max_jpeg_scans=MAX_JPEG_SCANS,
        min_pixels_per_tiff_piece=MIN_PIXELS_PER_TIFF_PIECE,
        formats=formats_for(ACCEPTED_EXTENSIONS),
    )
except ValueError as error:
    raise ValueError(
        f"ACCEPTED_EXTENSIONS, MAX_PIXELS, MAX_ASPECT_RATIO, MAX_JPEG_SCANS or MIN_PIXELS_PER_TIFF_PIECE: {error}"
    ) from None

# One conversion at a time writes a pyramid: it holds a lease (NAME_files/lambdazoom.lease, renewed every
# quarter of LEASE_SECONDS; a holder that died loses it after LEASE_SECONDS). Another conversion of the
# same pyramid waits up to LEASE_WAIT_SECONDS for it, then fails and is retried. Keep the wait below the
# function's timeout.
LEASE_SECONDS = _number("LEASE_SECONDS", 60)
LEASE_WAIT_SECONDS = _number("LEASE_WAIT_SECONDS", 300)
if LEASE_SECONDS < 4 or LEASE_WAIT_SECONDS < 0:
    raise ValueError(
        f"LEASE_SECONDS must be at least 4 and LEASE_WAIT_SECONDS not negative, got "
        f"{LEASE_SECONDS} and {LEASE_WAIT_SECONDS}"
    )

# Scratch space for the downloaded source; each invocation uses a fresh folder inside it.
TMP_DIR = _text("TMP_DIR", "/tmp")
LOG_LEVEL = _text("LOG_LEVEL", "INFO")


def tile_settings() -> TileSettings:
    return TileSettings(TILE_SIZE, TILE_OVERLAP, TILE_FORMAT, TILE_QUALITY, BACKGROUND)


def iiif_output(name: str) -> IIIFOutput | None:
    """What ``write_pyramid`` needs for the IIIF service of pyramid ``name``, or None when it is off."""
    if not IIIF_OUTPUT:
        return None
    if not IIIF_BASE_URL:
        raise ValueError("IIIF_OUTPUT is on but IIIF_BASE_URL is empty: set it to the zoom bucket's public URL")
    return IIIFOutput(f"{IIIF_BASE_URL.rstrip('/')}/{quote(name)}_iiif", IIIF_TILE_SIZE)


def settings_fingerprint() -> str:
    """A short hash of everything that changes the pixels or names of a pyramid.

    Stored on each ``.dzi``: a redelivered event for an unchanged source and
    unchanged settings has nothing to do.
    """
    tiles = tile_settings()
    described = [tiles.tile_size, tiles.overlap, tiles.format, tiles.quality, tiles.background_rgb, 1]
    described += [
        VIEWER_PAGES and [OPENSEADRAGON_URL, OPENSEADRAGON_SRI],
        IIIF_OUTPUT and [IIIF_BASE_URL, IIIF_TILE_SIZE],
    ]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]
