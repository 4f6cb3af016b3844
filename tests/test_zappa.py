"""zappa_settings.json for real: `make package` offline, for x86_64 and for arm64, `make deploy` and
`zappa schedule`/`undeploy` against moto's server on 127.0.0.1, and the packaged function run on an event
S3 itself produced.

Zappa runs from `.venv-lambda` (requirements-deploy.txt, built by `make`), as a user deploys it, and
packages the stage's own build of requirements.txt (tools/lambda_site.py: manylinux wheels for the stage's
architecture, fetched by pip once and then kept in pip's cache). Lambda cannot be invoked here (moto needs
Docker for that), so the last test unpacks the zip and calls the stage's entry point with the standard library
alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
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
from tools import lambda_site

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_VENV = Path(os.environ.get("LAMBDA_VENV", ROOT / ".venv-lambda"))
SETTINGS = json.loads((ROOT / "zappa_settings.json").read_text())
DEV = SETTINGS["dev"]
SOURCE_BUCKET = DEV["events"][0]["event_source"]["arn"].removeprefix("arn:aws:s3:::")
ZOOM_BUCKET = DEV["aws_environment_variables"]["S3_ZOOM_BUCKET"]
FUNCTION = f"{DEV['project_name']}-dev"
# Anything that is not 127.0.0.1 goes to a closed local port (Zappa looks for its own updates).
NO_OUTSIDE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}
ARM64_STAGE = "dev_arm64"  # added to the copy's settings: dev, built for Graviton
# e_machine of an ELF header, by the stage's architecture.
ELF_MACHINES = {"x86_64": 0x3E, "arm64": 0xB7}
# Zappa and what it brings to deploy with, and the command line's progress bars: in .venv-lambda, never in the
# function (top-level names in site-packages).
DEPLOY_TOOLING = (
    "zappa", "troposphere", "yaml", "_yaml", "click", "setuptools", "pkg_resources", "_distutils_hack",
    "kappa", "cfn_flip", "cfn_tools", "cfn_clean", "pip", "wheel", "hjson", "argcomplete", "placebo",
    "durationpy", "slugify", "text_unidecode", "tqdm", "werkzeug", "requests", "markupsafe", "charset_normalizer",
    "toml", "certifi", "idna",
)  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout, so Zappa's scratch files never land in the repo."""
    if not (LAMBDA_VENV / "bin" / "zappa").exists():
        require(False, f"no Zappa in {LAMBDA_VENV}; `make test` builds it from requirements-deploy.txt")
    copy = tmp_path_factory.mktemp("project")
    shutil.copytree(
        ROOT, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git", ".venv*", ".build", "node_modules")
    )
    settings = {**SETTINGS, ARM64_STAGE: {"extends": "dev", "architecture": "arm64"}}
    (copy / "zappa_settings.json").write_text(json.dumps(settings, indent=2))
    return copy


def zappa(
    project: Path, *args: str, endpoint_url: str | None = None, offline: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the zappa command by hand, inside the deploy virtualenv (for the commands that package nothing)."""
    env = {**os.environ, **NO_OUTSIDE, "VIRTUAL_ENV": str(LAMBDA_VENV)}
    env["PATH"] = f"{LAMBDA_VENV / 'bin'}:{env['PATH']}"
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    command = [str(LAMBDA_VENV / "bin" / "zappa"), *args]
    if offline:
        command = ["unshare", "--net", *command]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)


def succeeds(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{' '.join(done.args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def make(project: Path, target: str, stage: str, endpoint_url: str | None = None, offline: bool = False) -> str:
    """``make TARGET STAGE=...`` in the copy, with the checkout's .venv-lambda (``-o``: as it is)."""
    env = {**os.environ, **NO_OUTSIDE}
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    installed = f"{LAMBDA_VENV}/.installed"
    command = ["make", "--no-print-directory", "-o", installed, target, f"STAGE={stage}", f"LAMBDA_VENV={LAMBDA_VENV}"]
    if offline:
        command = ["unshare", "--net", *command]
    return succeeds(subprocess.run(command, cwd=project, env=env, capture_output=True, text=True))


def build_site(project: Path, stage: str) -> Path:
    """The stage's dependencies, as ``make package`` builds them first: pip reaches the package index here (or
    finds the wheels in its cache), so this runs outside the offline namespace."""
    command = [str(LAMBDA_VENV / "bin" / "python"), "tools/lambda_site.py", stage]
    return Path(succeeds(subprocess.run(command, cwd=project, capture_output=True, text=True)).split()[-1])


def offline_package(project: Path, stage: str) -> Path:
    """`make package STAGE=stage` with no network at all (a network namespace holding only a down loopback),
    once its dependencies are built: packaging itself needs nothing from outside."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    require(probe.returncode == 0, f"cannot switch the network off here (unshare --net: {probe.stderr.strip()})")
    build_site(project, stage)
    make(project, "package", stage, offline=True)
    return project / f"lambdazoom-{stage}.zip"


@pytest.fixture(scope="module")
def package(project: Path) -> Path:
    return offline_package(project, "dev")


@pytest.fixture(scope="module")
def arm64_package(project: Path) -> Path:
    return offline_package(project, ARM64_STAGE)


def elf_machines(archive: zipfile.ZipFile) -> dict[str, int]:
    """Every ELF file in the zip (shared libraries and extension modules, found by content whatever their
    names), with the machine its header says it is for (e_machine)."""
    machines = {}
    for entry in archive.infolist():
        with archive.open(entry) as member:
            header = member.read(20)
        if header[:4] == b"\x7fELF":
            byte_order = {1: "<", 2: ">"}[header[5]]  # EI_DATA
            (machines[entry.filename],) = struct.unpack_from(byte_order + "H", header, 18)
    return machines


def wheel_tags(archive: zipfile.ZipFile) -> dict[str, list[str]]:
    """Each installed distribution's wheel tags (``cp313-cp313-manylinux_2_28_aarch64``), from its WHEEL file."""
    return {
        name.split("/")[0]: re.findall(r"^Tag: (\S+)$", archive.read(name).decode(), re.MULTILINE)
        for name in archive.namelist()
        if re.fullmatch(r"[^/]+\.dist-info/WHEEL", name)
    }


def runs_on_lambda(tag: str, architecture: str) -> bool:
    """Whether a wheel tag loads on the python3.13 runtime (Amazon Linux 2023, glibc 2.34) of that machine."""
    python, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none" and any(version in ("py3", "cp313") for version in python.split("."))
    machine = lambda_site.MACHINES[architecture]
    glibc = re.fullmatch(rf"manylinux_2_(\d+)_{machine}", platform)
    legacy = re.fullmatch(rf"manylinux(1|2010|2014)_{machine}", platform)
    if not (glibc and int(glibc[1]) <= 34 or legacy):
        return False
    return (python, abi) == ("cp313", "cp313") or (abi == "abi3" and python.startswith("cp3") and int(python[3:]) <= 13)


def check_built_for(package: Path, architecture: str) -> None:
    """Every binary in the zip is for Lambda's machine, and every wheel for its runtime."""
    with zipfile.ZipFile(package) as archive:
        machines = elf_machines(archive)
        tags = wheel_tags(archive)
    triplet = lambda_site.MACHINES[architecture]
    for extension in (
        f"PIL/_imaging.cpython-313-{triplet}-linux-gnu.so",
        f"_pillow_heif.cpython-313-{triplet}-linux-gnu.so",
        "obstore/_obstore.abi3.so",
    ):
        assert extension in machines, extension
    assert any(name.startswith("pillow.libs/") for name in machines), "Pillow's own libjpeg, libtiff, ..."
    wrong = {name: hex(machine) for name, machine in machines.items() if machine != ELF_MACHINES[architecture]}
    assert not wrong, f"built for another machine than {architecture}: {wrong}"
    assert {"pillow-13.0.0.dist-info", "obstore-0.12.1.dist-info", "pillow_heif-1.8.1.dist-info"} <= set(tags)
    for distribution, its_tags in tags.items():
        assert any(runs_on_lambda(tag, architecture) for tag in its_tags), (distribution, its_tags)


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
    for tool in DEPLOY_TOOLING:  # Zappa's own, and the command line's: not run by the function
        assert tool not in tops, tool
    distributions = {top.split("-")[0].lower() for top in tops if top.endswith(".dist-info")}
    assert not distributions & {"zappa", "troposphere", "pyyaml", "click", "setuptools", "pip", "wheel", "tqdm"}
    assert package.stat().st_size < 50 * 2**20, "Lambda takes at most 50 MB zipped"
    assert unpacked < 250 * 2**20, "Lambda takes at most 250 MB unzipped"
    assert "AWS_EVENT_MAPPING={'arn:aws:s3:::%s': ['lambdazoom.handler']}" % SOURCE_BUCKET in settings
    assert "LOG_LEVEL='WARNING'" in settings, "Zappa's default DEBUG would log every S3 request"


def test_the_package_is_built_for_the_stage_architecture(package):
    check_built_for(package, DEV.get("architecture", "x86_64"))


def test_an_arm64_stage_is_packaged_for_arm64_on_any_machine(arm64_package, package):
    """A stage with ``"architecture": "arm64"``, packaged on this x86_64 machine: every binary is aarch64, and
    the zip holds the same files as the x86_64 one apart from the binaries' names."""
    check_built_for(arm64_package, "arm64")

    def files(zip_path: Path) -> set[str]:
        with zipfile.ZipFile(zip_path) as archive:
            names = set(archive.namelist()) - {"package_info.json", "zappa_settings.py"}
        return {name.replace("aarch64", "x86_64") for name in names if not re.search(r"\.libs/|/RECORD$", name)}

    assert files(arm64_package) == files(package)


def test_zappa_refuses_to_package_a_virtualenv_of_this_machine(project):
    """Run by hand from .venv-lambda, ``zappa package`` (``deploy``, ``update``) would ship this machine's
    binaries and Zappa itself: the stages' prebuild_script stops it, saying what to run instead."""
    done = zappa(project, "package", "dev", "-o", "refused.zip", offline=True)
    assert done.returncode != 0
    assert "make package STAGE=dev" in done.stderr
    assert not (project / "refused.zip").exists()


def test_the_stage_settings_name_the_target():
    production = lambda_site.stage_settings(SETTINGS, "production")
    assert lambda_site.target(production) == ("python3.13", DEV.get("architecture", "x86_64"))
    arm = lambda_site.stage_settings({**SETTINGS, "arm": {"extends": "production", "architecture": "arm64"}}, "arm")
    assert lambda_site.target(arm) == ("python3.13", "arm64") and arm["memory_size"] == production["memory_size"]
    assert lambda_site.target({"runtime": "python3.13"}) == ("python3.13", "x86_64")  # Zappa's default
    with pytest.raises(SystemExit, match="architecture"):
        lambda_site.target({"architecture": "aarch64"})
    with pytest.raises(SystemExit, match="circular"):
        lambda_site.stage_settings({"a": {"extends": "b"}, "b": {"extends": "a"}}, "a")
    platforms = lambda_site.platforms("python3.13", "arm64")
    assert "manylinux_2_34_aarch64" in platforms and "manylinux_2_35_aarch64" not in platforms
    assert "manylinux2014_aarch64" in platforms and not any("x86_64" in platform for platform in platforms)


def test_deploy_schedule_and_undeploy(project, local_aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    build_site(project, "dev")
    make(project, "deploy", "dev", endpoint_url=local_aws)  # packages the stage's build, as `make package` does
    succeeds(zappa(project, "schedule", "dev", endpoint_url=local_aws))

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

    succeeds(zappa(project, "undeploy", "dev", "--yes", endpoint_url=local_aws))
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
    prefix = stage["aws_environment_variables"].get("DEST_PREFIX", "")
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
            (action, zoom + "/" + prefix + output)  # only what the function writes, under DEST_PREFIX
            for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
            for output in ("*.dzi", "*.html", "*.tif", "*.status.json", "*.preview.jpg", "*_files/*", "*_iiif/*")
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


@pytest.mark.parametrize("name", ["dev", "production"])
def test_queue_permissions_name_the_stages_region(name):
    stage = {**DEV, **SETTINGS[name]}
    queues = [
        resource
        for grant in stage["extra_permissions"]
        for resource in ([grant["Resource"]] if isinstance(grant["Resource"], str) else grant["Resource"])
        if resource.startswith("arn:aws:sqs:")
    ]
    assert queues and all(resource.startswith(f"arn:aws:sqs:{stage['aws_region']}:*:lambdazoom-") for resource in queues)


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
