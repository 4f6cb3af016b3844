"""The S3 sink: each tile goes from memory straight to the zoom bucket; a pyramidal TIFF goes up in parts as
it is written (multipart.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import obstore
from obstore.store import S3Store

from .multipart import MultipartStream
from .receipt import Receipt


class S3Sink:
    """Puts each object with its Content-Type, Cache-Control and LambdaZoom's metadata, through obstore.

    Tiles keep ``cache_control``; anything else (a descriptor, a page, ``info.json``) names tiles and gets
    ``index_cache_control``, or a viewer could pair an old descriptor with new tiles. ``guard`` is called
    before each PUT and raises when no more may be written (the conversion lost its lease). Each PUT is
    counted on ``receipt`` (once: obstore retries within ``obstore.put``, out of sight).

    Objects that are ``open``ed go up through the boto3 client ``s3`` as multipart uploads, each replacing
    only the ETag ``seen`` names for its path (or, where it names none, only where there is no object); the
    conversion's own client counts their requests on its receipt.
    """

    def __init__(
        self,
        store: S3Store,
        *,
        s3: Any = None,
        seen: dict[str, str] | None = None,
        cache_control: str = "",
        index_cache_control: str = "",
        metadata: dict[str, str] | None = None,
        guard: Callable[[], None] | None = None,
        receipt: Receipt | None = None,
    ) -> None:
        self.store = store
        self.s3 = s3
        self.seen = seen or {}
        self.cache_control = cache_control
        self.index_cache_control = index_cache_control
        self.metadata = metadata or {}
        self.guard = guard
        self.receipt = receipt

    def put(self, path: str, data: bytes, content_type: str) -> None:
        if self.guard is not None:
            self.guard()
        attributes = {"Content-Type": content_type, **self.metadata}  # other names are x-amz-meta-*
        cache_control = self.cache_control if content_type.startswith("image/") else self.index_cache_control
        if cache_control:
            attributes["Cache-Control"] = cache_control
        if self.receipt is not None:
            self.receipt.count("PutObject")
        obstore.put(self.store, path, data, attributes=attributes, use_multipart=False)

    def open(self, path: str, content_type: str, head_size: int) -> MultipartStream:
        attributes: dict[str, Any] = {"ContentType": content_type, "Metadata": self.metadata}
        if self.index_cache_control:  # replaced in place: a browser must not pair cached ranges of two versions
            attributes["CacheControl"] = self.index_cache_control
        bucket = self.store.config["bucket"]
        return MultipartStream(
            self.s3, bucket, path, head_size, replaces=self.seen.get(path), attributes=attributes, guard=self.guard
        )

