"""What a newcomer meets first on the command line: one clear line, with the fix, for each mistake."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from helpers import require

ROOT = Path(__file__).resolve().parent.parent


def run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdazoom", *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


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
