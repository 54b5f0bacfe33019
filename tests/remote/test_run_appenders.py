"""One run appended to in two stores at once (resumed in a store that pulled
it while the store that made it goes on logging): each store's sync would
send its own new lines from the same offset. Neither writes a part beside
the other's, and a pull never joins overlapping parts that disagree."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.remote.conftest import Backend, make_backend
from tests.remote.test_runsync import RUN_ID, _history, _make_run
from tests.remote.test_sync import Store
from wbtool.remote import runsync

PARTS = f"{runsync.run_prefix('p', RUN_ID)}/history.jsonl.parts"


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store, Store]:
    return (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend),
            Store(cli, tmp_path / "c" / ".wbtool", backend))


def _held(backend: Backend) -> dict[str, bytes]:
    remote = backend.open()
    return {p: remote.read(p) for p in remote.list(runsync.run_prefix("p", RUN_ID))}


def _resumed_in_two_stores(a: Store, b: Store, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Made in A and synced, pulled into B and resumed there (and synced from
    there), while A logged on."""
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    _make_run(b.path, tmp_path, monkeypatch, range(100, 103), resume=True)
    _make_run(a.path, tmp_path, monkeypatch, range(3, 6), resume=True)
    b("sync")


@pytest.mark.parametrize("args", [(), ("--check",), (RUN_ID,)])
def test_a_run_appended_to_in_two_stores_is_not_mixed_on_the_remote(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    """The second sync wrote its lines as parts from the same offset as the
    first's: a pull joined rows of both stores (A's rows lost, B's summary
    beside them), and neither sync said a word."""
    a, b, c = stores
    _resumed_in_two_stores(a, b, tmp_path, monkeypatch)
    held = _held(backend)
    mine = (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes()
    for _ in range(2):  # and again: nothing has changed
        res = a("sync", *args, code=5)
        assert res.err.count("\n") == 1 and RUN_ID in res.err and "another store" in res.err
        assert "Traceback" not in res.err
        assert _held(backend) == held
    assert (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes() == mine
    assert [r["i"] for r in _history(a.path)] == [0, 1, 2, 3, 4, 5]
    # The remote holds B's run, whole.
    assert c.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    assert _history(c.path) == _history(b.path)
    assert [r["i"] for r in _history(c.path)] == [0, 1, 2, 100, 101, 102]
    assert c.result("runs", "show", RUN_ID)["summary"]["i"] == 102
    # B goes on as before.
    _make_run(b.path, tmp_path, monkeypatch, range(103, 105), resume=True)
    assert b.result("sync", *args)["runs_sent"] == 1
    assert c.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    assert [r["i"] for r in _history(c.path)] == [0, 1, 2, 100, 101, 102, 103, 104]


def test_a_pull_after_a_refused_sync_says_how_to_take_the_remotes_copy(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a sync that left the run out (appended to in another store), a
    pull of it said to run `wbtool sync` first, which only refuses again."""
    a, b, _ = stores
    _resumed_in_two_stores(a, b, tmp_path, monkeypatch)
    a("sync", code=5)
    mine = (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes()
    res = a("pull", "-p", "p", "--run", RUN_ID, code=5)
    assert "wbtool sync" not in res.err and "Traceback" not in res.err
    assert RUN_ID in res.err and "another store" in res.err and "not pulled" in res.err
    assert "`wbtool runs delete`" in res.err
    assert (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes() == mine
    # The advice works: the remote's copy is taken.
    a("runs", "delete", RUN_ID, "--yes")
    assert a.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    assert _history(a.path) == _history(b.path)


def test_a_run_resumed_elsewhere_in_turn_goes_on_in_each_store(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stops, B pulls, resumes and syncs, A pulls, resumes and syncs, B
    pulls: each sync goes on from the other's parts."""
    a, b, c = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    _make_run(b.path, tmp_path, monkeypatch, range(3, 5), resume=True)
    assert b.result("sync")["runs_sent"] == 1
    assert a.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    _make_run(a.path, tmp_path, monkeypatch, range(5, 7), resume=True)
    assert a.result("sync")["run_conflicts"] == []
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    c("pull", "-p", "p", "--run", RUN_ID)
    for store in (a, b, c):
        assert [r["i"] for r in _history(store.path)] == list(range(7))
    spans = [p.rpartition("/")[2].split("-") for p in backend.open().list(PARTS)]
    assert all(x[1] == y[0] for x, y in itertools.pairwise(spans))  # no two overlap


class _Stale:
    """A remote whose listings of a run's files with sizes are as they were
    before another store wrote (the other store wrote between the listing and
    the writes); every other call goes to the remote as it is."""

    def __init__(self, inner: Any, snapshot: list[tuple[str, int, float, str]]) -> None:
        self.inner = inner
        self.snapshot = snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list_detail(self, prefix: str = "") -> list[tuple[str, int, float]]:
        return [e[:3] for e in self.list_stamped(prefix)]

    def list_stamped(self, prefix: str = "") -> list[tuple[str, int, float, str]]:
        if prefix == runsync.run_prefix("p", RUN_ID):
            return list(self.snapshot)
        return list(self.inner.list_stamped(prefix))


@pytest.mark.parametrize("same_name", [False, True])
def test_a_sync_that_raced_another_takes_its_parts_back(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch, same_name: bool) -> None:
    """Two syncs that listed the remote before either wrote: the one that
    finds the other's part beside its own (or in its place) takes its own
    back, and the remote reads as the other store's run."""
    from wbtool.store.layout import Store as LocalStore

    a, b, c = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    _make_run(a.path, tmp_path, monkeypatch, range(3, 6), resume=True)
    remote = backend.open()
    snapshot = remote.list_stamped(runsync.run_prefix("p", RUN_ID))
    if same_name:  # another store's lines of the very length of A's, at A's offset
        start = int(remote.list(PARTS)[-1].rpartition("-")[2])
        ours = (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes()[start:]
        theirs = ours.replace(b'"i":3', b'"i":9')
        assert theirs != ours and len(theirs) == len(ours)
        remote.write(runsync.part_name(PARTS[:-len(".parts")], start, start + len(ours)),
                     theirs)
    else:
        _make_run(b.path, tmp_path, monkeypatch, range(100, 103), resume=True)
        b("sync")
    held = _held(backend)
    local = LocalStore.open(a.path, create=False)
    try:
        res = runsync.push_runs(a.path, _Stale(remote, snapshot),  # type: ignore[arg-type]
                                "p")
    finally:
        local.close()
    assert [c["run"] for c in res.conflicts] == [RUN_ID]
    assert "another store" in res.conflicts[0]["reason"]
    assert _held(backend) == held
    state = runsync.load_state(runsync.state_path(a.path, remote.url), remote.url)
    sent = state["runs"][RUN_ID]["append"]["history.jsonl"]["offset"]
    assert sent < (a.path / "runs" / RUN_ID / "history.jsonl").stat().st_size
    if not same_name:
        c("pull", "-p", "p", "--run", RUN_ID)
        assert _history(c.path) == _history(b.path)


def test_a_sync_takes_back_what_a_stopped_sync_left_beside_another_stores_parts(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync stopped between writing its parts and taking them back left
    them beside another store's: the next sync takes them back."""
    a, b, c = stores
    _resumed_in_two_stores(a, b, tmp_path, monkeypatch)
    held = _held(backend)
    remote = backend.open()
    state = runsync.load_state(runsync.state_path(a.path, remote.url), remote.url)
    sent = state["runs"][RUN_ID]["append"]["history.jsonl"]["offset"]
    history = (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes()
    remote.write(runsync.part_name(PARTS[:-len(".parts")], sent, len(history)), history[sent:])
    res = a("sync", code=5)
    assert res.err.count("\n") == 1 and "another store" in res.err
    assert _held(backend) == held
    c("pull", "-p", "p", "--run", RUN_ID)
    assert _history(c.path) == _history(b.path)


def test_pull_refuses_parts_that_overlap_with_other_bytes(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote written by two stores at once before sync refused that holds
    two parts from one offset: a pull took the longer and dropped the other's
    rows (or joined them into a history of both), and said nothing."""
    a, b, c = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    remote = backend.open()
    start = int(remote.list(PARTS)[-1].rpartition("-")[2])
    base = PARTS[:-len(".parts")]
    row = {"_step": 3, "i": 3, "loss": 0.25, "_runtime": 1.0, "_timestamp": 1e9}
    ours = (json.dumps(row) + "\n").encode()
    theirs = (json.dumps({**row, "i": 100}) + "\n").encode() * 2
    b("pull", "-p", "p", "--run", RUN_ID)
    remote.write(runsync.part_name(base, start, start + len(ours)), ours)
    remote.write(runsync.part_name(base, start, start + len(theirs)), theirs)
    for store in (b, c):
        res = store("pull", "-p", "p", "--run", RUN_ID, code=4)
        assert res.err.count("\n") == 1 and "two stores" in res.err and "Traceback" not in res.err
    assert not (c.path / "runs" / RUN_ID).exists()
    assert [r["i"] for r in _history(b.path)] == [0, 1, 2]  # the copy pulled before, kept
    # Parts that overlap with the same bytes (a sync from byte 0 again) read whole.
    remote.delete(runsync.part_name(base, start, start + len(theirs)))
    remote.write(runsync.part_name(base, 0, start + len(ours)),
                 (a.path / "runs" / RUN_ID / "history.jsonl").read_bytes() + ours)
    assert c.result("pull", "-p", "p", "--run", RUN_ID)["refused"] == []
    assert [r["i"] for r in _history(c.path)] == [0, 1, 2, 3]


class _Counting:
    """A remote that counts the requests made of it, by method."""

    METHODS = ("read", "write", "create_exclusive", "exists", "list", "list_detail",
               "list_stamped", "list_folders", "put_file", "get_file", "delete")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.METHODS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)
        return call


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # requests, not bytes
@pytest.mark.parametrize("named", [False, True])
def test_a_sync_asks_the_remote_little_more_than_it_did(
        stores: tuple[Store, Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch, named: bool) -> None:
    """With nothing new, one listing, as before; with new lines, the run's
    files are listed before and after they are sent (one of the two is the
    listing a sync of one run made already)."""
    a = stores[0]
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    ids = [RUN_ID] if named else None
    remote = _Counting(backend.open())
    assert runsync.push_runs(a.path, remote, None, ids).runs_sent == 0  # type: ignore[arg-type]
    assert remote.calls == (["list_detail"] if named else ["list_folders"])
    _make_run(a.path, tmp_path, monkeypatch, range(3, 5), resume=True)
    remote.calls.clear()
    assert runsync.push_runs(a.path, remote, None, ids).runs_sent == 1  # type: ignore[arg-type]
    lists = [c for c in remote.calls if c.startswith("list")]
    assert lists == (["list_detail", "list"] if named else ["list_folders", "list_detail", "list"])
