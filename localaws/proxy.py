"""An HTTP proxy for a local S3 that adds latency and faults, as a real network does.

Every request waits ``latency`` seconds before it is forwarded. A share of
PUTs (``fail_puts``) is answered ``503 SlowDown`` without reaching the
server, and a share (``drop_puts``) has its connection closed with no answer.
Faults are drawn from a seeded generator, so a run can be repeated.

Clients keep their connections alive, as they do with S3. It runs on asyncio
and parses no more HTTP than it must, so that on a shared machine the proxy
takes little of the CPU that the code under test needs.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from typing import Self
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_DROPPED_HEADERS = (b"connection", b"keep-alive", b"content-length", b"transfer-encoding")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed: it takes about half the CPU of asyncio's own loop per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """An event loop on a thread of its own, run for as long as the context manager is entered.

    Subclasses give the ``_start`` and ``_stop`` coroutines, which run on that loop as it comes up and
    before it goes down.
    """

    def __init__(self) -> None:
        self._loop = _new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError


class FaultyProxy(LoopThread):
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); use as a context manager.

    Runs its event loop on a thread of its own; ``endpoint_url`` is where clients connect.
    """

    def __init__(
        self, upstream: str, *, latency: float = 0.0, fail_puts: float = 0.0, drop_puts: float = 0.0, seed: int = 7
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latency = latency
        self.fail_puts = fail_puts
        self.drop_puts = drop_puts
        self.counts = {"requests": 0, "failed": 0, "dropped": 0}
        self._random = random.Random(seed)
        self._clients: set[asyncio.StreamWriter] = set()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []  # kept-alive upstream connections
        self._listening = socket.create_server(("127.0.0.1", 0), backlog=256)
        super().__init__()

    @property
    def endpoint_url(self) -> str:
        host, port = self._listening.getsockname()[:2]
        return f"http://{host}:{port}"

    def fault_for(self, method: bytes) -> str | None:
        """``"fail"``, ``"drop"`` or None for the next request (called on the loop's thread only)."""
        self.counts["requests"] += 1
        if method != b"PUT":
            return None
        draw = self._random.random()
        if draw < self.fail_puts:
            self.counts["failed"] += 1
            return "fail"
        if draw < self.fail_puts + self.drop_puts:
            self.counts["dropped"] += 1
            return "drop"
        return None

    def answer_for(self, head: bytes) -> bytes | None:
        """A whole response to send instead of forwarding the request whose ``head`` (request line and headers)
        this is, or None to forward it: where a subclass stands in for a store that answers otherwise (called on
        the loop's thread only, for requests that drew no fault)."""
        return None

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, sock=self._listening)

    async def _stop(self) -> None:
        self._server.close()
        for writer in list(self._clients):  # kept-alive client connections would hold wait_closed() forever
            writer.close()
        for _, upstream in self._idle:
            upstream.close()
        self._idle.clear()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._clients.add(writer)
        try:
            while request := await _read_request(reader, writer):
                head, body = request
                method = head.split(b" ", 1)[0]
                if self.latency:
                    await asyncio.sleep(self.latency)
                fault = self.fault_for(method)
                if fault == "drop":
                    break
                if fault == "fail":
                    writer.write(
                        _response(b"HTTP/1.1 503 Slow Down", [(b"Content-Type", b"application/xml")], SLOW_DOWN)
                    )
                elif (answer := self.answer_for(head)) is not None:
                    writer.write(answer)
                else:
                    writer.write(await self._forward(head, body, method == b"HEAD"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _forward(self, head: bytes, body: bytes, is_head: bool) -> bytes:
        """One request upstream, on a kept-alive connection when the server allows it."""
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await asyncio.open_connection(*self.upstream)
        try:
            writer.write(head + body)
            status, headers, payload, reusable = await _read_response(reader, is_head)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            if not reused:
                raise
            reader, writer = await asyncio.open_connection(*self.upstream)  # the kept-alive one had gone stale
            writer.write(head + body)
            status, headers, payload, reusable = await _read_response(reader, is_head)
        if reusable:
            self._idle.append((reader, writer))
        else:
            writer.close()
        length = next((value for name, value in headers if name.lower() == b"content-length"), None)
        return _response(status, headers, payload, length if is_head else None)


async def _read_response(reader: asyncio.StreamReader, is_head: bool) -> tuple[bytes, list, bytes, bool]:
    """Status line, headers, body, and whether the connection can carry another request."""
    status_and_headers = (await reader.readuntil(b"\r\n\r\n"))[:-4]
    status, *lines = status_and_headers.split(b"\r\n")
    headers = [tuple(part.strip() for part in line.split(b":", 1)) for line in lines if b":" in line]
    fields = {name.lower(): value for name, value in headers}
    closes = fields.get(b"connection", b"").lower() == b"close" or status.startswith(b"HTTP/1.0")
    code = int(status.split()[1])
    if is_head or code in (204, 304) or 100 <= code < 200:
        return status, headers, b"", not closes
    if b"content-length" in fields:
        return status, headers, await reader.readexactly(int(fields[b"content-length"])), not closes
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        return status, headers, await _read_chunks(reader), not closes
    return status, headers, await reader.read(), False


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")  # the (empty) trailer
    return bytes(body)


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[bytes, bytes] | None:
    """The next request's head and body, or None when the client is done.

    A client that sent ``Expect: 100-continue`` (boto3 does, for PUTs) is told
    to go on, and the header is not passed upstream.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"expect" and value.strip().lower() == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            continue
        if name == b"content-length":
            length = int(value)
        kept.append(line)
    body = await reader.readexactly(length) if length else b""
    return b"\r\n".join(kept) + b"\r\n\r\n", body


def header(head: bytes, name: bytes) -> bytes | None:
    """The value of the header ``name`` (case-blind) in a request's ``head``, or None."""
    for line in head.split(b"\r\n")[1:]:
        found, _, value = line.partition(b":")
        if found.strip().lower() == name.lower():
            return value.strip()
    return None


def s3_error(status: bytes, code: str, message: str) -> bytes:
    """A whole response carrying an S3 error document: ``s3_error(b"501 Not Implemented", "NotImplemented", ...)``."""
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    )
    return _response(b"HTTP/1.1 " + status, [(b"Content-Type", b"application/xml")], document.encode())


def _response(status: bytes, headers: list, payload: bytes, content_length: bytes | None = None) -> bytes:
    kept = [b"%s: %s" % (name, value) for name, value in headers if name.lower() not in _DROPPED_HEADERS]
    kept.append(b"Content-Length: %s" % (content_length if content_length is not None else str(len(payload)).encode()))
    return status + b"\r\n" + b"\r\n".join(kept) + b"\r\n\r\n" + payload


def main(argv: list[str] | None = None) -> int:
    """``python -m localaws.proxy UPSTREAM [--latency S] [--fail-puts P] [--drop-puts P]``: print the URL, serve until killed."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m localaws.proxy", description=__doc__.split("\n")[0])
    parser.add_argument("upstream", help="http://127.0.0.1:PORT of the S3 server")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fail-puts", type=float, default=0.0)
    parser.add_argument("--drop-puts", type=float, default=0.0)
    args = parser.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with FaultyProxy(args.upstream, latency=args.latency, fail_puts=args.fail_puts, drop_puts=args.drop_puts) as proxy:
        print(proxy.endpoint_url, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
