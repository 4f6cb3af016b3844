"""The demo's two pages: a list of the converted images, and an OpenSeadragon viewer for one."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal

from s3zoom import page

_LIST_STYLE = """
  ul { list-style: none; padding: 0 1em; display: flex; flex-wrap: wrap; gap: 1em; }
  li { width: 260px; }
  li img { display: block; max-width: 254px; max-height: 254px; background: #000; }
  .failed { color: #ff9b8f; }
"""


@dataclass(frozen=True)
class Entry:
    """One uploaded image: its pyramid's public URLs, or why it has none."""

    key: str
    descriptor_url: str | None = None
    thumbnail_url: str | None = None
    page_url: str | None = None  # the STEM.html the function wrote beside the .dzi
    iiif_url: str | None = None  # the IIIF service's info.json
    tiff_url: str | None = None  # the pyramidal TIFF, the same pyramid in one object
    size: tuple[int, int] | None = None
    problem: str | None = None


def index_page(entries: list[Entry]) -> bytes:
    items = []
    for number, entry in enumerate(entries):
        name = html.escape(entry.key)
        if entry.descriptor_url is None:
            items.append(f'<li class="failed">{name}: no pyramid ({html.escape(entry.problem or "")})</li>')
            continue
        width, height = entry.size or (0, 0)
        items.append(
            f'<li><a href="/view/{number}"><img src="{html.escape(entry.thumbnail_url or "")}" alt="">{name}</a>'
            f"<br>{width} x {height} px{_links(number, entry)}</li>"
        )
    body = f"<header><b>LambdaZoom demo</b><span>{_counts(entries)}</span></header>\n<ul>{''.join(items)}</ul>"
    return page.html_page("LambdaZoom demo", body + "\n", _LIST_STYLE)


def _counts(entries: list[Entry]) -> str:
    """How many images have a pyramid and how many failed, apart: "2 converted, 1 failed"."""
    failed = sum(entry.descriptor_url is None for entry in entries)
    failures = f'<span class="failed">{failed} failed</span>' if failed else "0 failed"
    return f"{len(entries) - failed} converted, {failures}"


def _links(number: int, entry: Entry) -> str:
    links = ""
    if entry.iiif_url:
        links += f' &middot; <a href="/iiif/{number}">as IIIF</a>'
    if entry.tiff_url:
        links += f' &middot; <a href="/tiff/{number}">as one TIFF</a>'
    if entry.page_url:
        links += f' &middot; <a href="{html.escape(entry.page_url)}">its page in the bucket</a>'
    return links


def viewer_page(entry: Entry, kind: Literal["dzi", "iiif", "tif"] = "dzi") -> bytes:
    """OpenSeadragon reading the pyramid from the zoom bucket: its ``.dzi``, its IIIF service, or its ``.tif``
    by Range requests."""
    label = {"dzi": "", "iiif": " (IIIF)", "tif": " (one TIFF)"}[kind]
    header = f'<header><a href="/">All images</a><span>{html.escape(entry.key)}{label}</span></header>\n'
    source = {"dzi": entry.descriptor_url, "iiif": entry.iiif_url, "tif": entry.tiff_url}[kind] or ""
    return page.viewer_page(
        entry.key,
        source,
        "/openseadragon/",
        header,
        kind="tif" if kind == "tif" else "dzi",
        geotiff_tilesource_url="/geotiff-tilesource/geotiff-tilesource.min.js",
    )
