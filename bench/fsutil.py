"""File-system helpers shared by the benchmarks."""

from __future__ import annotations

import itertools
import os
import shutil
import stat
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

    Deleting a tree of many files right after a timed run makes the next run
    pay for it: ext4 without a journal (the file system here) skips inodes
    freed within the last ``dirty_expire`` interval (30 s) when it allocates
    new ones, reading the inode table for each, so making 10,000 files right
    after deleting 10,000 costs seconds of system time (``perf``: most of it
    in ``recently_deleted``). Whichever case came next, wbtool or an anchor,
    was slowed at random. Moving a finished tree aside is one rename; the
    trash is emptied between data sets, or early when the disk runs short of
    room for another ``reserve_bytes`` and ``reserve_files``.
    """

    def __init__(self, folder: Path, reserve_bytes: int, reserve_files: int) -> None:
        self.folder = folder
        self.reserve_bytes = reserve_bytes + SPARE_BYTES
        self.reserve_files = reserve_files + 10_000
        self.emptied_early = 0
        self._names = itertools.count()

    def discard(self, path: Path) -> None:
        """Move ``path`` out of the way (delete it when space runs short)."""
        if not os.path.lexists(path):
            return
        if self._short_of_room():
            self.empty()
            self.emptied_early += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        os.rename(path, self.folder / str(next(self._names)))

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
