"""``python -m localaws [--port N] [--latency SECONDS]``: run a local S3 until interrupted.

moto's own WSGI application, served by waitress (a production WSGI server with
keep-alive and a thread pool): werkzeug's development server, which moto's
``ThreadedMotoServer`` uses, starts a thread and a connection per request and
spends about twice the CPU on each. Prints one JSON line: ``s3`` is the
server's URL; ``endpoint`` the one to use, behind a latency proxy (a process
of its own) when ``--latency`` is given; ``pids`` the serving processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import signal
import subprocess
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from waitress.server import create_server

from . import server as _tuned  # noqa: F401 - moto's routing tweak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="the S3 server's port (default: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds a proxy in front adds to every request")
    args = parser.parse_args(argv)
    logging.getLogger("waitress").setLevel(logging.ERROR)
    listening = socket.create_server(("127.0.0.1", args.port), backlog=256)
    wsgi = create_server(
        DomainDispatcherApplication(create_backend_app), sockets=[listening], threads=4, connection_limit=512
    )
    url = "http://127.0.0.1:%d" % listening.getsockname()[1]
    urls = {"s3": url, "endpoint": url, "pids": [os.getpid()]}
    proxy = None
    if args.latency:
        command = [sys.executable, "-m", "localaws.proxy", url, "--latency", str(args.latency)]
        proxy = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert proxy.stdout is not None
        urls["endpoint"] = proxy.stdout.readline().strip()
        urls["pids"].append(proxy.pid)
    print(json.dumps(urls), flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        wsgi.run()
    except KeyboardInterrupt:
        pass
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # leaves waitress's loop through the same door as Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
