"""The S3 clients: boto3 for HEAD, list, delete and the download; obstore for the tile PUTs.

Both read the standard environment: credentials (a Lambda role's session token too, through
boto3's session, which obstore asks for them), ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL`` (how the tests, the demo and the benchmarks reach a local S3) and
``AWS_CA_BUNDLE``. boto3's ``put_object`` spends about 1.6 ms of client CPU a call; obstore's ``put``
(Rust's ``object_store``) about 0.28 ms, and it retries SlowDown, 5xx and dropped connections itself,
each request on its own backoff, so a throttled prefix slows only the requests it refused.
"""

from __future__ import annotations

import functools
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.store import S3Store

CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 30  # seconds a request may wait for its answer
# No tile PUT is retried after this long (the conversion fails, and is retried). With READ_TIMEOUT, a PUT ends
# within 75 s of its start; a holder starts none later than that before its lease could pass on (lease.py), so
# no tile of a conversion that lost its lease can land after another conversion has taken it over.
RETRY_BOUND = timedelta(seconds=45)
WRITE_LIFETIME = RETRY_BOUND.total_seconds() + READ_TIMEOUT  # the longest a tile PUT may take
# A lease's renewals go through a client of their own: one attempt a beat, answered within these or given up
# (the next beat tries again), so a stalled connection costs one beat, not the lease. The minimum LEASE_SECONDS
# (config.py) counts on it.
RENEWAL_CONNECT_TIMEOUT = 2  # seconds
RENEWAL_READ_TIMEOUT = 5  # seconds
RENEWAL_LIFETIME = RENEWAL_CONNECT_TIMEOUT + RENEWAL_READ_TIMEOUT  # the longest one renewal may take
RENEWAL_CLIENT = {
    "pool_size": 2,
    "retry_mode": "standard",
    "max_attempts": 1,
    "connect_timeout": RENEWAL_CONNECT_TIMEOUT,
    "read_timeout": RENEWAL_READ_TIMEOUT,
}
_MAKING = threading.Lock()  # a boto3 session makes one client at a time (a lease's renewer makes its own)


@functools.cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


def new_s3_client(
    pool_size: int,
    retry_mode: str,
    max_attempts: int,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> Any:
    """An S3 client of its own, with connections of its own (a receipt's, see receipt.py)."""
    config = Config(
        signature_version="s3v4",
        max_pool_connections=pool_size,
        # botocore's "max_attempts" counts the retries alone; "total_max_attempts" the first attempt too
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    with _MAKING:
        return session().client("s3", config=config)


# One shared, thread-safe S3 client per setting, kept across warm invocations.
s3_client = functools.cache(new_s3_client)


@functools.cache
def tile_store(bucket: str, region: str, max_attempts: int, endpoint: str | None = None) -> S3Store:
    """An obstore store for PUTs to ``bucket`` (in ``region``), retrying each request up to ``max_attempts``
    times in all, with jittered exponential backoff from 100 ms to 15 s and no retry after ``RETRY_BOUND``.
    ``endpoint`` defaults to the environment's, as boto3's does."""
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=CONNECT_TIMEOUT),
        "timeout": timedelta(seconds=READ_TIMEOUT),
    }
    if endpoint and endpoint.startswith("http://"):
        options["allow_http"] = True
    if bundle := os.environ.get("AWS_CA_BUNDLE"):
        options["root_certificate"] = Path(bundle).read_bytes()
    return S3Store(
        bucket,
        region=region,
        endpoint=endpoint,
        credential_provider=Boto3CredentialProvider(session()),
        client_options=options,
        retry_config={
            "max_retries": max(max_attempts - 1, 0),
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=15), "base": 2},
            "retry_timeout": RETRY_BOUND,
        },
    )


def bucket_region(client: Any, bucket: str) -> str:
    """Where ``bucket`` is: S3 names it in every HEAD answer, even a refusal. A PUT signed for another
    region is refused, so the tile store must be built for the bucket's own."""
    answer = client.head_bucket(Bucket=bucket)
    return answer["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region") or client.meta.region_name
