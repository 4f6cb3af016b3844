"""The lean PUT's connections: kept alive, and replaced when the server has closed them meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from s3zoom.clients import DirectPut, DirectPutError, _host_header


class Recorder(ThreadingHTTPServer):
    """Answers PUTs with ``status``; with ``close_idle``, closes each connection right after answering,
    without saying so (as S3 does to a connection left idle), so the client finds out only by looking."""

    status = 200
    answer = b""
    close_idle = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released as each connection ends
        self.puts: list[tuple[str, Message, bytes]] = []

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)
        self.closed.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_PUT(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.puts.append((self.path, self.headers, body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.answer)))
        self.end_headers()
        self.wfile.write(self.server.answer)
        self.close_connection = self.server.close_idle

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def direct_put(server: Recorder) -> DirectPut:
    host, port = server.server_address[:2]
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
    return DirectPut(client, "zoom")


def test_puts_share_one_kept_alive_connection(recorder):
    put = direct_put(recorder)
    for index in range(5):
        put.put(f"a b_files/0/{index}_0.jpg", b"tile", {"Content-Type": "image/jpeg"})
    assert recorder.connections == 1
    path, headers, body = recorder.puts[-1]
    assert (path, body) == ("/zoom/a%20b_files/0/4_0.jpg", b"tile")
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert headers["Host"] == "%s:%d" % recorder.server_address[:2]  # the host that was signed


def test_a_connection_the_server_closed_is_replaced_not_failed(recorder):
    recorder.close_idle = True
    put = direct_put(recorder)
    for index in range(3):
        put.put(f"img_files/0/{index}_0.jpg", b"tile", {})  # would raise if a closed connection were reused
        assert recorder.closed.acquire(timeout=10), "the server closes the connection once it has answered"
    assert recorder.connections == 3
    assert len(recorder.puts) == 3


def test_an_error_answer_names_the_key_and_status(recorder):
    recorder.status = 503
    with pytest.raises(DirectPutError, match=r"img_files/9/1_2\.jpg: HTTP 503"):
        direct_put(recorder).put("img_files/9/1_2.jpg", b"tile", {})


def test_an_error_answer_carries_s3s_code(recorder):
    recorder.status = 503
    recorder.answer = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
    with pytest.raises(DirectPutError, match=r"img_files/9/1_2\.jpg: HTTP 503 SlowDown$"):
        direct_put(recorder).put("img_files/9/1_2.jpg", b"tile", {})


def test_a_header_http_client_refuses_is_a_direct_put_error_naming_the_key(recorder):
    put = direct_put(recorder)
    with pytest.raises(DirectPutError, match=r"^img_files/0/0_0\.jpg: ValueError"):
        put.put("img_files/0/0_0.jpg", b"tile", {"Cache-Control": "public\r\nX-Injected: 1"})
    put.put("img_files/0/0_0.jpg", b"tile", {"Cache-Control": "public"})  # and the next PUT goes through
    assert [path for path, _, _ in recorder.puts] == ["/zoom/img_files/0/0_0.jpg"]


@pytest.mark.parametrize(
    ("scheme", "netloc", "host"),
    [
        ("https", "s3.example.com:443", "s3.example.com"),
        ("http", "127.0.0.1:80", "127.0.0.1"),
        ("http", "127.0.0.1:9000", "127.0.0.1:9000"),
        ("https", "s3.example.com:80", "s3.example.com:80"),
        ("http", "[::1]:80", "[::1]"),
        ("http", "[::1]", "[::1]"),
    ],
)
def test_the_signed_host_drops_the_default_port_as_http_client_does(scheme, netloc, host):
    assert _host_header(scheme, netloc) == host
