"""``wbtool sync`` / ``wbtool pull`` through the real entry point, against a
local folder and a real S3 server (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, make_tree, read_tree
from tests.remote.conftest import Backend, make_backend
from wbtool.hashing import hash_bytes
from wbtool.remote import records


class Store:
    """One store folder driven through the CLI, with the remote as its default."""

    def __init__(self, cli: Cli, path: Path, backend: Backend) -> None:
        self.cli = cli
        self.path = path
        self.env = {"WBTOOL_DIR": str(path)}
        args = ["remote", "add", "team", backend.url, "--default"]
        for key, value in backend.options.items():
            args += ["-o", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
        self(*args)

    def __call__(self, *args: str, code: int = 0) -> Any:
        res = self.cli(*args, env=self.env)
        assert res.code == code, f"wbtool {' '.join(args)} exited {res.code}: {res.err}"
        return res

    def result(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").out)["result"]


@pytest.fixture
def stores(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    return (Store(cli, tmp_path / "a" / ".wbtool", backend),
            Store(cli, tmp_path / "b" / ".wbtool", backend))


def test_push_then_pull_gives_identical_files(stores: tuple[Store, Store], tmp_path: Path,
                                              backend: Backend) -> None:
    a, b = stores
    files = {f"part{i // 10}/f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(20)}
    files["big.bin"] = os.urandom((4 << 20) + 1)  # above the in-memory limit: streamed
    src = make_tree(tmp_path / "src", files)
    a("artifact", "log", "data", str(src), "--type", "dataset", "-a", "prod")
    (src / "part0" / "f1.txt").write_bytes(b"changed\n")
    a("artifact", "log", "data", str(src), "--type", "dataset", "--metadata", '{"k": 1}')

    dry = a.result("sync", "--dry-run")
    assert dry["dry_run"] and dry["objects_sent"] == 22 and dry["versions_sent"] == 2
    assert backend.open().list() == []  # a dry run writes nothing

    first = a.result("sync")
    assert (first["objects_sent"], first["versions_sent"], first["manifests_sent"]) == (22, 2, 2)
    assert first["bytes_sent"] == sum(len(v) for v in files.values()) + len(b"changed\n")
    again = a.result("sync")
    assert (again["objects_sent"], again["versions_sent"], again["aliases_sent"]) == (0, 0, 0)
    _assert_noop_push_only_lists(a, backend)

    pulled = b.result("pull")
    assert (pulled["versions_pulled"], pulled["objects_received"]) == (2, 22)
    assert pulled["refused"] == [] and pulled["warnings"] == []
    for version in ("v0", "v1"):
        root = tmp_path / f"out-{version}"
        b("artifact", "download", f"data:{version}", "--root", str(root))
        want = dict(files)
        if version == "v1":
            want["part0/f1.txt"] = b"changed\n"
        assert read_tree(root) == want
    listed = {r["version"]: r for r in b.result("artifact", "ls", "data")}
    made = {r["version"]: r["created_at"] for r in a.result("artifact", "ls", "data")}
    assert {v: r["created_at"] for v, r in listed.items()} == made  # when made, not pulled
    assert listed["v0"]["aliases"] == ["prod"]
    assert listed["v1"]["aliases"] == ["latest"] and listed["v1"]["metadata"] == {"k": 1}

    # An alias moved in A reaches B through the remote; no version is new.
    a("artifact", "alias", "add", "data:v1", "prod")
    assert a.result("sync")["aliases_sent"] == 1
    again = b.result("pull")
    assert (again["aliases_moved"], again["versions_pulled"], again["objects_received"]) == (
        1, 0, 0)
    assert b.result("artifact", "info", "data:prod")["version"] == "v1"


class _Counting:
    """A remote that records every call it forwards."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("read", "write", "create_exclusive", "exists", "list", "put_file",
                    "get_file", "delete"):
            def call(*args: Any) -> Any:
                self.calls.append((name, str(args[0]) if args else ""))
                return attr(*args)
            return call
        return attr


def _assert_noop_push_only_lists(store: Store, backend: Backend) -> None:
    """A push with nothing new lists the version records once and sends nothing."""
    from wbtool.artifacts.registry import Registry
    from wbtool.remote import push
    from wbtool.store.layout import Store as LocalStore

    local = LocalStore.open(store.path, create=False)
    try:
        remote = _Counting(backend.open())
        remote.list("")  # connect (and import the backend) before timing
        remote.calls.clear()
        res = push.push(Registry(local), remote, jobs=4)  # type: ignore[arg-type]
    finally:
        local.close()
    assert (res.objects_sent, res.versions_sent, res.aliases_sent) == (0, 0, 0)
    assert remote.calls == [("list", "projects/uncategorized/artifacts")]


def _log_versions(store: Store, tmp_path: Path, tag: str, n: int) -> None:
    src = tmp_path / f"src-{tag}"
    for i in range(n):
        make_tree(src, {"f.txt": f"{tag} {i}\n".encode(), f"g{i}.txt": tag.encode()})
        store("artifact", "log", "data", str(src), "--type", "dataset")


def test_sync_without_a_remote_is_a_clear_error(cli: Cli) -> None:
    res = cli("sync")
    assert res.code == 3 and res.err.startswith("wbtool: error: no default remote")


def test_concurrent_pushes_get_distinct_versions(stores: tuple[Store, Store], tmp_path: Path,
                                                 backend: Backend) -> None:
    a, b = stores
    _log_versions(a, tmp_path, "a", 3)
    _log_versions(b, tmp_path, "b", 3)
    procs = [subprocess.Popen([sys.executable, "-m", "wbtool", "sync", "--json"],
                              env={**os.environ, **s.env}, cwd=a.cli.cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (a, b)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert json.loads(out)["result"]["versions_sent"] == 3
    remote = backend.open()
    paths = remote.list(records.collection_prefix("uncategorized", "data") + "/versions")
    assert len(paths) == 6
    docs = [records.VersionRecordDoc.from_bytes(remote.read(p), p, "uncategorized", "data",
                                                int(p.rsplit("/v", 1)[1][:-5])) for p in paths]
    assert sorted(d.version for d in docs) == list(range(6))
    assert len({d.digest for d in docs}) == 6
    # Each store learns the other's versions, and pushing again sends nothing.
    assert a.result("pull")["versions_pulled"] == 3
    assert a.result("sync")["versions_sent"] == 0


def _publish(remote: Any, entries: dict[str, Any], *, record: dict[str, Any] | None = None,
             idx: int = 0, name: str = "evil") -> tuple[str, str]:
    """Write a hand-made manifest and its version record straight to the remote."""
    body = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    manifest = f'{{"entries":{body},"hash":"xxh3-128","version":1}}'.encode()
    mdigest = hash_bytes(manifest)
    remote.write(records.manifest_path(mdigest), manifest)
    doc = {"format": 1, "kind": "artifact-version", "project": "uncategorized",
           "name": name, "version": idx, "digest": hash_bytes(body.encode()),
           "manifest": mdigest, "size": sum(e["size"] for e in entries.values()),
           "file_count": len(entries), "type": "dataset", "description": None,
           "metadata": {}, "created_at": 1.0, "tags": [], **(record or {})}
    remote.write(records.version_path("uncategorized", name, idx), json.dumps(doc).encode())
    return mdigest, doc["digest"]


HOSTILE = ["../escape", "/tmp/wbtool-escape-abs", "a/../../escape", "./b", "c\\d"]


def test_hostile_manifests_are_refused(stores: tuple[Store, Store], tmp_path: Path,
                                       backend: Backend) -> None:
    _, b = stores
    remote = backend.open()
    data = b"pwned\n"
    remote.write(records.object_path(hash_bytes(data)), data)
    for i, path in enumerate(HOSTILE):
        _publish(remote, {path: {"digest": hash_bytes(data), "size": len(data)}},
                 name=f"evil{i}")
    res = b("pull", "--json", code=4)
    last = res.err.splitlines()[-1]
    assert last.startswith("wbtool: error: refused ") and "refused entry" in last, res.err
    doc = json.loads(res.out)["result"]
    assert doc["versions_pulled"] == 0 and len(doc["refused"]) == len(HOSTILE)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "a" / "escape").exists()
    assert not Path("/tmp/wbtool-escape-abs").exists()
    assert not list((tmp_path / "b" / ".wbtool" / "objects").rglob("*"))
    assert b.result("artifact", "ls") == []


def test_a_manifest_with_a_file_over_a_folder_is_refused(
    stores: tuple[Store, Store], backend: Backend
) -> None:
    """It could never be written out: pulling must not record it."""
    _, b = stores
    remote = backend.open()
    data = b"x\n"
    remote.write(records.object_path(hash_bytes(data)), data)
    entry = {"digest": hash_bytes(data), "size": len(data)}
    _publish(remote, {"x": entry, "x/y": entry})
    doc = json.loads(b("pull", "--json", code=4).out)["result"]
    assert doc["versions_pulled"] == 0
    assert "'x' is both a file and a folder" in doc["refused"][0]["reason"]
    assert b.result("artifact", "ls") == []


def _good_v0(remote: Any) -> dict[str, dict[str, Any]]:
    """Publish version 0 of 'evil', one good file; return its entries."""
    data = b"fine\n"
    remote.write(records.object_path(hash_bytes(data)), data)
    entries = {"ok.txt": {"digest": hash_bytes(data), "size": len(data)}}
    _publish(remote, entries)
    return entries


def test_bad_records_are_refused_or_skipped(stores: tuple[Store, Store],
                                            backend: Backend) -> None:
    _, b = stores
    remote = backend.open()
    entries = _good_v0(remote)
    _publish(remote, entries, record={"size": "5"}, idx=1)  # wrong type: refused
    remote.write(records.version_path("uncategorized", "evil", 2), b'{"format": 1, "ki')
    for idx, when in enumerate([-1e300, float("nan"), 1e300], start=3):  # no time to show
        _publish(remote, entries, record={"created_at": when}, idx=idx)
    _publish(remote, entries, record={"run_id": "../../escape"}, idx=6)
    res = b("pull", "evil", "--json", code=4)
    doc = json.loads(res.out)["result"]
    assert doc["versions_pulled"] == 1
    assert [r["path"].rsplit("/", 1)[1] for r in doc["refused"]] == [
        "v1.json", "v3.json", "v4.json", "v5.json", "v6.json"]
    assert "run id" in doc["refused"][-1]["reason"]
    assert "created_at" in doc["refused"][1]["reason"]
    assert any("v2.json" in w for w in doc["warnings"])
    assert b.result("artifact", "info", "evil:v0")["file_count"] == 1
    assert "not found" in b("pull", "nothing", code=3).err


def test_sizes_past_what_a_store_can_hold_are_refused(stores: tuple[Store, Store],
                                                      backend: Backend) -> None:
    """A size the index cannot hold (past 2**63-1) is a refused record, not a traceback."""
    _, b = stores
    remote = backend.open()
    digest = _good_v0(remote)["ok.txt"]["digest"]
    _publish(remote, {"big.bin": {"digest": digest, "size": 10**30}}, idx=1)
    _publish(remote, {"x": {"digest": digest, "size": 2**63 - 1},
                      "y": {"digest": digest, "size": 1}}, idx=2)
    res = b("pull", "evil", "--json", code=4)
    assert res.err.count("\n") == 2 and "Traceback" not in res.err, res.err
    doc = json.loads(res.out)["result"]
    assert doc["versions_pulled"] == 1
    assert [r["path"].rsplit("/", 1)[1] for r in doc["refused"]] == ["v1.json", "v2.json"]
    assert all("size is not an integer" in r["reason"] for r in doc["refused"])
    assert [v["version"] for v in b.result("artifact", "ls", "evil")] == ["v0"]


def test_records_whose_metadata_is_not_standard_json_are_refused(
        stores: tuple[Store, Store], backend: Backend) -> None:
    """A record with NaN or Infinity in its metadata is refused like any
    other bad record; one nested past what a reader can take is skipped as
    unreadable, like truncated JSON."""
    _, b = stores
    remote = backend.open()
    data = b"fine\n"
    remote.write(records.object_path(hash_bytes(data)), data)
    entries = {"ok.txt": {"digest": hash_bytes(data), "size": len(data)}}
    _publish(remote, entries, record={"metadata": {"k": [1.5]}})  # v0 is good
    _publish(remote, entries, record={"metadata": {"k": float("nan")}}, idx=1)
    _publish(remote, entries, record={"metadata": {"k": [float("inf")]}}, idx=2)
    nested = '"metadata":{"k":' + "[" * 5000 + "]" * 5000 + "},"
    doc = remote.read(records.version_path("uncategorized", "evil", 0))
    remote.write(records.version_path("uncategorized", "evil", 3),
                 doc.replace(b'"metadata": {"k": [1.5]},', nested.encode()))
    res = b("pull", "evil", "--json", code=4)
    assert "Traceback" not in res.err
    doc = json.loads(res.out)["result"]
    assert doc["versions_pulled"] == 1
    assert [r["path"].rsplit("/", 1)[1] for r in doc["refused"]] == ["v1.json", "v2.json"]
    assert any("v3.json" in w and "nested too deeply" in w for w in doc["warnings"])
    assert b.result("artifact", "info", "evil:v0")["metadata"] == {"k": [1.5]}


def test_corrupt_remote_object_is_not_stored(stores: tuple[Store, Store], tmp_path: Path,
                                             backend: Backend) -> None:
    a, b = stores
    src = make_tree(tmp_path / "src", {"x.txt": b"good bytes\n", "y.txt": b"other\n"})
    a("artifact", "log", "data", str(src), "--type", "dataset")
    a("sync")
    remote = backend.open()
    digest = hash_bytes(b"good bytes\n")
    remote.write(records.object_path(digest), b"evil bytes\n")
    res = b("pull", "data", code=4)
    assert "does not match its digest" in res.err
    objects = b.path / "objects"
    assert not (objects / digest[:2] / digest[2:]).exists()
    assert not any(p.read_bytes() == b"evil bytes\n" for p in objects.rglob("*") if p.is_file())
    # Using it fetches it from the remote, and refuses it again: nothing is stored.
    res = b("artifact", "info", "data", code=4)
    assert "refused" in res.err and "does not match its digest" in res.err
    assert not (objects / digest[:2] / digest[2:]).exists()


def test_pull_all_projects_takes_what_sync_pushed_of_every_project(
        stores: tuple[Store, Store], tmp_path: Path, backend: Backend) -> None:
    """``sync`` pushes every project; ``pull --all-projects`` brings them all
    back: their artifacts, or with --all-runs their runs."""
    a, b = stores
    src = make_tree(tmp_path / "src", {"x.txt": b"x\n"})
    for project in ("p1", "p2"):
        a("artifact", "log", f"{project}/data", str(src), "--type", "dataset")
        a("run", "-p", project, "--id", f"run-{project}", "--no-stats", "-q", "--",
          sys.executable, "-c", "print('hi')")
    remote = backend.open()
    remote.write("projects/bad name/x.txt", b"x")  # no project: passed over with a warning
    assert a.result("sync")["runs_sent"] == 2

    is_usage = b("pull", "--all-projects", "data", code=2)
    assert "--all-projects" in is_usage.err
    b("pull", "--all-projects", "-p", "p1", code=2)
    got = b.result("pull", "--all-projects")
    assert got["versions_pulled"] == 2 and got["runs_pulled"] == 0
    assert any("bad name" in w for w in got["warnings"])
    for project in ("p1", "p2"):
        assert b.result("artifact", "info", f"{project}/data:v0")["version"] == "v0"
    runs = b.result("pull", "--all-projects", "--all-runs")
    assert sorted(runs["runs"]) == ["run-p1", "run-p2"] and runs["versions_pulled"] == 0
    assert [r["id"] for r in b.result("runs", "list", "-p", "p2")] == ["run-p2"]


LOGS_A_MODEL = """
import pathlib, wbtool
run = wbtool.init(project="p", id="maker001", settings={"quiet": True, "console": "off"})
pathlib.Path("ck").mkdir()
pathlib.Path("ck/model.bin").write_bytes(b"weights")
run.log_artifact("ck", name="net", type="model", aliases=["best"])
run.finish()
"""


def test_a_pulled_version_names_the_run_that_logged_it(cli: Cli, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    """The version record on the remote names the run that logged it; a pull
    dropped it, so the pulling store had no ``logged_by`` for any version."""
    backend = make_backend(request, "local", tmp_path)
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    b = Store(cli, tmp_path / "b" / ".wbtool", backend)
    (tmp_path / "src").mkdir()
    subprocess.run([sys.executable, "-c", LOGS_A_MODEL], cwd=tmp_path / "src", check=True,
                   env={**os.environ, **a.env}, timeout=120)
    a("sync")
    b("pull", "-p", "p", "--all-runs")
    b("pull", "net", "-p", "p")
    assert b.result("artifact", "info", "net:best", "-p", "p")["run_id"] == "maker001"
    logged = subprocess.run(
        [sys.executable, "-c", "import wbtool; api = wbtool.Api(); "
         "print(api.artifact('p/net:v0').logged_by().id, "
         "[a.name for a in api.run('p/maker001').logged_artifacts()])"],
        env={**os.environ, **b.env}, capture_output=True, text=True, check=True, timeout=120)
    assert logged.stdout.split() == ["maker001", "['net:v0']"]


def test_a_pull_of_a_project_the_remote_lacks_names_the_projects_it_has(
        cli: Cli, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``wbtool pull`` in a new store (the default project) said it pulled 0
    versions, as if the remote held nothing, while it held another project."""
    backend = make_backend(request, "local", tmp_path)
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    b = Store(cli, tmp_path / "b" / ".wbtool", backend)
    src = make_tree(tmp_path / "src", {"f.txt": b"x"})
    a("artifact", "log", "data", str(src), "--type", "dataset", "-p", "team")
    a("sync")
    for args in ((), ("--all-runs",)):
        res = b("pull", *args)
        assert res.err == (f"wbtool: warning: {backend.url} holds nothing of project "
                           "'uncategorized' (its projects: team); pass --project or "
                           "--all-projects\n")
    assert b("pull", "-p", "team").err == ""  # pulled: no warning
    assert b("pull", "-p", "team").err == ""  # nothing new, of a project it has: none either


def _numbers(store: Store) -> dict[str, str]:
    """Each version's number and its digest, and which one is latest."""
    rows = store.result("artifact", "ls", "data")
    out = {r["version"]: r["digest"] for r in rows}
    out["latest"] = next(r["version"] for r in rows if "latest" in r["aliases"])
    return out


def test_a_version_deleted_here_comes_back_with_its_number_and_not_as_latest(
        cli: Cli, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """It came back as a new number above all others, and so took ``latest``
    from the version logged after it."""
    a = Store(cli, tmp_path / "a" / ".wbtool", make_backend(request, "local", tmp_path))
    _log_versions(a, tmp_path, "a", 3)
    a("sync")
    before = _numbers(a)
    a("artifact", "rm", "data:v2")
    _log_versions(a, tmp_path, "later", 1)
    a("sync")
    assert a.result("pull")["versions_pulled"] == 1  # the remote still has it
    after = _numbers(a)
    assert after["v2"] == before["v2"]
    assert sorted(after) == ["latest", "v0", "v1", "v2", "v3"] and after["latest"] == "v3"
    _log_versions(a, tmp_path, "next", 1)
    assert _numbers(a)["latest"] == "v4"


def test_a_pulled_version_keeps_the_remote_number_where_it_is_free(
        cli: Cli, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A store that pulls one version, then the ones before it, numbers them
    as the remote does."""
    backend = make_backend(request, "local", tmp_path)
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    b = Store(cli, tmp_path / "b" / ".wbtool", backend)
    _log_versions(a, tmp_path, "a", 4)
    a("sync")
    b("pull", "data:v3")
    assert sorted(_numbers(b).items()) == [("latest", "v3"), ("v3", _numbers(a)["v3"])]
    b("pull")
    assert _numbers(b) == _numbers(a)
    _log_versions(b, tmp_path, "b", 1)
    assert _numbers(b)["latest"] == "v4"
