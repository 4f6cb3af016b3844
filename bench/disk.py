"""The file systems benchmarks write tiles to: their type, and whether creating a file there costs what it
should right now.

These machines' ext4 has no journal. Without one, ext4 avoids reusing an inode freed in the last minute
(six, while its inode table block is not yet written back): every create scans past each such inode in its
block group, reading its deletion time. After a run's few thousand tiles are deleted, a create in that group
costs up to a millisecond of system time instead of some 50 microseconds, for both tools alike, and by how
much depends on which group the folder landed in: 1.4 to 6 s more a run at 161 MP; and since every create
dirties those inode table blocks again, it lasts up to six minutes after a mass deletion while files are made
nearby. So outputs on disk are kept until a benchmark ends, the scratch folder is marked as the top of a
directory tree (``chattr +T``: ext4 then spreads its sub-folders over block groups, as it does the root's, so a
run rarely lands where the last benchmark's files were deleted), and before each run a probe checks that
creating files costs what it should, waiting while it does not (deletions by anything else do the same).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

PROBE_FILES = 256
PROBE_BYTES = 16 * 1024  # about a 254 px JPEG tile at q80
SETTLED_MICROSECONDS = 200  # CPU time a probe file may take (some 50-80 when nothing was freed nearby)
PATIENCE_SECONDS = 150  # the longest wait for a settled file system before measuring anyway
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000  # linux/fs.h


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on, from the mount table (Linux), or "unknown"."""
    target = str(path.resolve())
    found, found_point = "unknown", ""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            before, _, after = line.partition(" - ")
            point = before.split()[4].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(found_point):
                found, found_point = after.split()[0], point
    return found


def spread_subfolders(folder: Path) -> bool:
    """Mark ``folder`` as the top of a directory tree (ext2/3/4's ``chattr +T``), so the file system places
    each new sub-folder in a block group of its own choosing, not beside its parent. False where refused."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        flags = bytearray(8)
        fcntl.ioctl(descriptor, _FS_IOC_GETFLAGS, flags)
        value = int.from_bytes(flags[:4], sys.byteorder) | _FS_TOPDIR_FL
        fcntl.ioctl(descriptor, _FS_IOC_SETFLAGS, value.to_bytes(4, sys.byteorder) + bytes(4))
        return True
    except OSError:  # another file system, or not allowed
        return False
    finally:
        os.close(descriptor)


def create_cost(folder: Path) -> float:
    """Microseconds of this thread's CPU time that creating and writing a tile-sized file in a fresh
    sub-folder of ``folder`` takes now (the probe's files are kept: deleting them would be what it detects)."""
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=folder))
    data = bytes(PROBE_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    started = time.thread_time()
    for index in range(PROBE_FILES):
        descriptor = os.open(probe / str(index), flags, 0o644)
        os.write(descriptor, data)
        os.close(descriptor)
    return (time.thread_time() - started) / PROBE_FILES * 1e6


def settle(folder: Path) -> tuple[float, float]:
    """Wait, up to ``PATIENCE_SECONDS``, until a file costs at most ``SETTLED_MICROSECONDS`` to create in
    ``folder``. Returns (microseconds a file at the last probe, seconds waited)."""
    started = time.monotonic()
    while (cost := create_cost(folder)) > SETTLED_MICROSECONDS:
        waited = time.monotonic() - started
        if waited > PATIENCE_SECONDS:
            print(f"note: creating a file in {folder} still costs {cost:.0f} us; measuring anyway", file=sys.stderr)
            break
        print(f"creating a file in {folder} costs {cost:.0f} us (inodes freed nearby); waiting", file=sys.stderr)
        time.sleep(10)
    return cost, time.monotonic() - started
