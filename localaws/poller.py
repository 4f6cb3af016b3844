"""Lambda's SQS event source mapping, played locally: what the burst test runs the handler under.

Each round receives a batch (with a visibility timeout, so messages being worked on are hidden),
hands it to the handler as Lambda would, deletes the messages that succeeded, and leaves the rest:
those the answer names in ``batchItemFailures``, or every message of a batch whose invocation raised.
They come back after the visibility timeout; the queue's redrive policy moves a message to its
dead-letter queue once it has been received ``maxReceiveCount`` times, as SQS does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .buckets import sqs_batch

Handler = Callable[[dict[str, Any], Any], Any]


def drain(
    sqs: Any,
    queue_url: str,
    handler: Handler,
    *,
    batch_size: int = 10,
    visibility_timeout: int = 1,
    deadline: float = 300.0,
) -> dict[str, int]:
    """Run ``handler`` on the queue until it holds no message, visible or in flight; the counts of
    invocations, messages deleted and messages left for redelivery."""
    counts = {"invocations": 0, "deleted": 0, "left": 0}
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        event = sqs_batch(sqs, queue_url, batch_size, visibility_timeout)
        if not event["Records"]:
            if _in_flight(sqs, queue_url) == 0:
                return counts
            time.sleep(0.2)
            continue
        counts["invocations"] += 1
        try:
            answer = handler(event, None)
            failed = {failure["itemIdentifier"] for failure in answer.get("batchItemFailures", [])}
        except Exception:  # noqa: BLE001 - an invocation error: the whole batch comes back
            failed = {record["messageId"] for record in event["Records"]}
        for record in event["Records"]:
            if record["messageId"] in failed:
                counts["left"] += 1
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])
                counts["deleted"] += 1
    raise TimeoutError(f"the queue was not drained within {deadline:g} s: {counts}")


def _in_flight(sqs: Any, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)
