"""moto's server on 127.0.0.1, on a free port, tuned to behave like S3 on the wire."""

from __future__ import annotations

import functools
import logging
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import moto.backends
import moto.moto_server.werkzeug_app
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.s3.exceptions import MissingKey, PreconditionFailed
from moto.s3.responses import S3Response

# Headers and body go out in separate writes; with Nagle's algorithm on, the body can wait 40 ms for an ACK.
MotoRequestHandler.disable_nagle_algorithm = True
# moto lists its own package folder on every request to route it (about 1.5 ms of CPU a request);
# the list cannot change while the server runs.
moto.backends.list_of_moto_modules = functools.cache(moto.backends.list_of_moto_modules)
logging.getLogger("werkzeug").setLevel(logging.WARNING)
# moto lets every origin read everything; S3 answers a browser's cross-origin request only as the bucket's CORS
# rule says, so a page that works here works on AWS with the rule the README gives.
moto.moto_server.werkzeug_app.DISABLE_GLOBAL_CORS = True


_CONDITIONAL_WRITES = threading.Lock()


def _atomic_when_conditional(handler: Callable[..., Any]) -> Callable[..., Any]:
    """S3 checks ``If-Match``/``If-None-Match`` and writes in one step; moto checks, then writes, on a
    thread per request, so two conditional writes could both pass. One lock makes them take turns."""

    @functools.wraps(handler)
    def handle(self: S3Response, *args: Any, **kwargs: Any) -> Any:
        if "If-Match" not in self.headers and "If-None-Match" not in self.headers:
            return handler(self, *args, **kwargs)
        with _CONDITIONAL_WRITES:
            return handler(self, *args, **kwargs)

    return handle


def _completion_honours_if_match(handler: Callable[..., Any]) -> Callable[..., Any]:
    """S3 completes a multipart upload with ``If-Match`` only over an object with that ETag (412 otherwise, 404
    where there is none); moto 5.2 honours ``If-None-Match`` there but not ``If-Match``."""

    @functools.wraps(handler)
    def handle(self: S3Response, request: Any, body: bytes, bucket_name: str, query: dict[str, Any], key_name: str) -> Any:
        wanted = self.headers.get("If-Match")
        if query.get("uploadId") and wanted:
            existing = self.backend.get_object(bucket_name, key_name)
            if existing is None:
                raise MissingKey(key=key_name)
            if existing.etag.strip('"') != wanted.strip('"'):
                raise PreconditionFailed("If-Match")
        return handler(self, request, body, bucket_name, query, key_name)

    return handle


S3Response.put_object = _atomic_when_conditional(S3Response.put_object)
S3Response.delete_object = _atomic_when_conditional(S3Response.delete_object)
S3Response._key_response_post = _atomic_when_conditional(_completion_honours_if_match(S3Response._key_response_post))


class LocalS3:
    """A running moto server; use as a context manager. ``endpoint_url`` is what AWS_ENDPOINT_URL takes."""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    def __enter__(self) -> LocalS3:
        self._server.start()
        self.reset()
        return self

    def reset(self) -> None:
        """Forget every bucket and queue: moto keeps them per process, not per server."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")).close()

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"
