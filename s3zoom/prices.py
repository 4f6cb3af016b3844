"""The AWS list prices a cost receipt (receipt.py) is charged at: the one table, and its arithmetic.

S3 Standard requests in us-east-1 and Lambda compute, as read from AWS's S3 and Lambda pricing pages
in December 2026 (``READ``). List prices only: no free tier, Savings Plans, volume tiers, data transfer,
storage, or Lambda's per-invocation charge. A deployment elsewhere changes this table and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

READ = "2026-12"

# USD per S3 request, by the class S3 bills it in.
PUT_CLASS = 0.005 / 1000  # PUT, COPY, POST, LIST; the multipart Create, UploadPart and Complete too
GET_CLASS = 0.0004 / 1000  # GET, HEAD and every request not named in another class
DELETE_CLASS = 0.0  # DELETE is free, and AbortMultipartUpload is a DELETE

# USD per GB-second of Lambda compute, by the function's architecture.
LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}

# S3 operations (botocore's names, which a receipt counts by) by their first word. DeleteObjects travels
# as a POST but deletes: it is read as a DELETE, which AWS's page names free without singling it out.
_PUT_CLASS_WORDS = ("Put", "Copy", "List", "Create", "Complete", "UploadPart")
_DELETE_CLASS_WORDS = ("Delete", "AbortMultipartUpload")


def request_price(operation: str) -> float:
    """USD for one request of the S3 ``operation`` (``PutObject``, ``HeadObject``, ``DeleteObjects``...)."""
    if operation.startswith(_DELETE_CLASS_WORDS):
        return DELETE_CLASS
    if operation.startswith(_PUT_CLASS_WORDS):
        return PUT_CLASS
    return GET_CLASS


def cost_usd(requests: Mapping[str, int], gb_seconds: float, architecture: str) -> float:
    """USD for ``requests`` (S3 operation -> count) and ``gb_seconds`` of a function on ``architecture``."""
    return sum(request_price(operation) * count for operation, count in requests.items()) + (
        gb_seconds * LAMBDA_GB_SECOND[architecture]
    )
