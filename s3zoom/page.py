"""``STEM.html``: one self-contained page that shows a pyramid in OpenSeadragon."""

from __future__ import annotations

import html
import json

CONTENT_TYPE = "text/html; charset=utf-8"
_STYLE = (
    "html, body { margin: 0; height: 100%; background: #15171c; color: #e8e8e8; font: 15px system-ui, sans-serif; }"
    " a { color: #8fc1ff; }"
    " header { height: 44px; display: flex; align-items: center; gap: 1.5em; padding: 0 1em; }"
)
_VIEWER_STYLE = " #viewer { position: absolute; top: 0; bottom: 0; left: 0; right: 0; } header + #viewer { top: 44px; }"


def html_page(title: str, body: str, style: str = "") -> bytes:
    """A whole page in the project's look: ``body`` is trusted HTML, ``style`` CSS added to the base."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}{style}</style></head>\n<body>\n{body}</body></html>\n"
    ).encode()


def _integrity(integrity: str) -> str:
    return f' integrity="{html.escape(integrity)}" crossorigin="anonymous"' if integrity else ""


def viewer_page(title: str, tile_source: str, openseadragon_url: str, header: str = "", integrity: str = "") -> bytes:
    """A page showing ``tile_source`` (a ``.dzi`` or IIIF ``info.json`` URL, relative or absolute) with the
    OpenSeadragon build at ``openseadragon_url`` (a folder URL ending in ``/``), which the browser runs only
    if it matches ``integrity`` (Subresource Integrity), when one is given. ``header`` is trusted HTML
    shown above the viewer. Scripts and tests reach the viewer as ``window.viewer``."""
    options = {
        "id": "viewer",
        "prefixUrl": openseadragon_url + "images/",
        "tileSources": tile_source,
        "showNavigator": True,
        # Fetch tiles with CORS, so OpenSeadragon's WebGL drawer may use them when the page and the
        # bucket are on different hosts (without it, it falls back to its canvas drawer, and may draw nothing).
        "crossOriginPolicy": "Anonymous",
    }
    script_url = html.escape(openseadragon_url + "openseadragon.min.js")
    settings = json.dumps(options).replace("<", "\\u003c")  # nothing inside the script can end or open a tag
    body = (
        f'{header}<div id="viewer"></div>\n'
        f'<script src="{script_url}"{_integrity(integrity)}></script>\n'
        f"<script>window.viewer = OpenSeadragon({settings});</script>\n"
    )
    return html_page(title, body, _VIEWER_STYLE)
