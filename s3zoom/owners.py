"""Which source owns a pyramid when several keys share its stem (``a.jpg``, ``a.png`` and ``a.JPG`` all make ``a.dzi``).

The rule reads only what is in the source bucket, never the order in which events arrive, so every
conversion and every redelivery of any of those keys agrees on it: the newest object owns the stem,
and a tie (S3 keeps times to the second) goes to the smallest key. Deleting the owner hands the
stem to the next newest.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any


def stem_sources(s3: Any, bucket: str, key: str, is_source: Callable[[str], bool]) -> dict[str, dict[str, Any]]:
    """Every source of ``key``'s stem in ``bucket``, as the listing shows it (``ETag``, ``LastModified``,
    ``Size``), by key. ``is_source`` says which keys count (an accepted extension, not one of our outputs)."""
    stem = posixpath.splitext(key)[0]
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=stem + ".", Delimiter="/"):
        for item in page.get("Contents", []):
            if posixpath.splitext(item["Key"])[0] == stem and is_source(item["Key"]):
                found[item["Key"]] = item  # listed with a.jpg's prefix "a.", a.b.jpg has the stem a.b
    return found


def owner_of(sources: dict[str, dict[str, Any]]) -> str | None:
    """The newest of a stem's ``sources``, a tie going to the smallest key; None if there are none."""
    return min(sources, key=lambda found: (-sources[found]["LastModified"].timestamp(), found), default=None)


def stem_owner(s3: Any, bucket: str, key: str, is_source: Callable[[str], bool]) -> str | None:
    """The key of ``bucket`` that owns ``key``'s pyramid, or None if no object of that stem exists."""
    return owner_of(stem_sources(s3, bucket, key, is_source))
