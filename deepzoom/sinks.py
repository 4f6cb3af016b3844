"""Where finished tiles go: a sink ``put``s one object whole (a tile, a descriptor), or ``open``s one that
is written as it grows (a pyramidal TIFF).

The engine calls ``put`` from several threads at once, so sinks must be
thread-safe; paths are relative and use ``/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class ObjectStream(Protocol):
    """One object written front to back but for its first ``head_size`` bytes, which come last.

    Nobody sees the object before ``publish``; then it replaces any earlier one at once, whole.
    ``abort`` leaves nothing behind (and the earlier object, if any, as it was).
    """

    def write(self, data: bytes) -> None:
        """Append ``data`` (after the head and whatever came before); one thread at a time."""

    def publish(self, head: bytes) -> None:
        """Put ``head`` (``head_size`` bytes) in front and make the object visible."""

    def abort(self) -> None:
        """Drop what was written."""


class TileSink(Protocol):
    def put(self, path: str, data: bytes, content_type: str) -> None:
        """Store ``data`` at ``path``, or raise."""

    def open(self, path: str, content_type: str, head_size: int) -> ObjectStream:
        """Start the object at ``path``, whose first ``head_size`` bytes are given last."""


class DirectorySink:
    """Writes tiles below a folder, creating sub-folders as needed.

    A tile is three system calls (open, write, close) on the calling thread, each without the GIL: no
    Python file object, whose making costs a ``fstat``, an ``ioctl`` and a ``lseek`` besides. Nothing is
    synced: like libvips' ``dzsave``, the files reach the disk when the kernel writes them back.
    """

    _FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._prefix = os.path.join(os.fspath(root), "")  # a path is the prefix and the tile's own
        self._made: set[str] = set()

    def put(self, path: str, data: bytes, content_type: str) -> None:
        folder, _, _ = path.rpartition("/")
        if folder not in self._made:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        descriptor = os.open(self._prefix + path, self._FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:  # one write but for a signal, or a disk that filled in between
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)

    def open(self, path: str, content_type: str, head_size: int) -> ObjectStream:
        return _FileStream(self.root / path, head_size)


class _FileStream:
    """A file written beside its final name and renamed onto it when published, so a reader sees the old
    file or the new one whole."""

    def __init__(self, path: Path, head_size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.partial = path.with_name(f".{path.name}.{os.getpid()}.{id(self):x}.partial")
        self.file = open(self.partial, "wb")
        self.file.seek(head_size)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def publish(self, head: bytes) -> None:
        self.file.seek(0)
        self.file.write(head)
        self.file.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)
