"""The function's dependencies as Lambda runs them, whatever machine builds the package.

Zappa packages the ``site-packages`` of the virtualenv ``VIRTUAL_ENV`` names (``lib/pythonX.Y/site-packages``,
X.Y being the Python Zappa itself runs on). With ``use_precompiled_packages`` off, whatever is there is shipped
as it is: from a Mac or an arm64 laptop, Pillow's, obstore's and pillow-heif's binaries for that machine, which
do not load on Lambda. So the Makefile points ``VIRTUAL_ENV`` at a folder shaped like a virtualenv,
``.build/lambda-RUNTIME-ARCHITECTURE/``, whose ``site-packages`` holds ``requirements.txt`` and nothing else,
installed by pip from manylinux wheels for the stage's ``architecture`` (``x86_64``, Zappa's default, or
``arm64``) and ``runtime``, never built here. Zappa and its own tooling stay in ``.venv-lambda``, which runs it.

    python tools/lambda_site.py STAGE    # builds the folder (or finds it up to date), prints its path

The folder is rebuilt when requirements.txt or the target changes; pip's cache keeps the wheels between
builds. One limit of pip's: it evaluates environment markers other than the Python version (``sys_platform``,
``platform_machine``) for this machine, not the target; no dependency of requirements.txt has one today. ``check`` is the stages' ``prebuild_script``: Zappa calls it before it packages (``package``,
``deploy``, ``update``), and it refuses to package any other virtualenv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKER = "lambda-site.json"
# Lambda's machines, as manylinux names them.
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
# glibc of the runtime's Amazon Linux: python3.12 and later run on Amazon Linux 2023 (glibc 2.34), the older
# ones on Amazon Linux 2 (glibc 2.26). A manylinux_2_N wheel needs glibc 2.N or newer.
AL2023_GLIBC, AL2_GLIBC = 34, 26


def stage_settings(settings: dict[str, Any], stage: str) -> dict[str, Any]:
    """A stage's settings with its ``extends`` followed, as Zappa merges them (the stage's own keys win)."""
    seen: list[str] = []
    merged: dict[str, Any] = {}
    while stage:
        if stage in seen:
            raise SystemExit(f"zappa_settings: circular extends through {stage!r}")
        if stage not in settings:
            raise SystemExit(f"zappa_settings: no stage {stage!r} (stages: {', '.join(settings)})")
        seen.append(stage)
        merged = {**settings[stage], **merged}
        stage = settings[stage].get("extends")
    return merged


def target(stage: dict[str, Any]) -> tuple[str, str]:
    """(runtime, architecture) of a stage, with Zappa's defaults: x86_64, and the Python Zappa runs on."""
    architecture = stage.get("architecture", "x86_64")
    if architecture not in MACHINES:
        raise SystemExit(f"zappa_settings: architecture must be one of {', '.join(MACHINES)}, got {architecture!r}")
    runtime = stage.get("runtime") or "python{}.{}".format(*sys.version_info)
    if not runtime.startswith("python3."):
        raise SystemExit(f"zappa_settings: a pythonX.Y runtime is needed, got {runtime!r}")
    return runtime, architecture


def platforms(runtime: str, architecture: str) -> list[str]:
    """pip's ``--platform`` values for the runtime's glibc, newest first. pip takes each literally, so every
    manylinux_2_N the runtime can load is named (plus manylinux2014, which pip widens to 2010 and 1)."""
    minor = int(runtime.removeprefix("python3."))
    glibc = AL2023_GLIBC if minor >= 12 else AL2_GLIBC
    machine = MACHINES[architecture]
    oldest = 5 if machine == "x86_64" else 17  # manylinux1 is glibc 2.5; aarch64 wheels start at 2.17
    return [f"manylinux_2_{n}_{machine}" for n in range(glibc, oldest - 1, -1)] + [f"manylinux2014_{machine}"]


def build(runtime: str, architecture: str, requirements: Path, into: Path) -> Path:
    """The virtualenv-shaped folder for this target, built unless the one there is of the same recipe."""
    folder = into / f"lambda-{runtime}-{architecture}"
    recipe = {
        "runtime": runtime,
        "architecture": architecture,
        "platforms": platforms(runtime, architecture),
        "requirements": hashlib.sha256(requirements.read_bytes()).hexdigest(),
        "zappa_python": "python{}.{}".format(*sys.version_info),  # names the folder Zappa reads
    }
    marker = folder / MARKER
    if marker.exists() and json.loads(marker.read_text()) == recipe:
        return folder
    scratch = folder.with_name(folder.name + ".partial")  # a build cut short never passes for a finished one
    shutil.rmtree(scratch, ignore_errors=True)
    site_packages = scratch / "lib" / recipe["zappa_python"] / "site-packages"
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(site_packages),
        "--implementation", "cp", "--python-version", runtime.removeprefix("python"),
        "--only-binary=:all:", *(f"--platform={platform}" for platform in recipe["platforms"]),
        "--requirement", str(requirements),
    ]  # fmt: skip
    if subprocess.run(command, stdout=sys.stderr).returncode:
        raise SystemExit(f"pip could not install {requirements} from wheels for {runtime} on {architecture}")
    shutil.rmtree(site_packages / "bin", ignore_errors=True)  # console scripts, written for this machine
    (scratch / MARKER).write_text(json.dumps(recipe, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    return folder


def check() -> None:
    """Zappa's ``prebuild_script``: package only a folder this module built, never the virtualenv Zappa runs in
    (that one holds Zappa, and binaries for this machine)."""
    venv = Path(os.environ.get("VIRTUAL_ENV", ""))
    if not (venv / MARKER).is_file():
        raise SystemExit(
            f"Zappa would package the virtualenv {venv} as it is: its binaries are this machine's and it holds "
            "Zappa's tooling. Package, deploy and update through make, which builds the function's dependencies "
            "for the stage's architecture: make package STAGE=dev, make deploy STAGE=production, "
            "make update STAGE=production."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", help="a stage of the settings file")
    parser.add_argument("--settings", type=Path, default=ROOT / "zappa_settings.json", help="(default: %(default)s)")
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt", help="(default: %(default)s)")
    parser.add_argument("--into", type=Path, default=ROOT / ".build", help="(default: %(default)s)")
    arguments = parser.parse_args(argv)
    stage = stage_settings(json.loads(arguments.settings.read_text()), arguments.stage)
    print(build(*target(stage), arguments.requirements, arguments.into).resolve())


if __name__ == "__main__":
    main()
