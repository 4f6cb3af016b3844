"""``python -m lambdazoom wire STAGE [--dry-run]``: what Zappa cannot set, so that no event is lost;
and ``python -m lambdazoom redrive STAGE``, which sends the dead-letter queue's messages back.

Read from the stage's ``lambdazoom_wiring`` in ``zappa_settings.json`` (with ``extends`` followed):

- ``"queue"`` given (S3 -> SQS -> Lambda, the production path): a dead-letter queue; the queue, with a
  visibility timeout six times the function's timeout and a redrive policy to the dead-letter queue
  after ``max_receive_count`` receives, and a policy letting the source bucket send to it; the bucket's
  notification of created, removed and lifecycle-expired objects to the queue (other notifications
  kept); and the event source mapping from the queue to the function with ``batch_size``,
  ``ReportBatchItemFailures`` and ``maximum_concurrency``.
- ``"on_failure_queue"`` given (S3 invokes the function directly, the dev path): that queue, and the
  function's asynchronous invocation settings: ``maximum_retry_attempts``, ``maximum_event_age_seconds``
  and the queue as its on-failure destination, where events go once Lambda gives up on them.

Each step reads what is there first and changes only what differs, so a second run changes nothing;
``--dry-run`` prints the changes without making them. Returns the changes, one line each. What wiring
cannot make itself (the deployed function; on the queue path, the source bucket) is checked first, and its
absence raised as a :class:`~s3zoom.problems.Problem` naming it and the fix, before anything is changed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .problems import QUICK, Problem, check_bucket

VISIBILITY_PER_TIMEOUT = 6  # AWS's advice for a queue feeding a function: six times its timeout
# A lifecycle rule's expirations are no ObjectRemoved event: without them, expired images keep their pyramids.
EVENTS = ["s3:LifecycleExpiration:*", "s3:ObjectCreated:*", "s3:ObjectRemoved:*"]


@dataclass(frozen=True)
class Stage:
    """What ``wire`` needs of a Zappa stage."""

    function: str
    region: str
    timeout: int
    source_bucket: str
    wiring: dict[str, Any]
    name: str = ""  # the stage's name in zappa_settings.json

    @property
    def deploy_command(self) -> str:
        return f"make deploy STAGE={self.name or '...'}"

    @classmethod
    def read(cls, path: Path, name: str) -> Stage:
        stages = json.loads(path.read_text())
        if name not in stages:
            raise ValueError(f"no stage {name!r} in {path} (there are: {', '.join(stages)})")
        merged: dict[str, Any] = {}
        chain = [name]
        while "extends" in stages[chain[-1]]:
            chain.append(stages[chain[-1]]["extends"])
        for stage in reversed(chain):
            merged.update(stages[stage])
        wiring = merged.get("lambdazoom_wiring")
        if not wiring:
            raise ValueError(f"stage {name!r} has no lambdazoom_wiring: nothing to wire")
        return cls(
            function=f"{merged['project_name']}-{name}",
            region=merged.get("aws_region", "us-east-1"),
            timeout=int(merged.get("timeout_seconds", 30)),
            source_bucket=wiring.get("source_bucket") or _source_bucket(merged),
            wiring=wiring,
            name=name,
        )


def _source_bucket(stage: dict[str, Any]) -> str:
    for event in stage.get("events", []):
        arn = event.get("event_source", {}).get("arn", "")
        if arn.startswith("arn:aws:s3:::"):
            return arn.removeprefix("arn:aws:s3:::")
    raise ValueError("name the source bucket: lambdazoom_wiring.source_bucket, or an S3 event source")


def wire(stage: Stage, session: Any, *, dry_run: bool = False) -> list[str]:
    """Make the stage's queues, notification, mapping and invocation settings as configured."""
    wiring = _Wiring(stage, session, dry_run)
    wiring.check()
    if "queue" in stage.wiring:
        wiring.queue_path()
    if "on_failure_queue" in stage.wiring:
        wiring.direct_path()
    return wiring.changes


class _Wiring:
    def __init__(self, stage: Stage, session: Any, dry_run: bool) -> None:
        self.stage = stage
        self.dry_run = dry_run
        self.sqs = session.client("sqs", region_name=stage.region, config=QUICK)
        self.s3 = session.client("s3", region_name=stage.region, config=QUICK)
        self.lambda_ = session.client("lambda", region_name=stage.region, config=QUICK)
        self.changes: list[str] = []

    def check(self) -> None:
        """What wiring needs and cannot make: the deployed function, and on the queue path the source bucket."""
        try:
            _ = self._function_arn  # asked once, and kept: the queues' ARNs name its account
        except self.lambda_.exceptions.ResourceNotFoundException:
            raise Problem(
                f"function {self.stage.function} is not deployed (in {self.stage.region}): "
                f"run `{self.stage.deploy_command}` first"
            ) from None
        if "queue" in self.stage.wiring:
            bucket = self.stage.source_bucket
            check_bucket(
                self.s3,
                bucket,
                f"the source bucket {bucket!r} does not exist: create it (README, Deploy to AWS, step 2), or name "
                "yours in zappa_settings.json (lambdazoom_wiring.source_bucket)",
            )

    def queue_path(self) -> None:
        settings = self.stage.wiring
        dead_letter_arn = self._queue(settings.get("dead_letter_queue", settings["queue"] + "-dlq"), {})
        bucket_arn = f"arn:aws:s3:::{self.stage.source_bucket}"
        attributes = {
            "VisibilityTimeout": str(VISIBILITY_PER_TIMEOUT * self.stage.timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": int(settings.get("max_receive_count", 3))}
            ),
        }
        queue_arn = self._queue(settings["queue"], attributes, sender=bucket_arn)
        self._notification(queue_arn)
        self._mapping(queue_arn, int(settings.get("batch_size", 10)), int(settings.get("maximum_concurrency", 50)))

    def direct_path(self) -> None:
        settings = self.stage.wiring
        failed_arn = self._queue(settings["on_failure_queue"], {}, sender=self._function_arn)
        wanted = {
            "MaximumRetryAttempts": int(settings.get("maximum_retry_attempts", 2)),
            "MaximumEventAgeInSeconds": int(settings.get("maximum_event_age_seconds", 21600)),
            "DestinationConfig": {"OnFailure": {"Destination": failed_arn}},
        }
        try:
            found = self.lambda_.get_function_event_invoke_config(FunctionName=self.stage.function)
        except self.lambda_.exceptions.ResourceNotFoundException:
            found = {}
        current = {name: found.get(name) for name in wanted}
        on_failure = (found.get("DestinationConfig") or {}).get("OnFailure")  # AWS adds "OnSuccess": {}
        current["DestinationConfig"] = {"OnFailure": on_failure} if on_failure else None
        if current != wanted:
            self._change(
                f"set {self.stage.function}'s asynchronous invocations: {json.dumps(wanted)}",
                lambda: self.lambda_.put_function_event_invoke_config(FunctionName=self.stage.function, **wanted),
            )

    def _queue(self, name: str, attributes: dict[str, str], sender: str | None = None) -> str:
        """Make queue ``name`` (or bring its attributes to ``attributes``); its ARN."""
        if sender is not None:
            attributes = {**attributes, "Policy": self._send_policy(name, sender)}
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except self.sqs.exceptions.QueueDoesNotExist:
            self._change(f"create queue {name}", lambda: self.sqs.create_queue(QueueName=name, Attributes=attributes))
            return self._queue_arn(name)
        found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        differing = {key: value for key, value in attributes.items() if not _same_attribute(found.get(key), value)}
        if differing:
            self._change(
                f"set {', '.join(sorted(differing))} of queue {name}",
                lambda: self.sqs.set_queue_attributes(QueueUrl=url, Attributes=differing),
            )
        return found["QueueArn"]

    def _queue_arn(self, name: str) -> str:
        account = self._function_arn.split(":")[4]
        return f"arn:aws:sqs:{self.stage.region}:{account}:{name}"

    def _send_policy(self, name: str, sender: str) -> str:
        service = "s3.amazonaws.com" if sender.startswith("arn:aws:s3") else "lambda.amazonaws.com"
        queue_arn = self._queue_arn(name)
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            # Bucket names are global: a bucket of this name in another account must not reach the queue.
            "Condition": {
                "ArnLike": {"aws:SourceArn": sender},
                "StringEquals": {"aws:SourceAccount": queue_arn.split(":")[4]},
            },
        }
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    def _notification(self, queue_arn: str) -> None:
        bucket = self.stage.source_bucket
        found = self.s3.get_bucket_notification_configuration(Bucket=bucket)
        found.pop("ResponseMetadata", None)
        queues = found.get("QueueConfigurations", [])
        if any(entry["QueueArn"] == queue_arn and sorted(entry["Events"]) == sorted(EVENTS) for entry in queues):
            return
        wanted = {
            **found,
            "QueueConfigurations": [
                *(q for q in queues if q["QueueArn"] != queue_arn),
                {"QueueArn": queue_arn, "Events": EVENTS},
            ],
        }
        self._change(
            f"notify {queue_arn} of {bucket}'s created, removed and expired objects",
            lambda: self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=wanted),
        )

    def _mapping(self, queue_arn: str, batch_size: int, concurrency: int) -> None:
        wanted = {
            "BatchSize": batch_size,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": concurrency},
        }
        mappings = self.lambda_.list_event_source_mappings(EventSourceArn=queue_arn, FunctionName=self.stage.function)
        found = mappings.get("EventSourceMappings", [])
        if not found:
            self._change(
                f"map {queue_arn} to {self.stage.function}: {json.dumps(wanted)}",
                lambda: self.lambda_.create_event_source_mapping(
                    EventSourceArn=queue_arn, FunctionName=self.stage.function, Enabled=True, **wanted
                ),
            )
            return
        mapping = found[0]
        if {name: mapping.get(name) for name in wanted} != wanted:
            self._change(
                f"set {queue_arn}'s mapping to {self.stage.function}: {json.dumps(wanted)}",
                lambda: self.lambda_.update_event_source_mapping(UUID=mapping["UUID"], **wanted),
            )

    @functools.cached_property
    def _function_arn(self) -> str:
        """The deployed function's ARN (asked once): it names the account the queues live in."""
        return self.lambda_.get_function(FunctionName=self.stage.function)["Configuration"]["FunctionArn"]

    def _change(self, description: str, make: Any) -> None:
        self.changes.append(("would " if self.dry_run else "") + description)
        if not self.dry_run:
            make()


def _same_attribute(found: str | None, wanted: str) -> bool:
    """Queue attributes come back as strings, and JSON ones reformatted."""
    if found is None:
        return False
    try:
        return json.loads(found) == json.loads(wanted)
    except ValueError:
        return found == wanted


def redrive(stage: Stage, session: Any) -> int:
    """Move every message of the stage's dead-letter queue back to its queue (each sent, then deleted, so
    a failure part way loses none: at worst one is sent twice, which a conversion shrugs off); how many."""
    settings = stage.wiring
    if "queue" not in settings:
        raise ValueError("this stage has no queue to redrive (lambdazoom_wiring.queue)")
    sqs = session.client("sqs", region_name=stage.region, config=QUICK)

    def url(name: str) -> str:
        try:
            return sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            raise Problem(
                f"queue {name} does not exist (in {stage.region}): run `python -m lambdazoom wire "
                f"{stage.name or 'STAGE'}` first"
            ) from None

    source = url(settings.get("dead_letter_queue", settings["queue"] + "-dlq"))
    target = url(settings["queue"])
    moved = 0
    while True:  # long polls: a short one may come back empty while messages wait on other servers
        messages = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages")
        if not messages:
            waiting = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["ApproximateNumberOfMessages"])
            if int(waiting["Attributes"]["ApproximateNumberOfMessages"]) == 0:
                return moved
            continue
        for message in messages:
            sqs.send_message(QueueUrl=target, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
