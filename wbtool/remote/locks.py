"""The lock files of pushes and garbage collections on a remote, and which
of them a killed process left behind.

A lock names the process that made it: its host, its process id, when it
was made, and, where the system tells them, the boot it runs in, its PID
namespace and when it started. A lock made on this machine (same host
name, boot and PID namespace) by a process that is no longer running (its
id is free, a zombie's, or another process's that started since) is dead:
it is removed at once, by the next push or garbage collection. A lock from
any other machine, or one that does not say enough, is left to the grace
period: this machine cannot tell whether its process still runs. A push
lock older than that is taken for dead, and the next sweep of a garbage
collection removes it (push locks are never written again, so that age is
the age of the push).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any

from wbtool.errors import NotFoundError
from wbtool.remote.fs import Remote
from wbtool.remote.pool import run_all

# A lock as a listing shows it: path, size, modification time, stamp.
Listed = tuple[str, int, float, str]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _boot() -> str | None:
    text = _read("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process(pid: int) -> tuple[str, str] | None:
    """The state letter and start time (in clock ticks since boot) of the
    process ``pid``, from ``/proc``; None where it is not there."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and brackets
    return (fields[0], fields[19]) if len(fields) > 19 else None


def doc() -> bytes:
    """The content of a lock made by this process."""
    me: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    process = _process(os.getpid())
    for key, value in (("boot", _boot()), ("pidns", _pid_namespace()),
                       ("started", process and process[1])):
        if value is not None:
            me[key] = value
    return json.dumps(me, sort_keys=True).encode()


def dead_here(data: bytes) -> int | None:
    """The process id of a lock ``data`` made on this machine by a process
    that is no longer running; None for any other lock."""
    try:
        lock = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(lock, dict) or lock.get("host") != socket.gethostname():
        return None
    pid = lock.get("pid")
    if type(pid) is not int or pid <= 0 or pid == os.getpid():
        return None
    for key, mine in (("boot", _boot()), ("pidns", _pid_namespace())):
        if lock.get(key) != mine:
            # another machine of the same name, one this process cannot see,
            # or a lock too old to say which boot made it
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:
        pass  # another user's process, running
    except OverflowError:
        return None
    process = _process(pid)
    if process is None:
        return None
    state, started = process
    if state in ("Z", "X") or ("started" in lock and lock["started"] != started):
        return pid  # killed, not yet reaped; or the id went to a new process
    return None


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
