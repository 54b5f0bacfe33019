"""The lock files of pushes and garbage collections on a remote, and which
of them a killed process left behind.

A lock names the process that made it: its host, its process id, when it
was made, and, where the system tells them, the boot it runs in, its PID
namespace and when it started. A lock made on this machine (same host
name, boot and PID namespace) by a process that is no longer running (its
id is free, a zombie's, or another process's that started since) is dead:
it is removed at once, by the next push or garbage collection. A lock from
any other machine, or one that does not say enough (on a system without
``/proc``, every lock), is left to the grace period: this machine cannot
tell whether its process still runs. A push
lock older than that is taken for dead, and the next sweep of a garbage
collection removes it (push locks are never written again, so that age is
the age of the push).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from wbtool.errors import NotFoundError
from wbtool.remote.fs import Remote
from wbtool.remote.pool import run_all
from wbtool.runs.folder import hostname, process_alive, process_start

# A lock as a listing shows it: path, size, modification time, stamp.
Listed = tuple[str, int, float, str]


def _boot() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except (OSError, ValueError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def doc() -> bytes:
    """The content of a lock made by this process."""
    me: dict[str, Any] = {"host": hostname(), "pid": os.getpid(), "time": time.time()}
    for key, value in (("boot", _boot()), ("pidns", _pid_namespace()),
                       ("started", process_start(os.getpid()))):
        if value is not None:
            me[key] = value
    return json.dumps(me, sort_keys=True).encode()


def dead_here(data: bytes) -> int | None:
    """The process id of a lock ``data`` made on this machine by a process
    that is no longer running; None for any other lock, and for every lock
    where this system does not tell its boot and PID namespace (without
    them, a machine of the same name cannot be told from this one)."""
    try:
        lock = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(lock, dict) or lock.get("host") != hostname():
        return None
    pid = lock.get("pid")
    if type(pid) is not int or pid <= 0 or pid == os.getpid():
        return None
    for key, mine in (("boot", _boot()), ("pidns", _pid_namespace())):
        if mine is None or lock.get(key) != mine:
            # another machine of the same name, one this process cannot see,
            # a lock too old to say which boot made it, or a system without /proc
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except (OSError, OverflowError):
        return None  # another user's process, running (or an id no process can have)
    started = lock.get("started")
    return None if process_alive(pid, started if isinstance(started, str) else None) else pid


def clear_dead(remote: Remote, paths: list[str], what: str) -> dict[str, str]:
    """Remove those of the locks ``paths`` that a process of this machine,
    no longer running, left: each removed one, with a line saying so.
    ``what`` names the command that makes such locks."""
    removed = {}
    for path in paths:
        try:
            data = remote.read(path)
        except NotFoundError:
            continue
        pid = dead_here(data)
        if pid is None:
            continue
        # A name used again (gc.json) may have been taken by a new process
        # since: removed only while it still holds what was read.
        with contextlib.suppress(NotFoundError):
            if remote.read(path) != data:
                continue
            remote.delete(path)
            removed[path] = (f"removed {remote.display(path)}, left by a {what} that is no "
                             f"longer running (pid {pid} on this host)")
    return removed


def expired(listed: list[Listed], grace: float, now: float) -> list[Listed]:
    """The locks of ``listed`` older than ``grace`` seconds at ``now``, by the
    remote's modification time (a lock whose age it does not tell is not)."""
    return [lock for lock in listed if lock[2] and now - lock[2] >= grace]


def clear_expired(remote: Remote, prefix: str, stale: list[Listed], grace: float, what: str,
                  jobs: int = 8) -> dict[str, str]:
    """Remove the locks ``stale``, found older than ``grace`` seconds in a
    listing of ``prefix``: each removed one, with a line saying so. ``what``
    names the command that makes such locks.

    A new listing is taken first, and only a lock it shows unchanged (same
    size, time and stamp) and still older than ``grace`` is removed: one
    written again since is kept.
    """
    if not stale:
        return {}
    current = {path: (size, mtime, stamp)
               for path, size, mtime, stamp in remote.list_stamped(prefix)}
    now = time.time()
    gone = [(path, mtime) for path, size, mtime, stamp in expired(stale, grace, now)
            if current.get(path) == (size, mtime, stamp)]
    run_all(lambda item: remote.delete(item[0]), gone, jobs)
    return {path: (f"removed {remote.display(path)}, left by a {what} that started "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(mtime))}, longer "
                   "ago than the grace period: taken for one that died")
            for path, mtime in gone}
