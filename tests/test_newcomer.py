"""What a newcomer meets first on the command line: one clear line, with the fix, for each mistake (exit status
2 for a usage mistake, found before any request; 1 for a failure), and commands that work from any folder.

The AWS side is moto's server on 127.0.0.1, with names of each test's own (moto keeps one state per process).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from helpers import require

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv the tests run in: `make` installs the commands there


def run(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdazoom", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The one line a failed command printed: nothing on stdout, exactly one line on stderr."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def no_credentials(tmp_path: Path) -> dict[str, str]:
    """The environment of someone who never set AWS up (and no instance metadata to ask)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def test_convert_and_backfill_without_credentials_say_so_in_one_line(tmp_path):
    for arguments in (("convert", "s3://photos/a.jpg"), ("backfill", "s3://photos")):
        result = run(*arguments, env=no_credentials(tmp_path))
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines() == [
            "no AWS credentials found: run `aws configure`, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        ]


def test_demo_on_a_busy_port_says_how_to_pick_another(tmp_path):
    require((ROOT / "node_modules" / "openseadragon").is_dir(), "OpenSeadragon is not installed: run `npm ci`")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        result = run("demo", "--port", str(port), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"port {port} is in use: pick another (PORT=8080 make demo, or --port 8080), or --port 0 for any free one"
    )
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from localaws.server import LocalS3

    with LocalS3() as server:
        yield server.endpoint_url


@pytest.fixture
def world(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return World(endpoint, tmp_path)


class World:
    """Names of this test's own on the local AWS, a zappa_settings.json for them, and the command's environment."""

    def __init__(self, endpoint: str, folder: Path) -> None:
        self.name = f"newcomer-{uuid.uuid4().hex[:10]}"
        self.source, self.zoom = f"{self.name}-source", f"{self.name}-zoom"
        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        self.settings = folder / "zappa_settings.json"
        self.settings.write_text(
            json.dumps(
                {
                    "dev": {
                        "project_name": self.name,
                        "events": [{"event_source": {"arn": f"arn:aws:s3:::{self.source}"}}],
                        "lambdazoom_wiring": {"on_failure_queue": f"{self.name}-failed"},
                    },
                    "production": {
                        "extends": "dev",
                        "events": [],
                        "lambdazoom_wiring": {"source_bucket": self.source, "queue": f"{self.name}-events"},
                    },
                }
            )
        )
        self.env = with_endpoint(endpoint)
        self.env["S3_ZOOM_BUCKET"] = self.zoom

    def deploy(self, stage: str) -> None:
        """The function as `make deploy` leaves it (moto never runs it)."""
        session = boto3.session.Session()
        role = session.client("iam").create_role(RoleName=f"{self.name}-{stage}", AssumeRolePolicyDocument="{}")
        session.client("lambda").create_function(
            FunctionName=f"{self.name}-{stage}",
            Runtime="python3.13",
            Role=role["Role"]["Arn"],
            Handler="lambdazoom.handler",
            Code={"ZipFile": b"PK\x05\x06" + bytes(18)},
        )


def with_endpoint(endpoint: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def test_wire_before_a_deploy_says_to_deploy_first(world):
    for stage in ("dev", "production"):
        result = run("wire", stage, "--dry-run", "--settings", str(world.settings), env=world.env)
        assert one_line(result, 1) == (
            f"lambdazoom wire: function {world.name}-{stage} is not deployed (in us-east-1): "
            f"run `make deploy STAGE={stage}` first"
        )


def test_wire_names_a_source_bucket_that_is_not_there(world):
    world.deploy("production")
    result = run("wire", "production", "--settings", str(world.settings), env=world.env)
    line = one_line(result, 1)
    assert f"the source bucket {world.source!r} does not exist: create it" in line, line
    assert "lambdazoom_wiring.source_bucket" in line


def test_redrive_of_a_queue_wire_has_not_made(world):
    result = run("redrive", "production", "--settings", str(world.settings), env=world.env)
    assert one_line(result, 1) == (
        f"lambdazoom redrive: queue {world.name}-events-dlq does not exist (in us-east-1): "
        "run `python -m lambdazoom wire production` first"
    )


def test_wire_and_redrive_name_a_stage_or_a_settings_file_that_is_not_there(world, tmp_path):
    line = one_line(run("wire", "staging", "--settings", str(world.settings), env=world.env), 2)
    assert "no stage 'staging'" in line and "there are: dev, production" in line
    line = one_line(run("redrive", "dev", "--settings", str(world.settings), env=world.env), 2)
    assert "stage 'dev' has no queue to redrive" in line
    line = one_line(run("wire", "dev", "--settings", str(tmp_path / "nope.json"), env=world.env), 2)
    assert f"no such file: {tmp_path / 'nope.json'}: give --settings the path" in line


def test_backfill_of_a_bucket_that_is_not_there(world):
    line = one_line(run("backfill", f"s3://{world.source}/", env=world.env), 1)
    assert line == f"lambdazoom backfill: no bucket {world.source!r}: check the bucket's name in s3://{world.source}/"


def test_convert_names_the_zoom_bucket_and_its_setting(world):
    world.s3.create_bucket(Bucket=world.source)
    world.s3.put_object(Bucket=world.source, Key="a.jpg", Body=b"not looked at")
    line = one_line(run("convert", f"s3://{world.source}/a.jpg", env=world.env), 1)
    assert line.startswith(f"lambdazoom convert: the zoom bucket {world.zoom!r} (S3_ZOOM_BUCKET) does not exist")
    assert f"`aws s3 mb s3://{world.zoom}`" in line and "or set S3_ZOOM_BUCKET to the bucket" in line
    backfilled = one_line(run("backfill", f"s3://{world.source}", env=world.env), 1)
    assert "S3_ZOOM_BUCKET" in backfilled


def test_convert_of_a_key_that_is_not_there_fails(world):
    for bucket in (world.source, world.zoom):
        world.s3.create_bucket(Bucket=bucket)
    result = run("convert", f"s3://{world.source}/photos/gone.jpg", env=world.env)
    assert one_line(result, 1) == (
        f"lambdazoom convert: no object s3://{world.source}/photos/gone.jpg: check the key "
        f"(`aws s3 ls s3://{world.source}/photos/` lists them)"
    )
    no_bucket = one_line(run("convert", f"s3://{world.name}-nope/a.jpg", env=world.env), 1)
    assert f"no bucket '{world.name}-nope'" in no_bucket


def test_backfill_invoking_a_function_that_is_not_deployed(world):
    for bucket in (world.source, world.zoom):
        world.s3.create_bucket(Bucket=bucket)
    result = run("backfill", f"s3://{world.source}", "--invoke", f"{world.name}-dev", env=world.env)
    line = one_line(result, 1)
    assert f"function {world.name}-dev is not deployed" in line and "make deploy STAGE=" in line


def test_an_endpoint_out_of_reach_is_one_line_after_a_short_wait(world):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = with_endpoint(f"http://127.0.0.1:{port}")
    for arguments in (
        ("convert", "s3://photos/a.jpg"),
        ("backfill", "s3://photos"),
        ("wire", "dev", "--settings", str(world.settings)),
        ("redrive", "production", "--settings", str(world.settings)),
    ):
        started = time.monotonic()
        line = one_line(run(*arguments, env=env), 1)
        assert time.monotonic() - started < 100, "a bounded wait (a few seconds; generous for a busy machine)"
        assert line == (
            f"lambdazoom {arguments[0]}: cannot reach http://127.0.0.1:{port}: could not connect; "
            f"check AWS_ENDPOINT_URL=http://127.0.0.1:{port} (is that server running?)"
        )


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (("backfill", "s3://photos", "--workers", "0"), "argument --workers: must be at least 1, got 0"),
        (("backfill", "s3://photos", "--workers", "-2"), "argument --workers: must be at least 1, got -2"),
        (("backfill", "s3://photos", "--rate", "0"), "argument --rate: must be above 0, got 0"),
        (("backfill", "s3://photos", "--rate", "-1"), "argument --rate: must be above 0, got -1"),
        (("demo", "--port", "-5"), "argument --port: must be at least 0, got -5"),
        (("demo", "--port", "70000"), "argument --port: must be at most 65535 (or 0 for any free port), got 70000"),
        (
            ("backfill", "s3://photos", "--batch-operations", "arn:aws:lambda:us-east-1:1:function:f"),
            "--batch-operations needs --role ROLE_ARN and --report s3://BUCKET/PREFIX",
        ),
        (("convert", "s3://photos/scans/"), "argument url: s3://photos/scans/ is a folder, not an object"),
    ],
)
def test_options_are_checked_before_credentials_or_anything_else(tmp_path, arguments, said):
    """No credentials, no S3: a usage mistake is found first, in one line naming the option, exit status 2."""
    line = one_line(run(*arguments, env=no_credentials(tmp_path), timeout=60), 2)
    command = arguments[0]
    assert line.startswith(f"python -m lambdazoom {command}: {said}"), line
    assert line.endswith(f"(see python -m lambdazoom {command} --help)")


def test_demo_of_a_folder_says_it_is_one(tmp_path):
    (tmp_path / "photos").mkdir()
    line = one_line(run("demo", str(tmp_path / "photos"), env=no_credentials(tmp_path)), 1)
    assert (
        line
        == f"{tmp_path / 'photos'}: a folder, not an image file: name the images in it ({tmp_path / 'photos'}/*.jpg, ...)"
    )


def test_the_installed_commands_work_from_any_folder(tmp_path):
    for command in ("lambdazoom", "deepzoom"):
        require((BIN / command).is_file(), f"{command} is not installed in {BIN}: `make install` installs it")
        env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        result = subprocess.run(
            [BIN / command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: {command} "), result.stdout
    module = subprocess.run(
        [sys.executable, "-m", "lambdazoom", "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and module.stdout.startswith("usage: python -m lambdazoom "), module.stderr


def test_make_help_lists_every_target_with_what_it_does():
    require(shutil.which("make") is not None, "make is not installed")
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = listed.splitlines()
    for target in (
        "install",
        "demo",
        "test",
        "package|deploy|update",
        "bench",
        "bench-upload",
        "bench-sizing",
        "clean",
    ):
        (line,) = [line for line in lines if line.split()[1] == target]
        assert len(line.split()) > 3, f"{target} has a description"
