"""An HTTP proxy for a local S3 that adds latency and faults, as a real network does.

Every request waits ``latency`` seconds before it is forwarded. A share of
PUTs (``fail_puts``) is answered ``503 SlowDown`` without reaching the
server, and a share (``drop_puts``) has its connection closed with no answer.
Faults are drawn from a seeded generator, so a run can be repeated.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultyProxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); use as a context manager."""

    def __init__(
        self, upstream: str, *, latency: float = 0.0, fail_puts: float = 0.0, drop_puts: float = 0.0, seed: int = 7
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.latency = latency
        self.fail_puts = fail_puts
        self.drop_puts = drop_puts
        self.counts = {"requests": 0, "failed": 0, "dropped": 0}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()  # one upstream connection per proxy thread
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fault_for(self, method: str) -> str | None:
        """``"fail"``, ``"drop"`` or None for the next request."""
        with self._lock:
            self.counts["requests"] += 1
            if method != "PUT":
                return None
            draw = self._random.random()
            if draw < self.fail_puts:
                self.counts["failed"] += 1
                return "fail"
            if draw < self.fail_puts + self.drop_puts:
                self.counts["dropped"] += 1
                return "drop"
            return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.latency:
                    time.sleep(proxy.latency)
                fault = proxy.fault_for(self.command)
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "fail":
                    self._answer(503, [("Content-Type", "application/xml")], SLOW_DOWN)
                    return
                status, headers, payload = proxy.forward(self.command, self.path, dict(self.headers.items()), body)
                self._answer(status, headers, payload)

            def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                head = self.command == "HEAD"  # keeps the upstream Content-Length and has no body
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and (head or name.lower() != "content-length"):
                        self.send_header(name, value)
                if not head:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not head:
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, list, bytes]:
        """Send one request upstream on a connection of this thread's own."""
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except (ConnectionError, http.client.HTTPException):
            connection.close()
            connection = local.connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
