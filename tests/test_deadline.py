"""The invocation's deadline: no work starts that cannot end in time, work still running at the margin stops
itself and lets its lease go, and what was handed back comes again within RETRY_DELAY_SECONDS, not after the
queue's visibility timeout."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, use_settings
from helpers import keys_in, pyramid_keys, sample_image, upload_image
from test_event_sources import batch_operations

import lambdazoom
from localaws.buckets import sqs_record
from s3zoom import jobs, zoom
from s3zoom.deadline import Deadline, OutOfTime
from s3zoom.events import s3_event
from s3zoom.lease import StemBusy, leased


class Context:
    """What Lambda hands the handler, as far as the deadline goes."""

    def __init__(self, remaining_seconds: float) -> None:
        self.ends = time.monotonic() + remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends - time.monotonic()) * 1000)


@dataclass(frozen=True)
class RunsOutAfter(Deadline):
    """A deadline whose margin is reached after ``checks`` looks at it: mid-conversion, whatever the speed."""

    checks: int = 0
    seen: list[int] = field(default_factory=lambda: [0])

    def left(self) -> float:
        self.seen[0] += 1
        return 60.0 if self.seen[0] <= self.checks else -1.0


def test_an_sqs_batch_with_no_time_left_is_handed_back_to_come_again_soon(s3, monkeypatch, caplog):
    caplog.set_level("INFO", "lambdazoom")
    use_settings(monkeypatch, retry_delay_seconds=1)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="uploads", Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for key in ("one.jpg", "two.jpg"):
        upload_image(s3, SOURCE_BUCKET, key, sample_image(300, 200))
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(s3_event(SOURCE_BUCKET, key)))

    def batch() -> dict[str, Any]:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=20)["Messages"]
        assert len(received) == 2
        records = [
            sqs_record(m["Body"], arn, message_id=m["MessageId"], receipt_handle=m["ReceiptHandle"], attributes={})
            for m in received
        ]
        return {"Records": records}

    event = batch()
    answer = lambdazoom.handler(event, Context(remaining_seconds=10))  # under the 30 s margin
    assert sorted(item["itemIdentifier"] for item in answer["batchItemFailures"]) == sorted(
        record["messageId"] for record in event["Records"]
    )
    assert keys_in(s3, ZOOM_BUCKET) == [], "nothing started"
    deferred = [json.loads(r.getMessage()) for r in caplog.records if '"deferred"' in r.getMessage()]
    assert [line["key"] for line in deferred] == ["one.jpg", "two.jpg"]
    assert "the invocation ends in 30 s or less" in deferred[0]["reason"]
    again = batch()  # back after RETRY_DELAY_SECONDS (1 s here), not the queue's 900 s
    assert lambdazoom.handler(again, Context(remaining_seconds=600)) == {"batchItemFailures": []}
    assert set(pyramid_keys("one", 300, 200)) <= set(keys_in(s3, ZOOM_BUCKET))


def test_a_conversion_reaching_the_margin_stops_lets_its_lease_go_and_the_retry_publishes(s3, monkeypatch):
    upload_image(s3, SOURCE_BUCKET, "old.jpg", sample_image(900, 700, seed=1))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "old.jpg"), None)
    upload_image(s3, SOURCE_BUCKET, "old.jpg", sample_image(800, 600, seed=2))
    with pytest.raises(OutOfTime, match="stopped writing"):
        jobs.convert(lambdazoom.SETTINGS, SOURCE_BUCKET, "old.jpg", deadline=RunsOutAfter(checks=12))
    left = keys_in(s3, ZOOM_BUCKET)
    assert "old_files/lambdazoom.lease" not in left, "released: the retry need not wait out the lease"
    assert "old.dzi" not in left, "the old pyramid was retired, and the work is handed back"
    answer = lambdazoom.handler(s3_event(SOURCE_BUCKET, "old.jpg"), Context(remaining_seconds=600))
    assert answer == {"done": 1, "skipped": 0, "failed": 0}
    assert keys_in(s3, ZOOM_BUCKET) == pyramid_keys("old", 800, 600)


def test_a_lease_is_waited_for_only_as_long_as_the_invocation_has_left(s3, monkeypatch):
    waits: list[float] = []
    real = zoom.leased

    def recorded(*args: Any, **kwargs: Any) -> Any:
        waits.append(kwargs["wait"])
        return real(*args, **kwargs)

    monkeypatch.setattr(zoom, "leased", recorded)
    upload_image(s3, SOURCE_BUCKET, "busy.jpg", sample_image(300, 200))
    with leased(s3, ZOOM_BUCKET, "busy_files/lambdazoom.lease", "someone", ttl=600, wait=0):
        with pytest.raises(StemBusy):
            jobs.convert(lambdazoom.SETTINGS, SOURCE_BUCKET, "busy.jpg", deadline=Deadline(time.monotonic() + 31.5, 30))
    assert len(waits) == 1 and 0 < waits[0] <= 1.5 < lambdazoom.SETTINGS.lease_wait_seconds


def test_batch_operations_near_the_deadline_answer_temporary_failure(s3):
    upload_image(s3, SOURCE_BUCKET, "late.jpg", sample_image(300, 200))
    answer = lambdazoom.handler(batch_operations("2.0", ["late.jpg"]), Context(remaining_seconds=5))
    assert answer["results"][0]["resultCode"] == "TemporaryFailure"
    assert "the invocation ends" in answer["results"][0]["resultString"]
    assert keys_in(s3, ZOOM_BUCKET) == []
