"""Scratch space for a source while it converts: a fresh, marked folder under ``TMP_DIR`` each time."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "lambdazoom-"
MARK = ".lambdazoom-scratch"  # inside each scratch folder this project makes
STALE_SECONDS = 900  # Lambda's longest run: an older scratch folder belongs to no live invocation


class NoRoom(Exception):
    """The source is bigger than the scratch space left; ``ever`` if it would fit in the space's whole size."""

    def __init__(self, message: str, ever: bool) -> None:
        super().__init__(message)
        self.ever = ever


@contextmanager
def scratch_folder(tmp_dir: str, needed: int) -> Iterator[Path]:
    """A new folder for ``needed`` bytes, removed afterwards (also on failure).

    Folders left by invocations that timed out are swept first: Lambda kills them before ``finally``
    runs, and a warm container keeps its /tmp. Only marked folders go, as ``tmp_dir`` may be shared.
    """
    _remove_stale(tmp_dir)
    usage = shutil.disk_usage(tmp_dir)
    if needed > usage.free:
        raise NoRoom(
            f"the object is {needed / 1e9:.2f} GB but {tmp_dir} has {usage.free / 1e9:.2f} GB free; "
            "raise the function's ephemeral storage",
            ever=needed <= usage.total,
        )
    with tempfile.TemporaryDirectory(prefix=PREFIX, dir=tmp_dir) as folder:
        Path(folder, MARK).touch()
        yield Path(folder)


def _remove_stale(tmp_dir: str) -> None:
    cutoff = time.time() - STALE_SECONDS
    with os.scandir(tmp_dir) as entries:
        for entry in entries:
            if not entry.name.startswith(PREFIX):
                continue
            try:  # a folder of another process (backfill workers) may vanish while we look
                stale = entry.is_dir() and entry.stat().st_mtime < cutoff and Path(entry.path, MARK).exists()
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)
