"""Locks that killed pushes and garbage collections leave on a remote (a
shared folder here): removed at once by the next push or sweep of the same
machine, saying so; left to the grace period when another machine's, or
while their process runs, and removed by the next sweep once older than it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, make_tree
from tests.remote.conftest import Backend
from tests.remote.test_sync import Store
from wbtool.errors import EXIT_CONFLICT
from wbtool.hashing import hash_bytes
from wbtool.remote import gc, locks
from wbtool.runs.folder import hostname, process_start


@pytest.fixture
def store(cli: Cli, tmp_path: Path) -> Store:
    """A store with a folder remote as its default, one version pushed and a
    second one, with a new object, logged."""
    (tmp_path / "remote").mkdir()
    a = Store(cli, tmp_path / "a" / ".wbtool", Backend("local", str(tmp_path / "remote"), {}))
    src = make_tree(tmp_path / "src", {"a.txt": b"a\n"})
    a("artifact", "log", "data", str(src), "--type", "dataset")
    a("sync", "--no-runs")
    make_tree(src, {"b.txt": b"b\n"})
    a("artifact", "log", "data", str(src), "--type", "dataset")
    return a


def lock_files(tmp_path: Path) -> list[str]:
    """The locks on the remote (not the temp files that become them)."""
    folder = tmp_path / "remote" / "locks"
    return sorted(p.name for p in folder.glob("[!.]*")) if folder.exists() else []


def killed_push(store: Store, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A real ``wbtool sync``, killed with SIGKILL once it has made its lock:
    the object it sends first is a FIFO until then, which holds it there."""
    digest = hash_bytes(b"b\n")
    obj = store.path / "objects" / digest[:2] / digest[2:]
    saved = obj.read_bytes()
    obj.unlink()
    os.mkfifo(obj)
    push = subprocess.Popen([sys.executable, "-m", "wbtool", "sync", "--no-runs"],
                            cwd=tmp_path, env={**os.environ, **store.env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not lock_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [json.loads((tmp_path / "remote" / "locks" / name).read_text())["pid"]
                for name in lock_files(tmp_path)] == [push.pid]
    finally:
        push.send_signal(signal.SIGKILL)
    obj.unlink()
    obj.write_bytes(saved)
    obj.chmod(0o444)
    return push


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("wbtool: warning: ")]


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_the_next_sweep_removes_the_lock_of_a_killed_push(store: Store, tmp_path: Path,
                                                          reaped: bool) -> None:
    push = killed_push(store, tmp_path)
    try:
        if reaped:
            assert push.wait() == -signal.SIGKILL
        (lock,) = lock_files(tmp_path)
        res = store("gc", "--remote", "team", "--yes")
        assert warnings(res.err) == [
            f"wbtool: warning: removed {tmp_path / 'remote' / 'locks' / lock}, left by a push "
            f"that is no longer running (pid {push.pid} on this host)"]
        assert "removed 0 object(s)" in res.out
        assert lock_files(tmp_path) == []
    finally:
        push.wait()


def test_the_next_push_removes_the_lock_of_a_killed_push(store: Store, tmp_path: Path) -> None:
    push = killed_push(store, tmp_path)
    assert push.wait() == -signal.SIGKILL
    res = store("sync", "--no-runs", "--json")
    doc = json.loads(res.out)["result"]
    assert doc["versions_sent"] == 1
    assert len(doc["warnings"]) == 1 and "left by a push that is no longer running" in \
        doc["warnings"][0] and f"pid {push.pid} on this host" in doc["warnings"][0]
    assert lock_files(tmp_path) == []


# A garbage collection that kills itself with SIGKILL once it holds its lock
# (at the second mark: the first is the listing shown before the sweep).
_GC_KILLED_SWEEPING = """
import os, runpy, signal, sys
import wbtool.remote.gc as gc
plan, calls = gc._plan, []
def planning(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return plan(*args, **kwargs)
gc._plan = planning
sys.argv[0] = "wbtool"
runpy.run_module("wbtool", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("then", ["push", "gc"])
def test_the_lock_of_a_killed_sweep_is_removed_by_the_next_push_or_sweep(
        store: Store, tmp_path: Path, then: str) -> None:
    killed = subprocess.run([sys.executable, "-c", _GC_KILLED_SWEEPING, "gc", "--remote", "team",
                             "--yes"], cwd=tmp_path, env={**os.environ, **store.env},
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert lock_files(tmp_path) == ["gc.json"]
    pid = json.loads((tmp_path / "remote" / gc.GC_LOCK).read_text())["pid"]
    res = store("sync", "--no-runs") if then == "push" else store("gc", "--remote", "team",
                                                                  "--yes")
    assert warnings(res.err) == [
        f"wbtool: warning: removed {tmp_path / 'remote' / gc.GC_LOCK}, left by a garbage "
        f"collection that is no longer running (pid {pid} on this host)"]
    assert lock_files(tmp_path) == []


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("whose", ["another host", "a running process",
                                   "another boot of this host", "an older version"])
def test_a_lock_this_machine_cannot_call_dead_stays(store: Store, tmp_path: Path,
                                                    sleeper: subprocess.Popen[bytes],
                                                    whose: str) -> None:
    me = json.loads(locks.doc())
    doc = {**me, "pid": sleeper.pid, "started": process_start(sleeper.pid)}
    if whose == "another host":
        doc = {**me, "host": "not-" + hostname(), "pid": 999_999_999}
    elif whose == "another boot of this host":
        doc = {**me, "boot": "00000000-0000-0000-0000-000000000000", "pid": 999_999_999}
    elif whose == "an older version":  # it said only host, pid and time
        doc = {"host": me["host"], "pid": 999_999_999, "time": me["time"]}
    lock = tmp_path / "remote" / "locks" / "push-0123.json"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps(doc))
    res = store("gc", "--remote", "team", "--yes", code=EXIT_CONFLICT)
    assert "a push to" in res.err and f"if that push died, delete {lock}" in res.err
    res = store("sync", "--no-runs")
    assert warnings(res.err) == []
    assert lock_files(tmp_path) == ["push-0123.json"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_lock_whose_process_id_went_to_a_new_process_is_removed(
        store: Store, tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    doc = {**json.loads(locks.doc()), "pid": sleeper.pid, "started": "1"}
    lock = tmp_path / "remote" / "locks" / "push-0123.json"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps(doc))
    res = store("gc", "--remote", "team", "--yes")
    assert f"removed {lock}, left by a push that is no longer running" in res.err
    assert lock_files(tmp_path) == []


def lock_of_another_host(tmp_path: Path, name: str, age: float) -> Path:
    """A push lock that another machine made ``age`` seconds ago."""
    lock = tmp_path / "remote" / "locks" / name
    lock.parent.mkdir(exist_ok=True)
    made = time.time() - age
    lock.write_text(json.dumps({"host": "not-" + hostname(), "pid": 4321,
                                "time": made}))
    os.utime(lock, (made, made))
    return lock


def test_a_push_lock_older_than_the_grace_period_is_removed_by_the_sweep(
        store: Store, tmp_path: Path) -> None:
    old = lock_of_another_host(tmp_path, "push-old.json", 2 * gc.DEFAULT_GRACE_SECONDS)
    new = lock_of_another_host(tmp_path, "push-new.json", 60)
    res = store("gc", "--remote", "team", "--yes", code=EXIT_CONFLICT)
    assert f"if that push died, delete {new}" in res.err  # the recent one still holds it off
    assert lock_files(tmp_path) == ["push-new.json", "push-old.json"]
    new.unlink()  # that push ended

    store("gc", "--remote", "team")  # only a listing
    assert lock_files(tmp_path) == ["push-old.json"]
    res = store("gc", "--remote", "team", "--yes", "--json")
    (line,) = json.loads(res.out)["result"]["locks_removed"]
    assert line.startswith(f"removed {old}, left by a push that started ")
    assert line.endswith(", longer ago than the grace period: taken for one that died")
    assert warnings(res.err) == [f"wbtool: warning: {line}"]
    assert lock_files(tmp_path) == []


def test_a_push_lock_written_again_during_the_sweep_stays(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The age that counts is the one the remote tells when the lock is deleted."""
    lock = lock_of_another_host(tmp_path, "push-old.json", 2 * gc.DEFAULT_GRACE_SECONDS)
    plan = gc._plan

    def planning(*args: Any, **kwargs: Any) -> None:
        plan(*args, **kwargs)
        os.utime(lock)  # written again, now, while the sweep ran

    monkeypatch.setattr(gc, "_plan", planning)
    remote = Backend("local", str(tmp_path / "remote"), {}).open()
    assert gc.collect(remote, dry_run=False).locks_removed == []
    assert lock_files(tmp_path) == ["push-old.json"]


@pytest.mark.parametrize("unknown", ["_boot", "_pid_namespace"])
def test_where_the_system_does_not_tell_its_boot_no_lock_is_called_dead(
        monkeypatch: pytest.MonkeyPatch, unknown: str) -> None:
    """Without /proc (macOS, BSD) a lock says no boot: two machines of one
    name (two laptops called MacBook-Pro.local) could not be told apart, and
    a live push's lock, taken for dead, would let a sweep delete what it sent."""
    dead = json.loads(locks.doc()) | {"pid": 999_999_999}
    assert locks.dead_here(json.dumps(dead).encode()) == 999_999_999
    monkeypatch.setattr(locks, unknown, lambda: None)  # what such a system answers
    mine = json.loads(locks.doc())
    assert "boot" not in mine or "pidns" not in mine
    assert locks.dead_here(json.dumps(mine | {"pid": 999_999_999}).encode()) is None
