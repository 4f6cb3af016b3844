"""The command line's failures, one line each: the thing that is missing or out of reach, and what to do.

``python -m lambdazoom`` checks what a command needs (buckets, the object, the function) before it starts,
through clients that give up quickly (:data:`QUICK`): an endpoint that does not answer is reported within
about half a minute, not after botocore's minutes of retries. A missing thing raises :class:`Problem`, and
any other error of boto3's is put in one line by :func:`one_line`.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

QUICK_CONNECT_TIMEOUT = 3  # seconds to connect, each attempt
QUICK_READ_TIMEOUT = 10  # seconds for an answer (redrive's long polls wait 1 s)
QUICK_ATTEMPTS = 3  # in all, with standard retries' jittered backoff between them
QUICK = Config(
    connect_timeout=QUICK_CONNECT_TIMEOUT,
    read_timeout=QUICK_READ_TIMEOUT,
    retries={"mode": "standard", "total_max_attempts": QUICK_ATTEMPTS},
)
NO_CREDENTIALS = (
    "no AWS credentials found: run `aws configure`, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
_MISSING = {"404", "NoSuchBucket", "NoSuchKey", "NotFound", "ResourceNotFoundException"}
_REFUSED = {"403", "AccessDenied", "AccessDeniedException", "Forbidden"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidToken",
}


class Problem(Exception):
    """What to tell the user, in one line, and the exit status: 1 for a failure, 2 for a usage mistake."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def quick_client(service: str, region: str | None = None) -> Any:
    from .clients import session

    return session().client(service, region_name=region, config=QUICK)


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def is_missing(error: BaseException) -> bool:
    return isinstance(error, ClientError) and (
        error_code(error) in _MISSING or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
    )


def zoom_bucket_missing(bucket: str) -> str:
    return (
        f"the zoom bucket {bucket!r} (S3_ZOOM_BUCKET) does not exist: create it (`aws s3 mb s3://{bucket}`), "
        "or set S3_ZOOM_BUCKET to the bucket the pyramids go to"
    )


def check_bucket(s3: Any, bucket: str, missing: str) -> None:
    """Raise :class:`Problem` with ``missing`` if ``bucket`` does not exist, or a refusal if it is not ours."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if is_missing(error):
            raise Problem(missing) from None
        if error_code(error) in _REFUSED:
            raise Problem(
                f"bucket {bucket!r} refuses these credentials (403 Forbidden): check the name (bucket names are "
                "global; this one may be someone else's) or your permissions (s3:ListBucket)"
            ) from None
        raise


def check_object(s3: Any, bucket: str, key: str) -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if is_missing(error):
            folder = key.rpartition("/")[0]
            listing = f"s3://{bucket}/{folder + '/' if folder else ''}"
            raise Problem(f"no object s3://{bucket}/{key}: check the key (`aws s3 ls {listing}` lists them)") from None
        raise


def check_function(name: str, region: str | None = None, stage: str | None = None) -> None:
    """Raise :class:`Problem` if function ``name`` (a name or an ARN) is not deployed. Credentials that may
    invoke it but not read its configuration are let through: the invocations will tell."""
    if name.startswith("arn:") and name.count(":") >= 6:  # arn:aws:lambda:REGION:ACCOUNT:function:NAME
        region = name.split(":")[3]
    client = quick_client("lambda", region)
    try:
        client.get_function(FunctionName=name)
    except ClientError as error:
        if is_missing(error):
            deploy = f"make deploy STAGE={stage}" if stage else "make deploy STAGE=..."
            where = client.meta.region_name
            raise Problem(f"function {name} is not deployed (in {where}): run `{deploy}` first") from None
        if error_code(error) in _REFUSED:
            return
        raise


def one_line(error: BaseException) -> tuple[str, int]:
    """An error of boto3's as one line and an exit status: an endpoint out of reach is named with what to check,
    missing or refused credentials with how to set them."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return NO_CREDENTIALS, 2
    if isinstance(error, NoRegionError):
        return "no AWS region set: set AWS_REGION (or AWS_DEFAULT_REGION), or run `aws configure`", 2
    if isinstance(error, ProxyConnectionError):
        return f"cannot reach the proxy {error.kwargs.get('proxy_url')}: check HTTPS_PROXY and HTTP_PROXY", 1
    unreachable = {
        EndpointConnectionError: "could not connect",
        ConnectTimeoutError: "no connection in time",
        ReadTimeoutError: "no answer in time",
        ConnectionClosedError: "the connection closed before an answer",
        SSLError: "its TLS certificate is not trusted (AWS_CA_BUNDLE names the authority to trust)",
    }
    for kind, what in unreachable.items():
        if isinstance(error, kind):
            return f"cannot reach {_endpoint(error)}: {what}; {_what_to_check()}", 1
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message") or ""
        said = f"{error.operation_name}: {code}" + (f": {message}" if message and message != code else "")
        if code in _BAD_CREDENTIALS:
            return f"{said}: AWS refuses these credentials: check them (`aws sts get-caller-identity`)", 1
        return said, 1
    return f"{type(error).__name__}: {error}", 1


def _endpoint(error: BotoCoreError) -> str:
    url = str(error.kwargs.get("endpoint_url", "")) if hasattr(error, "kwargs") else ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else (url or "AWS")


def _what_to_check() -> str:
    set_here = sorted(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL"))
    if set_here:
        return f"check {set_here[0]}={os.environ[set_here[0]]} (is that server running?)"
    return "check your network connection, and AWS_REGION or AWS_DEFAULT_REGION"
