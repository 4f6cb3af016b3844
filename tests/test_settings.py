"""Settings are read and checked once, at the start: a bad one is named before anything else happens."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import config

ROOT = Path(__file__).resolve().parent.parent


def test_every_bad_value_is_named_at_once():
    with pytest.raises(config.SettingsError) as raised:
        config.from_environment(
            {"TILE_FORMAT": "gif", "UPLOAD_CONCURRENCY": "many", "S3_RETRY_MODE": "fast", "LEASE_SECONDS": "1"}
        )
    message = str(raised.value)
    for name in ("TILE_FORMAT", "UPLOAD_CONCURRENCY", "S3_RETRY_MODE", "LEASE_SECONDS"):
        assert name in message, message


def test_lease_seconds_leaves_a_holder_two_renewals_before_its_last_write():
    """The shortest lease is derived: a holder stops starting tile PUTs WRITE_LIFETIME before its lease could pass
    on, renews every quarter of it, and must get two renewals (each within the renewal client's timeouts) and a
    margin in before then. The old minimum (100) and default (120) left one renewal or less."""
    from s3zoom.clients import RENEWAL_LIFETIME, WRITE_LIFETIME

    least = config.MIN_LEASE_SECONDS
    assert least == math.ceil(2 * (WRITE_LIFETIME + RENEWAL_LIFETIME + config.LEASE_MARGIN)) == 174
    assert least / 4 * 2 + RENEWAL_LIFETIME + config.LEASE_MARGIN <= least - WRITE_LIFETIME
    for too_short in (100, 120, least - 1):
        with pytest.raises(config.SettingsError, match=rf"LEASE_SECONDS must be at least {least}, got {too_short}: "):
            config.from_environment({"LEASE_SECONDS": str(too_short)})
    assert config.from_environment({"LEASE_SECONDS": str(least)}).lease_seconds == least
    assert config.Settings().lease_seconds >= least
    with pytest.raises(config.SettingsError) as raised:
        config.Settings(lease_seconds=120)
    assert "2 x (75 + 7 + 5) = 174" in str(raised.value), "the message explains the number"


def test_iiif_output_without_its_base_url_is_a_bad_setting_not_a_failed_conversion():
    with pytest.raises(config.SettingsError, match="IIIF_BASE_URL"):
        config.from_environment({"IIIF_OUTPUT": "on"})


def test_the_environment_overrides_each_default():
    settings = config.from_environment(
        {
            "S3_ZOOM_BUCKET": "zoom-here",
            "TILE_SIZE": "510",
            "TILE_OVERLAP": "0",
            "VIEWER_PAGES": "off",
            "GEOTIFF_TILESOURCE_URL": "https://scripts.example.org/geotiff-tilesource.min.js",
            "GEOTIFF_TILESOURCE_SRI": "",
        }
    )
    assert (settings.zoom_bucket, settings.tiles.tile_size, settings.tiles.overlap) == ("zoom-here", 510, 0)
    assert settings.viewer_pages is False
    assert settings.geotiff_tilesource_url == "https://scripts.example.org/geotiff-tilesource.min.js"
    assert settings.geotiff_tilesource_sri == ""
    assert config.from_environment({}).replace(limits=config.Settings().limits) == config.Settings()


def test_settings_cannot_be_changed_in_place():
    settings = config.Settings()
    with pytest.raises(AttributeError):
        settings.zoom_bucket = "elsewhere"  # type: ignore[misc]
    assert settings.replace(zoom_bucket="elsewhere").zoom_bucket == "elsewhere"
    assert settings.replace(tiles=settings.tiles).fingerprint == settings.fingerprint


class Counter(ThreadingHTTPServer):
    """Counts every request made to it: a stand-in S3 that must not be called."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counting)
        self.requests = 0


class _Counting(BaseHTTPRequestHandler):
    def handle_one_request(self) -> None:
        self.server.requests += 1  # type: ignore[attr-defined]
        super().handle_one_request()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    "command",
    [
        ["-c", "import lambdazoom"],  # what Lambda does at a cold start
        ["-m", "lambdazoom", "convert", "s3://photos/a.jpg"],
    ],
    ids=["cold start", "command line"],
)
def test_a_bad_setting_stops_the_start_before_any_s3_call(command):
    server = Counter()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "TILE_QUALITY": "101",
        }
        result = subprocess.run(
            [sys.executable, *command], env=env, cwd=ROOT, capture_output=True, text=True, check=False
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode != 0
    assert "TILE_QUALITY" in result.stderr and "quality must be in 1..100, got 101" in result.stderr
    assert server.requests == 0
    if "-m" in command:
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("prefix", "said"),
    [("/zoom/", "starts with '/'"), ("zoom//tiles/", "empty segment"), ("zoom/../x/", "'..' segment"), ("./", "'.'")],
)
def test_a_dest_prefix_no_key_can_carry_stops_the_start(prefix, said):
    with pytest.raises(config.SettingsError, match=f"DEST_PREFIX {re.escape(repr(prefix))} .*{re.escape(said)}"):
        config.from_environment({"DEST_PREFIX": prefix})
    assert config.from_environment({"DEST_PREFIX": "zoom/"}).dest_prefix == "zoom/"
