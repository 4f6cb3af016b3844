"""``STEM.html``: one self-contained page that shows a pyramid in OpenSeadragon."""

from __future__ import annotations

import html
import json
from typing import Literal

CONTENT_TYPE = "text/html; charset=utf-8"
_STYLE = (
    "html, body { margin: 0; height: 100%; background: #15171c; color: #e8e8e8; font: 15px system-ui, sans-serif; }"
    " a { color: #8fc1ff; }"
    " header { height: 44px; display: flex; align-items: center; gap: 1.5em; padding: 0 1em; }"
)
_VIEWER_STYLE = (
    " #viewer { position: absolute; top: 0; bottom: 0; left: 0; right: 0; } header + p + #viewer { top: 44px; }"
    " #status { position: absolute; z-index: 1; top: 40%; width: 100%; text-align: center; font-size: 18px; }"
)


def html_page(title: str, body: str, style: str = "") -> bytes:
    """A whole page in the project's look: ``body`` is trusted HTML, ``style`` CSS added to the base."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}{style}</style></head>\n<body>\n{body}</body></html>\n"
    ).encode()


def _integrity(integrity: str) -> str:
    return f' integrity="{html.escape(integrity)}" crossorigin="anonymous"' if integrity else ""


def viewer_page(
    title: str,
    tile_source: str,
    openseadragon_url: str,
    header: str = "",
    integrity: str = "",
    kind: Literal["dzi", "tif"] = "dzi",
    geotiff_tilesource_url: str = "",
    geotiff_tilesource_integrity: str = "",
    status_url: str = "",
) -> bytes:
    """A page showing ``tile_source`` (a relative or absolute URL) with the OpenSeadragon build at
    ``openseadragon_url`` (a folder URL ending in ``/``). ``kind`` "dzi" is a source OpenSeadragon opens
    itself (a ``.dzi``, a IIIF ``info.json``); "tif" is a pyramidal TIFF, read by HTTP Range requests
    through the geotiff-tilesource script at ``geotiff_tilesource_url``. The browser runs each script only
    if it matches its ``integrity`` (Subresource Integrity), when one is given. ``header`` is trusted HTML
    shown above the viewer. Scripts and tests reach the viewer as ``window.viewer``."""
    options: dict[str, object] = {
        "id": "viewer",
        "prefixUrl": openseadragon_url + "images/",
        "showNavigator": True,
        # Fetch tiles with CORS, so OpenSeadragon's WebGL drawer may use them when the page and the
        # bucket are on different hosts (without it, it falls back to its canvas drawer, and may draw nothing).
        "crossOriginPolicy": "Anonymous",
    }
    scripts = [(openseadragon_url + "openseadragon.min.js", integrity)]
    if kind == "dzi":
        opening = f"viewer.open({_in_script(tile_source)});"
    else:
        scripts.append((geotiff_tilesource_url, geotiff_tilesource_integrity))
        # The reader learns the levels from the TIFF's header and directories before OpenSeadragon can size the
        # image. It groups a file's directories by aspect ratio, widest first: the pyramid is the first group.
        opening = (
            f"OpenSeadragon.GeoTIFFTileSource.getAllTileSources({_in_script(tile_source)}, {{}})"
            ".then(sources => viewer.open(sources[0]));"
        )
    if status_url:  # the image opens once its status says done (or there is no status: an older pyramid)
        opening = _WATCH_STATUS.replace("STATUS_URL", _in_script(status_url)).replace("OPEN_IMAGE", opening)
    tags = "".join(f'<script src="{html.escape(url)}"{_integrity(sri)}></script>\n' for url, sri in scripts)
    body = (
        f'{header}<p id="status" hidden></p><div id="viewer"></div>\n{tags}'
        f"<script>window.viewer = OpenSeadragon({_in_script(options)});\n{opening}</script>\n"
    )
    return html_page(title, body, _VIEWER_STYLE)


# Polls STEM.status.json every 5 s while the image converts; shows the state (its reason, if it failed) as text.
_WATCH_STATUS = """function openImage() { OPEN_IMAGE }
function watchStatus() {
  const shown = document.getElementById("status");
  fetch(STATUS_URL, {cache: "no-store"}).then(answer => answer.ok ? answer.json() : null).then(doc => {
    if (!doc || doc.state === "done") { shown.hidden = true; openImage(); return; }
    const progress = doc.progress || {};
    const share = progress.tiles_expected ? " (" + Math.floor(100 * progress.tiles_written / progress.tiles_expected) + "%)" : "";
    shown.textContent = doc.state === "failed" ? "This image could not be converted: " + doc.reason : "Converting" + share + "...";
    shown.hidden = false;
    window.conversionState = doc.state;
    if (doc.state !== "failed") setTimeout(watchStatus, 5000);
  }, openImage);
}
watchStatus();"""


def _in_script(value: object) -> str:
    """``value`` as a JavaScript literal inside a <script>: nothing in it can end or open a tag."""
    return json.dumps(value).replace("<", "\\u003c")
