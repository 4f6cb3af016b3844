"""LambdaZoom settings: one immutable :class:`Settings`, read from the environment and checked once.

Each setting has an environment variable of the same name (in Zappa: ``aws_environment_variables``).
:func:`from_environment` reads them all when the function starts (``lambdazoom.py`` calls it as it is
imported), so a bad value stops the start with one message naming every variable at fault, before
any S3 call; the code below the handler is handed the ``Settings`` and reads nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from deepzoom import (
    DEFAULT_MAX_PIXELS,
    IIIFOutput,
    Limits,
    TileSettings,
    formats_for,
    memory_available,
    parse_outputs,
)
from s3zoom.clients import RENEWAL_LIFETIME, WRITE_LIFETIME
from s3zoom.lease import shortest_ttl

_DEFAULT_EXTENSIONS = "jpg,jpeg,png,tif,tiff,webp,gif,bmp,heic,heif,avif,jp2,j2k,jpf,jpx"
RETRY_MODES = ("standard", "adaptive")
# The shortest LEASE_SECONDS that works: a holder must get two renewals in (each up to RENEWAL_LIFETIME, 7 s) after
# its last one, with LEASE_MARGIN to spare (its renewer's thread waking late on a busy CPU, the moment between a
# check and the PUT it lets start), before its last tile PUT may start, WRITE_LIFETIME (75 s) before the lease
# could pass on: 2 x (75 + 7 + 5) = 174 s (see shortest_ttl in s3zoom/lease.py).
LEASE_MARGIN = 5  # seconds
MIN_LEASE_SECONDS = math.ceil(shortest_ttl(WRITE_LIFETIME, RENEWAL_LIFETIME, LEASE_MARGIN))


class SettingsError(ValueError):
    """One or more environment variables hold values that cannot work; the message names each."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the function. The defaults are those of a deployment that sets none."""

    # Where pyramids go: the bucket, and a key prefix ("" for the bucket's root, else e.g. "zoom/").
    zoom_bucket: str = "lambdazoom-zoom"
    dest_prefix: str = ""
    # What a conversion writes (OUTPUT): "dzi" (STEM.dzi and a tile per object under STEM_files/), "tiff"
    # (STEM.tif, one pyramidal TIFF: one object instead of thousands, read by range), or "dzi,tiff" (both,
    # from one decode). The TIFF's tiles measure TIFF_TILE_SIZE and use TILE_QUALITY.
    output: tuple[str, ...] = ("dzi",)
    # How tiles are cut and encoded (TILE_SIZE, TILE_OVERLAP, TILE_FORMAT, TILE_QUALITY, BACKGROUND).
    tiles: TileSettings = field(default_factory=TileSettings)
    # Everything an upload is judged by before it is decoded (see deepzoom/limits.py): MAX_PIXELS,
    # MEMORY_LIMIT_MB, MAX_ASPECT_RATIO, MAX_JPEG_SCANS, MIN_PIXELS_PER_TIFF_PIECE, and the formats
    # that ACCEPTED_EXTENSIONS stands for.
    limits: Limits = field(default_factory=Limits)
    # Source keys with other extensions are skipped (case-insensitive). A file is opened by its content,
    # but only as one of the formats these extensions stand for: a PNG named .jpg converts, an EPS does not.
    accepted_extensions: frozenset[str] = frozenset(_DEFAULT_EXTENSIONS.split(","))
    # Tile uploads in flight at once. S3 answers a PUT in tens of milliseconds; 64 hides that.
    upload_concurrency: int = 64
    # Cache-Control of the tiles; a re-uploaded image rewrites its tiles at the same keys, so keep it short
    # unless your sources never change. Descriptors, pages and info.json name the tiles: they are
    # revalidated on every view (INDEX_CACHE_CONTROL), so no viewer pairs an old descriptor with new tiles.
    cache_control: str = "public, max-age=86400"
    index_cache_control: str = "no-cache"
    # How S3 requests ride out SlowDown, 5xx and dropped connections: boto3 (HEAD, list, delete, download)
    # in botocore's "standard" mode, each request backing off on its own ("adaptive" slows the whole client
    # after throttling, which costs a conversion far more than the throttled requests); tile PUTs (obstore)
    # back off per request from 100 ms to 15 s. Both make at most S3_MAX_ATTEMPTS attempts a request.
    s3_retry_mode: str = "standard"
    s3_max_attempts: int = 10
    # A STEM.html beside each .dzi showing it in OpenSeadragon, loaded from OPENSEADRAGON_URL (a folder
    # with openseadragon.min.js and images/; pin the version) and held to OPENSEADRAGON_SRI (that script's
    # Subresource Integrity, of the npm package 6.1.1 that package-lock.json pins; empty: no check).
    viewer_pages: bool = True
    openseadragon_url: str = "https://cdnjs.cloudflare.com/ajax/libs/openseadragon/6.1.1/"
    openseadragon_sri: str = "sha384-KKly+4vqqBHitr2XfNKWa3+0asIVpzYs2HijkM/zz0X6rgnyLuQEVERX9HqkM5/P"
    # A pyramidal TIFF's page also loads geotiff-tilesource, the OpenSeadragon tile source that reads the
    # TIFF's levels by HTTP Range requests: GEOTIFF_TILESOURCE_URL is its UMD script (pin the version), held to
    # GEOTIFF_TILESOURCE_SRI (of the npm package 2.3.2 that package-lock.json pins; empty: no check).
    geotiff_tilesource_url: str = (
        "https://cdn.jsdelivr.net/npm/geotiff-tilesource@2.3.2/dist/geotiff-tilesource.min.js"
    )
    geotiff_tilesource_sri: str = "sha384-lCP1mRxH31XrdCdP6md3ST0QhoMOMgY2ObS/yT793VJQi2rF12yGSVb7Pj+yfE7I"
    # A IIIF Image API 3 level-0 service beside each .dzi (STEM_iiif/). Its "id" is IIIF_BASE_URL + "/" +
    # DEST_PREFIX + STEM + "_iiif": IIIF_BASE_URL is the public URL of the zoom bucket's root.
    iiif_output: bool = False
    iiif_base_url: str = ""
    iiif_tile_size: int = 512
    # One conversion at a time writes a pyramid: it holds a lease (STEM_files/lambdazoom.lease, renewed every
    # quarter of LEASE_SECONDS; a holder that died loses it after LEASE_SECONDS). Another conversion of the
    # same pyramid waits up to LEASE_WAIT_SECONDS, then fails and is retried; keep it below the timeout.
    # LEASE_SECONDS is at least MIN_LEASE_SECONDS (174: a holder stops writing 75 s before its lease could pass
    # on, and must get two renewals in before that); 180 is that rounded up to three minutes, as short as it
    # can be, since it is how long the pyramid of a conversion that died stays locked.
    lease_seconds: int = 180
    lease_wait_seconds: int = 300
    # Lambda stops a function at its timeout mid-write. No record or lease wait starts, and no conversion goes
    # on writing, within DEADLINE_MARGIN_SECONDS of it (kept for publishing, withdrawing and releasing); what
    # was left is handed back, and an SQS message of it is made visible again after RETRY_DELAY_SECONDS
    # (instead of the queue's visibility timeout, six times the function's).
    deadline_margin_seconds: int = 30
    retry_delay_seconds: int = 60
    # Scratch space for the downloaded source; each invocation uses a fresh folder inside it.
    tmp_dir: str = "/tmp"
    log_level: str = "INFO"

    def iiif_for(self, name: str) -> IIIFOutput | None:
        """What ``write_pyramid`` needs for the IIIF service of pyramid ``name``, or None when it is off."""
        if not self.iiif_output:
            return None
        return IIIFOutput(f"{self.iiif_base_url.rstrip('/')}/{quote(name)}_iiif", self.iiif_tile_size)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of everything that changes the pixels or names of a pyramid: stored on each ``.dzi``,
        so a redelivered event for an unchanged source and unchanged settings has nothing to do."""
        tiles = self.tiles
        described = [tiles.tile_size, tiles.overlap, tiles.format, tiles.quality, tiles.background_rgb, 1]
        described += [
            self.viewer_pages and [self.openseadragon_url, self.openseadragon_sri],
            self.iiif_output and [self.iiif_base_url, self.iiif_tile_size],
        ]
        if self.output != ("dzi",):  # so the pyramids made before OUTPUT existed keep their fingerprint
            described.append([self.output, tiles.tiff_tile_size])
            if self.output == ("tiff",) and self.viewer_pages:  # the page of a .tif loads the plugin too
                described.append([self.geotiff_tilesource_url, self.geotiff_tilesource_sri])
        return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (the demo's own buckets, a test's tile size), checked like the original."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        problems = []
        if self.s3_retry_mode not in RETRY_MODES:
            problems.append(f"S3_RETRY_MODE must be one of {', '.join(RETRY_MODES)}, got {self.s3_retry_mode!r}")
        for name, value, least in (
            ("UPLOAD_CONCURRENCY", self.upload_concurrency, 1),
            ("S3_MAX_ATTEMPTS", self.s3_max_attempts, 1),
            ("IIIF_TILE_SIZE", self.iiif_tile_size, 1),
            ("LEASE_WAIT_SECONDS", self.lease_wait_seconds, 0),
            ("DEADLINE_MARGIN_SECONDS", self.deadline_margin_seconds, 1),
            ("RETRY_DELAY_SECONDS", self.retry_delay_seconds, 0),
        ):
            if value < least:
                problems.append(f"{name} must be at least {least}, got {value}")
        if self.lease_seconds < MIN_LEASE_SECONDS:
            problems.append(
                f"LEASE_SECONDS must be at least {MIN_LEASE_SECONDS}, got {self.lease_seconds}: a conversion renews "
                f"its lease every quarter of it and starts no tile PUT in the last {WRITE_LIFETIME:g} s before the "
                f"lease could pass on (a PUT with its retries may take that long), so it needs two renewals in "
                f"(each up to {RENEWAL_LIFETIME:g} s) with {LEASE_MARGIN} s to spare before then: "
                f"2 x ({WRITE_LIFETIME:g} + {RENEWAL_LIFETIME:g} + {LEASE_MARGIN}) = {MIN_LEASE_SECONDS}"
            )
        if self.iiif_output and not self.iiif_base_url:
            problems.append("IIIF_OUTPUT is on but IIIF_BASE_URL is empty: set it to the zoom bucket's public URL")
        if not self.zoom_bucket:
            problems.append("S3_ZOOM_BUCKET is empty")
        if problem := _prefix_problem(self.dest_prefix):
            problems.append(f"DEST_PREFIX {self.dest_prefix!r} {problem}")
        if logging.getLevelName(self.log_level.upper()) not in range(51):
            problems.append(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {self.log_level!r}")
        if problems:
            raise SettingsError("; ".join(problems))


T = TypeVar("T")


def from_environment(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from ``environ``, each variable defaulting to :class:`Settings`' own; raises
    :class:`SettingsError` naming every variable whose value cannot work."""
    defaults = Settings()
    problems: list[str] = []

    def read(name: str, parse: Callable[[str], T], default: T) -> T:
        raw = environ.get(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            problems.append(f"{name}: {error}")
            return default

    def built(names: str, make: Callable[[], T], default: T) -> T:
        try:
            return make()
        except ValueError as error:
            problems.append(f"{names}: {error}")
            return default

    tile_defaults = defaults.tiles
    tiles = built(
        "TILE_SIZE, TILE_OVERLAP, TILE_FORMAT, TILE_QUALITY, BACKGROUND or TIFF_TILE_SIZE",
        lambda: TileSettings(
            read("TILE_SIZE", _whole_number, tile_defaults.tile_size),
            read("TILE_OVERLAP", _whole_number, tile_defaults.overlap),
            read("TILE_FORMAT", str, tile_defaults.format),
            read("TILE_QUALITY", _whole_number, tile_defaults.quality),
            read("BACKGROUND", str, tile_defaults.background),
            read("TIFF_TILE_SIZE", _whole_number, tile_defaults.tiff_tile_size),
        ),
        tile_defaults,
    )
    extensions = read("ACCEPTED_EXTENSIONS", _extensions, defaults.accepted_extensions)
    memory_mb = read("MEMORY_LIMIT_MB", _whole_number, 0)
    limits = built(
        "ACCEPTED_EXTENSIONS, MAX_PIXELS, MAX_ASPECT_RATIO, MAX_JPEG_SCANS or MIN_PIXELS_PER_TIFF_PIECE",
        lambda: Limits(
            max_pixels=read("MAX_PIXELS", _whole_number, DEFAULT_MAX_PIXELS),
            memory=memory_available(memory_mb * 2**20 or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
            max_aspect_ratio=read("MAX_ASPECT_RATIO", _whole_number, defaults.limits.max_aspect_ratio),
            max_jpeg_scans=read("MAX_JPEG_SCANS", _whole_number, defaults.limits.max_jpeg_scans),
            min_pixels_per_tiff_piece=read(
                "MIN_PIXELS_PER_TIFF_PIECE", _whole_number, defaults.limits.min_pixels_per_tiff_piece
            ),
            formats=formats_for(extensions),
        ),
        defaults.limits,
    )
    values = {
        "zoom_bucket": read("S3_ZOOM_BUCKET", str, defaults.zoom_bucket),
        "dest_prefix": read("DEST_PREFIX", str, defaults.dest_prefix),
        "output": read("OUTPUT", parse_outputs, defaults.output),
        "tiles": tiles,
        "limits": limits,
        "accepted_extensions": extensions,
        "upload_concurrency": read("UPLOAD_CONCURRENCY", _whole_number, defaults.upload_concurrency),
        "cache_control": read("CACHE_CONTROL", str, defaults.cache_control),
        "index_cache_control": read("INDEX_CACHE_CONTROL", str, defaults.index_cache_control),
        "s3_retry_mode": read("S3_RETRY_MODE", str.strip, defaults.s3_retry_mode),
        "s3_max_attempts": read("S3_MAX_ATTEMPTS", _whole_number, defaults.s3_max_attempts),
        "viewer_pages": read("VIEWER_PAGES", _switch, defaults.viewer_pages),
        "openseadragon_url": read("OPENSEADRAGON_URL", str, defaults.openseadragon_url),
        "openseadragon_sri": read("OPENSEADRAGON_SRI", str, defaults.openseadragon_sri),
        "geotiff_tilesource_url": read("GEOTIFF_TILESOURCE_URL", str, defaults.geotiff_tilesource_url),
        "geotiff_tilesource_sri": read("GEOTIFF_TILESOURCE_SRI", str, defaults.geotiff_tilesource_sri),
        "iiif_output": read("IIIF_OUTPUT", _switch, defaults.iiif_output),
        "iiif_base_url": read("IIIF_BASE_URL", str, defaults.iiif_base_url),
        "iiif_tile_size": read("IIIF_TILE_SIZE", _whole_number, defaults.iiif_tile_size),
        "lease_seconds": read("LEASE_SECONDS", _whole_number, defaults.lease_seconds),
        "lease_wait_seconds": read("LEASE_WAIT_SECONDS", _whole_number, defaults.lease_wait_seconds),
        "deadline_margin_seconds": read("DEADLINE_MARGIN_SECONDS", _whole_number, defaults.deadline_margin_seconds),
        "retry_delay_seconds": read("RETRY_DELAY_SECONDS", _whole_number, defaults.retry_delay_seconds),
        "tmp_dir": read("TMP_DIR", str, defaults.tmp_dir),
        "log_level": read("LOG_LEVEL", str.strip, defaults.log_level),
    }
    try:
        settings = Settings(**values)
    except SettingsError as error:
        problems.append(str(error))
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def _prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot begin every output key, if it cannot: S3 keys have no leading ``/``, and browsers,
    URL libraries and the tile PUTs rewrite or refuse ``//`` and ``.``/``..`` segments."""
    if prefix.startswith("/"):
        return "starts with '/': S3 keys have no leading slash (write 'zoom/', not '/zoom/')"
    if "//" in prefix:
        return "has an empty segment ('//')"
    if any(segment in (".", "..") for segment in prefix.split("/")):
        return "has a '.' or '..' segment"
    if any(ord(character) < 32 or ord(character) == 127 for character in prefix):
        return "has control characters"
    return None


def _whole_number(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"must be a whole number, got {text!r}") from None


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _extensions(text: str) -> frozenset[str]:
    found = frozenset(part.strip().lower().lstrip(".") for part in text.split(",") if part.strip())
    if not found:
        raise ValueError("names no extension")
    return found
