"""The other ways events reach the function, besides S3 notifying it directly: SQS, SNS, EventBridge and
S3 Batch Operations, each read with Powertools' event data classes and answered as its service expects.

- **SQS** (S3 -> SQS -> Lambda, or S3 -> SNS -> SQS -> Lambda): each message's body is an S3
  notification (keys URL-encoded, as S3 sends them) or S3's test message, either as it is or, when SNS
  fans it out to the queue without ``RawMessageDelivery``, inside SNS's envelope (``{"Type":
  "Notification", "Message": "<the notification as a string>", ...}``). The answer names exactly the
  messages whose work failed for a reason that may pass (``{"batchItemFailures": [...]}``, with
  ``ReportBatchItemFailures`` on the event source mapping), so only those are delivered again, and after
  ``maxReceiveCount`` go to the dead-letter queue. Permanent failures are logged and acknowledged. A body
  the function cannot read (no S3 notification, another SNS message type) is logged and named too:
  retries cannot help it, but only so does it reach the dead-letter queue instead of being deleted unseen.
- **SNS** (S3 -> SNS -> Lambda): each record's ``Sns.Message`` is an S3 notification or S3's test
  message; handled as S3's own notifications are. An unreadable one fails the invocation, so that Lambda's
  retries end in the function's on-failure destination.
- **EventBridge** ``Object Created``/``Object Deleted`` from ``aws.s3``: one object per event (a
  lifecycle rule's expiration is an ``Object Deleted`` with reason ``Lifecycle Expiration``). A
  failure that may pass raises, so Lambda (and then EventBridge) retries it.
- **S3 Batch Operations** (schema 1.0 and 2.0, one task an invocation): its result, ``Succeeded``,
  ``TemporaryFailure`` (Batch Operations retries it) or ``PermanentFailure``, with the reason.

Keys: S3 notifications and Batch Operations URL-encode them (``a b+c.jpg`` arrives as ``a+b%2Bc.jpg``),
as AWS documents; for EventBridge AWS's documentation does not say: the key is decoded the same way, as
Powertools' data class does, and taken as sent where only that names something (see eventbridge_record).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3BatchOperationEvent, SNSEvent, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import (
    S3BatchOperationResponse,
    S3BatchOperationResponseRecord,
)
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

from config import Settings

from .clients import session
from .events import S3Record, s3_records
from .handling import Handled
from .jobs import Outcome
from .keys import PyramidKeys
from .zoom import head

Handle = Callable[[S3Record, Settings], Handled]

log = logging.getLogger("lambdazoom")

EVENTBRIDGE_DETAIL_TYPES = {"Object Created": "ObjectCreated:", "Object Deleted": "ObjectRemoved:"}


class TransientFailure(RuntimeError):
    """Work that failed for a reason that may pass: the service should deliver it again."""


class Unreadable(ValueError):
    """A message that is no S3 notification: no retry helps, but it must reach a dead-letter queue.

    ``text`` is what could not be read (inside SNS's envelope, the message it carried), ``topic`` the
    topic that sent it, if one did."""

    def __init__(self, reason: str, text: str | None = None, topic: str | None = None) -> None:
        super().__init__(reason)
        self.text = text
        self.topic = topic


def is_sqs(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return bool(records) and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:sqs"


def is_sns(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return bool(records) and isinstance(records[0], dict) and records[0].get("EventSource") == "aws:sns"


def is_eventbridge(event: dict[str, Any]) -> bool:
    return event.get("source") == "aws.s3" and "detail-type" in event


def is_batch_operations(event: dict[str, Any]) -> bool:
    return "invocationSchemaVersion" in event and "tasks" in event


def handle_sqs(event: dict[str, Any], settings: Settings, handle: Handle, context: Any = None) -> dict[str, Any]:
    """Do the work of each S3 record of each message with ``handle``; the partial batch response. A message
    whose work the invocation's deadline stopped is made visible again after ``RETRY_DELAY_SECONDS``."""
    soon: list[SQSRecord] = []

    def message(record: SQSRecord) -> None:
        receives = (record.get("attributes") or {}).get("ApproximateReceiveCount")
        records = _read(record.body, record.message_id, receives=receives)
        if not records:
            log.info(json.dumps({"action": "ignored", "reason": "S3 test message", "message": record.message_id}))
            return
        handled = [handle(found, settings) for found in records]
        if errors := [each.retry for each in handled if each.retry]:
            if any(each.soon for each in handled):
                soon.append(record)
            raise TransientFailure("; ".join(errors))

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(event=event, record_handler=message, processor=processor, context=context)
    _deliver_again_after(soon, settings.retry_delay_seconds)
    return dict(response)


def _deliver_again_after(messages: list[SQSRecord], seconds: int) -> None:
    """Shorten the visibility timeout of ``messages`` (reported as failures) to ``seconds``, so they come back
    then rather than after the queue's own timeout. Best effort: failing that, they come back at that timeout."""
    by_queue: dict[str, list[SQSRecord]] = {}
    for record in messages:
        by_queue.setdefault(record.event_source_arn, []).append(record)
    for arn, records in by_queue.items():
        _, _, _, region, account, name = arn.split(":", 5)
        try:
            sqs = session().client("sqs", region_name=region)
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            for start in range(0, len(records), 10):  # the most one call takes
                entries = [
                    {"Id": str(number), "ReceiptHandle": record.receipt_handle, "VisibilityTimeout": seconds}
                    for number, record in enumerate(records[start : start + 10])
                ]
                sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        except Exception as error:  # noqa: BLE001 - the messages still come back, only later
            log.warning("could not shorten the visibility of %d messages of %s: %s", len(records), arn, error)


def sns_records(event: dict[str, Any]) -> list[S3Record]:
    """The S3 records of the notifications SNS delivered to the function (none for S3's test message);
    raises :class:`Unreadable` for a message that is no S3 notification."""
    found = []
    for record in SNSEvent(event).records:
        sns = record.get("Sns")
        sns = sns if isinstance(sns, dict) else {}  # a TypeError must not escape the handler
        found += _read(str(sns.get("Message", "")), str(sns.get("MessageId", "")), sns_envelope=False)
    return found


def _read(body: str, message_id: str, *, sns_envelope: bool = True, **logged: Any) -> list[S3Record]:
    """The S3 records of a message: an S3 notification, or (``sns_envelope``) SNS's envelope of one; none
    for S3's test message. Anything else is logged and raises :class:`Unreadable`."""
    try:
        return _notification_records(body, sns_envelope)
    except Unreadable as error:
        text = body if error.text is None else error.text
        if error.topic is not None:
            logged["topic"] = error.topic
        shown = text if len(text) <= 500 else text[:500] + "..."
        report = {"action": "unreadable", "message": message_id, "reason": str(error), **logged, "body": shown}
        log.error(json.dumps(report))
        raise


def _notification_records(body: str, sns_envelope: bool) -> list[S3Record]:
    notification = _json(body, "the body")
    if sns_envelope and isinstance(notification, dict) and "TopicArn" in notification and "Type" in notification:
        topic = str(notification["TopicArn"])
        if notification["Type"] != "Notification":  # a SubscriptionConfirmation: someone must see it
            raise Unreadable(f"an SNS {notification['Type']} message, not a notification", topic=topic)
        try:
            return _s3_notification_records(_json(notification.get("Message"), "the SNS message"))
        except Unreadable as error:
            raise Unreadable(str(error), text=str(notification.get("Message")), topic=topic) from None
    return _s3_notification_records(notification)


def _s3_notification_records(notification: Any) -> list[S3Record]:
    if isinstance(notification, dict) and notification.get("Event") == "s3:TestEvent":
        return []
    records = s3_records(notification)
    if not records:
        raise Unreadable("not an S3 notification")
    return records


def _json(text: Any, what: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise Unreadable(f"{what} is not JSON") from None


def eventbridge_record(event: dict[str, Any], settings: Settings, s3: Any) -> S3Record | None:
    """The object an EventBridge event from S3 is about, or None for another detail type.

    The key is read decoded, as a notification's; AWS's documentation does not say how EventBridge
    encodes it, so where the decoded key names nothing and the key as sent does (an object for a
    created event, a pyramid for a deleted one), the key as sent is taken: ``a+b.jpg`` is then never
    mistaken for ``a b.jpg``.
    """
    found = S3EventBridgeNotificationEvent(event)
    prefix = EVENTBRIDGE_DETAIL_TYPES.get(EventBridgeEvent(event).detail_type)
    if prefix is None:
        return None
    detail = found.detail
    bucket, decoded, sent = detail.bucket.name, detail.object.key, detail.object["key"]
    record = S3Record(prefix + (detail.reason or "EventBridge"), bucket, decoded)
    unnamed = sent != decoded and not _names_something(record, settings, s3, decoded)
    if unnamed and _names_something(record, settings, s3, sent):
        return S3Record(record.event_name, bucket, sent)
    return record


def _names_something(record: S3Record, settings: Settings, s3: Any, key: str) -> bool:
    if record.created:
        return head(s3, record.bucket, key) is not None
    published = PyramidKeys.for_source(key, settings.dest_prefix).published(settings.output)
    return head(s3, settings.zoom_bucket, published) is not None


def handle_batch_operations(event: dict[str, Any], settings: Settings, handle: Handle) -> dict[str, Any]:
    """Convert each task's object; the response S3 Batch Operations requires, one result per task."""
    batch = S3BatchOperationEvent(event)
    arguments = (batch.job.user_arguments or {}) if batch.invocation_schema_version == "2.0" else {}
    force = str(arguments.get("force", "")).lower() in ("true", "1", "yes")  # user arguments are strings
    response = S3BatchOperationResponse(
        batch.invocation_schema_version, batch.invocation_id, treat_missing_keys_as="PermanentFailure"
    )
    for task in batch.tasks:
        record = S3Record("ObjectCreated:BatchOperations", task.s3_bucket, task.s3_key, force=force)
        handled = handle(record, settings)
        if handled.retry:
            code, text = "TemporaryFailure", handled.retry
        elif handled.outcome == Outcome.FAILED:
            code, text = "PermanentFailure", handled.reason
        else:
            code, text = "Succeeded", handled.reason or str(handled.outcome)
        response.add_result(S3BatchOperationResponseRecord(task.task_id, code, text))
    return response.asdict()
