"""zappa_settings.json for real: `zappa package` offline, `deploy`/`schedule`/`undeploy` against
moto's server on 127.0.0.1, and the packaged function run on an event S3 itself produced.

Zappa runs from the runtime-only virtualenv (`.venv-lambda`, built from requirements.txt by
`make`), as a user deploys it. Lambda cannot be invoked here (moto needs Docker for that), so the
last test unpacks the zip and calls Zappa's own entry point with the standard library alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import keys_in, require, sample_image, upload_image
from test_event_sources import batch_operations, eventbridge

from localaws.buckets import WatchedBuckets
from localaws.server import LocalS3

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_VENV = Path(os.environ.get("LAMBDA_VENV", ROOT / ".venv-lambda"))
SETTINGS = json.loads((ROOT / "zappa_settings.json").read_text())
DEV = SETTINGS["dev"]
SOURCE_BUCKET = DEV["events"][0]["event_source"]["arn"].removeprefix("arn:aws:s3:::")
ZOOM_BUCKET = DEV["aws_environment_variables"]["S3_ZOOM_BUCKET"]
FUNCTION = f"{DEV['project_name']}-dev"
# Anything that is not 127.0.0.1 goes to a closed local port (Zappa looks for its own updates).
NO_OUTSIDE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout, so Zappa's scratch files never land in the repo."""
    if not (LAMBDA_VENV / "bin" / "zappa").exists():
        require(False, f"no Zappa in {LAMBDA_VENV}; `make test` builds it from requirements.txt")
    copy = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git", ".venv*", "node_modules"))
    return copy


def zappa(project: Path, *args: str, endpoint_url: str | None = None, offline: bool = False) -> str:
    """Run the zappa command as a user would, inside the runtime virtualenv; return its output."""
    env = {**os.environ, **NO_OUTSIDE, "VIRTUAL_ENV": str(LAMBDA_VENV)}
    env["PATH"] = f"{LAMBDA_VENV / 'bin'}:{env['PATH']}"
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    command = [str(LAMBDA_VENV / "bin" / "zappa"), *args]
    if offline:
        command = ["unshare", "--net", *command]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"zappa {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def package(project: Path) -> Path:
    """`zappa package dev` with no network at all (a network namespace holding only a down loopback)."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    require(probe.returncode == 0, f"cannot switch the network off here (unshare --net: {probe.stderr.strip()})")
    output = project.parent / "lambdazoom-dev.zip"
    zappa(project, "package", "dev", "-o", str(output), offline=True)
    return output


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with LocalS3() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield server.endpoint_url


def test_package_holds_the_function_and_none_of_the_dev_tools(package):
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        unpacked = sum(entry.file_size for entry in archive.infolist())
        settings = archive.read("zappa_settings.py").decode()
    tops = {name.split("/")[0] for name in names}
    for needed in (
        "lambdazoom.py",
        "config.py",
        "deepzoom",
        "s3zoom",
        "PIL",
        "pillow_heif",
        "obstore",
        "aws_lambda_powertools",
    ):
        assert needed in tops, needed
    assert "deepzoom/pyramid.py" in names and "s3zoom/jobs.py" in names
    for unwanted in ("tests", "bench", "localaws", "demo", "node_modules", ".venv", ".venv-lambda", "Makefile"):
        assert unwanted not in tops, unwanted
    for dev_tool in ("moto", "pytest", "_pytest", "hypothesis", "pyvips", "granian", "playwright"):
        assert dev_tool not in tops, dev_tool
    assert package.stat().st_size < 50 * 2**20, "Lambda takes at most 50 MB zipped"
    assert unpacked < 250 * 2**20, "Lambda takes at most 250 MB unzipped"
    assert "AWS_EVENT_MAPPING={'arn:aws:s3:::%s': ['lambdazoom.handler']}" % SOURCE_BUCKET in settings
    assert "LOG_LEVEL='WARNING'" in settings, "Zappa's default DEBUG would log every S3 request"


def test_deploy_schedule_and_undeploy(project, local_aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    zappa(project, "deploy", "dev", endpoint_url=local_aws)
    zappa(project, "schedule", "dev", endpoint_url=local_aws)

    function = boto3.client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    assert function["Handler"] == DEV["lambda_handler"] == "lambdazoom.handler"  # ours: Zappa's drops some events
    assert function["Runtime"] == DEV["runtime"] == "python3.13"
    assert function["MemorySize"] == DEV["memory_size"]
    assert function["Timeout"] == DEV["timeout_seconds"]
    assert function["EphemeralStorage"] == DEV["ephemeral_storage"]
    assert function["Environment"]["Variables"]["S3_ZOOM_BUCKET"] == ZOOM_BUCKET

    (notification,) = s3.get_bucket_notification_configuration(Bucket=SOURCE_BUCKET)["LambdaFunctionConfigurations"]
    assert notification["LambdaFunctionArn"] == function["FunctionArn"]
    assert sorted(notification["Events"]) == ["s3:LifecycleExpiration:*", "s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    invoke = json.loads(boto3.client("lambda").get_policy(FunctionName=FUNCTION)["Policy"])["Statement"]
    assert any(grant["Principal"] == {"Service": "s3.amazonaws.com"} for grant in invoke)

    role = function["Role"].rsplit("/", 1)[1]
    policy = boto3.client("iam").get_role_policy(RoleName=role, PolicyName="zappa-permissions")["PolicyDocument"]
    assert policy["Statement"] == least_privilege()

    zappa(project, "undeploy", "dev", "--yes", endpoint_url=local_aws)
    with pytest.raises(boto3.client("lambda").exceptions.ResourceNotFoundException):
        boto3.client("lambda").get_function(FunctionName=FUNCTION)
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=SOURCE_BUCKET)


def least_privilege(stage: dict[str, Any] = DEV) -> list[dict[str, Any]]:
    """What the role may do: write its logs; read (and list, so a missing key is a 404, not a 403) the
    source bucket; list the zoom bucket, and read, write and delete there only the names it writes. Nothing on any
    other bucket."""
    logs = json.loads((ROOT / stage["attach_policy"]).read_text())["Statement"]
    grants = logs + stage["extra_permissions"]
    source = source_arn(stage)
    zoom = "arn:aws:s3:::" + stage["aws_environment_variables"]["S3_ZOOM_BUCKET"]
    allowed = {
        (action, resource)
        for grant in grants
        for action in grant["Action"]
        for resource in ([grant["Resource"]] if isinstance(grant["Resource"], str) else grant["Resource"])
        if action.startswith("s3:")
    }
    assert allowed == {
        ("s3:GetObject", source + "/*"),
        ("s3:GetObjectVersion", source + "/*"),
        ("s3:ListBucket", source),
        ("s3:ListBucket", zoom),
        *(
            (action, zoom + "/" + output)  # only the names the function writes: descriptors, pages, tiles, IIIF, TIFFs
            for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
            for output in ("*.dzi", "*.html", "*.tif", "*_files/*", "*_iiif/*")
        ),
    }
    for grant in logs:  # only the function's own log groups
        assert all(
            resource.split(":log-group:")[1].startswith("/aws/lambda/lambdazoom-") for resource in grant["Resource"]
        )
    return grants


def source_arn(stage: dict[str, Any]) -> str:
    """The source bucket: S3 notifies the function (an S3 event source), or a queue (named in the wiring)."""
    for event in stage["events"]:
        return event["event_source"]["arn"]
    return "arn:aws:s3:::" + stage["lambdazoom_wiring"]["source_bucket"]


def test_production_role_is_as_narrow_for_its_own_buckets():
    production = {**DEV, **SETTINGS["production"]}  # what Zappa's "extends" does
    assert production["events"] == [], "S3 notifies the queue, which wire sets up, not the function"
    assert source_arn(production) != source_arn(DEV)
    least_privilege(production)


@pytest.mark.parametrize("shape", ["s3", "eventbridge", "batch operations"])
def test_the_packaged_function_converts_each_shape_of_event(package, local_aws, tmp_path, shape):
    """The zip as Lambda runs it, through the entry point the stage names (``lambda_handler``): Zappa's own
    handler would drop EventBridge and Batch Operations events and return success."""
    stack = WatchedBuckets(local_aws, SOURCE_BUCKET, ZOOM_BUCKET)
    key = "uploads/first light+☃.jpg"
    upload_image(stack.s3, SOURCE_BUCKET, key, sample_image(700, 500))
    event = {
        "s3": stack.next_event,
        "eventbridge": lambda: eventbridge("Object Created", key, SOURCE_BUCKET),
        "batch operations": lambda: batch_operations("2.0", [key], SOURCE_BUCKET),
    }[shape]()
    task = tmp_path / "task"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(task)
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": DEV["aws_region"],
        "AWS_ENDPOINT_URL": local_aws,
        "TMP_DIR": str(tmp_path),
        **DEV["aws_environment_variables"],
        **NO_OUTSIDE,
    }
    module, function = DEV["lambda_handler"].rsplit(".", 1)
    # -S: no site-packages, only what the zip holds (the task folder is the script's own path). The root
    # handler stands in for the one Lambda's runtime installs.
    invoke = (
        f"import json, logging, sys; logging.basicConfig(format='%(message)s'); import {module}; "
        f"print(json.dumps({module}.{function}(json.load(sys.stdin), None)))"
    )
    python = LAMBDA_VENV / "bin" / "python"
    done = subprocess.run(
        [str(python), "-S", "-c", invoke],
        input=json.dumps(event),
        cwd=task,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if shape == "batch operations":
        assert answer["results"] == [{"taskId": "task-0", "resultCode": "Succeeded", "resultString": "converted"}]
    else:
        assert answer == {"done": 1, "skipped": 0, "failed": 0}
    logged = [json.loads(line[line.index("{") :]) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [line["action"] for line in logged] == ["converted"]
    assert logged[0]["key"] == key
    assert "DEBUG" not in done.stderr, "botocore's debug log is off"
    written = keys_in(stack.s3, ZOOM_BUCKET)
    assert "uploads/first light+☃.dzi" in written and "uploads/first light+☃_files/0/0_0.jpg" in written
