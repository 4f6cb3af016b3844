"""Events in, work done, one JSON line logged per object: what the handler, the CLI and the demo share."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config import Settings

from . import jobs, metrics, receipt
from .deadline import Deadline, OutOfTime
from .events import S3Record, s3_records
from .jobs import Outcome

log = logging.getLogger("lambdazoom")

MESSAGE_SOURCES = ("aws:sqs", "aws:sns")  # services whose records carry S3 notifications as messages
_COUNTED_AS = {Outcome.CONVERTED: "done", Outcome.REMOVED: "done", Outcome.FAILED: "failed"}  # the rest: skipped


@dataclass(frozen=True)
class Handled:
    """What became of one object: its outcome, why it failed if a retry may succeed, and the report's reason."""

    outcome: Outcome
    retry: str | None = None
    reason: str = ""
    soon: bool = False  # stopped for the invocation's deadline: deliver it again soon, not at the usual delay


class RetryableFailure(RuntimeError):
    """At least one record failed for a reason that may pass (S3, network): Lambda should retry.

    Records that did convert are skipped on the retry, so only the failed work is redone.
    """


def handle_event(event: Any, settings: Settings, context: Any = None) -> dict[str, Any]:
    """Handle an event of any shape the function is sent, and answer as its sender expects.

    S3 notifications (directly, by S3 itself or through SNS) and EventBridge events: convert created
    objects, remove deleted and lifecycle-expired ones, and raise :class:`RetryableFailure` if any failed
    for a reason that may pass. SQS batches and S3 Batch Operations get the answers their services read
    (see sources.py).
    Never lets a ``TypeError`` escape: Zappa would take it for a signature mismatch and call the
    handler again with fewer arguments.
    """
    handle = functools.partial(handle_record, deadline=Deadline.of(context, settings.deadline_margin_seconds))
    if isinstance(event, dict) and ("tasks" in event or "source" in event or _first_source(event) in MESSAGE_SOURCES):
        from . import sources  # Powertools, loaded only for the shapes that need it

        if sources.is_sqs(event):
            return sources.handle_sqs(event, settings, handle, context)
        if sources.is_sns(event):  # an unreadable message raises: retried, then the on-failure destination
            return _handle_records(sources.sns_records(event), event, settings, handle)
        if sources.is_batch_operations(event):
            return sources.handle_batch_operations(event, settings, handle)
        if sources.is_eventbridge(event):
            record = sources.eventbridge_record(event, settings, jobs.client(settings))
            return _handle_records([record] if record else [], event, settings, handle)
    try:
        records = s3_records(event)
    except Exception as error:  # noqa: BLE001 - a malformed event must not look like a signature mismatch
        raise RetryableFailure(f"unreadable event: {type(error).__name__}: {error}") from error
    return _handle_records(records, event, settings, handle)


def _handle_records(
    records: list[S3Record], event: Any, settings: Settings, handle: Callable[[S3Record, Settings], Handled]
) -> dict[str, int]:
    if not records:
        log.info(json.dumps({"action": Outcome.IGNORED, "reason": "no S3 object records", "event": _describe(event)}))
    counts = {"done": 0, "skipped": 0, "failed": 0}
    errors: list[str] = []
    for record in records:
        handled = handle(record, settings)
        counts[_COUNTED_AS.get(handled.outcome, "skipped")] += 1
        if handled.retry:
            errors.append(handled.retry)
    if errors:
        raise RetryableFailure(f"{len(errors)} of {len(records)} records failed, will retry: {'; '.join(errors)}")
    return counts


def handle_record(record: S3Record, settings: Settings, deadline: Deadline = Deadline()) -> Handled:
    """Do one record's work and log its report, with the receipt of what the work cost (see receipt.py).
    Work that ``deadline`` leaves no time for is not started (or stops itself) and is handed back."""
    _warn_if_zoom_bucket_is_unprefixed_source(record.bucket, settings)
    error: Exception | None = None
    with receipt.tally(settings) as bill:
        try:
            deadline.check("before starting")
            report = _work(record, settings, deadline)
        except OutOfTime as stopped:
            reason = f"s3://{record.bucket}/{record.key}: {stopped}"
            report = {"action": "deferred", "bucket": record.bucket, "key": record.key, "reason": reason}
        except jobs.PermanentFailure as failure:
            report = {"action": Outcome.FAILED, "bucket": record.bucket, "key": record.key, "reason": str(failure)}
        except Exception as caught:  # noqa: BLE001 - any other failure is retried, and named
            error = caught
            reason = f"s3://{record.bucket}/{record.key}: {type(error).__name__}: {error}"
            report = {"action": "error", "bucket": record.bucket, "key": record.key, "reason": reason}
        report |= bill.fields()
    failed = report["action"] in (Outcome.FAILED, "error")
    log.log(logging.ERROR if failed else logging.INFO, json.dumps(report), exc_info=error)
    metrics.record(report["action"], report)
    if error is not None or report["action"] == "deferred":  # a failure once out of time is handed back soon too
        soon = report["action"] == "deferred" or deadline.left() <= 0
        return Handled(Outcome.FAILED, retry=report["reason"], reason=report["reason"], soon=soon)
    return Handled(Outcome(report["action"]), reason=str(report.get("reason", "")))


def _work(record: S3Record, settings: Settings, deadline: Deadline) -> dict[str, Any]:
    if record.created:
        return jobs.convert(settings, record.bucket, record.key, force=record.force, deadline=deadline)
    if record.removed:
        return jobs.remove(settings, record.bucket, record.key, deadline=deadline)
    return {"action": Outcome.IGNORED, "reason": f"event {record.event_name or '(none)'}", "key": record.key}


_warned: set[str] = set()


def _warn_if_zoom_bucket_is_unprefixed_source(bucket: str, settings: Settings) -> None:
    if bucket == settings.zoom_bucket and not settings.dest_prefix and bucket not in _warned:
        _warned.add(bucket)
        log.error(
            "S3_ZOOM_BUCKET %r is also the source bucket and DEST_PREFIX is empty: outputs (.dzi, _files/) are "
            "recognised by name and skipped, but set DEST_PREFIX or use a separate zoom bucket",
            bucket,
        )


def _first_source(event: dict[str, Any]) -> Any:
    """The ``eventSource`` of an event's first record (``aws:s3``, ``aws:sqs``; SNS spells it
    ``EventSource``: ``aws:sns``), if it has records."""
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return records[0].get("eventSource") or records[0].get("EventSource")
    return None


def _describe(event: Any) -> str:
    if isinstance(event, dict):
        return str(event.get("Event") or event.get("eventName") or sorted(event)[:5])
    return type(event).__name__
