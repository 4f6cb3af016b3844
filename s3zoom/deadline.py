"""The invocation's deadline: Lambda stops a function at its timeout, mid-write, without a word.

A conversion killed there has taken the old ``.dzi`` down and holds the pyramid's lease, and an SQS batch
killed there comes back only after the queue's visibility timeout (six times the function's). So no work
starts that cannot end in time, a lease is waited for only as long as the invocation has left, and a
conversion still writing when the margin is reached stops itself (its lease's ``check`` raises
:class:`OutOfTime`), releases its lease and is handed back to be retried soon (see sources.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


class OutOfTime(RuntimeError):
    """Too little of the invocation is left to start or finish this work: it is retried in a new one."""


@dataclass(frozen=True)
class Deadline:
    """When the invocation ends (``time.monotonic()``), less ``margin`` seconds kept for publishing,
    withdrawing and releasing; ``at`` None is no deadline (the command line, a test)."""

    at: float | None = None
    margin: float = 0.0

    @classmethod
    def of(cls, context: Any, margin: float) -> Deadline:
        """The deadline of a Lambda ``context`` (anything with ``get_remaining_time_in_millis``)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return cls()
        return cls(time.monotonic() + remaining() / 1000, margin)

    def left(self) -> float:
        """Seconds left before the margin, or infinity without a deadline."""
        return float("inf") if self.at is None else self.at - self.margin - time.monotonic()

    def check(self, doing: str) -> None:
        """Raise :class:`OutOfTime` once the margin is reached."""
        if self.left() <= 0:
            raise OutOfTime(f"stopped {doing}: the invocation ends in {self.margin:g} s or less; retried soon")
