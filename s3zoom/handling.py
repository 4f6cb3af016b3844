"""Events in, work done, one JSON line logged per object: what the handler, the CLI and the demo share."""

from __future__ import annotations

import json
import logging
from typing import Any

from config import Settings

from . import jobs
from .events import S3Record, s3_records
from .jobs import Outcome

log = logging.getLogger("lambdazoom")

_COUNTED_AS = {Outcome.CONVERTED: "done", Outcome.REMOVED: "done", Outcome.FAILED: "failed"}  # the rest: skipped


class RetryableFailure(RuntimeError):
    """At least one record failed for a reason that may pass (S3, network): Lambda should retry.

    Records that did convert are skipped on the retry, so only the failed work is redone.
    """


def handle_event(event: Any, settings: Settings) -> dict[str, int]:
    """Handle every record of an S3 event: convert created objects, remove deleted ones.

    Never lets a ``TypeError`` escape: Zappa would take it for a signature
    mismatch and call the handler again with fewer arguments.
    """
    try:
        records = s3_records(event)
    except Exception as error:  # noqa: BLE001 - a malformed event must not look like a signature mismatch
        raise RetryableFailure(f"unreadable event: {type(error).__name__}: {error}") from error
    if not records:
        log.info(json.dumps({"action": Outcome.IGNORED, "reason": "no S3 object records", "event": _describe(event)}))
    counts = {"done": 0, "skipped": 0, "failed": 0}
    errors: list[str] = []
    for record in records:
        outcome, error = handle_record(record, settings)
        counts[_COUNTED_AS.get(outcome, "skipped")] += 1
        if error:
            errors.append(error)
    if errors:
        raise RetryableFailure(f"{len(errors)} of {len(records)} records failed, will retry: {'; '.join(errors)}")
    return counts


def handle_record(record: S3Record, settings: Settings) -> tuple[Outcome, str | None]:
    """Do one record's work and log its report; return its outcome and, for a retryable failure, why."""
    _warn_if_zoom_bucket_is_unprefixed_source(record.bucket, settings)
    try:
        if record.created:
            report = jobs.convert(settings, record.bucket, record.key, force=record.force)
        elif record.removed:
            report = jobs.remove(settings, record.bucket, record.key)
        else:
            report = {"action": Outcome.IGNORED, "reason": f"event {record.event_name or '(none)'}", "key": record.key}
    except jobs.PermanentFailure as failure:
        log.error(
            json.dumps({"action": Outcome.FAILED, "bucket": record.bucket, "key": record.key, "reason": str(failure)})
        )
        return Outcome.FAILED, None
    except Exception as error:  # noqa: BLE001 - any other failure is retried, and named
        reason = f"s3://{record.bucket}/{record.key}: {type(error).__name__}: {error}"
        log.exception(json.dumps({"action": "error", "bucket": record.bucket, "key": record.key, "reason": reason}))
        return Outcome.FAILED, reason
    log.info(json.dumps(report))
    return Outcome(report["action"]), None


_warned: set[str] = set()


def _warn_if_zoom_bucket_is_unprefixed_source(bucket: str, settings: Settings) -> None:
    if bucket == settings.zoom_bucket and not settings.dest_prefix and bucket not in _warned:
        _warned.add(bucket)
        log.error(
            "S3_ZOOM_BUCKET %r is also the source bucket and DEST_PREFIX is empty: outputs (.dzi, _files/) are "
            "recognised by name and skipped, but set DEST_PREFIX or use a separate zoom bucket",
            bucket,
        )


def _describe(event: Any) -> str:
    if isinstance(event, dict):
        return str(event.get("Event") or event.get("eventName") or sorted(event)[:5])
    return type(event).__name__
