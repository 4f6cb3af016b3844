"""boto3 clients, and the lean PUT that carries most tiles.

Clients come from the standard boto3 session, so ``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION`` and the usual credentials all apply
(that is how tests and the demo reach a local S3).
"""

from __future__ import annotations

import functools
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.httpsession import get_cert_path

from .sigv4 import S3Signer


@functools.cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


@functools.cache
def s3_client(pool_size: int, retry_mode: str, max_attempts: int) -> Any:
    """One shared, thread-safe S3 client per setting, kept across warm invocations."""
    return session().client(
        "s3",
        config=Config(
            signature_version="s3v4",
            max_pool_connections=pool_size,
            retries={"mode": retry_mode, "max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=60,
        ),
    )


TIMEOUT = 60  # seconds a connect, a send or a wait for the answer may take


class DirectPutError(Exception):
    """The lean PUT did not succeed; the caller retries it through boto3."""


class DirectPut:
    """A signed S3 PUT without the rest of botocore's client machinery.

    boto3's ``put_object`` spends about 1.7 ms of client CPU per call on
    events, validation, serialisation and response parsing; signing with
    :class:`S3Signer` and sending on a kept-alive ``http.client`` connection
    costs about 0.3 ms. Failures are not retried here.
    """

    def __init__(self, client: Any, bucket: str) -> None:
        template = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        parts = urlsplit(template)
        self._path_prefix = parts.path[: -len("k")]  # "/bucket/" or "/" for virtual-hosted buckets
        self._host = parts.netloc
        self._signer = S3Signer(session().get_credentials(), client.meta.region_name)
        self._connections = _Connections(parts.scheme, parts.netloc)

    def put(self, key: str, data: bytes, headers: Mapping[str, str]) -> None:
        path = self._path_prefix + quote(key, safe="/~")
        signed = self._signer.sign("PUT", self._host, path, headers, data)
        connection = self._connections.take()
        try:
            connection.request("PUT", path, body=data, headers=signed)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise DirectPutError(f"{key}: {error!r}") from error
        self._connections.give_back(connection, reusable=not response.will_close)
        if response.status != 200:
            raise DirectPutError(f"{key}: HTTP {response.status}")


class _Connections:
    """Idle kept-alive connections to one origin, each used by one thread at a time."""

    def __init__(self, scheme: str, netloc: str) -> None:
        self._scheme = scheme
        self._netloc = netloc
        self._tls = ssl.create_default_context(cafile=get_cert_path(True)) if scheme == "https" else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection:
        """An idle connection the server has not closed meanwhile, or a new one."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            if connection.sock is not None and not _closed_by_peer(connection.sock):
                return connection
            connection.close()
        if self._tls is not None:
            return http.client.HTTPSConnection(self._netloc, timeout=TIMEOUT, context=self._tls)
        return http.client.HTTPConnection(self._netloc, timeout=TIMEOUT)

    def give_back(self, connection: http.client.HTTPConnection, *, reusable: bool) -> None:
        if not reusable:
            connection.close()
            return
        with self._lock:
            self._idle.append(connection)


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed (or broken) by the server:
    S3 drops connections idle for a while, e.g. between two invocations of a warm function."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)
