"""``python -m localaws [--port N] [--latency SECONDS] [--faults FAIL,DROP]``: run a local S3 until interrupted.

moto's own WSGI application (``localaws.app``), served by granian, whose HTTP
handling is in Rust, so the server's one Python interpreter runs moto and
little else: about 0.95 ms of CPU per PUT on these machines, against 1.4 ms
with waitress and twice that with werkzeug's development server, which moto's
``ThreadedMotoServer`` uses. That matters because the benchmarks' server
shares two cores with the code under test, where S3's CPU would not.
Prints one JSON line: ``s3`` is the server's URL; ``endpoint`` the one to
use, behind a latency proxy (a process of its own) when ``--latency`` is
given; ``faulty`` one behind a second proxy that also answers a share FAIL of PUTs
with 503 SlowDown and drops a share DROP of their connections, when ``--faults`` is
given; ``pids`` the serving processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

STARTUP_SECONDS = 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="the S3 server's port (default: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds a proxy in front adds to every request")
    parser.add_argument("--faults", metavar="FAIL,DROP", help="also a proxy failing and dropping these shares of PUTs")
    args = parser.parse_args(argv)
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        server = _serve(port)
        urls = {"s3": url, "endpoint": url, "pids": _process_tree(server.pid)}
        if args.latency:
            urls["endpoint"] = _proxy(url, urls["pids"], "--latency", str(args.latency))
        if args.faults:
            fail, drop = args.faults.split(",")
            urls["faulty"] = _proxy(
                url, urls["pids"], "--latency", str(args.latency), "--fail-puts", fail, "--drop-puts", drop
            )
        print(json.dumps(urls), flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        _stop_children()
    return 0


def _proxy(upstream: str, pids: list[int], *options: str) -> str:
    """Start ``localaws.proxy`` in front of ``upstream`` (its pid joins ``pids``); its URL."""
    proxy = subprocess.Popen(
        [sys.executable, "-m", "localaws.proxy", upstream, *options], stdout=subprocess.PIPE, text=True
    )
    assert proxy.stdout is not None
    pids.append(proxy.pid)
    return proxy.stdout.readline().strip()


def _serve(port: int) -> subprocess.Popen:
    """granian serving ``localaws.app`` on 127.0.0.1:``port`` with one worker, once that answers."""
    command = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--blocking-threads", "1", "--http", "1", "--no-ws", "--log-level", "error",
        "localaws.app:app",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()  # S3's ListBuckets
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the local S3 did not start on port {port}") from None
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_children() -> None:
    """Stop and reap every process this one started, found in /proc rather than through Popen objects:
    a SIGTERM that lands inside ``Popen()`` leaves a child running that no Popen object holds."""
    children = _children(os.getpid())
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian runs its worker in a child process)."""
    return [pid, *(descendant for child in _children(pid) for descendant in _process_tree(child))]


if __name__ == "__main__":
    sys.exit(main())
