"""A pyramidal TIFF's viewer page in a real browser: OpenSeadragon and geotiff-tilesource read STEM.tif
straight from the zoom bucket by HTTP Range requests, and draw what the source shows.

The bucket is moto's server on 127.0.0.1 with the README's CORS rule and public-read policy. The scripts come
from another origin, as from a CDN (a folder served on another port, holding npm's files), and are held to the
default SRI settings, which another test holds to the pinned packages.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from helpers import WAIT_FOR_TILES, make_pyramidal_tiff, require, view_matches_source
from PIL import Image

import config
from demo.buckets import open_to_browsers
from demo.sample import sample_picture
from localaws.server import LocalS3
from s3zoom import page

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "lambdazoom-tiff-zoom"
STEM = "pictures/mandelbrot set"  # a folder and a space, as people name things
# The picture's JPEG tiles at quality 80 cost more than the resizing: drawn from the right level, the home view
# is 35.0 dB from the source and the close-up at full size 28.8 dB. Drawn from one level too coarse they would be
# 31.7 and 26.0 dB (measured offline from the file's own levels); blank or with swapped colours, under 17 dB.
MIN_PSNR_HOME = 33.0
MIN_PSNR_FULL_SIZE = 27.5
# Our writer puts the header, every directory and every tile table first (about 1 KB here), so geotiff.js knows the
# whole pyramid from its first 64 KiB block; getAllTileSources opens the file twice and reads that block twice. (A
# libvips file costs a block per level here, as it puts each directory after that level's tiles: 6 reads.) Then
# the home view's tiles: at most one read each, 4 x 3 at the level that fills the 1000 x 800 window.
MAX_READS_BEFORE_OPEN = 2
HOME_VIEW_TILES = 12

# Before the page's scripts: count every Range request the page makes, note how many were made when the viewer
# had opened the image (the reader knows every level) and when its first tile arrived, and which levels arrived.
COUNT_RANGE_READS = """
window.rangeReads = [];
window.loadedLevels = new Set();
const originalFetch = window.fetch;
window.fetch = function (resource, options) {
    const range = new Headers(options && options.headers).get("Range");
    if (range) rangeReads.push(range);
    return originalFetch.apply(this, arguments);
};
let created;
Object.defineProperty(window, "viewer", {
    configurable: true,
    get: () => created,
    set(viewer) {
        created = viewer;
        viewer.addOnceHandler("open", () => { window.readsBeforeOpen = rangeReads.length; });
        viewer.addOnceHandler("tile-loaded", () => { window.readsBeforeFirstTile = rangeReads.length; });
        viewer.addHandler("tile-loaded", event => loadedLevels.add(event.tile.level));
    },
});
"""


class _Site(SimpleHTTPRequestHandler):
    """Files from one folder, open to pages of any origin (a script under SRI is fetched with CORS)."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@dataclass(frozen=True)
class Hosts:
    """The zoom bucket holding STEM.tif, made from ``source``; another site, serving the viewer's scripts."""

    s3: Any
    bucket_url: str
    site_url: str
    site_folder: Path
    source: Image.Image

    def page(self, tif_url: str, status_url: str = "", **sri: str) -> bytes:
        """STEM.html for the TIFF at ``tif_url``, loading the scripts from the site, held to the default SRI
        settings unless ``sri`` replaces them (``openseadragon=...``, ``geotiff_tilesource=...``); with
        ``status_url``, opened once that status document says done."""
        settings = config.Settings()
        return page.viewer_page(
            STEM,
            tif_url,
            self.site_url + "openseadragon/",
            integrity=sri.get("openseadragon", settings.openseadragon_sri),
            kind="tif",
            geotiff_tilesource_url=self.site_url + "geotiff-tilesource.min.js",
            geotiff_tilesource_integrity=sri.get("geotiff_tilesource", settings.geotiff_tilesource_sri),
            status_url=status_url,
        )

    def page_in_bucket(self, **sri: str) -> str:
        """STEM.html in the bucket, naming STEM.tif beside it by a relative URL; the page's URL."""
        body = self.page(quote(STEM.rsplit("/", 1)[-1]) + ".tif", **sri)
        self.s3.put_object(Bucket=BUCKET, Key=STEM + ".html", Body=body, ContentType=page.CONTENT_TYPE)
        return f"{self.bucket_url}/{quote(STEM)}.html"

    def page_on_site(self) -> str:
        """A page on the other site, naming STEM.tif in the bucket by its absolute URL; the page's URL."""
        (self.site_folder / "viewer.html").write_bytes(self.page(f"{self.bucket_url}/{quote(STEM)}.tif"))
        return self.site_url + "viewer.html"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    modules = ROOT / "node_modules"
    require((modules / "geotiff-tilesource").is_dir(), "geotiff-tilesource is not installed: run `npm ci`")
    folder = tmp_path_factory.mktemp("tiff-viewer")
    source = sample_picture()
    source.save(folder / "source.png", compress_level=1)
    make_pyramidal_tiff(folder / "source.png", folder / "picture.tif")
    site = folder / "site"
    site.mkdir()
    (site / "openseadragon").symlink_to(modules / "openseadragon/build/openseadragon")
    (site / "geotiff-tilesource.min.js").symlink_to(modules / "geotiff-tilesource/dist/geotiff-tilesource.min.js")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Site, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LocalS3() as s3_server:
            s3 = boto3.client(
                "s3",
                endpoint_url=s3_server.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.create_bucket(Bucket=BUCKET)
            open_to_browsers(s3, BUCKET)
            s3.upload_file(str(folder / "picture.tif"), BUCKET, STEM + ".tif", ExtraArgs={"ContentType": "image/tiff"})
            site_url = f"http://127.0.0.1:{server.server_address[1]}/"
            yield Hosts(s3, f"{s3_server.endpoint_url}/{BUCKET}", site_url, site, source)
    finally:
        server.shutdown()
        server.server_close()


def open_viewer(browser: Any, url: str, failures: list[str]) -> Any:
    """A tab showing the page at ``url`` once every tile of its home view is drawn; every request that failed
    or was refused goes to ``failures`` (but the favicon, which no page here has)."""
    from playwright.sync_api import TimeoutError as Timeout

    tab = browser.new_page(viewport={"width": 1000, "height": 800}, device_scale_factor=1)
    tab.add_init_script(COUNT_RANGE_READS)

    def answered(response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            failures.append(f"{response.url}: {response.status}")

    tab.on("response", answered)
    tab.on("requestfailed", lambda request: failures.append(f"{request.url}: {request.failure}"))
    tab.goto(url)
    try:
        tab.wait_for_function("() => window.viewer && viewer.world.getItemCount() === 1", timeout=30_000)
    except Timeout:
        pytest.fail(f"the viewer opened no image in 30 s; failed requests: {failures}")
    tab.evaluate("() => viewer.controls.forEach(control => control.element.style.display = 'none')")  # buttons, map
    tab.evaluate(WAIT_FOR_TILES)
    return tab


def check_home_view(tab: Any, source: Image.Image) -> None:
    """The whole picture is drawn from the right level, after a few Range requests."""
    whole = view_matches_source(tab, source)
    assert whole >= MIN_PSNR_HOME, f"home view: {whole:.1f} dB"
    before_open, before_first_tile, reads = tab.evaluate("() => [readsBeforeOpen, readsBeforeFirstTile, rangeReads]")
    assert 1 <= before_open <= MAX_READS_BEFORE_OPEN, reads
    assert all(read.startswith("bytes=0-") for read in reads[:before_open]), "the index is in the first block"
    assert before_open < before_first_tile <= before_open + HOME_VIEW_TILES, reads


def test_stem_html_in_the_bucket_shows_the_tiff_at_every_zoom(hosts, browser):
    failures: list[str] = []
    tab = open_viewer(browser, hosts.page_in_bucket(), failures)
    check_home_view(tab, hosts.source)
    tab.evaluate(
        """() => {
            const vp = viewer.viewport;
            vp.zoomTo(vp.imageToViewportZoom(1.0), null, true);  // one image pixel a screen pixel
            vp.panTo(vp.imageToViewportCoordinates(1500, 1200), true);
        }"""
    )
    tab.evaluate(WAIT_FOR_TILES)
    close_up = view_matches_source(tab, hosts.source)
    assert close_up >= MIN_PSNR_FULL_SIZE, f"full size: {close_up:.1f} dB"
    assert tab.evaluate("() => loadedLevels.has(viewer.world.getItemAt(0).source.maxLevel)"), "no full-size tile"
    assert not failures, failures
    tab.close()


def test_a_page_on_another_site_reads_the_tiff_as_the_buckets_cors_rule_allows(hosts, browser):
    failures: list[str] = []
    tab = open_viewer(browser, hosts.page_on_site(), failures)
    check_home_view(tab, hosts.source)
    assert not failures, failures
    tab.close()


@pytest.mark.parametrize(
    ("tampered", "defined"),
    [
        ("openseadragon", ["undefined", "undefined"]),  # and the plugin, which needs it, fails too
        ("geotiff_tilesource", ["function", "undefined"]),
    ],
)
def test_a_script_that_does_not_match_its_sri_never_runs(hosts, browser, tampered, defined):
    """The other tests show each script runs under its default SRI; a page held to another hash shows nothing."""
    other = "sha384-" + base64.b64encode(hashlib.sha384(b"some other script").digest()).decode()
    tab = browser.new_page()
    tab.add_init_script(COUNT_RANGE_READS)
    with tab.expect_console_message(lambda message: "integrity" in message.text, timeout=30_000):
        tab.goto(hosts.page_in_bucket(**{tampered: other}))  # returns once the page and its scripts are done
    found = tab.evaluate(
        "() => [typeof window.OpenSeadragon, typeof (window.OpenSeadragon || {}).GeoTIFFTileSource, rangeReads]"
    )
    assert found == [*defined, []]
    tab.close()


def test_the_page_shows_the_conversion_state_until_the_image_is_done(hosts, browser):
    """STEM.html reads STEM.status.json: a failure's reason, the progress while converting, the image once done."""
    name = STEM.rsplit("/", 1)[-1]
    hosts.s3.put_object(
        Bucket=BUCKET,
        Key=STEM + ".html",
        Body=hosts.page(quote(name) + ".tif", status_url=quote(name) + ".status.json"),
        ContentType=page.CONTENT_TYPE,
    )

    def say(**document: Any) -> None:
        body = json.dumps(document).encode()
        hosts.s3.put_object(Bucket=BUCKET, Key=STEM + ".status.json", Body=body, ContentType="application/json")

    shown = "() => document.getElementById('status').textContent"
    tab = browser.new_page(viewport={"width": 1000, "height": 800})
    try:
        say(state="failed", reason="cannot decode JPEG data: broken data <b>here</b>")
        tab.goto(f"{hosts.bucket_url}/{quote(STEM)}.html")
        tab.wait_for_function(f"() => ({shown})().includes('could not be converted: cannot decode JPEG data')")
        assert tab.evaluate(shown).endswith("broken data <b>here</b>"), "the reason as text, never as HTML"
        assert tab.evaluate("() => viewer.world.getItemCount()") == 0
        say(state="converting", progress={"tiles_written": 40, "tiles_expected": 100})
        tab.reload()
        tab.wait_for_function(f"() => ({shown})() === 'Converting (40%)...'")
        say(state="done")  # the next poll, within 5 s, opens the image
        tab.wait_for_function("() => viewer.world.getItemCount() === 1", timeout=30_000)
        assert tab.evaluate("() => document.getElementById('status').hidden")
    finally:
        tab.close()
        hosts.s3.delete_object(Bucket=BUCKET, Key=STEM + ".status.json")
