"""Run a command as a child process and read back its wall time, CPU time and peak RSS."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    peak_mb: float  # peak resident set size, MB (10**6 bytes)


def measure(command: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run ``command`` to completion; raise if it fails."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    error = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{error}")
    return Measurement(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024 / 1e6)
