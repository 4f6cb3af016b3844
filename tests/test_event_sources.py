"""The shapes besides S3's own notifications: SQS batches of them, EventBridge events from S3, and
S3 Batch Operations tasks, each answered as its service reads the answer. Keys with spaces, ``+`` and
unicode arrive URL-encoded in each, as S3 sends them."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET
from helpers import keys_in, pyramid_keys, sample_image, upload_image

import lambdazoom
from localaws.buckets import sqs_record
from s3zoom import jobs
from s3zoom.events import s3_event

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
    assert answer == {"batchItemFailures": [{"itemIdentifier": flaky["messageId"]}]}
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys(STEM, 300, 200)


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
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys(STEM, 300, 200)
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
