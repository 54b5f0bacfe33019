"""``wbtool gc --remote``: mark from every version record, sweep what none
reaches (after a listing, only with --yes), never while a push is sending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree, read_tree, unprivileged
from tests.remote.conftest import Backend
from tests.remote.test_sync import Store
from wbtool.errors import EXIT_CONFLICT, EXIT_REMOTE_UNREACHABLE, EXIT_STORE
from wbtool.hashing import hash_bytes
from wbtool.remote import gc, records

FILES = {"a.txt": b"kept\n", "b.bin": os.urandom(5000)}


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    src = make_tree(tmp_path / "src", FILES)
    a("artifact", "log", "data", str(src), "--type", "dataset")
    make_tree(src, {"a.txt": b"changed\n"})
    a("artifact", "log", "data", str(src), "--type", "dataset")
    a("sync", "--no-runs")
    return a, Store(cli, tmp_path / "b" / ".wbtool", backend)


def _orphans(backend: Backend) -> list[str]:
    """What an interrupted push leaves: objects and a manifest no version names."""
    remote = backend.open()
    paths = []
    for data in (b"orphan one\n", os.urandom(1000)):
        path = records.object_path(hash_bytes(data))
        remote.write(path, data)
        paths.append(path)
    manifest = b'{"not": "read by the sweep"}'
    path = records.manifest_path(hash_bytes(manifest))
    remote.write(path, manifest)
    return sorted([*paths, path])


def test_listing_then_sweep_keeps_every_version(stores: tuple[Store, Store], backend: Backend,
                                                tmp_path: Path) -> None:
    a, b = stores
    before = set(backend.open().list())
    orphans = _orphans(backend)

    listed = a.result("gc", "--remote", "team")  # no --yes: only a listing
    assert listed["dry_run"] and listed["objects"] == 0 and listed["kept_recent"] == 3
    listed = a.result("gc", "--remote", "team", "--grace", "0")
    assert sorted(listed["paths"]) == orphans and listed["versions"] == 2
    text = a("gc", "--remote", "team", "--grace", "0")
    assert "run again with --yes" in text.err and orphans[0] in text.out
    assert set(backend.open().list()) == before | set(orphans)  # nothing deleted yet

    swept = a.result("gc", "--remote", "team", "--grace", "0", "--yes")
    assert not swept["dry_run"] and sorted(swept["paths"]) == orphans
    assert set(backend.open().list()) == before  # exactly the orphans went
    assert a.result("gc", "--remote", "team", "--grace", "0")["paths"] == []

    b("pull")
    for version, text_a in (("v0", b"kept\n"), ("v1", b"changed\n")):
        b("artifact", "download", f"data:{version}", "--root", str(tmp_path / version))
        assert read_tree(tmp_path / version) == {**FILES, "a.txt": text_a}


@pytest.mark.parametrize("grace", ["-1", "nan"])
def test_a_grace_that_is_no_number_of_seconds_is_refused(stores: tuple[Store, Store],
                                                         backend: Backend, grace: str) -> None:
    a, _ = stores
    orphans = _orphans(backend)
    res = a("gc", "--remote", "team", "--grace", grace, "--yes", code=2)
    assert "the grace period (--grace) must be" in res.err and res.err.count("\n") == 1
    assert set(orphans) <= set(backend.open().list())


def test_an_unreadable_version_record_stops_the_sweep(stores: tuple[Store, Store],
                                                      backend: Backend) -> None:
    a, _ = stores
    orphans = _orphans(backend)
    backend.open().write(records.version_path("uncategorized", "data", 2), b"{truncated")
    res = a("gc", "--remote", "team", "--grace", "0", "--yes", code=EXIT_STORE)
    assert "v2.json" in res.err and res.err.count("\n") == 1
    assert set(orphans) <= set(backend.open().list())


def test_a_folder_the_listing_cannot_read_stops_the_sweep(cli: Cli, tmp_path: Path) -> None:
    """A local remote whose versions folder cannot be read is unreachable, not
    a remote without those versions, whose objects would be garbage."""
    prefix = unprivileged()
    backend = Backend("local", str(tmp_path / "remote"), {})
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    a("artifact", "log", "data", str(make_tree(tmp_path / "src", FILES)), "--type", "dataset")
    a("sync", "--no-runs")
    before = backend.open().list()
    versions = tmp_path / "remote" / records.collection_prefix("uncategorized", "data") / "versions"
    versions.chmod(0)
    try:
        for store, args in ((a.path, ["gc", "--yes", "--grace", "0"]), (tmp_path / "b", ["pull"])):
            res = subprocess.run(
                [*prefix, sys.executable, "-m", "wbtool", *args, "--remote", backend.url],
                capture_output=True, text=True, cwd=tmp_path, timeout=120,
                env={**os.environ, "WBTOOL_DIR": str(store)})
            assert res.returncode == EXIT_REMOTE_UNREACHABLE, res.stderr
            assert res.stderr.count("\n") == 1 and "Permission denied" in res.stderr
    finally:
        versions.chmod(0o755)
    assert backend.open().list() == before  # nothing swept


def test_gc_and_push_exclude_each_other(stores: tuple[Store, Store], backend: Backend,
                                        tmp_path: Path) -> None:
    a, _ = stores
    remote = backend.open()
    assert remote.create_exclusive(gc.GC_LOCK, json.dumps(
        {"host": "elsewhere", "pid": 1, "time": 0}).encode())
    res = a("gc", "--remote", "team", "--yes", code=EXIT_CONFLICT)
    assert "already running" in res.err and "elsewhere" in res.err
    make_tree(tmp_path / "src", {"new.txt": b"new\n"})
    a("artifact", "log", "data", str(tmp_path / "src"), "--type", "dataset")
    res = a("sync", "--no-runs", code=EXIT_CONFLICT)
    assert "garbage collection is running" in res.err
    assert f"if it died, delete {remote.display(gc.GC_LOCK)}" in res.err  # the way out
    remote.delete(gc.GC_LOCK)
    assert a.result("sync", "--no-runs")["versions_sent"] == 1
    assert remote.list("locks") == []  # the push lock went with the push

    remote.write("locks/push-123.json", b'{"host": "trainer", "pid": 7, "time": 0}')
    res = a("gc", "--remote", "team", "--yes", code=EXIT_CONFLICT)
    assert "push" in res.err and "trainer" in res.err
    assert f"if that push died, delete {remote.display('locks/push-123.json')}" in res.err
    assert not remote.exists(gc.GC_LOCK)  # released on the way out


def test_the_sweep_removes_a_push_lock_older_than_the_grace_period(
        stores: tuple[Store, Store], backend: Backend) -> None:
    """A push lock no push could still hold is deleted, not left to pile up
    (with --grace 0 every lock already there is that old)."""
    a, _ = stores
    remote = backend.open()
    lock = "locks/push-123.json"
    remote.write(lock, b'{"host": "trainer", "pid": 7, "time": 0}')
    assert a.result("gc", "--remote", "team", "--grace", "0")["locks_removed"] == []
    assert remote.list("locks") == [lock]  # a listing deletes nothing

    res = a("gc", "--remote", "team", "--grace", "0", "--yes", "--json")
    (line,) = json.loads(res.out)["result"]["locks_removed"]
    assert line.startswith(f"removed {remote.display(lock)}, left by a push that started ")
    assert f"wbtool: warning: {line}\n" in res.err
    assert remote.list("locks") == []
