"""``python -m lambdazoom wire STAGE``: the queues, notification, mapping and retries Zappa cannot set,
made against moto from the stages in zappa_settings.json; a second run changes nothing; --dry-run nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3zoom.wire import Stage, wire

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "zappa_settings.json"


@pytest.fixture
def aws() -> Iterator[Any]:
    """mock_aws with the stage's function deployed (moto never runs it) and its source bucket."""
    from moto import mock_aws

    with mock_aws(config={"lambda": {"use_docker": False}}):
        session = boto3.session.Session()
        role = session.client("iam").create_role(RoleName="zoom", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        for name in ("lambdazoom-dev", "lambdazoom-production"):
            session.client("lambda").create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role,
                Handler="lambdazoom.handler",
                Code={"ZipFile": b"PK\x05\x06" + bytes(18)},
                Timeout=900,
            )
        for bucket in ("lambdazoom-source", "lambdazoom-source-dev"):
            session.client("s3").create_bucket(Bucket=bucket)
        yield session


def test_the_production_stage_gets_a_queue_with_a_dead_letter_queue_and_a_mapping(aws):
    stage = Stage.read(SETTINGS, "production")
    assert wire(stage, aws, dry_run=True) and aws.client("sqs").list_queues().get("QueueUrls") is None, "dry run"
    changes = wire(stage, aws)
    assert len(changes) == 4, changes  # two queues, the notification, the mapping
    sqs = aws.client("sqs")
    queue = sqs.get_queue_url(QueueName="lambdazoom-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(6 * 900)
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":lambdazoom-events-dlq") and int(redrive["maxReceiveCount"]) == 3
    policy = json.loads(attributes["Policy"])["Statement"][0]
    assert policy["Principal"] == {"Service": "s3.amazonaws.com"}
    assert policy["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws:s3:::lambdazoom-source"
    assert policy["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
    (notified,) = aws.client("s3").get_bucket_notification_configuration(Bucket="lambdazoom-source")[
        "QueueConfigurations"
    ]
    assert notified["QueueArn"] == attributes["QueueArn"] and sorted(notified["Events"]) == sorted(
        ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]  # expirations are no ObjectRemoved
    )
    (mapping,) = aws.client("lambda").list_event_source_mappings(FunctionName="lambdazoom-production")[
        "EventSourceMappings"
    ]
    assert mapping["EventSourceArn"] == attributes["QueueArn"] and mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 50}
    assert wire(stage, aws) == [], "a second run changes nothing"


def test_a_changed_setting_is_brought_back_and_nothing_else(aws):
    stage = Stage.read(SETTINGS, "production")
    wire(stage, aws)
    sqs = aws.client("sqs")
    queue = sqs.get_queue_url(QueueName="lambdazoom-events")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "30"})
    # (moto forgets the queue's policy when another attribute is set; SQS keeps it, so only VisibilityTimeout would change)
    (would,) = wire(stage, aws, dry_run=True)
    assert (
        would.startswith("would set ") and "VisibilityTimeout" in would and would.endswith("of queue lambdazoom-events")
    )
    (done,) = wire(stage, aws)
    assert done == would.removeprefix("would ")
    assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "5400"
    }
    assert wire(stage, aws) == []


def test_a_queue_wired_before_lifecycle_expirations_is_subscribed_to_them(aws):
    stage = Stage.read(SETTINGS, "production")
    wire(stage, aws)
    s3 = aws.client("s3")
    (queue,) = s3.get_bucket_notification_configuration(Bucket="lambdazoom-source")["QueueConfigurations"]
    old = {"QueueArn": queue["QueueArn"], "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(
        Bucket="lambdazoom-source", NotificationConfiguration={"QueueConfigurations": [old]}
    )
    (done,) = wire(stage, aws)
    assert done.startswith("notify ") and done.endswith("created, removed and expired objects")
    (queue,) = s3.get_bucket_notification_configuration(Bucket="lambdazoom-source")["QueueConfigurations"]
    assert "s3:LifecycleExpiration:*" in queue["Events"]
    assert wire(stage, aws) == []


def test_the_dev_stage_gets_retries_and_an_on_failure_destination(aws):
    stage = Stage.read(SETTINGS, "dev")
    assert len(wire(stage, aws)) == 2  # the queue, the invocation settings
    found = aws.client("lambda").get_function_event_invoke_config(FunctionName="lambdazoom-dev")
    assert found["MaximumRetryAttempts"] == 2 and found["MaximumEventAgeInSeconds"] == 21600
    assert found["DestinationConfig"]["OnFailure"]["Destination"].endswith(":lambdazoom-failed-dev")
    assert wire(stage, aws) == []


def test_a_stage_without_wiring_is_named():
    with pytest.raises(ValueError, match="no stage 'nope'"):
        Stage.read(SETTINGS, "nope")


def test_the_command_line_dry_run_prints_and_changes_nothing(aws, capsys, monkeypatch):
    from s3zoom import cli

    monkeypatch.chdir(ROOT)
    assert cli.main(["wire", "production", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and all(line.startswith("would ") for line in printed), printed
    assert aws.client("sqs").list_queues().get("QueueUrls") is None
    assert cli.main(["wire", "nowhere"]) == 2
