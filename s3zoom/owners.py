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


def stem_owner(s3: Any, bucket: str, key: str, is_source: Callable[[str], bool]) -> str | None:
    """The key of ``bucket`` that owns ``key``'s pyramid, or None if no object of that stem exists.

    ``is_source`` says which keys count (an accepted extension, not one of our own outputs).
    """
    stem = posixpath.splitext(key)[0]
    newest: tuple[Any, str] | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=stem + "."):
        for item in page.get("Contents", []):
            found = item["Key"]
            if posixpath.splitext(found)[0] != stem or not is_source(found):
                continue  # listed with a.jpg's prefix "a.", a.b.jpg has the stem a.b
            if (
                newest is None
                or item["LastModified"] > newest[0]
                or (item["LastModified"] == newest[0] and found < newest[1])
            ):
                newest = (item["LastModified"], found)
    return newest[1] if newest else None
