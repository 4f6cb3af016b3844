"""Run a command as a child process and read back its wall time, CPU time and peak RSS.

Linux counts the peak RSS of a process into that of every child it forks, even across exec, so a
child of a benchmark that has held a decoded image or a boto3 upload would report that peak as its
own. The command is therefore started by this file run as a script, a fresh interpreter (some 15 MB,
less than any command measured here), which times it, reaps it with ``os.wait4`` and writes back what it read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    peak_mb: float  # peak resident set size, MB (10**6 bytes)
    output: str = ""  # what the child printed
    log: str = ""  # what the child wrote to stderr


def measure(command: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run ``command`` to completion; raise if it fails."""
    with (
        tempfile.TemporaryFile() as output,
        tempfile.TemporaryFile() as errors,
        tempfile.TemporaryDirectory() as folder,
    ):
        usage = Path(folder) / "usage.json"
        starter = [sys.executable, __file__, str(usage), *command]
        failed = subprocess.run(starter, env=env, stdout=output, stderr=errors, check=False).returncode != 0
        errors.seek(0)
        log = errors.read().decode(errors="replace")
        if failed:
            raise RuntimeError(f"{' '.join(command)} failed:\n{log}")
        output.seek(0)
        printed = output.read().decode()
        wall, cpu, peak_kb = json.loads(usage.read_text())
    return Measurement(wall, cpu, peak_kb * 1024 / 1e6, printed, log)


def process_cpu(pid: int) -> float:
    """User + system seconds a running process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verdict(label: str, value: float, limit: float, sense: str = "<=") -> str:
    """One target's line, in the form every benchmark prints: ``target LABEL <= LIMIT: VALUE met``."""
    met = value <= limit if sense == "<=" else value >= limit
    return f"target {label} {sense} {limit}: {value:.3g} {'met' if met else 'NOT met'}"


def _run_and_report(usage: Path, command: list[str]) -> int:
    """Run ``command`` with this process's streams; write its wall s, CPU s and peak RSS (KB) to ``usage``."""
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, rusage = os.wait4(pid, 0)
    usage.write_text(json.dumps([time.perf_counter() - started, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss]))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(_run_and_report(Path(sys.argv[1]), sys.argv[2:]))
