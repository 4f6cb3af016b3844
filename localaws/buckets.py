"""A source bucket that reports its changes to an SQS queue, and a zoom bucket, on a local S3.

moto delivers S3 notifications to SQS without Docker (to Lambda it would need Docker), so the
queue is how tests and the demo get the very events S3 produces and hand them to the handler.
The bucket can notify the queue itself, or an SNS topic the queue subscribes to (a fan-out), with or
without ``RawMessageDelivery``: moto's SNS then delivers to the queue what SNS would.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from s3zoom.wire import EVENTS  # what the bucket notifies: created, removed and lifecycle-expired objects

VIA = ("queue", "sns", "sns-raw")  # S3 -> SQS; S3 -> SNS -> SQS in SNS's envelope; the same with raw delivery


class WatchedBuckets:
    """Both buckets and the queue; ``next_event()`` is the next event S3 sent (``via`` "sns": in SNS's
    envelope, as the queue received it)."""

    def __init__(self, endpoint_url: str, source_bucket: str, zoom_bucket: str, via: str = "queue") -> None:
        if via not in VIA:
            raise ValueError(f"via is one of {', '.join(VIA)}, not {via!r}")
        self.endpoint_url = endpoint_url
        self.via = via
        self.source_bucket = source_bucket
        self.zoom_bucket = zoom_bucket
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url)
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url)
        self.sns = boto3.client("sns", endpoint_url=endpoint_url)
        self.s3.create_bucket(Bucket=source_bucket)
        self.s3.create_bucket(Bucket=zoom_bucket)
        self.queue = self.sqs.create_queue(QueueName="lambdazoom-events")["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]
        self.topic: str | None = None
        if via == "queue":
            notification = {"QueueConfigurations": [{"QueueArn": attributes["QueueArn"], "Events": EVENTS}]}
        else:
            self.topic = self.sns.create_topic(Name="lambdazoom-uploads")["TopicArn"]
            raw = {"RawMessageDelivery": "true"} if via == "sns-raw" else {}  # (moto's Subscribe reads "false" as on)
            self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=attributes["QueueArn"], Attributes=raw)
            notification = {"TopicConfigurations": [{"TopicArn": self.topic, "Events": EVENTS}]}
        self.s3.put_bucket_notification_configuration(Bucket=source_bucket, NotificationConfiguration=notification)
        self.setup_events = self.drain()  # S3 sends an s3:TestEvent when notifications are set up

    def drain(self) -> list[dict[str, Any]]:
        """Every event waiting in the queue, oldest first."""
        found = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])

    def sqs_batch(self, most: int = 10) -> dict[str, Any]:
        """Up to ``most`` waiting messages, as the event Lambda's SQS event source mapping would send
        them (the messages stay in the queue, invisible for the queue's visibility timeout)."""
        return sqs_batch(self.sqs, self.queue, most)

    def next_event(self) -> dict[str, Any]:
        """The one event waiting (fails if there are none or several)."""
        (event,) = self.drain()
        return event


def sqs_batch(sqs: Any, queue_url: str, most: int = 10, visibility_timeout: int | None = None) -> dict[str, Any]:
    """Receive up to ``most`` messages and shape them as the event Lambda's SQS event source mapping sends."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    options = {"VisibilityTimeout": visibility_timeout} if visibility_timeout is not None else {}
    answer = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=most, WaitTimeSeconds=0, AttributeNames=["All"], **options
    )
    records = [
        sqs_record(
            message["Body"],
            arn,
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            attributes=message.get("Attributes", {}),
            md5=message["MD5OfBody"],
        )
        for message in answer.get("Messages", [])
    ]
    return {"Records": records}


def sqs_record(
    body: str, queue_arn: str, *, message_id: str, receipt_handle: str, attributes: dict[str, str], md5: str = ""
) -> dict[str, Any]:
    """One message as a record of the event Lambda's SQS event source mapping sends."""
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sns_record(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The record SNS sends a subscribed function (``Records[].Sns``), made from the envelope of the same
    notification SNS delivered to a queue: the fields are SNS's own, two of them spelt otherwise."""
    names = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}
    message = {names.get(name, name): value for name, value in envelope.items()}
    message.setdefault("MessageAttributes", {})
    return {"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": subscription_arn, "Sns": message}
