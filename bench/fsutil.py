"""File-system helpers shared by the benchmarks."""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = 4096
SPARE_BYTES = 1 << 30


def remove_tree(path: Path) -> None:
    """Delete ``path`` (a folder or a file) if it exists, read-only parts included."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    shutil.rmtree(path, onerror=_make_writable_and_retry)


class Trash:
    """Trees set aside during a benchmark instead of deleted, emptied at the end.

    Deleting a tree of many files makes whatever creates files next pay for
    it: ext4 without a journal (the file system here) skips recently freed
    inodes when it allocates new ones, reading the inode table for each
    (``perf``: most of the time in ``recently_deleted``). Making 10,000 files
    right after deleting 10,000 cost seconds of system time, and a run
    minutes after deleting 240,000 still saw ``cp -r`` of 10,000 files take
    2.6-5.7 s instead of 0.3-0.4 s. Whichever case came next, wbtool or an
    anchor, was slowed at random. Moving a finished tree aside is one
    rename; the trash is emptied once, at the end of the whole run, or early
    when the disk runs short of room for another data set's worth of bytes
    and files.

    Trees of a few large files are deleted at once (``defer=False``): they
    free few inodes, and keeping gigabytes of them would push the data set
    itself out of the page cache.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.defer = True
        self.reserve_bytes = SPARE_BYTES
        self.reserve_files = 10_000
        self.emptied_early = 0
        self._names = itertools.count()

    def prepare_for(self, reserve_bytes: int, reserve_files: int, *, defer: bool) -> None:
        """Keep room for ``reserve_bytes`` and ``reserve_files`` more; set aside
        (``defer``) or delete at once what is discarded from now on."""
        self.reserve_bytes = reserve_bytes + SPARE_BYTES
        self.reserve_files = reserve_files + 10_000
        self.defer = defer

    def discard(self, path: Path) -> None:
        """Move ``path`` out of the way (delete it when space runs short)."""
        if not os.path.lexists(path):
            return
        if not self.defer:
            remove_tree(path)
            return
        if self._short_of_room():
            self.empty()
            self.emptied_early += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, self.folder / str(next(self._names)))
        except OSError:  # a read-only folder cannot move to another parent
            remove_tree(path)

    def empty(self) -> None:
        remove_tree(self.folder)

    def _short_of_room(self) -> bool:
        info = os.statvfs(self.folder.parent)
        free_bytes = info.f_bavail * info.f_frsize
        return free_bytes < 3 * self.reserve_bytes or info.f_favail < 3 * self.reserve_files


def _make_writable_and_retry(func: Callable[..., Any], name: str, _exc: object) -> None:
    parent = os.path.dirname(name)
    for target in (parent, name):
        try:
            mode = os.lstat(target).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(target, mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        except OSError:
            pass
    func(name)


def tree_summary(path: Path) -> tuple[int, int]:
    """Number of regular files under ``path`` and their total size in bytes."""
    count = 0
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(info.st_mode):
                count += 1
                total += info.st_size
    return count, total


def settle(path: Path, quiet_s: float = 0.2, limit_s: float = 10.0) -> bool:
    """Flush dirty pages, then wait until the disk holding ``path`` has had
    nothing in flight and completed no writes or discards for ``quiet_s``
    (at most ``limit_s``): a run should not start while the disk still works
    off the last one. False if the disk never went quiet; where the kernel's
    block statistics cannot be read, only flush (True)."""
    os.sync()
    info = os.stat(path)
    stat_file = Path(f"/sys/dev/block/{os.major(info.st_dev)}:{os.minor(info.st_dev)}/stat")
    try:
        last = stat_file.read_text().split()
    except OSError:
        return True
    deadline = time.monotonic() + limit_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = stat_file.read_text().split()
        # fields: 4 writes completed, 8 in flight, 11 discards completed
        busy = now[8] != "0" or now[4] != last[4] or now[11:12] != last[11:12]
        last = now
        if busy:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return True
    return False
