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
        self._made: set[str] = set()

    def put(self, path: str, data: bytes, content_type: str) -> None:
        folder, _, _ = path.rpartition("/")
        if folder not in self._made:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        with open(os.path.join(self.root, path), "wb") as file:
            file.write(data)
