"""What one record's work cost: its S3 requests, counted by operation, and its GB-seconds of Lambda compute,
priced at the list prices of prices.py. handling.py opens one per record and adds its :meth:`Receipt.fields`
to the record's log line.

**How requests are attributed.** Several conversions may run at once in one process (the tests run them on
threads), and a conversion's requests come from threads other than its own: s3transfer's download
workers, the lease's renewals, a multipart upload's part workers. So a receipt does not ask which thread or
context a request came from: it has an S3 client of its own (:meth:`Receipt.client`), which ``jobs.client``
hands out on the thread the receipt is current on (a ``ContextVar``, read where the work starts), and it
counts every HTTP attempt that client sends, retries included, from botocore's ``before-send`` event, on
whatever thread. Whatever uses the conversion's client is on its receipt, and nothing else can be. The lease's
renewals use another client of the receipt's, with short timeouts (see zoom.py), made when the first renewal
is due: a conversion shorter than a renewal interval never makes it. Tile PUTs
go through obstore's shared store: the sink the conversion builds with its receipt counts them, one a
``put`` (obstore's own retries of a PUT are out of sight).

The price of a client of its own, measured by ``python -m bench.receipt_client`` on a shared 2-core machine:
7 to 10 ms of CPU and 172 KB to make it from the cached session; and its first request opens a connection
(with TLS on loopback, a new client and its first HEAD took 16 to 29 ms, a HEAD on a warm client 8 to 13).
Its connections close with the receipt, so a warm container's next conversion opens them again: some
milliseconds a connection in a region. Against the seconds a conversion takes, that buys attribution that
is exact by construction, with no context to carry into anyone's threads.
"""

from __future__ import annotations

import platform
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from config import Settings

from . import prices
from .clients import CONNECT_TIMEOUT, READ_TIMEOUT, new_s3_client

# The function's architecture, for its GB-second price, as platform.machine() names it (arm64 Lambda: aarch64).
ARCHITECTURE = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
# The memory priced when the settings know none (a Settings() made in code): the dev stage's memory_size.
FALLBACK_MEMORY_MB = 1769

_current: ContextVar[Receipt | None] = ContextVar("lambdazoom_receipt", default=None)


class Receipt:
    """The requests and seconds of one record's work, on a function of ``memory_mb`` and ``architecture``."""

    def __init__(self, memory_mb: float, architecture: str = ARCHITECTURE) -> None:
        self.memory_mb = memory_mb
        self.architecture = architecture
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()  # counted from many threads at once
        self._started = time.perf_counter()
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._making = threading.Lock()

    def count(self, operation: str) -> None:
        """One request of the S3 ``operation`` (``PutObject``, ``HeadObject``...)."""
        with self._lock:
            self.requests[operation] += 1

    def client(
        self,
        pool_size: int,
        retry_mode: str,
        max_attempts: int,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> Any:
        """This receipt's own S3 client with these options (made on first use, one for each set of options: a
        lease's renewals have short timeouts of their own): every HTTP attempt it sends is counted here."""
        options = (pool_size, retry_mode, max_attempts, connect_timeout, read_timeout)
        with self._making:  # the conversion's thread and its lease's renewer may ask at once
            made = self._clients.get(options)
            if made is None:
                made = new_s3_client(
                    pool_size, retry_mode, max_attempts, connect_timeout=connect_timeout, read_timeout=read_timeout
                )
                made.meta.events.register("before-send.s3", self._sent)
                self._clients[options] = made
        return made

    def _sent(self, event_name: str, **_: Any) -> None:
        """botocore's ``before-send.s3.<Operation>``, once an attempt; returns None, so the request goes out."""
        self.count(event_name.rsplit(".", 1)[-1])

    def fields(self) -> dict[str, Any]:
        """What the log line carries: ``requests`` by operation, ``gb_seconds`` so far, and ``cost_usd``."""
        gb_seconds = self.memory_mb / 1024 * (time.perf_counter() - self._started)
        with self._lock:
            requests = dict(sorted(self.requests.items()))
        cost = prices.cost_usd(requests, gb_seconds, self.architecture)
        return {"requests": requests, "gb_seconds": round(gb_seconds, 6), "cost_usd": round(cost, 9)}

    def close(self) -> None:
        """Close the clients' connections (their users are done: the block that held the receipt has ended)."""
        for made in self._clients.values():
            made.close()


def current() -> Receipt | None:
    """The receipt of the work running in this context, if any."""
    return _current.get()


@contextmanager
def tally(settings: Settings) -> Iterator[Receipt]:
    """A receipt, current while the block runs.

    Priced at the memory the settings admit images against: in Lambda the function's memory size
    (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``); elsewhere a cgroup's limit, ``MEMORY_LIMIT_MB`` or the machine's
    memory (set ``MEMORY_LIMIT_MB`` to price a local run as a function of that size), else ``FALLBACK_MEMORY_MB``.
    """
    memory = settings.limits.memory
    bill = Receipt(memory / 2**20 if memory else FALLBACK_MEMORY_MB)
    token = _current.set(bill)
    try:
        yield bill
    finally:
        _current.reset(token)
        bill.close()
