"""A remote wiped or changed behind the store's back: ``wbtool sync`` sends
again whatever of a run it lacks, though the sync state says it was sent;
``wbtool sync --check`` also what it lost of versions it still holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, make_tree, read_tree
from tests.remote.conftest import Backend, make_backend
from tests.remote.test_runsync import _SCRIPT
from tests.remote.test_sync import Store
from wbtool.remote import records, runsync
from wbtool.runs.history import iter_rows

RUNS = ("wipe0001", "wipe0002")


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    return (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend))


def _log(store: Store, tmp_path: Path, run_id: str, rows: range, resume: bool = False) -> None:
    """Log ``rows`` to ``run_id`` (and save a file under files/) in a program of its own."""
    env = {**os.environ, "WBTOOL_DIR": str(store.path)}
    subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), str(rows.start),
                    str(rows.stop), "1" if resume else "0", run_id], env=env, cwd=tmp_path,
                   check=True, timeout=120)


def _wipe(backend: Backend, prefix: str = "") -> None:
    """Delete what the remote holds under ``prefix``; the whole remote
    folder, made again empty, for a local remote wiped whole."""
    if backend.kind == "local" and not prefix:
        shutil.rmtree(backend.url)
        os.mkdir(backend.url)
        return
    remote = backend.open()
    for path in remote.list(prefix):
        remote.delete(path)
    assert remote.list(prefix) == []


def _run_files(store: Path, run_id: str) -> dict[str, Any]:
    folder = store / "runs" / run_id
    return {"history": list(iter_rows(folder / "history.jsonl")),
            "summary": (folder / "summary.json").read_bytes(),
            "config": (folder / "config.yaml").read_bytes(),
            "notes": (folder / "files" / "notes.txt").read_bytes()}


def _sent(store: Store, *args: str) -> tuple[int, int]:
    res = store.result("sync", "--no-artifacts", *args)
    return res["runs_sent"], res["run_bytes_sent"]


def _synced_twice(a: Store, backend: Backend, tmp_path: Path) -> Any:
    """Both runs logged and synced, then the second one resumed and synced
    again (its history in two parts); the remote, opened."""
    for run_id in RUNS:
        _log(a, tmp_path, run_id, range(5))
    a("sync", "--no-artifacts")
    _log(a, tmp_path, RUNS[1], range(5, 9), resume=True)
    assert _sent(a)[0] == 1
    return backend.open()


def _pulled_whole(a: Store, b: Store) -> None:
    got = b.result("pull", "-p", "p", "--all-runs")
    assert sorted(got["runs"]) == list(RUNS) and got["refused"] == [] and got["warnings"] == []
    for run_id in RUNS:
        assert _run_files(b.path, run_id) == _run_files(a.path, run_id)
        assert len(_run_files(b.path, run_id)["history"]) >= 5


def test_sync_sends_again_what_a_wiped_remote_lacks(stores: tuple[Store, Store],
                                                    backend: Backend, tmp_path: Path) -> None:
    a, b = stores
    for run_id in RUNS:
        _log(a, tmp_path, run_id, range(5))
    runs, first = _sent(a)
    assert runs == 2 and first > 0
    assert _sent(a) == (0, 0)  # nothing new, nothing sent

    _wipe(backend)
    assert _sent(a, "--dry-run") == (2, first)
    assert backend.open().list() == []  # a dry run writes nothing
    assert _sent(a) == (2, first)
    assert _sent(a) == (0, 0)
    _pulled_whole(a, b)


def test_sync_of_one_run_sends_it_again_after_a_wipe(stores: tuple[Store, Store],
                                                     backend: Backend, tmp_path: Path) -> None:
    a, b = stores
    for run_id in RUNS:
        _log(a, tmp_path, run_id, range(5))
    _, first = _sent(a)
    _wipe(backend)
    runs, one = _sent(a, RUNS[0])
    assert runs == 1 and 0 < one < first
    assert _sent(a, RUNS[0]) == (0, 0)
    assert _sent(a) == (1, first - one)
    assert _sent(a) == (0, 0)
    _pulled_whole(a, b)


def test_sync_repairs_a_run_folder_or_a_part_deleted_on_the_remote(
        stores: tuple[Store, Store], backend: Backend, tmp_path: Path) -> None:
    """A sync of every run sends again a run whose folder is gone; a sync
    naming a run also repairs a file or part lost inside its folder."""
    a, b = stores
    remote = _synced_twice(a, backend, tmp_path)
    second = runsync.run_prefix("p", RUNS[1])
    parts = remote.list(f"{second}/history.jsonl.parts")
    assert len(parts) == 2

    _wipe(backend, runsync.run_prefix("p", RUNS[0]))  # one run's folder
    whole_run = sum(p.stat().st_size for p in (a.path / "runs" / RUNS[0]).rglob("*")
                    if p.is_file())
    runs, size = _sent(a)
    assert runs == 1 and 0 < size <= whole_run
    assert _sent(a) == (0, 0)

    remote.delete(parts[0])  # the first stretch of a run's history
    remote.delete(f"{second}/files/notes.txt")
    history = (a.path / "runs" / RUNS[1] / "history.jsonl").stat().st_size
    assert _sent(a, RUNS[1]) == (1, history + len(b"hello\n"))
    assert _sent(a, RUNS[1]) == (0, 0)
    assert _sent(a) == (0, 0)
    # No stretch left over from before: one part, read from byte 0.
    assert [p.rsplit("/", 1)[1] for p in remote.list(f"{second}/history.jsonl.parts")] == [
        f"{0:012d}-{history:012d}"]
    _pulled_whole(a, b)


def test_a_checking_sync_repairs_a_file_or_part_lost_inside_a_run_folder(
        stores: tuple[Store, Store], backend: Backend, tmp_path: Path) -> None:
    """A file, a record or a stretch of history lost from a run folder that
    is still on the remote is sent again by ``sync --check``, as by a sync
    naming the run: each project's run files are listed and compared with
    what the sync state says was sent. A plain sync lists only the folders."""
    a, b = stores
    remote = _synced_twice(a, backend, tmp_path)
    first, second = (runsync.run_prefix("p", r) for r in RUNS)
    parts = remote.list(f"{second}/history.jsonl.parts")
    assert len(parts) == 2

    remote.delete(f"{first}/files/notes.txt")
    remote.delete(f"{first}/summary.json")
    summary = (a.path / "runs" / RUNS[0] / "summary.json").stat().st_size
    assert _sent(a) == (0, 0)  # the folder is there: a plain sync trusts it
    assert _sent(a, "--check", "--dry-run") == (1, summary + len(b"hello\n"))
    assert _sent(a, "--check") == (1, summary + len(b"hello\n"))
    assert _sent(a, "--check") == (0, 0)

    remote.delete(parts[1])  # the last stretch of a run's history
    history = (a.path / "runs" / RUNS[1] / "history.jsonl").stat().st_size
    assert _sent(a, "--check") == (1, history)
    assert _sent(a, "--check") == (0, 0)
    assert [p.rsplit("/", 1)[1] for p in remote.list(f"{second}/history.jsonl.parts")] == [
        f"{0:012d}-{history:012d}"]

    remote.write(f"{first}/config.yaml", b"cut short")  # another size than was sent
    config = (a.path / "runs" / RUNS[0] / "config.yaml").stat().st_size
    assert _sent(a, "--check") == (1, config)
    assert _sent(a) == (0, 0)
    _pulled_whole(a, b)


def test_a_history_sent_again_from_the_start_reads_whole(stores: tuple[Store, Store],
                                                         backend: Backend,
                                                         tmp_path: Path) -> None:
    """A sync whose record of what it sent was lost (interrupted before it was
    saved) sent the history again from byte 0, in parts that overlap those on
    the remote; a pull read the overlap as a gap and kept half the rows. It
    now finds its own bytes there and goes on after them; a pull still reads
    the overlapping parts that earlier versions wrote."""
    a, b = stores
    run_id = RUNS[0]
    _log(a, tmp_path, run_id, range(5))
    _sent(a)
    runsync.state_path(a.path, backend.open().url).unlink()  # as if never saved
    _log(a, tmp_path, run_id, range(5, 10), resume=True)
    assert _sent(a)[0] == 1
    remote = backend.open()
    history = (a.path / "runs" / run_id / "history.jsonl").read_bytes()
    parts = [p for p in remote.list(runsync.run_prefix("p", run_id))
             if "history.jsonl.parts/" in p]
    assert len(parts) == 2 and int(parts[1].rpartition("/")[2].partition("-")[0]) > 0
    # The whole file again from byte 0, as an earlier version sent it.
    prefix = f"{runsync.run_prefix('p', run_id)}/history.jsonl"
    remote.write(runsync.part_name(prefix, 0, len(history)), history)
    got = b.result("pull", "-p", "p", "--all-runs")
    assert got["warnings"] == [] and got["refused"] == []
    assert _run_files(b.path, run_id) == _run_files(a.path, run_id)
    assert len(_run_files(b.path, run_id)["history"]) == 10


# -- sync --check: manifests and objects lost from under versions still there --

FILES = {"a.txt": b"alpha\n" * 10, "b.txt": b"beta\n" * 20, "c/d.txt": b"delta\n"}


def _artifacts_sent(store: Store, *args: str) -> tuple[int, int, int]:
    res = store.result("sync", "--no-runs", *args)
    return res["objects_sent"], res["manifests_sent"], res["versions_sent"]


def test_sync_check_sends_again_lost_manifests_and_objects(
        stores: tuple[Store, Store], backend: Backend, tmp_path: Path) -> None:
    a, b = stores
    src = make_tree(tmp_path / "src", FILES)
    a("artifact", "log", "data", str(src), "--type", "dataset")
    assert _artifacts_sent(a) == (3, 1, 1)
    remote = backend.open()
    manifest = next(p for p in remote.list("manifests"))
    digest = records.digest_of_manifest_path(manifest)
    objects = remote.list("objects")
    remote.delete(manifest)
    remote.delete(objects[0])
    remote.write(objects[1], b"cut")  # another size than the object's

    assert _artifacts_sent(a) == (0, 0, 0)  # a plain sync trusts the version record
    assert _artifacts_sent(a, "--check", "--dry-run") == (2, 1, 0)
    assert remote.list("manifests") == []  # a dry run writes nothing
    assert _artifacts_sent(a, "--check") == (2, 1, 0)
    assert _artifacts_sent(a, "--check") == (0, 0, 0)
    assert remote.list("manifests") == [records.manifest_path(str(digest))]
    assert len(remote.list("objects")) == 3

    pulled = b.result("pull")
    assert pulled["refused"] == [] and pulled["warnings"] == []
    b("artifact", "download", "data:v0", "--root", str(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == FILES
