"""Where finished tiles go. A sink is anything with ``put(path, data, content_type)``.

The engine calls ``put`` from several threads at once, so sinks must be
thread-safe; paths are relative and use ``/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class TileSink(Protocol):
    def put(self, path: str, data: bytes, content_type: str) -> None:
        """Store ``data`` at ``path``, or raise."""


class DirectorySink:
    """Writes tiles below a folder, creating sub-folders as needed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._made: set[Path] = set()

    def put(self, path: str, data: bytes, content_type: str) -> None:
        target = self.root / path
        folder = target.parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        target.write_bytes(data)
