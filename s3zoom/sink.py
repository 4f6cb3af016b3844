"""The S3 tile sink: each tile goes from memory straight to the zoom bucket."""

from __future__ import annotations

from collections.abc import Callable

import obstore
from obstore.store import S3Store

from .receipt import Receipt


class S3Sink:
    """Puts each object with its Content-Type, Cache-Control and LambdaZoom's metadata, through obstore.

    Tiles keep ``cache_control``; anything else (a descriptor, a page, ``info.json``) names tiles and gets
    ``index_cache_control``, or a viewer could pair an old descriptor with new tiles. ``guard`` is called
    before each PUT and raises when no more may be written (the conversion lost its lease). Each PUT is
    counted on ``receipt`` (once: obstore retries within ``obstore.put``, out of sight).
    """

    def __init__(
        self,
        store: S3Store,
        *,
        cache_control: str = "",
        index_cache_control: str = "",
        metadata: dict[str, str] | None = None,
        guard: Callable[[], None] | None = None,
        receipt: Receipt | None = None,
    ) -> None:
        self.store = store
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
