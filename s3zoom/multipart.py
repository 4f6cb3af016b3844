"""One S3 object uploaded as it is written, its first bytes last: a pyramidal TIFF's tiles go up while the
pyramid fills them, and its head (the index of every tile) goes up once the last tile is in.

S3 orders the parts of a multipart upload by number, not by the time they arrive, so part 1 (the head and
the first bytes behind it) is sent last. Every part but the last must be at least 5 MiB, so part 1 waits in
memory until it has that much; an object smaller than that is sent whole with one PUT. Nothing is visible
before the completion, which is conditional: it replaces only the very object the conversion saw at its
start (``If-Match`` on its ETag), or creates one where there was none (``If-None-Match: *``), so a stale or
concurrent conversion never replaces a newer one. Any failure aborts the upload, leaving no parts behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

MIN_PART = 5 * 2**20  # S3's smallest part but the last
PART_SIZE = 8 * 2**20
MAX_PARTS = 10_000
PARTS_IN_FLIGHT = 2  # memory: at most this many parts on their way, besides part 1 and the one filling


class ReplacedMeanwhile(Exception):
    """The object changed since the conversion looked (another conversion published): nothing was replaced."""


class MultipartStream:
    """An :class:`deepzoom.ObjectStream` into ``s3://bucket/key`` through the boto3 client ``s3``.

    ``replaces`` is the ETag of the object the conversion means to replace, or None where it means to create
    one. ``attributes`` go with the object (ContentType, CacheControl, Metadata); ``guard`` is called before
    each request that writes, and raises when no more may be written (the conversion lost its lease).
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        head_size: int,
        *,
        replaces: str | None,
        attributes: dict[str, Any],
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.head_size = head_size
        self.attributes = attributes
        self.condition = {"IfMatch": replaces} if replaces else {"IfNoneMatch": "*"}
        self.guard = guard or (lambda: None)
        self._first = bytearray()  # the body's first bytes, sent behind the head as part 1
        self._filling = bytearray()
        self._upload_id: str | None = None
        self._parts: dict[int, Future[str]] = {}
        self._room = threading.Semaphore(PARTS_IN_FLIGHT)
        self._pool: ThreadPoolExecutor | None = None

    def write(self, data: bytes) -> None:
        if self._upload_id is None and self.head_size + len(self._first) < MIN_PART:
            self._first += data
            return
        if self._upload_id is None:
            self._start()
        self._filling += data
        if len(self._filling) >= PART_SIZE:
            self._send(bytes(self._filling))
            self._filling.clear()

    def publish(self, head: bytes) -> None:
        if len(head) != self.head_size:
            raise ValueError(f"the head is {len(head)} bytes, not the {self.head_size} reserved")
        self.guard()
        if self._upload_id is None:
            self._conditional(self.s3.put_object, Body=head + self._first, **self.attributes)
            return
        if self._filling:
            self._send(bytes(self._filling))
            self._filling.clear()
        self._parts[1] = self._pool_of().submit(self._upload_part, 1, head + self._first)
        parts = [{"PartNumber": number, "ETag": part.result()} for number, part in sorted(self._parts.items())]
        self.guard()
        self._conditional(
            self.s3.complete_multipart_upload, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
        )
        self._close()

    def abort(self) -> None:
        """Drop every part sent; the object, if there was one, stays as it was."""
        for part in self._parts.values():
            part.cancel()
        self._close()
        if self._upload_id is not None:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None

    def _start(self) -> None:
        self.guard()
        answer = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, **self.attributes)
        self._upload_id = answer["UploadId"]

    def _send(self, data: bytes) -> None:
        """Send the next part on a worker thread, waiting while ``PARTS_IN_FLIGHT`` are on their way; raise
        the first failure of a part sent before."""
        for part in self._parts.values():
            if part.done() and part.exception() is not None:
                raise part.exception()  # type: ignore[misc]
        number = len(self._parts) + 2  # part 1 comes last
        if number > MAX_PARTS:
            raise RuntimeError(f"s3://{self.bucket}/{self.key} would need more than {MAX_PARTS} parts")
        self._room.acquire()
        part = self._pool_of().submit(self._upload_part, number, data)
        part.add_done_callback(lambda _: self._room.release())
        self._parts[number] = part

    def _upload_part(self, number: int, data: bytes) -> str:
        self.guard()
        answer = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        return answer["ETag"]

    def _conditional(self, request: Callable[..., Any], **arguments: Any) -> None:
        try:
            request(Bucket=self.bucket, Key=self.key, **self.condition, **arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "NoSuchKey", "404", "ConditionalRequestConflict", "409"):
                raise ReplacedMeanwhile(
                    f"s3://{self.bucket}/{self.key} changed while this conversion wrote it ({code}); not replaced"
                ) from None
            raise

    def _pool_of(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="lambdazoom-part")
        return self._pool

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
