"""The tile PUTs as they go on the wire (obstore, through S3Sink): headers, metadata, keys, credentials,
the bucket's region, retries; and the whole path over HTTPS with a CA of our own (AWS_CA_BUNDLE)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from s3zoom.clients import tile_store
from s3zoom.sink import S3Sink


class Recorder(ThreadingHTTPServer):
    """Answers PUTs with ``status``; with ``close_idle``, closes each connection right after answering,
    without saying so (as S3 does to a connection left idle), so the client finds out only by looking."""

    status = 200
    answer = b""
    close_idle = False
    failures = 0  # answer this many PUTs with 503 SlowDown before the status above

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

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.puts.append((self.path, self.headers, body))
        if self.server.failures:
            self.server.failures -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(self.server.status)
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
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


def sink_to(server: Recorder, region: str = "us-east-1", **options: object) -> S3Sink:
    host, port = server.server_address[:2]
    return S3Sink(tile_store("zoom", region, 3, f"http://{host}:{port}"), **options)


def test_every_put_carries_its_type_caching_and_metadata(recorder):
    sink = sink_to(
        recorder,
        cache_control="public, max-age=86400",
        index_cache_control="no-cache",
        metadata={"lambdazoom-source-key-sha256": "ab" * 32, "lambdazoom-settings": "0123"},
    )
    sink.put("a_files/0/0_0.jpg", b"tile", "image/jpeg")
    sink.put("a.dzi", b"<Image/>", "application/xml")
    (tile_path, tile, tile_body), (_, descriptor, _) = recorder.puts
    assert (tile_path, tile_body) == ("/zoom/a_files/0/0_0.jpg", b"tile")
    assert tile["Content-Type"] == "image/jpeg" and tile["Cache-Control"] == "public, max-age=86400"
    assert descriptor["Content-Type"] == "application/xml" and descriptor["Cache-Control"] == "no-cache"
    for headers in (tile, descriptor):
        assert headers["x-amz-meta-lambdazoom-source-key-sha256"] == "ab" * 32
        assert headers["x-amz-meta-lambdazoom-settings"] == "0123"
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("a b_files/0/0_0.jpg", "/zoom/a%20b_files/0/0_0.jpg"),
        ("tom+jerry_files/0/0_0.jpg", "/zoom/tom%2Bjerry_files/0/0_0.jpg"),
        ("100%_files/0/0_0.jpg", "/zoom/100%25_files/0/0_0.jpg"),
        ("what?_files/0/0_0.jpg", "/zoom/what%3F_files/0/0_0.jpg"),
        ("東京/☃_files/0/0_0.jpg", "/zoom/%E6%9D%B1%E4%BA%AC/%E2%98%83_files/0/0_0.jpg"),
    ],
)
def test_keys_go_on_the_wire_percent_encoded_and_intact(recorder, key, path):
    sink_to(recorder).put(key, b"tile", "image/jpeg")
    assert recorder.puts[0][0] == path


def test_a_session_token_is_sent_with_every_put(recorder, monkeypatch):
    """A Lambda role's credentials are temporary: without the token, S3 refuses the signature."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "role-session-token")
    sink_to(recorder).put("a_files/0/0_0.jpg", b"tile", "image/jpeg")
    assert recorder.puts[0][1]["x-amz-security-token"] == "role-session-token"


def test_puts_are_signed_for_the_buckets_own_region(recorder):
    sink_to(recorder, region="eu-west-1").put("a_files/0/0_0.jpg", b"tile", "image/jpeg")
    assert "/eu-west-1/s3/aws4_request" in recorder.puts[0][1]["Authorization"]


def test_slow_down_answers_are_retried_by_the_client_itself(recorder):
    recorder.failures = 2
    sink_to(recorder).put("a_files/0/0_0.jpg", b"tile", "image/jpeg")
    assert len(recorder.puts) == 3 and all(body == b"tile" for _, _, body in recorder.puts)


def test_a_put_that_keeps_failing_raises_naming_the_key(recorder):
    recorder.failures = 10
    with pytest.raises(Exception, match=r"a_files/0/0_0\.jpg"):
        sink_to(recorder).put("a_files/0/0_0.jpg", b"tile", "image/jpeg")
    assert len(recorder.puts) == 3, "three attempts in all"
