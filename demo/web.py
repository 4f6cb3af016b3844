"""The demo's web server on 127.0.0.1: the pages, and OpenSeadragon's files from node_modules."""

from __future__ import annotations

import mimetypes
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from demo.pages import Entry, index_page, viewer_page

VIEWER_FILES = (Path(__file__).resolve().parent.parent / "node_modules/openseadragon/build/openseadragon").resolve()


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
                self._send(viewer_page(entry, iiif=True), "text/html; charset=utf-8")
            elif path.startswith("/openseadragon/"):
                self._send_viewer_file(path.removeprefix("/openseadragon/"))
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _entry(self, path: str, route: str) -> Entry | None:
            number = path.removeprefix(route)
            if path.startswith(route) and number.isdigit() and int(number) < len(entries):
                return entries[int(number)]
            return None

        def _send_viewer_file(self, relative: str) -> None:
            file = (VIEWER_FILES / relative).resolve()
            if not file.is_relative_to(VIEWER_FILES) or not file.is_file():
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
