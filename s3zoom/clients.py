"""boto3 clients, and the lean PUT that carries most tiles.

Clients come from the standard boto3 session, so ``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION`` and the usual credentials all apply
(that is how tests and the demo reach a local S3).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import urllib3
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


class DirectPutError(Exception):
    """The lean PUT did not succeed; the caller retries it through boto3."""


class DirectPut:
    """A signed S3 PUT without the rest of botocore's client machinery.

    boto3's ``put_object`` spends about 1.7 ms of client CPU per call on
    events, validation, serialisation and response parsing; signing with
    :class:`S3Signer` and sending over a shared urllib3 pool costs about
    0.4 ms. Failures are not retried here.
    """

    def __init__(self, client: Any, bucket: str, pool_size: int) -> None:
        template = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        parts = urlsplit(template)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path_prefix = parts.path[: -len("k")]  # "/bucket/" or "/" for virtual-hosted buckets
        self._host = parts.netloc
        self._signer = S3Signer(session().get_credentials(), client.meta.region_name)
        tls = {"ca_certs": get_cert_path(True)} if parts.scheme == "https" else {}
        self._pool = urllib3.connection_from_url(
            self._origin,
            maxsize=pool_size,
            block=False,
            timeout=urllib3.Timeout(connect=10, read=60),
            retries=False,
            **tls,
        )

    def put(self, key: str, data: bytes, headers: Mapping[str, str]) -> None:
        path = self._path_prefix + quote(key, safe="/~")
        signed = self._signer.sign("PUT", self._host, path, headers, data)
        try:
            response = self._pool.urlopen("PUT", path, body=data, headers=signed)
        except urllib3.exceptions.HTTPError as error:
            raise DirectPutError(f"{key}: {error}") from error
        if response.status != 200:
            raise DirectPutError(f"{key}: HTTP {response.status}")
