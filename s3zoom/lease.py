"""One writer at a time per pyramid: a lease object beside its tiles, taken and kept with S3's conditional writes.

S3 runs conversions concurrently and at least once, and two of them (``a.jpg`` and ``a.png``, or two quick
uploads of one key) write the same tile keys. Whoever writes the lease object with ``If-None-Match: *``
holds the pyramid; a holder renews it with ``If-Match`` on the lease's ETag, so a renewal fails the moment
someone else has taken it. A holder that died (Lambda killed it at its timeout) stops renewing, and after
the lease's time to live, by S3's own clock, the next conversion takes it over, again with ``If-Match``.

**Fenced.** Each write of the lease has a body of its own (the holder's token and a beat that every renewal
counts up), so every renewal changes the lease's ETag. A conversion that read the lease as expired takes it
over with ``If-Match`` on the ETag it read: had the holder renewed in between, S3 refuses it (412). So the
lease passes on only once the holder's last renewal is a whole time to live old, and by then the holder's
``check``, on its own clock from when that renewal was sent, has refused to start writes for the longest one
may take (``write_lifetime``).

**Released** at the end with a conditional delete on the last ETag the holder knows, even when the holder stopped
trusting its lease (a renewal that timed out may still have landed, and the next conversion should not wait out
a lease nobody holds); where someone else holds it, the delete is refused. A store without conditional deletes
(some S3-compatible ones answer ``501 NotImplemented``) gets a read instead, a comparison of tokens, and an
unconditional delete, sent only while the lease, by the store's own clock, outlives that delete.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
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


def shortest_ttl(write_lifetime: float, renewal_lifetime: float, margin: float) -> float:
    """The shortest time to live that a holder renewing every quarter of it can keep: after each renewal it
    sends, it gets two more attempts in (each up to ``renewal_lifetime``), with ``margin`` to spare, before
    its writable window (the time to live less ``write_lifetime``) closes.

    The second attempt starts half a ttl after the renewal and ends ``renewal_lifetime`` later, so
    ``ttl/2 + renewal_lifetime + margin <= ttl - write_lifetime``, that is ``ttl >= 2 * (write_lifetime +
    renewal_lifetime + margin)``."""
    return 2 * (write_lifetime + renewal_lifetime + margin)


@dataclass
class Lease:
    """A held lease. ``check()`` raises once it is lost; the pyramid must then not be written."""

    s3: Any
    bucket: str
    key: str
    source: str
    token: str  # this holder's, in every body it writes
    ttl: float
    etag: str  # of the last write of the lease S3 confirmed
    beat: int = 0  # that write's count: 0 when taken, one more each renewal
    write_lifetime: float = 0.0  # how long a write started now may still land (its retries and timeouts)
    renewer: Callable[[], Any] | None = None  # makes the client for renewals (short timeouts); else ``s3``
    renewal_lifetime: float = 0.0  # the longest a request of that client may take
    deadline: Deadline = field(default_factory=Deadline)  # the invocation's: no write starts past its margin
    waited: bool = False  # another conversion held it first (what that one did may change this one's plan)
    lost: threading.Event = field(default_factory=threading.Event)
    renewed_at: float = field(default_factory=time.monotonic)  # when that write was sent (this clock)
    gone: bool = False  # S3 showed the lease to be someone else's, or no one's: nothing to release
    _renewal_client: Any = field(default=None, init=False, repr=False)

    @property
    def body(self) -> bytes:
        """What the last write of the lease S3 confirmed holds."""
        return _body(self.source, self.token, self.ttl, self.beat)

    def owns(self, body: bytes) -> bool:
        """Was the lease ``body`` written by this holder (taken or renewed)?"""
        return _field(body, "token") == self.token

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
        if current is None or not self.owns(current.body):
            self.gone = True
            self.lost.set()
            raise LeaseLost(f"lost the lease {self.key}: another conversion took it over")

    def renewal_client(self) -> Any:
        """The client renewals go through, made on first use (on the renewer's thread)."""
        if self._renewal_client is None:
            self._renewal_client = self.renewer() if self.renewer else self.s3
        return self._renewal_client

    def _renew(self) -> None:
        """Rewrite the lease with the next beat over the ETag last seen, so its ETag changes with every renewal."""
        client = self.renewal_client()
        beat, etag = self.beat + 1, self.etag
        sent = time.monotonic()
        try:
            answer = self._write(client, beat, etag)
        except ClientError as error:
            if _code(error) not in _LOST_RACE:
                raise
            current = _read(client, self.bucket, self.key)  # an earlier renewal may have landed unanswered
            if current is None or not self.owns(current.body):
                self.gone = True
                raise
            beat, etag = int(_field(current.body, "beat") or 0) + 1, current.etag  # over that one, then
            sent = time.monotonic()
            answer = self._write(client, beat, etag)
        self.etag, self.beat, self.renewed_at = answer["ETag"], beat, sent

    def _write(self, client: Any, beat: int, over: str) -> dict[str, Any]:
        body = _body(self.source, self.token, self.ttl, beat)
        return client.put_object(Bucket=self.bucket, Key=self.key, Body=body, IfMatch=over, **_TYPE)


@dataclass(frozen=True)
class _Found:
    etag: str
    body: bytes
    expired: bool
    remaining: float  # seconds it surely has left, by S3's clock, before anyone may take it over (0: unknown)


def held_by(body: bytes) -> str:
    """Who a lease body names, for messages."""
    return str(_field(body, "source") or "(unreadable lease)")


def _field(body: bytes, name: str) -> Any:
    """One field of a lease body; None where it has none (or is no lease this code wrote)."""
    try:
        return json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None


def _body(source: str, token: str, ttl: float, beat: int) -> bytes:
    return json.dumps({"source": source, "token": token, "ttl": ttl, "beat": beat}).encode()


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
    renewer: Callable[[], Any] | None = None,
    renewal_lifetime: float = 0.0,
    deadline: Deadline = Deadline(),
) -> Iterator[Lease]:
    """Hold the lease at ``s3://bucket/key`` for a conversion of ``source`` while the block runs.

    Waits up to ``wait`` seconds for a live holder to finish, then raises :class:`StemBusy`. The lease
    is renewed every quarter of ``ttl`` on a thread of its own and deleted when the block ends.
    ``write_lifetime`` is how long a write may take, retries included: ``check`` refuses to start one
    that could land after the lease might have passed to someone else. Renewals go through the client
    ``renewer`` makes (else through ``s3``), whose every request ends within ``renewal_lifetime`` seconds.
    """
    token = uuid.uuid4().hex
    etag, sent, waited = _acquire(s3, bucket, key, _body(source, token, ttl, 0), ttl, wait)
    lease = Lease(
        s3,
        bucket,
        key,
        source,
        token,
        ttl,
        etag,
        write_lifetime=write_lifetime,
        renewer=renewer,
        renewal_lifetime=renewal_lifetime,
        renewed_at=sent,
        deadline=deadline,
        waited=waited,
    )
    stop = threading.Event()
    renewer_thread = threading.Thread(target=_keep, args=(lease, stop), name="lambdazoom-lease", daemon=True)
    renewer_thread.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer_thread.join()
        if not lease.gone:  # lost on this clock only, it may still be ours: then it goes, or the next one waits
            _release(lease)


def _acquire(s3: Any, bucket: str, key: str, body: bytes, ttl: float, wait: float) -> tuple[str, float, bool]:
    """Take the lease, writing ``body``: its ETag, when the write that took it was sent, and whether another
    holder had it first."""
    deadline = time.monotonic() + wait
    pause = 0.05
    waited = False
    while True:
        sent = time.monotonic()
        try:
            answer = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **_TYPE)
            return answer["ETag"], sent, waited
        except ClientError as error:
            if _code(error) not in _LOST_RACE:
                raise
        found = _read(s3, bucket, key)
        waited = True
        if found is not None and found.body == body:  # ours: an attempt that succeeded but whose answer was lost
            return found.etag, sent, waited
        if found is not None and found.expired:
            sent = time.monotonic()
            try:  # its holder stopped renewing it: take it over, unless it renewed or someone else took it since
                answer = s3.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=found.etag, **_TYPE)
                log.warning("took over the expired lease %s of a conversion of %s", key, held_by(found.body))
                return answer["ETag"], sent, waited
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
        ttl = float(_field(body, "ttl"))
    except (ValueError, TypeError):
        ttl = 0.0  # not a lease this code wrote: treat it as expired
    # Both times are whole seconds: a second more, so a lease renewed just now never looks expired. A taker
    # sees it expired once S3's Date passes ``expires``; this answer's Date may lag the truth by a second.
    expires = answer["LastModified"] + timedelta(seconds=ttl + 1)
    remaining = (expires - now).total_seconds() - 1 if date else 0.0
    return _Found(answer["ETag"], body, now > expires, remaining)


def _keep(lease: Lease, stop: threading.Event) -> None:
    """Renew every quarter of the time to live, counted from each attempt's start (so a slow or failed one does
    not push the next back); a renewal refused by S3 means the lease is gone."""
    interval = lease.ttl / 4
    started = lease.renewed_at
    while not stop.wait(max(0.0, started + interval - time.monotonic())):
        started = time.monotonic()
        try:
            lease._renew()
        except ClientError as error:
            if _code(error) in _LOST_RACE:
                lease.lost.set()
                log.warning("lost the lease %s: %s", lease.key, error)
                return
            log.warning("could not renew the lease %s yet: %s", lease.key, error)  # check() gives up in time
        except Exception as error:  # noqa: BLE001 - a dropped connection or a timeout: try again at the next beat
            log.warning("could not renew the lease %s yet: %s", lease.key, error)


def _release(lease: Lease) -> None:
    """Delete the lease if it is still this holder's. Failing that, it expires."""
    try:
        _delete_if_ours(lease)
    except Exception as error:  # noqa: BLE001 - the conversion's own outcome matters more; the ttl ends the lease
        log.warning("could not release the lease %s (it expires within %g s): %s", lease.key, lease.ttl, error)


def _delete_if_ours(lease: Lease) -> None:
    """A conditional delete on the last ETag this holder knows; where S3 refuses it, the ETag the lease has, if
    that is still a body of this holder's (a renewal whose answer was lost, or that timed out, landed)."""
    etag = lease.etag
    for _ in range(2):
        try:
            lease.s3.delete_object(Bucket=lease.bucket, Key=lease.key, IfMatch=etag)
            return
        except ClientError as error:
            if _unsupported(error):
                _delete_if_still_ours(lease)
                return
            if _code(error) not in _LOST_RACE:
                raise
        current = _read(lease.s3, lease.bucket, lease.key)
        if current is None or not lease.owns(current.body):
            return  # gone, or someone else's: theirs to release
        etag = current.etag
    log.warning("could not release the lease %s: it kept changing (it expires within %g s)", lease.key, lease.ttl)


def _delete_if_still_ours(lease: Lease) -> None:
    """For a store that takes no ``If-Match`` on a delete: read the lease, and delete it unconditionally if it is
    this holder's and, by the store's clock, will still be when the delete lands (no one can have taken it over
    by then). Both go through the renewals' client, each request within ``renewal_lifetime``."""
    client = lease.renewal_client()
    asked = time.monotonic()
    current = _read(client, lease.bucket, lease.key)
    if current is None or not lease.owns(current.body):
        return
    left = current.remaining - (time.monotonic() - asked)
    if left <= lease.renewal_lifetime:
        log.warning("left the lease %s to expire: %.1f s of it are left, too few to delete it safely", lease.key, left)
        return
    client.delete_object(Bucket=lease.bucket, Key=lease.key)


def _unsupported(error: ClientError) -> bool:
    """Does this store refuse the conditional request itself (rather than its condition)?"""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(error) == "NotImplemented" or status == 501


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


_TYPE = {"ContentType": "application/json", "CacheControl": "no-store"}
