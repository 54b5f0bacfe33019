"""File-system helpers shared by the benchmarks."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any


def remove_tree(path: Path) -> None:
    """Delete ``path`` (a folder or a file) if it exists, read-only parts included."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    shutil.rmtree(path, onerror=_make_writable_and_retry)


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


def make_writable(path: Path) -> None:
    """Give the owner write permission on everything under ``path`` again."""
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            target = os.path.join(folder, name)
            mode = os.lstat(target).st_mode
            if not stat.S_ISLNK(mode) and not mode & stat.S_IWUSR:
                os.chmod(target, mode | stat.S_IWUSR)
    mode = os.lstat(path).st_mode
    if not mode & stat.S_IWUSR:
        os.chmod(path, mode | stat.S_IWUSR)


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
