"""Runs through a remote: ``wbtool sync`` sends run folders incrementally and
``wbtool pull --run`` rebuilds them in another store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.remote.conftest import Backend
from tests.remote.test_sync import Store
from wbtool.remote import runsync
from wbtool.runs.history import iter_rows

RUN_ID = "sync0001"


def quiet() -> dict[str, Any]:
    return {"quiet": True, "console": "off"}


_SCRIPT = """
import sys, wbtool
tmp, first, last, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
run = wbtool.init(project="p", id=sys.argv[5], resume="allow" if resume else None,
                  config={"lr": 0.1, "layers": 3}, settings={"quiet": True, "console": "off"})
for i in range(first, last):
    run.log({"loss": 1.0 / (i + 1), "i": i})
if not resume:
    with open(tmp + "/notes.txt", "w") as f:
        f.write("hello\\n")
    run.save(tmp + "/notes.txt", base_path=tmp, policy="now")
run.summary["best"] = last - first
run.finish()
"""


def _make_run(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: range,
              resume: bool = False) -> None:
    """Log ``rows`` to the run in a program of its own, as a user would."""
    env = {**os.environ, "WBTOOL_DIR": str(store)}
    subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), str(rows.start),
                    str(rows.stop), "1" if resume else "0", RUN_ID], env=env, cwd=tmp_path,
                   check=True, timeout=120)


def _history(store: Path) -> list[dict[str, Any]]:
    return list(iter_rows(store / "runs" / RUN_ID / "history.jsonl"))


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    return (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend))


def test_run_sync_and_pull_incrementally(stores: tuple[Store, Store], tmp_path: Path,
                                         backend: Backend,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(100))
    first = a.result("sync")
    assert first["runs_sent"] == 1 and first["run_bytes_sent"] > 0
    remote = backend.open()
    listed = remote.list(runsync.run_prefix("p", RUN_ID))
    assert f"projects/p/runs/{RUN_ID}/run.json" in listed
    assert any(p.startswith(f"projects/p/runs/{RUN_ID}/history.jsonl.parts/") for p in listed)

    pulled = b.result("pull", "--run", f"p/{RUN_ID}")  # its project named with it
    assert pulled["runs_pulled"] == 1 and pulled["refused"] == []
    assert _history(b.path) == _history(a.path) and len(_history(a.path)) == 100
    for name in ("summary.json", "config.yaml"):
        assert (b.path / "runs" / RUN_ID / name).read_bytes() == (
            a.path / "runs" / RUN_ID / name).read_bytes()
    assert (b.path / "runs" / RUN_ID / "files" / "notes.txt").read_text() == "hello\n"
    shown = b.result("runs", "show", RUN_ID)
    assert shown["summary"]["best"] == 100 and shown["config"]["lr"] == 0.1
    assert [r["id"] for r in b.result("runs", "list", "-p", "p")] == [RUN_ID]
    assert len(b("runs", "history", RUN_ID).out.splitlines()) == 100

    # Resumed and logged to: only what is new travels.
    folder = a.path / "runs" / RUN_ID
    old_size = (folder / "history.jsonl").stat().st_size
    _make_run(a.path, tmp_path, monkeypatch, range(100, 105), resume=True)
    second = a.result("sync")
    new_history = (folder / "history.jsonl").stat().st_size - old_size
    records = sum(p.stat().st_size for p in folder.rglob("*")
                  if p.is_file() and p.name not in runsync.APPEND_FILES)
    assert second["runs_sent"] == 1
    # The new rows, the rewritten records and files, a few lines of events at most.
    assert 0 < second["run_bytes_sent"] <= new_history + records + 2048
    assert second["run_bytes_sent"] < first["run_bytes_sent"]
    assert a.result("sync")["run_bytes_sent"] == 0
    parts = remote.list(f"projects/p/runs/{RUN_ID}/history.jsonl.parts")
    assert [p.rsplit("/", 1)[1] for p in parts] == [
        f"{0:012d}-{old_size:012d}", f"{old_size:012d}-{old_size + new_history:012d}"]
    again = b.result("pull", "-p", "p", "--all-runs")
    assert again["runs"] == [RUN_ID]
    # Parts received by the first pull are taken from its copy, not fetched again.
    assert 0 < again["run_bytes_received"] <= new_history + records + 2048
    assert again["run_bytes_received"] < pulled["run_bytes_received"]
    assert _history(b.path) == _history(a.path) and len(_history(b.path)) == 105
    assert b.result("runs", "show", RUN_ID)["summary"]["best"] == 5
    # Nothing changed since on either side: nothing is fetched, and no run counts as pulled.
    noop = b.result("pull", "-p", "p", "--all-runs")
    assert (noop["runs"], noop["runs_pulled"], noop["run_bytes_received"]) == ([], 0, 0)
    assert _history(b.path) == _history(a.path)


def test_a_pulled_run_logged_to_and_synced_keeps_its_new_rows(
        stores: tuple[Store, Store], cli: Cli, tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync of a pulled run goes on from the parts the pull received: a
    part from byte 0 again overlapped them, and a reader took the older one."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    old_size = (b.path / "runs" / RUN_ID / "history.jsonl").stat().st_size
    b("log", "--run", RUN_ID, "extra=99")
    new_size = (b.path / "runs" / RUN_ID / "history.jsonl").stat().st_size
    assert b.result("sync")["runs_sent"] == 1
    parts = backend.open().list(f"projects/p/runs/{RUN_ID}/history.jsonl.parts")
    assert [p.rsplit("/", 1)[1] for p in parts] == [
        f"{0:012d}-{old_size:012d}", f"{old_size:012d}-{new_size:012d}"]
    c = Store(cli, tmp_path / "c" / ".wbtool", backend)
    c("pull", "-p", "p", "--run", RUN_ID)
    assert _history(c.path) == _history(b.path) and len(_history(c.path)) == 4
    assert _history(c.path)[-1]["extra"] == 99


def test_an_empty_append_only_file_is_pulled_empty_not_left_out(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty output.log or system.jsonl has no line to send as a part: it
    goes as the empty part 0-0, once, and a pull makes it empty."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    folder = a.path / "runs" / RUN_ID
    for name in ("output.log", "system.jsonl"):
        (folder / name).write_bytes(b"")
    (folder / "output.raw").unlink(missing_ok=True)
    assert a.result("sync")["runs_sent"] == 1
    assert a.result("sync")["runs_sent"] == 0  # sent once
    b("pull", "-p", "p", "--run", RUN_ID)
    for name in ("output.log", "system.jsonl"):
        assert (b.path / "runs" / RUN_ID / name).read_bytes() == b"", name
    assert not (b.path / "runs" / RUN_ID / "output.raw").exists()  # absent stays absent
    assert b.result("sync")["runs_sent"] == 0  # the pulled copy has nothing to send back
    # The part lost on the remote: a checking sync sends it again.
    remote = backend.open()
    empty = runsync.part_name(f"{runsync.run_prefix('p', RUN_ID)}/output.log", 0, 0)
    remote.delete(empty)
    a("sync", "--check")
    assert remote.list(empty) == [empty]
    c = Store(b.cli, tmp_path / "c" / ".wbtool", backend)
    c("pull", "-p", "p", "--run", RUN_ID)
    assert (c.path / "runs" / RUN_ID / "output.log").read_bytes() == b""
    # Logged to since: its lines follow, and a reader gets them whole.
    (folder / "output.log").write_bytes(b"hello\n")
    assert a.result("sync")["runs_sent"] == 1
    c("pull", "-p", "p", "--run", RUN_ID)
    assert (c.path / "runs" / RUN_ID / "output.log").read_bytes() == b"hello\n"


_CRASHING = """
import os, sys, time, wbtool
run = wbtool.init(project="p", id=sys.argv[1], settings={"quiet": True, "console": "wrap"})
print("first line")
run.log({"a": 1})
sys.stdout.write("x" * (1 << 20) + "last words")  # longer than a line kept back
sys.stdout.flush()
time.sleep(120)
"""


def _crash_with_a_torn_line(store: Store, tmp_path: Path, until: Callable[[], Any]) -> None:
    """Run a program that writes a line longer than a console keeps back
    without its newline, call ``until`` while it runs, then kill it."""
    log = store.path / "runs" / RUN_ID / "output.log"
    child = subprocess.Popen([sys.executable, "-c", _CRASHING, RUN_ID], cwd=tmp_path,
                             env={**os.environ, **store.env}, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_bytes().endswith(b"last words")):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        until()
    finally:
        child.kill()
        child.wait()


def test_the_last_line_of_a_crashed_run_without_a_newline_is_synced(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """A torn last line waits for its newline, which a run that is over
    never writes: the console's last output before a crash never reached
    the remote, nor a store that pulled the run."""
    a, b = stores

    def while_running() -> None:  # the line may grow yet: only whole lines go
        assert a.result("sync")["runs_sent"] == 1
        b("pull", "-p", "p", "--run", RUN_ID)
        assert (b.path / "runs" / RUN_ID / "output.log").read_bytes() == b"first line\n"

    _crash_with_a_torn_line(a, tmp_path, while_running)
    assert a.result("runs", "show", RUN_ID)["state"] == "crashed"
    assert a.result("sync")["runs_sent"] == 1
    assert a.result("sync")["runs_sent"] == 0
    b("pull", "-p", "p", "--run", RUN_ID)
    pulled = (b.path / "runs" / RUN_ID / "output.log").read_bytes()
    log = (a.path / "runs" / RUN_ID / "output.log").read_bytes()
    assert pulled == log and pulled.endswith(b"x" * 10 + b"last words")


def test_pull_keeps_the_last_line_of_a_crashed_run_that_the_remote_lacks(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A crashed run whose torn last line was not synced was replaced by a
    pull once the remote held more of it (resumed in another store): the
    line was lost for good."""
    a, b = stores
    _crash_with_a_torn_line(a, tmp_path, lambda: a("sync"))
    b("pull", "-p", "p", "--run", RUN_ID)
    _make_run(b.path, tmp_path, monkeypatch, range(3), resume=True)
    b("sync")
    res = a("pull", "-p", "p", "--run", RUN_ID, code=5)
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert (a.path / "runs" / RUN_ID / "output.log").read_bytes().endswith(b"last words")


def test_pull_never_replaces_a_run_with_data_the_remote_lacks(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    # The run was made here and logged to since the sync.
    a("log", "--run", RUN_ID, "extra=1")
    res = a("pull", "-p", "p", "--run", RUN_ID, code=5)
    assert res.err.count("\n") == 1 and RUN_ID in res.err and "wbtool sync" in res.err
    assert "Traceback" not in res.err and len(_history(a.path)) == 4
    a("sync")
    a("pull", "-p", "p", "--run", RUN_ID)
    assert len(_history(a.path)) == 4

    # A pulled copy, unchanged here and on the remote: a pull leaves it as it is.
    b("pull", "-p", "p", "--run", RUN_ID)
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == []
    # Logged to since: left alone until it is synced.
    b("log", "--run", RUN_ID, "extra=2")
    res = b("pull", "-p", "p", "--all-runs", code=5)
    assert res.err.count("\n") == 1 and RUN_ID in res.err and "wbtool sync" in res.err
    assert len(_history(b.path)) == 5 and _history(b.path)[-1]["extra"] == 2
    b("sync")
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    assert len(_history(b.path)) == 5 and _history(b.path)[-1]["extra"] == 2


def test_a_run_made_here_and_resumed_elsewhere_is_pulled_back(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run this store made and sent whole, then resumed in another store and
    synced from there: a pull brings the new rows back (it said "left alone"
    and pulled nothing), and neither the next sync nor the next pull moves it
    again."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    same = a.result("pull", "-p", "p", "--run", RUN_ID)  # the remote holds what is here
    assert (same["runs"], same["warnings"]) == ([], [])
    # Another run of that id on the remote (written before sync refused such
    # runs) never replaces this store's.
    remote = backend.open()
    record = f"{runsync.run_prefix('p', RUN_ID)}/run.json"
    mine = remote.read(record)
    doc = json.loads(mine)
    remote.write(record, json.dumps({**doc, "created_at": doc["created_at"] - 60,
                                     "name": "another"}).encode())
    res = a("pull", "-p", "p", "--run", RUN_ID, code=5)
    assert res.err.count("\n") == 1 and "another run" in res.err
    assert a.result("runs", "show", RUN_ID)["name"] != "another"
    remote.write(record, mine)
    b("pull", "-p", "p", "--run", RUN_ID)
    _make_run(b.path, tmp_path, monkeypatch, range(3, 5), resume=True)
    b("sync")
    back = a.result("pull", "-p", "p", "--run", RUN_ID)
    assert back["runs"] == [RUN_ID] and back["warnings"] == []
    assert _history(a.path) == _history(b.path) and len(_history(a.path)) == 5
    assert a.result("sync")["run_bytes_sent"] == 0
    assert a.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == []


def test_a_pulled_run_pulled_again_is_not_sent_back(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that synced a pulled copy, then pulled the run again after
    another store logged to it, sent its files back by the next sync (what it
    had recorded as sent was of the folder the pull replaced), and the next
    pull fetched them all again."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    assert b.result("sync")["run_bytes_sent"] == 0
    _make_run(a.path, tmp_path, monkeypatch, range(3, 5), resume=True)
    a("sync")
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    assert b.result("sync")["run_bytes_sent"] == 0
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == []
    assert _history(b.path) == _history(a.path) and len(_history(b.path)) == 5


@pytest.mark.parametrize("args", [(), ("--check",), (RUN_ID,)])
def test_sync_never_mixes_another_run_with_the_same_id_into_a_remote_run(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    """A run resumed (``resume="allow"``) in a store that never pulled it is a
    new run with that id: its sync wrote its records and a history part from
    byte 0 into the remote's run, and a pull read a mixture of the two."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    remote = backend.open()
    before = {p: remote.read(p) for p in remote.list(runsync.run_prefix("p", RUN_ID))}
    _make_run(b.path, tmp_path, monkeypatch, range(100, 101), resume=True)
    res = b("sync", *args, code=5)
    assert res.err.count("\n") == 1 and RUN_ID in res.err and "another run" in res.err
    assert {p: remote.read(p) for p in remote.list(runsync.run_prefix("p", RUN_ID))} == before
    res = b("pull", "-p", "p", "--run", RUN_ID, code=5)  # nor is it replaced by that run
    assert res.err.count("\n") == 1 and "another run" in res.err
    assert [r["i"] for r in _history(b.path)] == [100]
    # What a sync sent, with the record of it lost, is sent again as before.
    (a.path / "sync").rename(tmp_path / "lost")
    assert a.result("sync", *args)["run_conflicts"] == []


_MEDIA = """
import sys, wbtool
run = wbtool.init(project="p", id=sys.argv[1], fork_from=sys.argv[2] or None,
                  settings={"quiet": True, "console": "off"})
for i in range(3):
    image = wbtool.Image([[i, 255], [255, i]])
    run.log({"img": image, "page": wbtool.Html(f"<p>{i}</p>"),
             "tbl": wbtool.Table(columns=["n", "pic"], data=[[i, wbtool.Image([[i]])]])})
run.finish()
"""


def _media_named(store: Path, run_id: str) -> dict[str, bytes]:
    """The files under ``media/`` that the run's history names (tables' images too)."""
    folder = store / "runs" / run_id
    names: dict[str, bytes] = {}
    for row in iter_rows(folder / "history.jsonl"):
        for value in row.values():
            if isinstance(value, dict) and isinstance(value.get("path"), str):
                names[value["path"]] = (folder / value["path"]).read_bytes()
                if value["path"].endswith(".table.json"):
                    for _n, pic in json.loads(names[value["path"]])["data"]:
                        names[pic["path"]] = (folder / pic["path"]).read_bytes()
    return names


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # the same on every backend
def test_pull_of_a_run_in_another_entity_is_not_found(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--run ENTITY/PROJECT/ID`` with an entity other than the one the
    settings name is not found (exit 3, one line), as in ``runs show``;
    without the setting, any entity is read as this store's."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b.env["WBTOOL_ENTITY"] = "team"
    res = b("pull", "--run", f"other/p/{RUN_ID}", code=3)
    assert res.err == (f"wbtool: error: other/p/{RUN_ID}: "
                       "entity 'other' not found: this store's entity is 'team'\n")
    assert not (b.path / "runs" / RUN_ID).exists()
    assert b.result("pull", "--run", f"team/p/{RUN_ID}")["runs"] == [RUN_ID]
    del b.env["WBTOOL_ENTITY"]
    assert b.result("pull", "--run", f"other/p/{RUN_ID}")["runs"] == []  # already here
    c = Store(b.cli, tmp_path / "c" / ".wbtool", backend)
    assert c.result("pull", "--run", f"anyone/p/{RUN_ID}")["runs"] == [RUN_ID]


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # the same on every backend
def test_a_fork_of_a_pulled_run_has_the_media_its_rows_name(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """A fork copied the parent's history rows but none of the files they
    name: its images, pages and tables were missing, here and where it was
    pulled."""
    a, b = stores
    for store, args in ((a, ["parent01", ""]), (b, ["child001", "parent01?_step=1"])):
        if store is b:
            a("sync")
            b("pull", "-p", "p", "--run", "parent01")
        subprocess.run([sys.executable, "-c", _MEDIA, *args], env={**os.environ, **store.env},
                       cwd=tmp_path, check=True, timeout=120)
    parent = _media_named(a.path, "parent01")
    child = _media_named(b.path, "child001")
    kept = {k: v for k, v in child.items() if re.search(r"_[01]_[0-9a-f]+\.", k)}
    assert len(kept) == 4 * 2 and all(parent[k] == v for k, v in kept.items())
    b("sync")
    a("pull", "-p", "p", "--run", "child001")
    assert _media_named(a.path, "child001") == child


def test_pull_notices_a_rewrite_of_the_same_size_within_the_listed_time(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary rewritten to the same size within the second that S3 lists
    times to looks unchanged by size and time; its stamp tells."""
    (tmp_path / "remote").mkdir()
    backend = Backend("local", str(tmp_path / "remote"), {})
    a, b = (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend))
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    summary = tmp_path / "remote" / runsync.run_prefix("p", RUN_ID) / "summary.json"
    before, st = summary.read_bytes(), summary.stat()
    after = before.replace(b'"best": 3', b'"best": 4')
    assert after != before and len(after) == len(before)
    backend.open().write(f"{runsync.run_prefix('p', RUN_ID)}/summary.json", after)
    os.utime(summary, ns=(st.st_atime_ns, st.st_mtime_ns))  # listed as before
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]
    assert json.loads((b.path / "runs" / RUN_ID / "summary.json").read_bytes())["best"] == 4


def test_a_gap_in_the_remote_history_never_shortens_a_pulled_copy(
        stores: tuple[Store, Store], cli: Cli, tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    _make_run(a.path, tmp_path, monkeypatch, range(3, 6), resume=True)
    a("sync")
    b("pull", "-p", "p", "--run", RUN_ID)
    assert len(_history(b.path)) == 6
    remote = backend.open()
    parts = remote.list(f"{runsync.run_prefix('p', RUN_ID)}/history.jsonl.parts")
    assert len(parts) == 2
    remote.delete(parts[0])  # the remote lost the first rows
    res = b("pull", "-p", "p", "--run", RUN_ID, code=4)
    assert "gap at byte 0" in res.err and res.err.count("\n") == 1
    assert len(_history(b.path)) == 6  # the pulled copy is kept whole
    # Where there is no copy yet, what comes before the gap is pulled, with a warning.
    c = Store(cli, tmp_path / "c" / ".wbtool", backend)
    pulled = c.result("pull", "-p", "p", "--run", RUN_ID)
    assert pulled["runs"] == [RUN_ID] and any("gap" in w for w in pulled["warnings"])


CORRUPT_RECORDS = (
    ("config.yaml", b'{"a": [1'),
    ("config.yaml", b"\xff"),
    ("summary.json", b'{"best": "\xff"}'),
    ("metadata.json", b"[1, 2]"),
)


def test_pull_refuses_corrupt_run_records(stores: tuple[Store, Store], tmp_path: Path,
                                          backend: Backend,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary, config or metadata file that would read back empty is refused
    (exit 4) before the good local copy is replaced."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--all-runs")
    folder = b.path / "runs" / RUN_ID
    before = {n: (folder / n).read_bytes() for n in runsync.SMALL_FILES}
    remote = backend.open()
    for name, data in CORRUPT_RECORDS:
        path = f"{runsync.run_prefix('p', RUN_ID)}/{name}"
        good = remote.read(path)
        remote.write(path, data)
        res = b("pull", "-p", "p", "--run", RUN_ID, code=4)
        assert name in res.err and "Traceback" not in res.err, res.err
        assert {n: (folder / n).read_bytes() for n in runsync.SMALL_FILES} == before
        shown = b.result("runs", "show", RUN_ID)
        assert shown["config"]["lr"] == 0.1 and shown["summary"]["best"] == 3
        remote.write(path, good)
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]


BAD_RUN_FIELDS = (
    {"created_at": "x"}, {"created_at": float("nan")}, {"created_at": 1e308},
    {"state": "bogus"}, {"name": [1]}, {"tags": 5}, {"runtime": "x"},
    {"exit_code": 10**30},
)


def test_pull_refuses_run_records_with_fields_of_the_wrong_type(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run.json whose fields listings could not use is refused (exit 4, one
    line) before the local copy of the run is replaced."""
    a, b = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    a("sync")
    b("pull", "-p", "p", "--all-runs")
    record = b.path / "runs" / RUN_ID / runsync.RUN_RECORD
    before = record.read_bytes()
    remote = backend.open()
    path = f"{runsync.run_prefix('p', RUN_ID)}/{runsync.RUN_RECORD}"
    good = json.loads(remote.read(path))
    fresh = Store(b.cli, tmp_path / "fresh", backend)
    for fields in BAD_RUN_FIELDS:
        remote.write(path, json.dumps({**good, **fields}).encode())
        for store in (b, fresh):
            res = store("pull", "-p", "p", "--run", RUN_ID, code=4)
            assert res.err.count("\n") == 1 and next(iter(fields)) in res.err, res.err
        assert record.read_bytes() == before
        assert not (fresh.path / "runs" / RUN_ID).exists()
        assert b.result("runs", "show", RUN_ID)["summary"]["best"] == 3
    remote.write(path, json.dumps(good).encode())
    assert b.result("pull", "-p", "p", "--run", RUN_ID)["runs"] == [RUN_ID]


class _Hostile:
    """A remote whose listings carry extra, hostile names."""

    def __init__(self, inner: Any, extra: list[str]) -> None:
        self.inner = inner
        self.extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.inner.list(prefix) + [p for p in self.extra
                                                 if p.startswith(prefix)])

    def list_detail(self, prefix: str = "") -> list[tuple[str, int, float]]:
        return sorted(self.inner.list_detail(prefix) + [(p, 10, 1.0) for p in self.extra
                                                        if p.startswith(prefix)])

    def list_stamped(self, prefix: str = "") -> list[tuple[str, int, float, str]]:
        return sorted(self.inner.list_stamped(prefix) + [(p, 10, 1.0, "") for p in self.extra
                                                         if p.startswith(prefix)])


HOSTILE = (
    "projects/p/runs/../x/run.json",
    f"projects/p/runs/{RUN_ID}/history.jsonl.parts/../../../../../evil",
    f"projects/p/runs/{RUN_ID}/history.jsonl.parts/0-10..",
    f"projects/p/runs/{RUN_ID}/files/../../evil",
    f"projects/p/runs/{RUN_ID}/unexpected.txt",
)


def test_hostile_remote_paths_are_refused(tmp_path: Path, backend: Backend,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from wbtool.store.layout import Store as LocalStore

    a_path = tmp_path / "a" / ".wbtool"
    _make_run(a_path, tmp_path, monkeypatch, range(3))
    remote = backend.open()
    assert runsync.push_runs(a_path, remote).runs_sent == 1
    for n, extra in enumerate(HOSTILE):
        b = LocalStore.open(tmp_path / f"b{n}" / ".wbtool")
        try:
            hostile: Any = _Hostile(remote, [extra])
            res = runsync.pull_runs(b.path, b.index, hostile, "p")
            if "/runs/../" in extra:  # no run folder: skipped, the good run still comes
                assert res.runs == [RUN_ID] and any("runs/../" in w for w in res.warnings)
            else:
                assert res.refused, extra
                assert res.runs_pulled == 0 and not (b.path / "runs" / RUN_ID).exists()
            assert not list(tmp_path.rglob("evil"))
        finally:
            b.close()


def test_state_file_remembers_offsets(tmp_path: Path, backend: Backend,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a_path = tmp_path / "a" / ".wbtool"
    _make_run(a_path, tmp_path, monkeypatch, range(3))
    remote = backend.open()
    dry = runsync.push_runs(a_path, remote, dry_run=True)
    assert dry.bytes_sent > 0 and remote.list() == []
    first = runsync.push_runs(a_path, remote, project="p", run_ids=[RUN_ID])
    assert first.bytes_sent == dry.bytes_sent
    doc = json.loads(runsync.state_path(a_path, remote.url).read_bytes())
    size = (a_path / "runs" / RUN_ID / "history.jsonl").stat().st_size
    assert doc["runs"][RUN_ID]["append"]["history.jsonl"]["offset"] == size
    assert runsync.push_runs(a_path, remote).bytes_sent == 0
    assert runsync.push_runs(a_path, remote, project="other").runs_sent == 0


@pytest.mark.parametrize("args", [("pull", "--run", "../x"),
                                  ("pull", "-R", "a/b/c/d", "--run", "ok"),
                                  ("pull", "-R", "p/a b"), ("sync", "../x")])
def test_an_invalid_run_id_is_a_usage_error(cli: Cli, tmp_path: Path,
                                            args: tuple[str, ...]) -> None:
    """Refused before the remote is contacted: a sync sent the artifacts first."""
    env = {"WBTOOL_DIR": str(tmp_path / "s" / ".wbtool")}
    (tmp_path / "f.txt").write_text("x\n")
    cli("artifact", "log", "data", str(tmp_path / "f.txt"), "--type", "dataset", env=env,
        check=True)
    remote = tmp_path / "remote"
    res = cli(*args, "--remote", str(remote), env=env)
    assert res.code == 2 and res.out == "", res
    assert res.err.startswith("wbtool: error: invalid ") and res.err.count("\n") == 1
    assert not remote.exists()


@pytest.mark.parametrize("backend", ["local"], indirect=True)  # the same on every backend
@pytest.mark.parametrize("damage", [b'{"id": "sync0001", "proj', b"garbage\n", b"[1]",
                                    b'{"id": "sync0001"}', None])
def test_a_run_whose_run_json_is_damaged_is_named_as_such(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend,
        monkeypatch: pytest.MonkeyPatch, damage: bytes | None) -> None:
    """A sync of that run says which file is damaged (exit 7, as ``runs
    show`` says it), not that the run is not found; a sync of every run
    sends the others and names it in a warning."""
    a, _ = stores
    _make_run(a.path, tmp_path, monkeypatch, range(3))
    other = "sync0002"
    subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), "0", "2", "0", other],
                   env={**os.environ, "WBTOOL_DIR": str(a.path)}, cwd=tmp_path, check=True,
                   timeout=120)
    folder = a.path / "runs" / RUN_ID
    if damage is None:
        (folder / "run.json").unlink()
    else:
        (folder / "run.json").write_bytes(damage)
    os.utime(folder, (1e9, 1e9))  # long ago: no run being created
    what = "is missing" if damage is None else "is damaged"
    for args in ((RUN_ID,), (RUN_ID, other), ("-p", "p", RUN_ID)):
        res = a("sync", *args, code=7)
        assert res.out == "" and res.err.splitlines() == [
            f"wbtool: error: {folder / 'run.json'} {what}"
            + (": it is not a run record wbtool can read" if damage is not None else "")
            + f"; `wbtool runs delete {RUN_ID} --yes` removes the run's folder"], res.err
    assert not backend.open().list("projects/p/runs")
    res = a("sync", "--json")
    sent = json.loads(res.out)["result"]
    assert [r["id"] for r in sent["runs"]] == [other]
    assert sent["warnings"] == [f"run {RUN_ID} skipped: {folder / 'run.json'} {what}"
                                + (": it is not a run record wbtool can read"
                                   if damage is not None else "")
                                + f"; `wbtool runs delete {RUN_ID} --yes` removes the "
                                "run's folder"]
    assert res.err.splitlines() == [f"wbtool: warning: {sent['warnings'][0]}"]
    assert not any(p.startswith(f"projects/p/runs/{RUN_ID}")
                   for p in backend.open().list("projects/p/runs"))
    a("runs", "delete", RUN_ID, "--yes")
    (a.path / "runs" / "newborn1").mkdir()  # a run being created: no run.json yet
    assert a.result("sync")["warnings"] == []


def test_part_names_on_a_remote_take_ascii_digits_only() -> None:
    """int() reads any Unicode digit: "٠-5" and "0-5" would name one part twice."""
    from wbtool.remote.runsync import _classify

    assert _classify("history.jsonl.parts/0-5") == ("part", "history.jsonl", 0, 5,
                                                    "history.jsonl.parts/0-5")
    assert _classify("history.jsonl.parts/\u0660-5") is None
    assert _classify("history.jsonl.parts/0-\uff15") is None
