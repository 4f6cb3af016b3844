"""boto3 clients, and the lean PUT that carries most tiles.

Clients come from the standard boto3 session, so ``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION`` and the usual credentials all apply
(that is how tests and the demo reach a local S3).
"""

from __future__ import annotations

import functools
import http.client
import re
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


CONNECT_TIMEOUT = 10  # seconds, as the boto3 clients have it
READ_TIMEOUT = 60  # seconds a send or a wait for the answer may take
DEFAULT_PORTS = {"https": 443, "http": 80}


class DirectPutError(Exception):
    """The lean PUT did not succeed; the caller retries it through boto3."""


class DirectPut:
    """A signed S3 PUT without the rest of botocore's client machinery.

    boto3's ``put_object`` spends about 2 ms of client CPU per call on
    events, validation, serialisation and response parsing; signing with
    :class:`S3Signer` and sending on a kept-alive ``http.client`` connection
    costs about 0.3 ms (``make bench-upload``). Nothing is retried here: any
    failure, whatever its kind, is a :class:`DirectPutError` naming the key,
    and the caller retries through boto3, which reports what it cannot mend.
    """

    def __init__(self, client: Any, bucket: str) -> None:
        template = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        parts = urlsplit(template)
        self._path_prefix = parts.path[: -len("k")]  # "/bucket/" or "/" for virtual-hosted buckets
        self._host = _host_header(parts.scheme, parts.netloc)
        self._signer = S3Signer(session().get_credentials(), client.meta.region_name)
        self._connections = _Connections(parts.scheme, parts.netloc)

    def put(self, key: str, data: bytes, headers: Mapping[str, str]) -> None:
        path = self._path_prefix + quote(key, safe="/~")
        connection = None
        try:
            signed = self._signer.sign("PUT", self._host, path, headers, data)
            connection = self._connections.take()
            connection.request("PUT", path, body=data, headers={**signed, "Host": self._host})  # the host signed
            response = connection.getresponse()
            answer = response.read()
        except Exception as error:  # bad header values and credential refreshes too: boto3 gets its turn
            if connection is not None:
                connection.close()
            raise DirectPutError(f"{key}: {error!r}") from error
        self._connections.give_back(connection, reusable=not response.will_close)
        if response.status != 200:
            raise DirectPutError(f"{key}: HTTP {response.status} {_error_code(answer)}".rstrip())


def _host_header(scheme: str, netloc: str) -> str:
    """``netloc`` as ``http.client`` and botocore send it in ``Host``: without the scheme's default port."""
    host, _, port = netloc.rpartition(":")
    if host and port == str(DEFAULT_PORTS[scheme]):
        return host
    return netloc


def _error_code(answer: bytes) -> str:
    """S3's error code from an error reply's XML (``SignatureDoesNotMatch``, ``SlowDown``...), if any."""
    found = re.search(rb"<Code>([^<]{1,100})</Code>", answer[:4096])
    return found[1].decode(errors="replace") if found else ""


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
            connection = http.client.HTTPSConnection(self._netloc, timeout=CONNECT_TIMEOUT, context=self._tls)
        else:
            connection = http.client.HTTPConnection(self._netloc, timeout=CONNECT_TIMEOUT)
        connection.connect()
        connection.sock.settimeout(READ_TIMEOUT)
        return connection

    def give_back(self, connection: http.client.HTTPConnection, *, reusable: bool) -> None:
        if not reusable:
            connection.close()
            return
        with self._lock:
            self._idle.append(connection)


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed (or broken) by the server:
    S3 drops connections idle for a while, e.g. between two invocations of a warm function."""
    poller = select.poll()  # not select.select, which fails on descriptors past 1023
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
