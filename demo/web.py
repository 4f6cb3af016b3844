"""The demo's web server on 127.0.0.1: the pages, and OpenSeadragon's and geotiff-tilesource's files from
node_modules."""

from __future__ import annotations

import mimetypes
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from demo.pages import Entry, index_page, viewer_page

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
VIEWER_FILES = (NODE_MODULES / "openseadragon/build/openseadragon").resolve()
TIFF_READER_FILES = (NODE_MODULES / "geotiff-tilesource/dist").resolve()
SERVED = {"/openseadragon/": VIEWER_FILES, "/geotiff-tilesource/": TIFF_READER_FILES}


def viewer_server(entries: list[Entry], host: str, port: int) -> ThreadingHTTPServer:
    """A server (not yet serving) for ``entries``; ``port`` 0 picks a free one."""

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(index_page(entries), "text/html; charset=utf-8")
            elif (entry := self._entry(path, "/view/")) is not None:
                self._send(viewer_page(entry), "text/html; charset=utf-8")
            elif (entry := self._entry(path, "/iiif/")) is not None and entry.iiif_url:
                self._send(viewer_page(entry, "iiif"), "text/html; charset=utf-8")
            elif (entry := self._entry(path, "/tiff/")) is not None and entry.tiff_url:
                self._send(viewer_page(entry, "tif"), "text/html; charset=utf-8")
            elif folder := next((prefix for prefix in SERVED if path.startswith(prefix)), None):
                self._send_viewer_file(SERVED[folder], path.removeprefix(folder))
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _entry(self, path: str, route: str) -> Entry | None:
            number = path.removeprefix(route)
            if path.startswith(route) and number.isdigit() and int(number) < len(entries):
                return entries[int(number)]
            return None

        def _send_viewer_file(self, root: Path, relative: str) -> None:
            file = (root / relative).resolve()
            if not file.is_relative_to(root) or not file.is_file():
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            self._send(file.read_bytes(), content_type, cross_origin=True)  # the pages in the bucket check its SRI

        def _send(self, body: bytes, content_type: str, cross_origin: bool = False) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            if cross_origin:
                self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # the terminal is for the conversion log

    return ThreadingHTTPServer((host, port), Pages)
