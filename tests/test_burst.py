"""A burst that loses nothing: 200 uploads into a bucket that notifies an SNS topic, which fans out to a queue
with a dead-letter queue in SNS's own envelope (RawMessageDelivery off, the default), drained by a local poller
that behaves as Lambda's SQS event source mapping, while a proxy fails and drops a share of the function's PUTs,
one key fails every time, a lifecycle rule expires ten of the images part way, and another publisher's message
on the topic is no S3 notification. Every upload ends as exactly one of: a complete pyramid, a logged permanent
failure, a message in the dead-letter queue, or (expired) no pyramid at all; the foreign message waits in the
dead-letter queue. Then the cause is fixed, the dead-letter queue is redriven, and the stuck upload becomes a
pyramid; the foreign message, still unreadable, goes back to the dead-letter queue."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, forget_clients, use_settings
from helpers import keys_in, pyramid_keys, sample_image, upload_image

import lambdazoom
from localaws import lifecycle
from localaws.poller import drain
from localaws.proxy import FaultyProxy
from s3zoom import jobs, zoom
from s3zoom.wire import Stage, redrive

GOOD, BAD = 189, 10  # and one that fails until it is fixed: 200 uploads
STUCK = "burst/stuck.jpg"
EXPIRED = {f"burst/{number:03d}.jpg" for number in range(5, GOOD, 19)}  # ten good ones, by a lifecycle rule
EXPIRE_AT = 8  # the invocation before which the rule runs: some expired images have pyramids by then, some not
FOREIGN = "another publisher's message on the topic"


def size_of(number: int) -> tuple[int, int]:
    return 40 + number % 7 * 9, 30 + number % 5 * 11


def dead_letters(stack: Any, url: str) -> list[str]:
    """What waits in the dead-letter queue, each message once (they stay in view): an S3 event's key, or the
    SNS message that was none."""
    seen: dict[str, str] = {}
    while True:
        answer = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        fresh = {m["MessageId"]: m for m in answer.get("Messages", []) if m["MessageId"] not in seen}
        if not fresh:
            return sorted(seen.values())
        for message_id, message in fresh.items():
            envelope = json.loads(message["Body"])
            assert envelope["Type"] == "Notification", "the body SNS delivered, as it was"
            if envelope["Message"] == FOREIGN:
                seen[message_id] = FOREIGN
                continue
            seen[message_id] = unquote_plus(json.loads(envelope["Message"])["Records"][0]["s3"]["object"]["key"])


def reports(caplog: Any, action: str) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if f'"action": "{action}"' in r.getMessage()]


@pytest.mark.parametrize("stack", ["sns"], indirect=True)  # S3 -> SNS -> SQS, in SNS's envelope
def test_a_burst_of_uploads_loses_nothing_and_the_dead_letters_redrive_into_pyramids(stack, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "lambdazoom")
    dead_letter_url = stack.sqs.create_queue(QueueName="lambdazoom-events-dlq")["QueueUrl"]
    dead_letter_arn = stack.sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])
    stack.sqs.set_queue_attributes(
        QueueUrl=stack.queue,
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn["Attributes"]["QueueArn"], "maxReceiveCount": 3}
            )
        },
    )
    good = {f"burst/{number:03d}.jpg": size_of(number) for number in range(GOOD)}
    bad = [f"burst/bad-{number}.jpg" for number in range(BAD)]
    for key, size in good.items():
        upload_image(stack.s3, SOURCE_BUCKET, key, sample_image(*size, seed=len(key) + size[0]))
    for key in bad:
        stack.s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=b"not an image")
    upload_image(stack.s3, SOURCE_BUCKET, STUCK, sample_image(60, 40))
    stack.sns.publish(TopicArn=stack.topic, Message=FOREIGN)

    convert = jobs.convert
    broken = {"on": True}

    def stuck_until_fixed(settings, bucket, key, **options):
        if key == STUCK and broken["on"]:
            raise ConnectionResetError("the cause, to be fixed")
        return convert(settings, bucket, key, **options)

    monkeypatch.setattr(jobs, "convert", stuck_until_fixed)
    use_settings(monkeypatch, upload_concurrency=4)
    with FaultyProxy(stack.endpoint_url, fail_puts=0.1, drop_puts=0.02, seed=11) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        forget_clients()
        invocations = 0

        def lambda_with_a_lifecycle_rule(event: dict[str, Any], context: Any) -> Any:
            nonlocal invocations
            invocations += 1
            if invocations == EXPIRE_AT:  # the rule runs: S3 deletes them and notifies LifecycleExpiration:Delete
                for key in sorted(EXPIRED):
                    lifecycle.expire(SOURCE_BUCKET, key)
            return lambdazoom.handler(event, context)

        counts = drain(stack.sqs, stack.queue, lambda_with_a_lifecycle_rule, batch_size=10, visibility_timeout=1)
        assert proxy.counts["failed"] > 0 and proxy.counts["dropped"] > 0, proxy.counts
    assert counts["left"] >= 6, "the stuck key and the foreign message were handed back each time"

    written = set(keys_in(stack.s3, ZOOM_BUCKET))
    pyramids = {key for key in good | {STUCK: (60, 40)} if f"{key.rsplit('.', 1)[0]}.dzi" in written}
    failed = {report["key"] for report in reports(caplog, "failed")}
    removed = reports(caplog, "removed")
    dead = dead_letters(stack, dead_letter_url)
    everything = set(good) | set(bad) | {STUCK}
    assert pyramids == set(good) - EXPIRED, "every good upload has its pyramid, but for the expired ones"
    assert {report["key"] for report in removed} == EXPIRED, "each expiration removed its pyramid"
    assert any(report["tiles_deleted"] for report in removed), "some expired images had their pyramids by then"
    assert failed == set(bad), "every bad one is a logged permanent failure"
    assert dead == sorted([STUCK, FOREIGN]), "the one that kept failing, and the foreign message, wait there once"
    assert {report["body"] for report in reports(caplog, "unreadable")} <= {FOREIGN}, "nothing else was unreadable"
    kept = {STUCK} & set(dead)
    assert pyramids | failed | kept | EXPIRED == everything
    assert len(pyramids) + len(failed) + len(kept) + len(EXPIRED) == len(everything)
    expected = {
        key for name, size in good.items() if name not in EXPIRED for key in pyramid_keys(name.rsplit(".", 1)[0], *size)
    }
    expected |= {name.rsplit(".", 1)[0] + ".status.json" for name in bad}  # each says why it failed
    assert written == expected, "complete pyramids, and nothing else: no lease, no stray tile, nothing expired"
    for name in set(good) - EXPIRED:  # each pyramid is its own source's: published once, from one version
        descriptor = stack.s3.head_object(Bucket=ZOOM_BUCKET, Key=f"{name.rsplit('.', 1)[0]}.dzi")["Metadata"]
        source = stack.s3.head_object(Bucket=SOURCE_BUCKET, Key=name)
        assert descriptor[zoom.SOURCE_ETAG] == source["ETag"].strip('"'), name

    broken["on"] = False  # the cause is fixed
    stage = Stage("lambdazoom-test", "us-east-1", 900, SOURCE_BUCKET, {"queue": "lambdazoom-events"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)  # the proxy is gone; S3 as it is
    forget_clients()
    assert redrive(stage, boto3.session.Session()) == 2
    drain(stack.sqs, stack.queue, lambdazoom.handler, batch_size=10, visibility_timeout=1)
    assert dead_letters(stack, dead_letter_url) == [FOREIGN], "still unreadable: back where someone will see it"
    assert set(keys_in(stack.s3, ZOOM_BUCKET, "burst/stuck")) == set(pyramid_keys("burst/stuck", 60, 40))
