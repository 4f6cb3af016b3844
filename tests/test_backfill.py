"""`python -m lambdazoom backfill`: a bucket that already holds images gets its pyramids.

Converting here runs the real command (worker processes, so moto's HTTP server on 127.0.0.1);
handing work to the function runs in-process against moto's Lambda, which records every event
it was sent, and those events are then fed to the handler to show they are well-formed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import SOURCE_BUCKET, ZOOM_BUCKET, route_tile_puts
from helpers import keys_in, sample_image, upload_image
from moto.awslambda_simple.models import LambdaSimpleBackend

import lambdazoom
from s3zoom import backfill
from s3zoom.events import s3_event, s3_records
from s3zoom.keys import PyramidKeys

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"(?:converted|would convert|handed to the function): (\d+), up to date: (\d+), not images: (\d+)")


def put_mixed_bucket(s3: Any, size: tuple[int, int] = (320, 240)) -> dict[str, list[str]]:
    """50 objects: 44 images in five formats, 3 broken ones, 3 that are not images."""
    kinds: dict[str, list[str]] = {"good": [], "bad": [], "other": []}
    formats = [("jpg", "JPEG"), ("png", "PNG"), ("tif", "TIFF"), ("webp", "WEBP"), ("gif", "GIF")]
    for number in range(44):
        extension, image_format = formats[number % len(formats)]
        key = f"archive/{number // 10}/scan {number}.{extension}"
        upload_image(s3, SOURCE_BUCKET, key, sample_image(size[0] + number, size[1], seed=number), image_format)
        kinds["good"].append(key)
    broken = {
        "archive/bad/empty.jpg": b"",
        "archive/bad/truncated.png": b"\x89PNG\r\n\x1a\n",
        "archive/bad/text.tif": b"hi",
    }
    for key, body in broken.items():
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=body)
        kinds["bad"].append(key)
    for key in ("archive/notes.txt", "archive/meta.json", "archive/4/README"):
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=b"{}")
        kinds["other"].append(key)
    return kinds


def descriptors(s3: Any) -> list[str]:
    return [key for key in keys_in(s3, ZOOM_BUCKET) if key.endswith(".dzi")]


def expected_descriptors(keys: list[str]) -> list[str]:
    return sorted(PyramidKeys.for_source(key, "").descriptor for key in keys)


@pytest.fixture
def server(lambda_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, str]]]:
    """moto's server with both buckets, and the environment the backfill command runs with."""
    from localaws.server import LocalS3

    with LocalS3() as local:
        s3 = boto3.client("s3", endpoint_url=local.endpoint_url)
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=ZOOM_BUCKET)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": local.endpoint_url,
            "S3_ZOOM_BUCKET": ZOOM_BUCKET,
            "TMP_DIR": str(lambda_config),
            "UPLOAD_CONCURRENCY": "8",
        }
        yield s3, env


def run_backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lambdazoom", "backfill", f"s3://{SOURCE_BUCKET}/archive/", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def counts(output: str) -> tuple[int, ...]:
    return tuple(int(number) for number in SUMMARY.search(output).groups())


def test_backfill_converts_what_needs_it_and_reports_the_rest(server):
    s3, env = server
    kinds = put_mixed_bucket(s3)
    already = kinds["good"][:6]
    for key in already:  # these have pyramids from an earlier run
        convert_with_cli(env, key)
    before = {key: s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["ETag"] for key in expected_descriptors(already)}

    dry = run_backfill(env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert counts(dry.stdout) == (38 + 3, 6, 3)
    assert descriptors(s3) == expected_descriptors(already), "a dry run writes nothing"

    done = run_backfill(env, "--workers", "2")
    assert done.returncode == 1, "something failed, so the exit status says so"
    assert counts(done.stdout) == (38, 6, 3)
    failures = dict(line[len("failed: ") :].split(": ", 1) for line in done.stdout.splitlines()[1:])
    assert sorted(failures) == sorted(kinds["bad"])
    assert "empty" in failures["archive/bad/empty.jpg"]
    assert descriptors(s3) == expected_descriptors(kinds["good"])
    assert {key: s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["ETag"] for key in before} == before

    snapshot = {key: s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["LastModified"] for key in keys_in(s3, ZOOM_BUCKET)}
    again = run_backfill(env)
    assert counts(again.stdout) == (0, 44, 3), "a second run converts nothing"
    after = {key: s3.head_object(Bucket=ZOOM_BUCKET, Key=key)["LastModified"] for key in keys_in(s3, ZOOM_BUCKET)}
    assert after == snapshot, "and writes nothing"


def convert_with_cli(env: dict[str, str], key: str) -> None:
    """Convert one object as the function would, with the backfill's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "lambdazoom", "convert", f"s3://{SOURCE_BUCKET}/{key}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_an_interrupted_backfill_goes_on_where_it_stopped(server):
    s3, env = server
    for number in range(24):
        upload_image(s3, SOURCE_BUCKET, f"archive/big {number}.jpg", sample_image(1600, 1200, seed=number))
    command = [sys.executable, "-m", "lambdazoom", "backfill", f"s3://{SOURCE_BUCKET}/archive/", "--workers", "2"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(descriptors(s3)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, errors = first.communicate(timeout=120)
    assert first.returncode == 130, errors
    assert "run the same command again" in errors
    finished = len(descriptors(s3))
    assert 4 <= finished < 24, finished

    second = run_backfill(env)
    assert second.returncode == 0, second.stderr
    converted, up_to_date, _ = counts(second.stdout)
    assert (converted, up_to_date) == (24 - finished, finished)
    assert len(descriptors(s3)) == 24


@pytest.fixture
def lambda_world(
    lambda_config: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """mock_aws with both buckets and a function whose every invocation moto records."""
    from moto import mock_aws

    sent: list[dict[str, Any]] = []
    answer = LambdaSimpleBackend.invoke

    def recording(self, function_name, qualifier, body, headers, response_headers):  # noqa: ANN001, ANN202
        sent.append({"function": function_name, "type": headers.get("X-Amz-Invocation-Type"), "body": body})
        return answer(self, function_name, qualifier, body, headers, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", recording)
    route_tile_puts(monkeypatch, moto_endpoint)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=ZOOM_BUCKET)
        role = boto3.client("iam").create_role(RoleName="zoom", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        boto3.client("lambda").create_function(
            FunctionName="lambdazoom-dev",
            Runtime="python3.13",
            Role=role,
            Handler="handler.lambda_handler",
            Code={"ZipFile": b"PK\x05\x06" + bytes(18)},  # an empty zip: moto never runs it
        )
        yield s3, sent


def test_invoke_sends_one_well_formed_event_per_image(lambda_world):
    s3, sent = lambda_world
    kinds = put_mixed_bucket(s3, size=(120, 90))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, kinds["good"][0]), None)  # this one already has its pyramid
    tally = backfill.backfill(lambdazoom.SETTINGS, SOURCE_BUCKET, "archive/", invoke="lambdazoom-dev", rate=0)
    assert (tally.converted, tally.skipped, tally.ignored, tally.failed) == (43 + 3, 1, 3, {})
    assert {call["function"] for call in sent} == {"lambdazoom-dev"}
    assert {call["type"] for call in sent} == {"Event"}, "asynchronous, as S3 invokes"
    events = [json.loads(call["body"]) for call in sent]
    records = [record for event in events for record in s3_records(event)]
    assert sorted(record.key for record in records) == sorted(kinds["good"][1:] + kinds["bad"])
    for event in events:
        (record,) = event["Records"]
        assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
        assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{SOURCE_BUCKET}", "Zappa routes by it"
        assert record["s3"]["configurationId"], "Zappa reads it"
        assert " " not in record["s3"]["object"]["key"], "URL-encoded, as S3 sends keys"
    for event in events:  # what the function would do with them
        lambdazoom.handler(event, None)
    assert descriptors(s3) == expected_descriptors(kinds["good"])

    sent.clear()
    again = backfill.backfill(lambdazoom.SETTINGS, SOURCE_BUCKET, "archive/", invoke="lambdazoom-dev", rate=0)
    resent = sorted(record.key for call in sent for record in s3_records(json.loads(call["body"])))
    assert resent == sorted(kinds["bad"]), "only the broken ones, which have no pyramid, are sent again"
    assert (again.converted, again.skipped) == (3, 44)


def test_force_is_carried_in_the_event_and_reconverts(lambda_world):
    s3, sent = lambda_world
    upload_image(s3, SOURCE_BUCKET, "archive/one.jpg", sample_image(100, 80))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "archive/one.jpg"), None)
    first = s3.head_object(Bucket=ZOOM_BUCKET, Key="archive/one.dzi")["LastModified"]
    backfill.backfill(lambdazoom.SETTINGS, SOURCE_BUCKET, "archive/", invoke="lambdazoom-dev", rate=0, force=True)
    (call,) = sent
    event = json.loads(call["body"])
    time.sleep(1.1)  # S3 times are to the second
    assert lambdazoom.handler(event, None)["done"] == 1
    assert s3.head_object(Bucket=ZOOM_BUCKET, Key="archive/one.dzi")["LastModified"] > first


def test_invocations_are_paced(monkeypatch):
    clock = {"now": 100.0}
    slept: list[float] = []
    monkeypatch.setattr(backfill.time, "monotonic", lambda: clock["now"])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(backfill.time, "sleep", sleep)
    pace = backfill._Pace(rate=4)
    for _ in range(9):
        pace.wait()
    assert clock["now"] == pytest.approx(102.0), "nine calls at 4 a second take two seconds"
    assert slept == pytest.approx([0.25] * 8)


def test_batch_operations_get_a_manifest_of_what_needs_work_and_a_job(lambda_world):
    """moto has no S3 Batch Operations: the manifest is checked in moto's S3, the job request against
    botocore's own model of CreateJob (a Stubber validates every parameter) and what the job must carry."""
    from botocore.stub import ANY, Stubber

    from s3zoom import batch_job

    s3, _ = lambda_world
    s3.create_bucket(Bucket="lambdazoom-reports")
    upload_image(s3, SOURCE_BUCKET, "archive/done.jpg", sample_image(60, 40))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "archive/done.jpg"), None)  # up to date: not in the manifest
    for key in ("archive/a b+c ☃.jpg", "archive/second.png"):
        upload_image(s3, SOURCE_BUCKET, key, sample_image(60, 40))
    control = boto3.client("s3control", region_name="us-east-1")
    job = batch_job.BatchJob(
        "arn:aws:lambda:us-east-1:123456789012:function:lambdazoom-production",
        "arn:aws:iam::123456789012:role/batch",
        "lambdazoom-reports",
        "runs",
    )
    with Stubber(control) as stubbed:
        stubbed.add_response(
            "create_job",
            {"JobId": "job-7"},
            {
                "AccountId": "123456789012",
                "ConfirmationRequired": False,
                "Operation": {
                    "LambdaInvoke": {
                        "FunctionArn": job.function_arn,
                        "InvocationSchemaVersion": "2.0",
                        "UserArguments": {"force": "true"},
                    }
                },
                "Manifest": ANY,
                "Report": {
                    "Bucket": "arn:aws:s3:::lambdazoom-reports",
                    "Prefix": "runs",
                    "Format": "Report_CSV_20180820",
                    "Enabled": True,
                    "ReportScope": "AllTasks",
                },
                "Priority": 10,
                "RoleArn": job.role_arn,
                "ClientRequestToken": ANY,
                "Description": ANY,
            },
        )
        keys = ["archive/a b+c ☃.jpg", "archive/second.png"]
        assert batch_job.create_job(s3, control, "123456789012", SOURCE_BUCKET, keys, job, force=True) == "job-7"
    (manifest_key,) = keys_in(s3, "lambdazoom-reports", "runs/")
    body = s3.get_object(Bucket="lambdazoom-reports", Key=manifest_key)["Body"].read().decode()
    assert body == f"{SOURCE_BUCKET},archive/a%20b%2Bc%20%E2%98%83.jpg\n{SOURCE_BUCKET},archive/second.png\n"


def test_the_batch_operations_backfill_lists_only_what_needs_work(lambda_world, monkeypatch):
    from s3zoom import backfill as module

    s3, _ = lambda_world
    upload_image(s3, SOURCE_BUCKET, "archive/done.jpg", sample_image(60, 40))
    lambdazoom.handler(s3_event(SOURCE_BUCKET, "archive/done.jpg"), None)
    upload_image(s3, SOURCE_BUCKET, "archive/new.jpg", sample_image(60, 40))
    handed = []
    monkeypatch.setattr(
        module, "create_job", lambda s3, control, account, bucket, keys, job, force: handed.append(keys) or "job-8"
    )
    job = module.BatchJob(
        "arn:aws:lambda:us-east-1:123456789012:function:f", "arn:aws:iam::123456789012:role/r", "reports"
    )
    tally = backfill.backfill(lambdazoom.SETTINGS, SOURCE_BUCKET, "archive/", batch=job)
    assert handed == [["archive/new.jpg"]] and (tally.converted, tally.skipped) == (1, 1)
