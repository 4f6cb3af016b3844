"""The one-command demo, run as a user runs it, and its viewer in a real browser.

The browser is Debian's chromium driven by Playwright (no browser download). The pictures the
browser draws are compared with the source, so a blank, shifted or mis-ordered pyramid fails.
"""

from __future__ import annotations

import html
import io
import json
import os
import random
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import WAIT_FOR_TILES, require, view_matches_source
from PIL import Image

from demo.buckets import ZOOM_BUCKET_CORS, public_read_policy
from demo.sample import sample_picture

ROOT = Path(__file__).resolve().parent.parent
MIN_PSNR = 25.0


def start_demo(*arguments: str, tmpdir: Path | None = None) -> subprocess.Popen[str]:
    """`python -m lambdazoom demo ARGUMENTS --port 0` as a user runs it (no AWS variables of ours)."""
    require((ROOT / "node_modules" / "openseadragon").is_dir(), "OpenSeadragon is not installed: run `npm ci`")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [sys.executable, "-m", "lambdazoom", "demo", *arguments, "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def served_at(process: subprocess.Popen[str]) -> str:
    """The viewer's URL, once the demo prints it; fails the test if the demo stops first."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("Viewer: "):
            return line.split()[1]
    pytest.fail(f"the demo stopped before serving:\n{process.stderr.read() if process.stderr else ''}")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """The demo with the picture it makes; yields the viewer's URL."""
    process = start_demo()
    try:
        yield served_at(process)
    finally:
        stop(process)


def fetch(url: str, origin: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_demo_lists_the_sample_and_its_bucket_is_open_to_browsers(demo):
    status, _, page = fetch(demo)
    assert status == 200
    assert "samples/mandelbrot set.jpg" in page.decode()
    thumbnail = re.search(r'<img src="([^"]+)"', page.decode()).group(1)
    assert thumbnail.startswith("http://127.0.0.1:") and "/lambdazoom-zoom/samples/mandelbrot%20set_files/" in thumbnail
    status, headers, body = fetch(thumbnail, origin=demo.rstrip("/"))  # anonymous, cross-origin, as a browser asks
    assert status == 200, "the zoom bucket is publicly readable"
    assert headers["Access-Control-Allow-Origin"] in ("*", demo.rstrip("/"))
    with Image.open(io.BytesIO(body)) as tile:
        assert max(tile.size) <= 256
    assert fetch(demo + "view/0")[0] == 200
    bucket_page = re.search(r'<a href="([^"]+)">its page in the bucket</a>', page.decode()).group(1)
    assert html.unescape(bucket_page).endswith("/lambdazoom-zoom/samples/mandelbrot%20set.html")
    assert fetch(demo + "view/1")[0] == 404
    assert fetch(demo + "openseadragon/openseadragon.min.js")[0] == 200
    assert fetch(demo + "openseadragon/../../../../package.json")[0] == 404, "the repo's package.json stays out"


def json_blocks(path: Path) -> list:
    """Every ```json block of a Markdown file, parsed: each must be valid JSON, as users paste them."""
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", path.read_text(), re.DOTALL)]


def test_readme_tells_users_the_cors_rule_and_policy_the_demo_sets():
    blocks = json_blocks(ROOT / "README.md")  # deploy step 3
    assert ZOOM_BUCKET_CORS in blocks
    assert public_read_policy("lambdazoom-zoom") in blocks


def test_every_json_block_of_the_docs_is_valid_json():
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert ROOT / "docs" / "operations.md" in docs
    lifecycle_rule = {
        "Rules": [
            {
                "ID": "abort-incomplete-uploads",
                "Status": "Enabled",
                "Filter": {},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }
    assert lifecycle_rule in json_blocks(ROOT / "docs" / "operations.md")
    for doc in docs:
        json_blocks(doc)


class TileWatch:
    """Every tile response the page received, and every request that failed outright."""

    def __init__(self, page) -> None:
        self.statuses: dict[str, int] = {}
        self.failures: list[str] = []
        page.on("response", lambda response: self._seen(response.url, response.status))
        page.on("requestfailed", lambda request: self.failures.append(f"{request.url}: {request.failure}"))

    def _seen(self, url: str, status: int) -> None:
        if "_files/" in url or "_iiif/" in url or url.endswith(".tif"):
            self.statuses[url] = status

    def full_size(self, deepest_level: int) -> list[str]:
        """Tiles at full resolution: the deepest Deep Zoom level, or IIIF tiles whose size is their region's."""
        found = []
        for url in self.statuses:
            iiif = re.search(r"_iiif/(\d+),(\d+),(\d+),(\d+)/(\d+),(\d+)/0/", url)
            if f"_files/{deepest_level}/" in url or (iiif and iiif.group(3, 4) == iiif.group(5, 6)):
                found.append(url)
        return found

    def check(self) -> None:
        assert not self.failures, self.failures
        expected = {url: 206 if url.endswith(".tif") else 200 for url in self.statuses}  # a TIFF is read by range
        bad = {url: status for url, status in self.statuses.items() if status != expected[url]}
        assert not bad, bad


def viewer_url(demo: str, which: str) -> str:
    if which == "the demo's viewer":
        return demo + "view/0"
    if which == "the IIIF service":
        return demo + "iiif/0"
    if which == "the one TIFF":
        return demo + "tiff/0"
    index = fetch(demo)[2].decode()
    return html.unescape(re.search(r'<a href="([^"]+)">its page in the bucket</a>', index).group(1))


@pytest.mark.parametrize(
    "which", ["the demo's viewer", "STEM.html in the zoom bucket", "the IIIF service", "the one TIFF"]
)
def test_the_viewer_draws_the_pyramid_at_every_zoom(demo, browser, which):
    source = sample_picture()
    page = browser.new_page(viewport={"width": 1000, "height": 800}, device_scale_factor=1)
    tiles = TileWatch(page)
    page.goto(viewer_url(demo, which))
    page.wait_for_function("() => window.viewer && viewer.world.getItemCount() === 1", timeout=30_000)
    page.evaluate("() => viewer.controls.forEach(control => control.element.style.display = 'none')")  # buttons, map
    page.evaluate(WAIT_FOR_TILES)
    tiles.check()
    assert tiles.statuses, "the viewer asked for no tiles"
    whole = view_matches_source(page, source)
    assert whole >= MIN_PSNR, f"full view: {whole:.1f} dB"

    deepest = (max(source.size) - 1).bit_length()
    page.evaluate(
        """() => {
            const vp = viewer.viewport;
            vp.zoomTo(vp.imageToViewportZoom(1.0), null, true);  // one image pixel a screen pixel
            vp.panTo(vp.imageToViewportCoordinates(1500, 1200), true);
        }"""
    )
    page.evaluate(WAIT_FOR_TILES)
    tiles.check()
    if which != "the one TIFF":  # its tiles are byte ranges of one URL; the close-up's PSNR shows the level
        assert tiles.full_size(deepest), "no full-resolution tiles were loaded"
    close_up = view_matches_source(page, source)
    assert close_up >= MIN_PSNR, f"deepest level: {close_up:.1f} dB"
    page.close()


def test_demo_takes_a_large_photo_uploaded_in_parts_and_says_why_a_file_failed(tmp_path):
    """boto3 uploads files over 8 MiB in parts, and moto then sends two events for one upload."""
    large = tmp_path / "large photo.jpg"
    noise = random.Random(7).randbytes(2800 * 2200 * 3)
    Image.frombytes("RGB", (2800, 2200), noise).save(large, quality=97, subsampling=0)
    assert large.stat().st_size > 12 * 2**20
    broken = tmp_path / "notes.jpg"
    broken.write_text("not a picture\n" * 50)
    process = start_demo(str(large), str(broken))
    try:
        page = fetch(served_at(process))[2].decode()
        assert '<a href="/view/0">' in page and "large photo.jpg" in page
        assert "notes.jpg: no pyramid (not an image in a format Pillow can read)" in html.unescape(page)
        assert re.search(r"1 converted, (<[^>]+>)?1 failed", page), "counted apart"
    finally:
        stop(process)
    assert process.stderr is not None
    said = process.stderr.read().splitlines()
    assert "notes.jpg: no pyramid: not an image in a format Pillow can read" in said, "its own line in the terminal"


def test_sigterm_leaves_no_scratch_folder_behind(tmp_path):
    process = start_demo(tmpdir=tmp_path)  # the demo's scratch folder goes here, where nothing else writes
    try:
        served_at(process)
        assert [path.name for path in tmp_path.iterdir() if path.name.startswith("lambdazoom-demo-")], "made one"
    finally:
        stop(process)
    assert process.returncode == 0
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("lambdazoom-demo-")]
