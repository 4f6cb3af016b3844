"""Fixtures: fake AWS credentials everywhere, and an S3 (moto) with a source and a zoom bucket."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import hypothesis
import pytest
from helpers import require

import config
import lambdazoom
from s3zoom import clients, jobs

# No test may depend on the machine's speed: Hypothesis's 200 ms deadline fails on a busy laptop.
hypothesis.settings.register_profile("lambdazoom", deadline=None)
hypothesis.settings.load_profile("lambdazoom")

SOURCE_BUCKET = "lambdazoom-test-source"
SLOW = 0.03  # seconds the slow S3 holds each request
ZOOM_BUCKET = "lambdazoom-test-zoom"


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach AWS: fake credentials, no endpoint unless a test sets one, fresh clients."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    forget_clients()
    yield
    forget_clients()


def forget_clients() -> None:
    """Clients are cached per process; a test that changes the endpoint needs new ones."""
    clients.session.cache_clear()
    clients.s3_client.cache_clear()
    clients.tile_store.cache_clear()
    jobs._regions.clear()


@pytest.fixture
def lambda_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The function's settings as a deployment would have them (``lambdazoom.SETTINGS``, which the
    handler reads), with the test buckets and scratch space in a folder of the test's own."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    settings = config.from_environment({}).replace(zoom_bucket=ZOOM_BUCKET, tmp_dir=str(scratch), upload_concurrency=8)
    monkeypatch.setattr(lambdazoom, "SETTINGS", settings)
    return scratch


def use_settings(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> config.Settings:
    """Run the handler with these settings changed (``tile_size=32`` changes the tile settings' own)."""
    tile_fields = {field: changes.pop(field) for field in list(changes) if field in TILE_FIELDS}
    settings = lambdazoom.SETTINGS
    if tile_fields:
        changes["tiles"] = dataclasses.replace(settings.tiles, **tile_fields)
    settings = settings.replace(**changes)
    monkeypatch.setattr(lambdazoom, "SETTINGS", settings)
    return settings


TILE_FIELDS = {"tile_size", "overlap", "format", "quality", "background"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server in this process. It keeps its buckets where ``mock_aws`` does, so it sees theirs."""
    from localaws.server import LocalS3

    with LocalS3() as server:
        yield server.endpoint_url


def route_tile_puts(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Send the tile PUTs of ``jobs`` to the moto server at ``endpoint`` (see ``s3``)."""
    monkeypatch.setattr(
        jobs, "_tile_store", lambda settings, s3: clients.tile_store(settings.zoom_bucket, "us-east-1", 3, endpoint)
    )


@pytest.fixture
def s3(lambda_config: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> Iterator[Any]:
    """moto's in-process S3 (mock_aws) with both buckets. The tile PUTs (obstore, in Rust) go around
    botocore, which mock_aws intercepts, so they reach the same buckets over HTTP, through a moto server."""
    from moto import mock_aws

    with mock_aws():
        route_tile_puts(monkeypatch, moto_endpoint)
        client = boto3.client("s3")
        client.create_bucket(Bucket=SOURCE_BUCKET)
        client.create_bucket(Bucket=ZOOM_BUCKET)
        yield client


@pytest.fixture
def stack(lambda_config: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Any]:
    """moto's HTTP server on 127.0.0.1 with both buckets; the source bucket notifies a queue, so
    ``stack.next_event()`` is an event S3 itself produced. Parametrized indirectly with "sns" or
    "sns-raw", the bucket notifies an SNS topic that the queue subscribes to (see WatchedBuckets)."""
    from localaws.buckets import WatchedBuckets
    from localaws.server import LocalS3

    with LocalS3() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        forget_clients()
        yield WatchedBuckets(server.endpoint_url, SOURCE_BUCKET, ZOOM_BUCKET, getattr(request, "param", "queue"))


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox (CI runs as root), no GPU, and none of the background calls to Google's hosts.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium driven by Playwright (no browser download), one for each test module that asks."""
    require(Path(CHROMIUM).is_file(), f"no chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def slow_s3(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler talks to S3 through a proxy that holds each request ``SLOW`` seconds (a slow S3)."""
    from localaws.proxy import FaultyProxy

    with FaultyProxy(stack.endpoint_url, latency=SLOW) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        yield stack
