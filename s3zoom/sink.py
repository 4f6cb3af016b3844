"""The S3 tile sink: each tile goes from memory straight to the zoom bucket."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .clients import DirectPut, DirectPutError

log = logging.getLogger(__name__)


class S3Sink:
    """Puts each object in ``bucket`` with its Content-Type, Cache-Control and metadata.

    With ``direct`` set, the first attempt is a lean signed PUT; a failure is
    handed to ``client.put_object``, whose botocore retries (standard or
    adaptive mode) ride out SlowDown, 5xx and dropped connections.
    ``guard`` is called before each PUT and raises when no more may be
    written (the conversion lost its lease).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        cache_control: str = "",
        index_cache_control: str = "",
        metadata: dict[str, str] | None = None,
        direct: DirectPut | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.cache_control = cache_control
        self.index_cache_control = index_cache_control
        self.metadata = metadata or {}
        self.direct = direct
        self.guard = guard
        self.retried = 0  # PUTs that the direct path handed to boto3
        self._lock = threading.Lock()

    def put(self, path: str, data: bytes, content_type: str) -> None:
        if self.guard is not None:
            self.guard()
        if self.direct is not None:
            try:
                self.direct.put(path, data, self._headers(content_type))
                return
            except DirectPutError as error:
                with self._lock:
                    self.retried += 1
                    first = self.retried == 1
                # the first one loudly: a lean path that always fails (a proxy, a signing mismatch) costs a PUT a tile
                log.log(logging.WARNING if first else logging.DEBUG, "retrying through boto3: %s", error)
        cache_control = self._cache_control(content_type)
        options = {"CacheControl": cache_control} if cache_control else {}
        self.client.put_object(
            Bucket=self.bucket, Key=path, Body=data, ContentType=content_type, Metadata=self.metadata, **options
        )

    def _cache_control(self, content_type: str) -> str:
        """Tiles keep theirs; anything else (a descriptor, a page, info.json) names tiles, and must not be kept
        longer than they are, or a viewer pairs an old descriptor with new tiles."""
        return self.cache_control if content_type.startswith("image/") else self.index_cache_control

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type}
        if cache_control := self._cache_control(content_type):
            headers["Cache-Control"] = cache_control
        headers.update({f"x-amz-meta-{name}": value for name, value in self.metadata.items()})
        return headers
