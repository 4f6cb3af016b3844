"""The shapes besides S3's own notifications: SQS batches of them (as S3 sends them to a queue, or SNS fans
them out to one, in its envelope or raw), SNS's own records, EventBridge events from S3, and S3 Batch
Operations tasks, each answered as its service reads the answer. Keys with spaces, ``+`` and unicode arrive
URL-encoded in each, as S3 sends them. Lifecycle expirations remove pyramids through every path."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET
from helpers import keys_in, pyramid_keys, sample_image, upload_image

import lambdazoom
from localaws import lifecycle
from localaws.buckets import sns_record, sqs_record
from s3zoom import jobs
from s3zoom.events import s3_event
from s3zoom.sources import Unreadable

KEY = "tom+jerry/a b ☃.jpg"
STEM = KEY.rsplit(".", 1)[0]


def sqs_message(body: Any) -> dict[str, Any]:
    """One record of the event Lambda's SQS event source mapping sends."""
    return sqs_record(
        body if isinstance(body, str) else json.dumps(body),
        "arn:aws:sqs:us-east-1:123456789012:lambdazoom-events",
        message_id=str(uuid.uuid4()),
        receipt_handle="handle",
        attributes={"ApproximateReceiveCount": "1"},
    )


def eventbridge(detail_type: str, key: str, bucket: str = SOURCE_BUCKET) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-02T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": quote_plus(key, safe="/"), "size": 1, "etag": "e", "sequencer": "1"},
            "request-id": "r",
            "requester": "123456789012",
            "reason": "PutObject" if detail_type == "Object Created" else "DeleteObject",
        },
    }


def batch_operations(version: str, keys: list[str], bucket: str = SOURCE_BUCKET, **arguments: Any) -> dict[str, Any]:
    tasks = []
    for number, key in enumerate(keys):
        task = {"taskId": f"task-{number}", "s3Key": quote_plus(key, safe="/"), "s3VersionId": None}
        task.update({"s3BucketArn": f"arn:aws:s3:::{bucket}"} if version == "1.0" else {"s3Bucket": bucket})
        tasks.append(task)
    job: dict[str, Any] = {"id": "job-1"}
    if version == "2.0":
        job["userArguments"] = arguments
    return {"invocationSchemaVersion": version, "invocationId": "invocation-1", "job": job, "tasks": tasks}


def failing_transiently_for(monkeypatch: pytest.MonkeyPatch, failing_key: str) -> None:
    convert = jobs.convert

    def flaky(settings, bucket, key, **options):
        if key == failing_key:
            raise ConnectionResetError("S3 went away")
        return convert(settings, bucket, key, **options)

    monkeypatch.setattr(jobs, "convert", flaky)


def test_an_sqs_batch_reports_exactly_the_messages_whose_work_may_pass(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    upload_image(s3, SOURCE_BUCKET, "flaky.jpg", sample_image(50, 50))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="bad.jpg", Body=b"not an image")
    failing_transiently_for(monkeypatch, "flaky.jpg")
    good, flaky, bad = (sqs_message(s3_event(SOURCE_BUCKET, key)) for key in (KEY, "flaky.jpg", "bad.jpg"))
    test = sqs_message({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": SOURCE_BUCKET})
    garbage = sqs_message("this is no notification")
    answer = lambdazoom.handler({"Records": [good, flaky, bad, test, garbage]}, None)
    # the bad image is a permanent failure, logged and acknowledged; the garbage must reach the dead letters
    assert answer == {"batchItemFailures": [{"itemIdentifier": m["messageId"]} for m in (flaky, garbage)]}
    assert keys_in(s3, ZOOM_BUCKET) == sorted(["bad.status.json", *pyramid_keys(STEM, 300, 200)]), "bad: why"


def test_an_sqs_batch_where_everything_fails_names_every_message(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "flaky.jpg", sample_image(50, 50))
    failing_transiently_for(monkeypatch, "flaky.jpg")
    messages = [sqs_message(s3_event(SOURCE_BUCKET, "flaky.jpg")) for _ in range(2)]
    answer = lambdazoom.handler({"Records": messages}, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["messageId"]} for message in messages]}


def test_eventbridge_object_created_and_deleted(s3):
    upload_image(s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    assert lambdazoom.handler(eventbridge("Object Created", KEY), None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys(STEM, 300, 200)
    s3.delete_object(Bucket=SOURCE_BUCKET, Key=KEY)
    assert lambdazoom.handler(eventbridge("Object Deleted", KEY), None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == []


def test_eventbridge_failures_that_may_pass_raise_for_a_retry(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "flaky.jpg", sample_image(50, 50))
    failing_transiently_for(monkeypatch, "flaky.jpg")
    with pytest.raises(lambdazoom.RetryableFailure, match="S3 went away"):
        lambdazoom.handler(eventbridge("Object Created", "flaky.jpg"), None)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_batch_operations_get_the_result_each_task_deserves(s3, monkeypatch, version):
    upload_image(s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    upload_image(s3, SOURCE_BUCKET, "flaky.jpg", sample_image(50, 50))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="bad.jpg", Body=b"not an image")
    failing_transiently_for(monkeypatch, "flaky.jpg")
    codes = []
    for key in (KEY, "bad.jpg", "flaky.jpg"):  # Batch Operations sends one task an invocation
        answer = lambdazoom.handler(batch_operations(version, [key]), None)
        assert answer["invocationSchemaVersion"] == version and answer["invocationId"] == "invocation-1"
        assert answer["treatMissingKeysAs"] == "PermanentFailure"
        (result,) = answer["results"]
        assert result["taskId"] == "task-0"
        codes.append((result["resultCode"], result["resultString"]))
    assert codes[0] == ("Succeeded", "converted")
    assert codes[1][0] == "PermanentFailure" and "not an image" in codes[1][1]
    assert codes[2][0] == "TemporaryFailure" and "S3 went away" in codes[2][1]
    assert keys_in(s3, ZOOM_BUCKET) == sorted(["bad.status.json", *pyramid_keys(STEM, 300, 200)])
    again = lambdazoom.handler(batch_operations(version, [KEY]), None)
    assert again["results"] == [
        {"taskId": "task-0", "resultCode": "Succeeded", "resultString": "pyramid already up to date"}
    ]


def test_batch_operations_2_can_force_a_reconversion(s3):
    upload_image(s3, SOURCE_BUCKET, "a.jpg", sample_image(100, 100))
    lambdazoom.handler(batch_operations("2.0", ["a.jpg"]), None)
    answer = lambdazoom.handler(batch_operations("2.0", ["a.jpg"], force=True), None)
    assert answer["results"][0]["resultString"] == "converted"


def test_an_sqs_batch_of_the_messages_s3_itself_sent(stack, monkeypatch):
    """moto's S3 notifies a real (moto) queue; the batch is what Lambda's SQS event source would send."""
    upload_image(stack.s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    upload_image(stack.s3, SOURCE_BUCKET, "flaky.jpg", sample_image(50, 50))
    failing_transiently_for(monkeypatch, "flaky.jpg")
    batch = stack.sqs_batch()
    bodies = {json.loads(record["body"])["Records"][0]["s3"]["object"]["key"]: record for record in batch["Records"]}
    assert {unquote_plus(key) for key in bodies} == {KEY, "flaky.jpg"}, "keys arrive URL-encoded"
    assert quote_plus(KEY) in bodies
    answer = lambdazoom.handler(batch, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": bodies["flaky.jpg"]["messageId"]}]}
    assert keys_in(stack.s3, ZOOM_BUCKET) == pyramid_keys(STEM, 300, 200)


def test_each_invocation_prints_its_metrics_in_embedded_metric_format(s3, capsys):
    upload_image(s3, SOURCE_BUCKET, "m.jpg", sample_image(1000, 500))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="bad.jpg", Body=b"not an image")
    messages = [sqs_message(s3_event(SOURCE_BUCKET, key)) for key in ("m.jpg", "bad.jpg")]
    lambdazoom.handler({"Records": messages}, None)
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "LambdaZoom" and ["service"] in directive["Dimensions"]
    assert line["service"] == "lambdazoom"
    values = {name: line[name] for name in ("ImagesConverted", "ImagesFailed", "Megapixels")}
    assert values == {"ImagesConverted": [1.0], "ImagesFailed": [1.0], "Megapixels": [0.5]}  # a point per image
    assert line["Tiles"][0] > 10 and line["ConversionSeconds"][0] > 0
    lambdazoom.handler({"Records": []}, None)
    assert '"_aws"' not in capsys.readouterr().out, "nothing to report, nothing printed"


@pytest.mark.parametrize("key", ["c++ notes.jpg", "100%.jpg"])
def test_eventbridge_keys_sent_as_they_are_still_find_their_object(s3, key):
    """Should EventBridge send keys unencoded, decoding "c++ notes.jpg" would name "c   notes.jpg": the key as
    sent is taken when only it names an object (and, when deleted, a pyramid)."""
    upload_image(s3, SOURCE_BUCKET, key, sample_image(120, 80))
    raw = eventbridge("Object Created", key)
    raw["detail"]["object"]["key"] = key
    assert lambdazoom.handler(raw, None) == {"done": 1, "skipped": 0, "failed": 0}
    stem = key.rsplit(".", 1)[0]
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys(stem, 120, 80)
    s3.delete_object(Bucket=SOURCE_BUCKET, Key=key)
    gone = eventbridge("Object Deleted", key)
    gone["detail"]["object"]["key"] = key
    assert lambdazoom.handler(gone, None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == []


def lifecycle_eventbridge(key: str, deletion_type: str, bucket: str = SOURCE_BUCKET) -> dict[str, Any]:
    """EventBridge's "Object Deleted" for a lifecycle expiration, as AWS documents it."""
    event = eventbridge("Object Deleted", key, bucket)
    event["detail"].update(reason="Lifecycle Expiration", requester="s3.amazonaws.com")
    event["detail"]["deletion-type"] = deletion_type  # "Permanently Deleted" or "Delete Marker Created"
    return event


def unreadable_reports(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith('{"action": "unreadable"')]
    caplog.clear()
    return lines


def notifications_in(stack: Any, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The S3 notifications a batch carries, checking each body is what ``stack.via`` delivers."""
    bodies = [json.loads(record["body"]) for record in batch["Records"]]
    if stack.via != "sns":
        assert all("Records" in body or "Event" in body for body in bodies), "S3's own notification"
        return bodies
    assert all(body["Type"] == "Notification" and body["TopicArn"] == stack.topic for body in bodies), "SNS's envelope"
    return [json.loads(body["Message"]) for body in bodies]


def acknowledge(stack: Any, batch: dict[str, Any]) -> None:
    for record in batch["Records"]:
        stack.sqs.delete_message(QueueUrl=stack.queue, ReceiptHandle=record["receiptHandle"])


@pytest.mark.parametrize("stack", ["queue", "sns", "sns-raw"], indirect=True)
def test_s3_through_a_queue_or_an_sns_fan_out_converts_and_lifecycle_expirations_remove(stack, monkeypatch):
    """What the queue receives from S3 directly, or from the topic S3 notifies, in SNS's envelope or raw."""
    (test_message,) = stack.setup_events  # S3's test message, enveloped as the rest
    assert lambdazoom.handler({"Records": [sqs_message(test_message)]}, None) == {"batchItemFailures": []}
    upload_image(stack.s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    upload_image(stack.s3, SOURCE_BUCKET, "flaky.jpg", sample_image(50, 50))
    failing_transiently_for(monkeypatch, "flaky.jpg")
    batch = stack.sqs_batch()
    keys = [unquote_plus(found["Records"][0]["s3"]["object"]["key"]) for found in notifications_in(stack, batch)]
    assert keys == [KEY, "flaky.jpg"]
    flaky = batch["Records"][1]["messageId"]
    assert lambdazoom.handler(batch, None) == {"batchItemFailures": [{"itemIdentifier": flaky}]}
    assert keys_in(stack.s3, ZOOM_BUCKET) == pyramid_keys(STEM, 300, 200)
    acknowledge(stack, batch)

    lifecycle.expire(SOURCE_BUCKET, KEY)  # a lifecycle rule's expiration: no ObjectRemoved event
    expired = stack.sqs_batch()
    (notification,) = notifications_in(stack, expired)
    assert notification["Records"][0]["eventName"] == "LifecycleExpiration:Delete"
    assert lambdazoom.handler(expired, None) == {"batchItemFailures": []}
    assert keys_in(stack.s3, ZOOM_BUCKET) == []


def test_lifecycle_expirations_notified_to_the_function_remove_the_pyramid(s3):
    """Both kinds, as S3 notifies a function: an object expired in an unversioned bucket, and the delete
    marker an expiration puts over a versioned object. A noncurrent version's expiration keeps the pyramid."""
    upload_image(s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, KEY), None)
    event = lifecycle.expire(SOURCE_BUCKET, KEY)
    assert event["Records"][0]["eventName"] == "LifecycleExpiration:Delete"
    assert lambdazoom.handler(event, None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == []

    s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    upload_image(s3, SOURCE_BUCKET, "old.jpg", sample_image(60, 40))
    older = s3.head_object(Bucket=SOURCE_BUCKET, Key="old.jpg")["VersionId"]
    upload_image(s3, SOURCE_BUCKET, "old.jpg", sample_image(70, 50))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "old.jpg"), None)
    noncurrent = lifecycle.expire(SOURCE_BUCKET, "old.jpg", version_id=older)
    assert noncurrent["Records"][0]["eventName"] == "LifecycleExpiration:Delete"
    assert lambdazoom.handler(noncurrent, None) == {"done": 0, "skipped": 1, "failed": 0}, "the current one stays"
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("old", 70, 50)
    marked = lifecycle.expire(SOURCE_BUCKET, "old.jpg")
    assert marked["Records"][0]["eventName"] == "LifecycleExpiration:DeleteMarkerCreated"
    assert "versionId" in marked["Records"][0]["s3"]["object"]
    assert lambdazoom.handler(marked, None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == []


@pytest.mark.parametrize("deletion_type", ["Permanently Deleted", "Delete Marker Created"])
def test_eventbridge_lifecycle_expirations_remove_the_pyramid(s3, deletion_type):
    if deletion_type == "Delete Marker Created":
        s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    upload_image(s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    lambdazoom.handler(eventbridge("Object Created", KEY), None)
    lifecycle.expire(SOURCE_BUCKET, KEY)
    event = lifecycle_eventbridge(KEY, deletion_type)
    assert lambdazoom.handler(event, None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == []


@pytest.mark.parametrize("stack", ["sns"], indirect=True)
def test_sns_invoking_the_function_directly(stack, caplog):
    """SNS -> Lambda: each record's ``Sns.Message`` is the notification, made here from the very envelope
    moto's SNS delivered to the queue."""
    subscription = f"{stack.topic}:direct"
    (test_message,) = stack.setup_events
    assert lambdazoom.handler({"Records": [sns_record(test_message, subscription)]}, None)["done"] == 0
    upload_image(stack.s3, SOURCE_BUCKET, KEY, sample_image(300, 200))
    (envelope,) = stack.drain()
    event = {"Records": [sns_record(envelope, subscription)]}
    assert lambdazoom.handler(event, None) == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(stack.s3, ZOOM_BUCKET) == pyramid_keys(STEM, 300, 200)
    lifecycle.expire(SOURCE_BUCKET, KEY)
    (envelope,) = stack.drain()
    assert lambdazoom.handler({"Records": [sns_record(envelope, subscription)]}, None)["done"] == 1
    assert keys_in(stack.s3, ZOOM_BUCKET) == []
    stack.sns.publish(TopicArn=stack.topic, Message="the topic has other publishers")
    (envelope,) = stack.drain()
    caplog.clear()
    with pytest.raises(Unreadable, match="not JSON"):  # Lambda retries, then sends it to the on-failure destination
        lambdazoom.handler({"Records": [sns_record(envelope, subscription)]}, None)
    (report,) = unreadable_reports(caplog)
    assert report["message"] == envelope["MessageId"] and report["body"] == "the topic has other publishers"


@pytest.mark.parametrize("stack", ["sns"], indirect=True)
def test_bodies_the_function_cannot_read_are_named_for_the_dead_letter_queue(stack, caplog):
    """Never acknowledged unseen: not JSON, JSON of another kind, another publisher's message on the topic,
    and SNS messages of other types (a cross-account subscription's confirmation lands in the queue)."""
    stack.sns.publish(TopicArn=stack.topic, Message="the topic has other publishers")
    stack.sns.publish(TopicArn=stack.topic, Message=json.dumps({"Records": [{"eventSource": "aws:ses"}]}))
    (other, foreign) = stack.drain()
    confirmation = {**other, "Type": "SubscriptionConfirmation", "SubscribeURL": "https://127.0.0.1/confirm"}
    bodies = ["not json at all", json.dumps({"hello": "world"}), other, foreign, confirmation]
    messages = [sqs_message(body) for body in bodies]
    caplog.clear()
    answer = lambdazoom.handler({"Records": messages}, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": m["messageId"]} for m in messages]}
    reports = unreadable_reports(caplog)
    assert reports[2]["body"] == "the topic has other publishers" and reports[2]["topic"] == stack.topic, "unwrapped"
    reasons = [report["reason"] for report in reports]
    assert reasons == [
        "the body is not JSON",
        "not an S3 notification",
        "the SNS message is not JSON",
        "not an S3 notification",
        "an SNS SubscriptionConfirmation message, not a notification",
    ]
