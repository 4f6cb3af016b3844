"""``STEM.status.json``: what became of an image, for web apps to poll (the log line is for operators).

Written only by the conversion holding the pyramid's lease, with the pyramid's markers: ``converting``
(with ``progress``, tiles written of tiles expected, at most every ``EVERY`` seconds, from the first of
those on, so a conversion of a second or two writes none), then ``done`` (the outputs, their size and the
cost receipt) or ``failed`` (the one-line reason of the log line). A source that does not own its stem,
or is refused before the lease, never touches it; a removal deletes it with the pyramid.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

CONTENT_TYPE = "application/json"
EVERY = 5.0  # seconds between two writes of a conversion's progress


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StatusDocument:
    """One conversion's status document. ``put`` stores it (the document, and its bytes); ``previous`` reads
    the one an earlier conversion left, if any."""

    def __init__(
        self,
        put: Callable[[dict[str, Any], bytes], None],
        source: dict[str, Any],
        previous: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        self.put = put
        self.previous = previous
        self.document: dict[str, Any] = {"state": "converting", "source": source, "started": _now()}
        self.started = time.monotonic()
        self._written_at: float | None = None  # monotonic time of the last write, None before the first
        self._expected = 0
        self._done = 0
        self._lock = threading.Lock()  # the counts and the document
        self._writing = threading.Lock()  # one PUT at a time, so no older progress lands after a newer state

    def expect(self, tiles: int) -> None:
        """How many tiles the conversion will write."""
        self._expected = tiles

    def progress(self, tiles: int) -> None:
        """``tiles`` more written (from any thread): writes ``converting`` once ``EVERY`` seconds have passed
        since the start or the last write. A thread that finds another writing goes on without waiting."""
        with self._lock:
            self._done += tiles
            now = time.monotonic()
            due = now - (self._written_at if self._written_at is not None else self.started) >= EVERY
            if not due or not self._writing.acquire(blocking=False):
                return
            self._written_at = now
            progress = {"tiles_written": self._done, "tiles_expected": self._expected}
        try:
            self._store(state="converting", progress=progress)
        finally:
            self._writing.release()

    def done(self, outputs: dict[str, str], output_bytes: int, receipt: dict[str, Any]) -> None:
        self._write(
            state="done",
            progress={"tiles_written": self._done, "tiles_expected": self._expected},
            outputs=outputs,
            output_bytes=output_bytes,
            receipt=receipt,
            finished=_now(),
        )

    def failed(self, reason: str) -> None:
        """Say why; unless the document already says so of this very source (a redelivery, or a backfill
        passing again): then it is left as it is, its times those of the first failure."""
        earlier = self.previous()
        if earlier and (earlier.get("state"), earlier.get("reason"), earlier.get("source")) == (
            "failed",
            reason,
            self.document["source"],
        ):
            return
        self._write(state="failed", reason=reason, finished=_now())

    def _write(self, **fields: Any) -> None:
        with self._writing:
            self._store(**fields)

    def _store(self, **fields: Any) -> None:
        with self._lock:
            self.document |= fields | {"updated": _now()}
            body = json.dumps(self.document, indent=1).encode()
        self.put(self.document, body)
