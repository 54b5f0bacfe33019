"""Lineage and portfolio links through a remote: ``wbtool sync`` in one store,
``wbtool pull`` in another, through the real entry point, against a local
folder and a real S3 server (moto)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import pytest

from tests.conftest import Cli
from tests.remote.conftest import Backend, make_backend
from tests.remote.test_sync import Store, _Counting


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    return (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend))


# A run that logs ``data``, a run that uses it (and links it into the model
# registry), and a run that logs the same content again (a second output).
LOG_USE_LINK = """
import pathlib, wbtool
q = {"quiet": True, "console": "off"}
pathlib.Path("d").mkdir()
pathlib.Path("d/x.txt").write_text("x")
with wbtool.init(project="p", id="maker001", settings=q) as run:
    run.log_artifact("d", name="data", type="dataset")
with wbtool.init(project="p", id="user0001", settings=q) as run:
    art = run.use_artifact("data:v0")
    run.link_artifact(art, "model-registry/best", aliases=["prod"])
with wbtool.init(project="p", id="again001", settings=q) as run:
    run.log_artifact("d", name="data", type="dataset")
"""


def _python(store: Store, code: str, cwd: Path) -> str:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True,
                          env={**os.environ, **store.env}, capture_output=True, text=True,
                          timeout=120).stdout


def test_used_by_travels_through_the_remote(stores: tuple[Store, Store],
                                            tmp_path: Path) -> None:
    """A run that used a version was known only in the store it ran in: after
    a pull, ``used_by`` and the run's used artifacts were empty elsewhere."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    b("pull", "-p", "p", "--all-runs")
    b("pull", "-p", "p")
    info = b.result("artifact", "info", "data:v0", "-p", "p")
    assert info["used_by"] == ["user0001"]
    assert info["run_id"] == "maker001"
    shown = b.result("runs", "show", "user0001")
    assert shown["artifacts_used"] == [{"name": "data:v0", "type": "dataset"}]
    again = b.result("runs", "show", "again001")
    assert again["artifacts_logged"] == [{"name": "data:v0", "type": "dataset"}]
    out = _python(b, "import wbtool; api = wbtool.Api(); "
                  "print([r.id for r in api.artifact('p/data:v0').used_by()])", tmp_path)
    assert out.split() == ["['user0001']"]


def test_links_travel_through_the_remote(stores: tuple[Store, Store], tmp_path: Path) -> None:
    """``sync`` left portfolio links behind without a word; a pull elsewhere
    had no model registry."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("artifact", "link", "data:v0", "p/picks", "-a", "staging", "-p", "p")
    a("sync")
    b("pull", "--all-projects")
    best = b.result("artifact", "info", "model-registry/best:prod")
    assert best["is_link"] and best["collection_kind"] == "portfolio"
    assert best["digest"] == a.result("artifact", "info", "p/data:v0")["digest"]
    picks = b.result("artifact", "info", "p/picks:staging")
    assert picks["is_link"] and picks["digest"] == best["digest"]


def test_a_second_sync_makes_no_request_for_lineage_or_links(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """What was sent is remembered: a sync with nothing new lists the version
    records and nothing else; the records sit where an older reader of
    ``artifacts/`` never meets them."""
    from wbtool.artifacts.registry import Registry
    from wbtool.remote import push, records
    from wbtool.store.layout import Store as LocalStore

    a, _ = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    first = a.result("sync")
    assert first["links_sent"] == 1 and first["lineage_sent"] == 3  # used, logged twice
    again = a.result("sync")
    assert (again["links_sent"], again["lineage_sent"]) == (0, 0)
    remote = backend.open()
    assert records.parse_listing("p", remote.list(records.project_prefix("p")))[1] == []
    local = LocalStore.open(a.path, create=False)
    try:
        counting = _Counting(backend.open())
        counting.list("")
        counting.calls.clear()
        res = push.push(Registry(local), counting, jobs=4)  # type: ignore[arg-type]
    finally:
        local.close()
    assert (res.links_sent, res.lineage_sent) == (0, 0)
    assert counting.calls == [("list", "projects/p/artifacts")]


MOVE_AND_UNLINK = """
import pathlib, wbtool
api = wbtool.Api()
pathlib.Path("d2").mkdir()
pathlib.Path("d2/x.txt").write_text("y")
with wbtool.init(project="p", id="second01", settings={"quiet": True, "console": "off"}) as run:
    new = run.log_artifact("d2", name="data", type="dataset")
    new.wait()
    run.link_artifact(new, "model-registry/best", aliases=["prod"])
for link in api.artifact("p/data:v0").linked_artifacts:
    if link.name.startswith("picks:"):
        link.unlink()
"""


def test_link_changes_and_unlinks_travel(stores: tuple[Store, Store], tmp_path: Path) -> None:
    """An alias moved between links and a link removed reach the other store;
    a pull of the portfolio alone brings the versions it links."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("artifact", "link", "data:v0", "p/picks", "-a", "staging", "-p", "p")
    a("sync")
    got = b.result("pull", "-p", "model-registry")
    assert got["links_changed"] == 1 and got["versions_pulled"] == 1  # its source, too
    assert b.result("artifact", "info", "p/data:v0")["used_by"] == ["user0001"]
    b("pull", "-p", "p")
    assert b.result("artifact", "info", "p/picks:staging")["is_link"]

    _python(a, MOVE_AND_UNLINK, tmp_path / "src")
    sent = a.result("sync")
    assert sent["links_sent"] == 3  # best: a new link and the old one's alias; picks: removed
    b("pull", "--all-projects")
    v1 = a.result("artifact", "info", "p/data:v1")["digest"]
    assert b.result("artifact", "info", "model-registry/best:prod")["digest"] == v1
    assert len(b.result("artifact", "ls", "model-registry/best")) == 2
    for store in (a, b):
        assert "not found" in store("artifact", "info", "p/picks:staging", code=3).err
    again = b.result("pull", "--all-projects")
    assert again["links_changed"] == 0 and again["lineage_added"] == 0


def test_a_link_whose_source_is_not_sent_is_named_on_stderr(stores: tuple[Store, Store],
                                                           tmp_path: Path) -> None:
    a, _ = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    res = a("sync", "-p", "model-registry")
    assert ("link model-registry/best:v0 not sent: its source p/data:v0 is not on "
            in res.err), res.err
    assert "link change(s)" in res.out
    assert "not sent" not in a("sync").err  # once its source is there, it goes


def test_bad_link_and_lineage_records_are_refused(stores: tuple[Store, Store], tmp_path: Path,
                                                  backend: Backend) -> None:
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    remote = backend.open()
    remote.write("projects/model-registry/links/best/0000000007.json",
                 b'{"format": 1, "kind": "artifact-link", "source": {"project": "../x",'
                 b' "name": "data", "version": 0}, "aliases": [], "time": 1}')
    remote.write("projects/p/lineage/data/v0/input-other01.json",
                 b'{"format": 1, "kind": "artifact-lineage", "project": "p", "name": "data",'
                 b' "version": 0, "direction": "input", "run_id": "someone"}')
    res = b("pull", "--all-projects", code=4)
    assert "0000000007.json" in res.err and "input-other01.json" in res.err
    assert b.result("artifact", "info", "model-registry/best:prod")["is_link"]
    assert b.result("artifact", "info", "p/data:v0")["used_by"] == ["user0001"]


def test_a_linked_version_is_fetched_by_its_portfolio_name(stores: tuple[Store, Store],
                                                           tmp_path: Path) -> None:
    """A store that never pulled finds ``model-registry/best:prod`` on the
    default remote, as it finds a version of a collection there."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    b("artifact", "download", "model-registry/best:prod", "--root", str(tmp_path / "out"))
    assert (tmp_path / "out" / "x.txt").read_text() == "x"
    assert b.result("artifact", "info", "model-registry/best:prod")["is_link"]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_remote_that_lost_its_versions_gets_their_lineage_and_links_again(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    import shutil

    a, _ = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    shutil.rmtree(backend.url)
    again = a.result("sync")
    assert (again["versions_sent"], again["links_sent"], again["lineage_sent"]) == (1, 1, 3)


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_link_or_alias_event_whose_time_is_no_float_is_refused(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """A time of more digits than a float holds was a traceback of pull."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    remote = backend.open()
    huge = b"1" + b"0" * 400
    remote.write("projects/model-registry/links/best/0000000007.json",
                 b'{"format": 1, "kind": "artifact-link", "source": {"project": "p",'
                 b' "name": "data", "version": 0}, "aliases": ["x"], "time": ' + huge + b'}')
    remote.write("projects/p/artifacts/data/aliases/0000000009.json",
                 b'{"format": 1, "kind": "artifact-alias", "alias": "y", "version": 0,'
                 b' "time": ' + huge + b'}')
    res = b("pull", "--all-projects", code=4)
    assert "Traceback" not in res.err
    assert "0000000007.json" in res.err and "0000000009.json" in res.err
    assert b.result("artifact", "info", "model-registry/best:prod")["is_link"]


def _counts(res: dict[str, int]) -> tuple[int, int, int]:
    return res["aliases_sent"], res["links_sent"], res["lineage_sent"]


def test_a_dry_run_counts_the_alias_link_and_lineage_changes_a_sync_sends(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """``sync --dry-run`` said 0 link changes and no lineage whatever a sync
    would send: they are counted, with the versions not on the remote yet
    standing for what they would be there, and nothing is written."""
    a, _ = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("artifact", "link", "data:v0", "p/picks", "-a", "staging", "-p", "p")
    a("artifact", "alias", "add", "data:v0", "gold", "-p", "p")
    dry = a.result("sync", "--dry-run")
    assert _counts(dry) == (1, 2, 3)
    assert backend.open().list() == []  # a dry run writes nothing
    assert "1 alias change(s), 2 link change(s), 3 lineage record(s)" in a("sync", "--dry-run").out
    assert _counts(a.result("sync")) == _counts(dry)  # nor did it remember anything

    _python(a, MOVE_AND_UNLINK, tmp_path / "src")
    dry = a.result("sync", "--dry-run", "-p", "p")
    assert _counts(dry) == (0, 3, 1)  # the new version's: best's link, and its output
    assert _counts(a.result("sync", "-p", "p")) == _counts(dry)
    assert _counts(a.result("sync", "--dry-run")) == (0, 0, 0)


def test_sync_check_sends_again_lineage_and_link_files_the_remote_lost(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """A lineage record or a link's events deleted from the remote by hand
    while the versions stay were never sent again: the sync state said they
    were there, and ``sync --check`` did not look."""
    from wbtool.remote import records

    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("artifact", "link", "data:v0", "p/picks", "-a", "staging", "-p", "p")
    a("sync")
    remote = backend.open()
    lineage = remote.list(records.lineage_prefix("p"))
    best = remote.list(records.links_prefix("model-registry"))
    assert len(lineage) == 3 and len(best) == 1
    used = next(p for p in lineage if "/input-" in p)
    remote.delete(used)
    for path in remote.list(records.links_prefix("p", "picks")):  # the link's only event
        remote.delete(path)

    assert _counts(a.result("sync")) == (0, 0, 0)  # a plain sync trusts what it sent
    assert _counts(a.result("sync", "--check", "--dry-run")) == (0, 1, 1)
    assert used not in remote.list(records.lineage_prefix("p"))  # a dry run writes nothing
    res = a("sync", "--check")
    assert "1 link change(s), 1 lineage record(s)" in res.out, res.out
    assert _counts(a.result("sync", "--check")) == (0, 0, 0)
    assert remote.list(records.lineage_prefix("p")) == lineage
    assert remote.list(records.links_prefix("model-registry")) == best  # left alone

    b("pull", "--all-projects")
    assert b.result("artifact", "info", "p/data:v0")["used_by"] == ["user0001"]
    assert b.result("artifact", "info", "p/picks:staging")["is_link"]
    assert b.result("artifact", "info", "model-registry/best:prod")["is_link"]


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_pull_text_names_the_link_changes_and_lineage_records(
        stores: tuple[Store, Store], tmp_path: Path) -> None:
    """Only ``pull --json`` told how many links changed and lineage records
    arrived; the text line said nothing of them."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    out = b("pull", "--all-projects").out
    assert "1 link change(s), 3 lineage record(s), 0 run(s)" in out, out
    again = b("pull", "--all-projects").out
    assert "link change" not in again and "lineage record" not in again, again  # none


def _index_rows(store: Store) -> list[str]:
    import sqlite3

    db = sqlite3.connect(store.path / "index.db")
    try:
        return list(db.iterdump())
    finally:
        db.close()


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_dry_run_forgets_nothing_of_versions_the_remote_lost(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """``sync --dry-run`` forgot, in the index, the versions the remote had
    lost and their links and lineage: a dry run wrote what a sync needs."""
    from wbtool.remote import records

    a, _ = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("sync")
    backend.open().delete(records.version_path("p", "data", 0))
    before = _index_rows(a)
    dry = a.result("sync", "--dry-run")
    assert _index_rows(a) == before
    assert (dry["versions_sent"], *_counts(dry)) == (1, 0, 1, 3)
    assert a.result("sync", "--dry-run") == {**dry, "seconds": ANY}
    res = a.result("sync")
    assert (res["versions_sent"], *_counts(res)) == (1, 0, 1, 3)


def _picks(backend: Backend) -> list[str]:
    from wbtool.remote import records

    return backend.open().list(records.links_prefix("p", "picks"))


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_sync_check_sends_again_a_lost_last_link_event(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """A portfolio's last link event deleted by hand while earlier events of
    the link stayed read as a change made in another store: ``sync --check``
    left the remote stating the link's old aliases (or a removed link as still
    there). The store remembers the last event it sent, and one gone with
    nothing written after it is sent again; another store's change is left."""
    a, b = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("artifact", "link", "data:v0", "p/picks", "-a", "staging", "-p", "p")
    a("sync")
    a("artifact", "alias", "add", "picks:staging", "gold", "-p", "p")
    assert a.result("sync")["links_sent"] == 1
    events = _picks(backend)
    assert len(events) == 2
    backend.open().delete(events[-1])  # gold's event: the portfolio's last

    assert _counts(a.result("sync")) == (0, 0, 0)  # a plain sync trusts what it sent
    pulled = a("pull", "--all-projects")  # the loss is no change to take back here
    assert "p/picks kept as it is here" in pulled.err, pulled.err
    assert a.result("artifact", "info", "p/picks:gold")["is_link"]
    assert _counts(a.result("sync", "--check", "--dry-run")) == (0, 1, 0)
    assert len(_picks(backend)) == 1  # a dry run writes nothing
    assert "1 link change(s)" in a("sync", "--check").out
    assert _counts(a.result("sync", "--check")) == (0, 0, 0)
    b("pull", "--all-projects")
    assert b.result("artifact", "info", "p/picks:gold")["is_link"]

    # A change made in another store is no loss: it is left for a pull to take.
    b("artifact", "alias", "add", "picks:gold", "silver", "-p", "p")
    assert b.result("sync")["links_sent"] == 1
    assert _counts(a.result("sync", "--check")) == (0, 0, 0)

    # A removal lost is sent again too: the remote would read the link as there.
    a("pull", "--all-projects")
    a("artifact", "rm", "picks:silver", "-p", "p")
    assert a.result("sync")["links_sent"] == 1
    backend.open().delete(_picks(backend)[-1])
    assert _counts(a.result("sync", "--check")) == (0, 1, 0)
    b("pull", "--all-projects")
    assert "not found" in b("artifact", "info", "p/picks:silver", code=3).err


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_sync_check_names_a_corrupt_link_event_and_checks_the_rest(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """One unreadable link event made ``sync --check`` pass over its whole
    portfolio without a word: a link whose events were all deleted there was
    never sent again."""
    from wbtool.remote import records

    a, _ = stores
    _python(a, LOG_USE_LINK, tmp_path / "src")
    a("artifact", "link", "data:v0", "p/picks", "-a", "staging", "-p", "p")
    a("sync")
    remote = backend.open()
    for path in _picks(backend):
        remote.delete(path)
    bad = records.link_path("p", "picks", 7)
    remote.write(bad, b"{not json")
    res = a("sync", "--check")
    assert "1 link change(s)" in res.out, res.out
    lines = [line for line in res.err.splitlines() if "0000000007.json" in line]
    assert len(lines) == 1 and "warning" in lines[0], res.err
    assert "Traceback" not in res.err
    assert len(_picks(backend)) == 2  # the link's event again, beside the bad file
