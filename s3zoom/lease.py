"""One writer at a time per pyramid: a lease object beside its tiles, taken and kept with S3's conditional writes.

S3 runs conversions concurrently and at least once, and two of them (``a.jpg`` and ``a.png``, or two quick
uploads of one key) write the same tile keys. Whoever writes the lease object with ``If-None-Match: *``
holds the pyramid; a holder renews it with ``If-Match`` on the lease's ETag, so a renewal fails the moment
someone else has taken it. A holder that died (Lambda killed it at its timeout) stops renewing, and after
the lease's time to live, by S3's own clock, the next conversion takes it over, again with ``If-Match``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import ClientError

from .deadline import Deadline

log = logging.getLogger("lambdazoom")

# What S3 answers a conditional write that lost: 412 when the condition is false, 409 when another
# conditional write to the key was under way; 404 when an If-Match write finds the object gone.
_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "412", "409"}


class StemBusy(RuntimeError):
    """Another conversion of this pyramid is running and did not finish within the wait: retry later."""


class LeaseLost(RuntimeError):
    """This conversion stopped holding its pyramid's lease (it could not renew it in time): retry."""


@dataclass
class Lease:
    """A held lease. ``check()`` raises once it is lost; the pyramid must then not be written."""

    s3: Any
    bucket: str
    key: str
    body: bytes
    etag: str
    ttl: float
    write_lifetime: float = 0.0  # how long a write started now may still land (its retries and timeouts)
    deadline: Deadline = field(default_factory=Deadline)  # the invocation's: no write starts past its margin
    waited: bool = False  # another conversion held it first (what that one did may change this one's plan)
    lost: threading.Event = field(default_factory=threading.Event)
    renewed_at: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        """Raise unless a write started now will land before anyone else could take the lease over, and before
        the invocation's deadline."""
        self.deadline.check("writing")
        if self.lost.is_set() or time.monotonic() - self.renewed_at > self.ttl - self.write_lifetime:
            self.lost.set()
            raise LeaseLost(f"lost the lease {self.key}: it was not renewed in time")

    def confirm(self) -> None:
        """Ask S3 that the lease is still this one: the last look before publishing."""
        self.check()
        current = _read(self.s3, self.bucket, self.key)
        if current is None or current.body != self.body:
            self.lost.set()
            raise LeaseLost(f"lost the lease {self.key}: another conversion took it over")

    def _renew(self) -> None:
        try:
            answer = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self.body, IfMatch=self.etag, **_TYPE)
            self.etag = answer["ETag"]
        except ClientError as error:
            if _code(error) not in _LOST_RACE:
                raise
            current = _read(self.s3, self.bucket, self.key)  # an earlier attempt may have succeeded unanswered
            if current is None or current.body != self.body:
                raise
            self.etag = current.etag
        self.renewed_at = time.monotonic()


@dataclass(frozen=True)
class _Found:
    etag: str
    body: bytes
    expired: bool


def held_by(body: bytes) -> str:
    """Who a lease body names, for messages."""
    try:
        return str(json.loads(body)["source"])
    except (ValueError, KeyError, TypeError):
        return "(unreadable lease)"


@contextmanager
def leased(
    s3: Any,
    bucket: str,
    key: str,
    source: str,
    *,
    ttl: float,
    wait: float,
    write_lifetime: float = 0.0,
    deadline: Deadline = Deadline(),
) -> Iterator[Lease]:
    """Hold the lease at ``s3://bucket/key`` for a conversion of ``source`` while the block runs.

    Waits up to ``wait`` seconds for a live holder to finish, then raises :class:`StemBusy`. The lease
    is renewed every quarter of ``ttl`` on a thread of its own and deleted when the block ends.
    ``write_lifetime`` is how long a write may take, retries included: ``check`` refuses to start one
    that could land after the lease might have passed to someone else.
    """
    body = json.dumps({"source": source, "token": uuid.uuid4().hex, "ttl": ttl}).encode()
    lease = _acquire(s3, bucket, key, body, ttl, wait)
    lease.write_lifetime, lease.deadline = write_lifetime, deadline
    stop = threading.Event()
    renewer = threading.Thread(target=_keep, args=(lease, stop), name="lambdazoom-lease", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        if not lease.lost.is_set():
            _release(lease)


def _acquire(s3: Any, bucket: str, key: str, body: bytes, ttl: float, wait: float) -> Lease:
    deadline = time.monotonic() + wait
    pause = 0.05
    waited = False
    while True:
        try:
            answer = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **_TYPE)
            return Lease(s3, bucket, key, body, answer["ETag"], ttl, waited=waited)
        except ClientError as error:
            if _code(error) not in _LOST_RACE:
                raise
        found = _read(s3, bucket, key)
        waited = True
        if found is not None and found.body == body:  # ours: an attempt that succeeded but whose answer was lost
            return Lease(s3, bucket, key, body, found.etag, ttl, waited=waited)
        if found is not None and found.expired:
            try:  # its holder stopped renewing it: take it over, unless someone else just did
                answer = s3.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=found.etag, **_TYPE)
                log.warning("took over the expired lease %s of a conversion of %s", key, held_by(found.body))
                return Lease(s3, bucket, key, body, answer["ETag"], ttl, waited=waited)
            except ClientError as error:
                if _code(error) not in _LOST_RACE:
                    raise
        if found is not None and time.monotonic() > deadline:
            raise StemBusy(
                f"another conversion (of {held_by(found.body)}) is writing this pyramid and did not finish "
                f"within {wait:g} s; retry later"
            )
        time.sleep(pause * random.uniform(0.5, 1.5))  # jittered, so waiters do not knock in step
        pause = min(pause * 2, 2.0)


def _read(s3: Any, bucket: str, key: str) -> _Found | None:
    """The lease as stored, and whether it expired: by S3's clock (its ``Date`` against ``Last-Modified``)."""
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _code(error) in ("NoSuchKey", "404"):
            return None
        raise
    body = answer["Body"].read()
    date = answer["ResponseMetadata"].get("HTTPHeaders", {}).get("date")
    now = parsedate_to_datetime(date) if date else datetime.now(UTC)
    try:
        ttl = float(json.loads(body)["ttl"])
    except (ValueError, KeyError, TypeError):
        ttl = 0.0  # not a lease this code wrote: treat it as expired
    # Both times are whole seconds: a second more, so a lease renewed just now never looks expired.
    return _Found(answer["ETag"], body, now > answer["LastModified"] + timedelta(seconds=ttl + 1))


def _keep(lease: Lease, stop: threading.Event) -> None:
    """Renew every quarter of the time to live; a renewal refused by S3 means the lease is gone."""
    while not stop.wait(lease.ttl / 4):
        try:
            lease._renew()
        except ClientError as error:
            if _code(error) in _LOST_RACE:
                lease.lost.set()
                log.warning("lost the lease %s: %s", lease.key, error)
                return
            log.warning("could not renew the lease %s yet: %s", lease.key, error)  # check() gives up at the ttl
        except Exception as error:  # noqa: BLE001 - a dropped connection: try again at the next beat
            log.warning("could not renew the lease %s yet: %s", lease.key, error)


def _release(lease: Lease) -> None:
    """Delete the lease, only if it is still this one (a conditional delete). Failing that, it expires."""
    try:
        lease.s3.delete_object(Bucket=lease.bucket, Key=lease.key, IfMatch=lease.etag)
    except Exception as error:  # noqa: BLE001 - the conversion's own outcome matters more; the ttl ends the lease
        if not (isinstance(error, ClientError) and _code(error) in _LOST_RACE):
            log.warning("could not release the lease %s (it expires in %g s): %s", lease.key, lease.ttl, error)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


_TYPE = {"ContentType": "application/json", "CacheControl": "no-store"}
