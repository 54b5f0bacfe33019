"""A folder remote that is missing, or damaged or edited by hand: reading
commands say so in one line with a documented exit code, never read it as an
empty remote, never crash, and never store or delete anything because of it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree
from tests.remote.conftest import Backend
from tests.remote.test_sync import Store
from wbtool.errors import (
    EXIT_NOT_FOUND,
    EXIT_REMOTE_UNREACHABLE,
    EXIT_VERIFY_FAILED,
    NotFoundError,
    RemoteUnreachableError,
)
from wbtool.hashing import hash_bytes
from wbtool.remote import records
from wbtool.remote.fs import open_remote

FILES = {"a.txt": b"first\n", "big.bin": os.urandom((4 << 20) + 10)}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) >= 1, err
    return lines[-1]


# -- a folder that does not exist ---------------------------------------------------------------

@pytest.fixture
def local(cli: Cli, tmp_path: Path) -> Store:
    """A store with one version and a default remote whose folder does not exist."""
    backend = Backend("local", str(tmp_path / "no-such-remote"), {})
    store = Store(cli, tmp_path / "a" / ".wbtool", backend)
    store("artifact", "log", "data", str(make_tree(tmp_path / "src", FILES)), "--type", "d")
    return store


@pytest.mark.parametrize("args", [
    ("pull",), ("pull", "data"), ("pull", "--all-runs"), ("pull", "--run", "abc123"),
    ("gc", "--remote", "team"), ("gc", "--remote", "team", "--yes"),
    ("artifact", "download", "other:latest"), ("artifact", "info", "other:v3"),
])
def test_reading_a_missing_folder_is_unreachable(local: Store, tmp_path: Path,
                                                 args: tuple[str, ...]) -> None:
    res = local(*args, code=EXIT_REMOTE_UNREACHABLE)
    last = _one_line(res.err)
    assert last == (f"wbtool: error: remote {tmp_path / 'no-such-remote'} is unreachable: "
                    "the folder does not exist"), res.err
    assert not (tmp_path / "no-such-remote").exists()


def test_a_missing_default_remote_does_not_hide_local_versions(local: Store) -> None:
    assert local.result("artifact", "info", "data:latest")["version"] == "v0"
    local("artifact", "download", "nothing-here:v0", "--root", "x",
          code=EXIT_REMOTE_UNREACHABLE)


def test_a_push_makes_the_folder_one_level_deep(local: Store, cli: Cli, tmp_path: Path) -> None:
    dry = local.result("sync", "--dry-run")
    assert dry["versions_sent"] == 1 and dry["objects_sent"] == 2
    assert not (tmp_path / "no-such-remote").exists()  # a dry run makes nothing

    deep = tmp_path / "no-such-parent" / "remote"
    res = local("sync", "--remote", str(deep), code=EXIT_REMOTE_UNREACHABLE)
    assert _one_line(res.err).endswith(f"the folder {deep.parent} does not exist")
    assert not deep.parent.exists()

    assert local.result("sync")["versions_sent"] == 1
    assert (tmp_path / "no-such-remote").is_dir()
    other = Store(cli, tmp_path / "b" / ".wbtool",
                  Backend("local", str(tmp_path / "no-such-remote"), {}))
    assert other.result("pull")["versions_pulled"] == 1


def test_adding_a_missing_folder_is_allowed_and_said(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "later"
    res = cli("remote", "add", "later", str(missing), "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["result"]["url"] == str(missing)
    assert "does not exist yet" in res.err and "wbtool sync" in res.err
    assert not missing.exists()
    res = cli("remote", "add", "here", str(tmp_path))
    assert res.code == 0 and res.err == ""
    deeper = tmp_path / "no" / "such"
    res = cli("remote", "add", "deeper", str(deeper))
    assert res.code == 0 and "nor does the folder above it" in res.err and "mkdir -p" in res.err
    (tmp_path / "afile").write_bytes(b"x")
    res = cli("remote", "add", "afile", str(tmp_path / "afile" / "x"))
    assert res.code == 0 and "nor does the folder above it" in res.err
    res = cli("remote", "add", "file", str(tmp_path / "afile"))
    assert res.code == 2 and "is not a folder" in res.err
    assert not deeper.parent.exists()


def test_the_library_tells_a_missing_folder_from_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_bytes(b"x")
    reader = open_remote(str(tmp_path / "gone"))
    for call in (lambda: reader.read("a/b"), lambda: reader.list(), lambda: reader.exists("a"),
                 lambda: reader.list_detail("a"), lambda: reader.get_file("a", tmp_path / "g"),
                 lambda: reader.write("a", b"x"), lambda: reader.delete("a"),
                 lambda: reader.put_file(tmp_path / "local.txt", "a")):
        with pytest.raises(RemoteUnreachableError, match="the folder does not exist"):
            call()
    assert not (tmp_path / "gone").exists()

    pusher = open_remote(str(tmp_path / "gone"), create=True)
    assert pusher.list() == [] and not pusher.exists("a")
    with pytest.raises(NotFoundError):
        pusher.read("a")
    assert not (tmp_path / "gone").exists()
    assert pusher.create_exclusive("v/a", b"x")
    assert open_remote(str(tmp_path / "gone")).read("v/a") == b"x"


def test_not_found_on_an_existing_folder_stays_not_found(local: Store, tmp_path: Path) -> None:
    (tmp_path / "no-such-remote").mkdir()
    res = local("pull", "data", code=EXIT_NOT_FOUND)
    assert "not found" in _one_line(res.err)
    assert local.result("pull")["versions_pulled"] == 0  # an empty remote


# -- files and folders that wbtool never writes -------------------------------------------------

@pytest.fixture
def pushed(cli: Cli, tmp_path: Path, backend: Backend) -> tuple[Store, Store]:
    """Two versions of ``data`` and a run pushed by one store; a second, empty store."""
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    src = make_tree(tmp_path / "src", FILES)
    a("artifact", "log", "data", str(src), "--type", "dataset")
    make_tree(src, {"a.txt": b"second\n"})
    a("artifact", "log", "data", str(src), "--type", "dataset")
    a("run", "--", sys.executable, "-c", "print('ok')")
    a("sync")
    return a, Store(cli, tmp_path / "b" / ".wbtool", backend)


def _warnings(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("wbtool: warning: ")]


def test_gc_skips_stray_folders_and_keeps_what_a_stray_record_names(
        pushed: tuple[Store, Store], backend: Backend) -> None:
    a, _ = pushed
    remote = backend.open()
    v1 = records.version_path("uncategorized", "data", 1)
    record = remote.read(v1)
    remote.write("projects/README", b"notes\n")
    remote.write("projects/bad name!/artifacts/data/versions/v1.json", record)  # moved by hand
    remote.write("projects/bad name!/artifacts/data/versions/v2.json", b"{}")
    remote.write("projects/uncategorized/artifacts/bad name!/versions/v0.json", b"x")
    remote.delete(v1)
    before = remote.list()

    res = a("gc", "--remote", "team", "--grace", "0", "--yes", "--json")
    doc = json.loads(res.out)["result"]
    assert (doc["objects"], doc["manifests"], doc["versions"]) == (0, 0, 1)
    warned = _warnings(res.err)
    assert len(warned) == 3 and sorted(warned) == sorted(
        f"wbtool: warning: {w}" for w in doc["warnings"])
    assert any("projects/bad name!/ (not a valid name)" in w for w in warned)
    assert any(w.endswith("projects/README") for w in warned)
    assert remote.list() == before  # nothing swept, no stray touched


def test_pull_skips_stray_folders_with_one_warning_each(pushed: tuple[Store, Store],
                                                        backend: Backend) -> None:
    _, b = pushed
    remote = backend.open()
    for i in range(3):
        remote.write(f"projects/uncategorized/artifacts/bad name!/versions/v{i}.json", b"x")
        remote.write(f"projects/uncategorized/runs/not a run!/f{i}", b"x")
    remote.write("projects/uncategorized/runs/README", b"x")
    res = b("pull", "--json")
    doc = json.loads(res.out)["result"]
    assert doc["versions_pulled"] == 2 and doc["refused"] == []
    assert len(doc["warnings"]) == 1 and "artifacts/bad name!/" in doc["warnings"][0]
    assert len(_warnings(res.err)) == 1

    res = b("pull", "--all-runs", "--json")
    doc = json.loads(res.out)["result"]
    assert doc["refused"] == [] and doc["runs_pulled"] == 1
    assert sorted(doc["warnings"]) == sorted(
        w[len("wbtool: warning: "):] for w in _warnings(res.err))
    assert [w.rsplit("/runs/", 1)[1] for w in sorted(doc["warnings"])] == [
        "README", "not a run!/ (not a valid name)"]


# -- objects that are not what the manifest says ------------------------------------------------

@pytest.fixture
def folder(cli: Cli, tmp_path: Path) -> tuple[Store, Store, Path]:
    """A store that pushed ``data:v0`` (a small and a large file) to a folder,
    a second store with that folder as its default remote, and the folder."""
    backend = Backend("local", str(tmp_path / "remote"), {})
    (tmp_path / "remote").mkdir()
    a = Store(cli, tmp_path / "a" / ".wbtool", backend)
    a("artifact", "log", "data", str(make_tree(tmp_path / "src", FILES)), "--type", "d")
    a("sync", "--no-runs")
    return a, Store(cli, tmp_path / "b" / ".wbtool", backend), tmp_path / "remote"


def _object(remote: Path, data: bytes) -> Path:
    return remote / records.object_path(hash_bytes(data))


@pytest.mark.parametrize("name", ["a.txt", "big.bin"])
@pytest.mark.parametrize("damage", ["shorter", "longer", "missing"])
def test_an_object_that_is_not_what_the_manifest_says_is_refused(
        folder: tuple[Store, Store, Path], name: str, damage: str) -> None:
    _, b, remote = folder
    path = _object(remote, FILES[name])
    if damage == "missing":
        path.unlink()
    else:
        path.chmod(0o644)
        data = FILES[name][:-1] if damage == "shorter" else FILES[name] + b"!"
        path.write_bytes(data)
    for args in (("pull",), ("artifact", "download", "data:v0", "--root", "out")):
        res = b(*args, code=EXIT_VERIFY_FAILED)
        last = _one_line(res.err)
        assert last.startswith("wbtool: error: "), res.err
        assert ("missing on the remote" if damage == "missing" else "bytes, not") in res.err
        b("artifact", "info", "data:v0", "--json", code=EXIT_VERIFY_FAILED)
    assert b.result("artifact", "ls") == []
    assert hash_bytes(FILES[name]) not in {
        p.parent.name + p.name for p in (b.path / "objects").rglob("*") if p.is_file()}


def _lying_manifest(remote: Path, name: str, delta: int) -> None:
    """Give version v0 a manifest (and record) whose entry ``name`` says ``delta``
    more bytes than its object holds, consistent in every other way."""
    from wbtool.manifest import Manifest

    record_path = remote / records.version_path("uncategorized", "data", 0)
    record = json.loads(record_path.read_bytes())
    doc = json.loads((remote / records.manifest_path(record["manifest"])).read_bytes())
    doc["entries"][name]["size"] += delta
    manifest = Manifest.from_bytes(json.dumps(doc).encode(), "test")
    digest, canonical = manifest.serialize()
    (remote / records.manifest_path(hash_bytes(canonical))).write_bytes(canonical)
    record.update(manifest=hash_bytes(canonical), digest=digest, size=manifest.size)
    record_path.chmod(0o644)
    record_path.write_bytes(json.dumps(record, sort_keys=True).encode())


@pytest.mark.parametrize("name", ["a.txt", "big.bin"])
def test_a_manifest_whose_sizes_lie_is_refused(folder: tuple[Store, Store, Path],
                                               name: str) -> None:
    _, b, remote = folder
    _lying_manifest(remote, name, -3)
    res = b("pull", code=EXIT_VERIFY_FAILED)
    assert f"not {len(FILES[name]) - 3} as the manifest says" in res.err
    assert b.result("artifact", "ls") == []


def test_a_manifest_whose_sizes_lie_is_refused_when_the_objects_are_here(
        folder: tuple[Store, Store, Path], cli: Cli, tmp_path: Path) -> None:
    _, _, remote = folder
    _lying_manifest(remote, "a.txt", 5)
    c = Store(cli, tmp_path / "c" / ".wbtool", Backend("local", str(remote), {}))
    c("artifact", "log", "other", str(tmp_path / "src"), "--type", "d")  # the same objects
    res = c("pull", "data", code=EXIT_VERIFY_FAILED)
    assert "a.txt: the manifest says 11 bytes, the object holds 6" in _one_line(res.err)
    assert [r["name"] for r in c.result("artifact", "ls")] == ["other"]


def test_a_manifest_nested_too_deeply_is_refused(folder: tuple[Store, Store, Path]) -> None:
    """A manifest that hashes to its name but nests past the JSON parser's
    stack: pulling and downloading refuse that version in one line."""
    _, b, remote = folder
    record_path = remote / records.version_path("uncategorized", "data", 0)
    record = json.loads(record_path.read_bytes())
    nested = b'{"entries":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    (remote / records.manifest_path(hash_bytes(nested))).write_bytes(nested)
    record["manifest"] = hash_bytes(nested)
    record_path.chmod(0o644)
    record_path.write_bytes(json.dumps(record, sort_keys=True).encode())
    for args in (("pull",), ("artifact", "download", "data:v0", "--root", "out")):
        res = b(*args, code=EXIT_VERIFY_FAILED)
        assert _one_line(res.err).endswith("not valid JSON (nested too deeply)"), res.err
    assert b.result("artifact", "ls") == []
    assert not (b.cli.cwd / "out").exists()


def test_a_manifest_path_with_a_lone_surrogate_is_refused(
        folder: tuple[Store, Store, Path]) -> None:
    """Such a path passes the JSON parser but can be neither written out nor
    kept: that version is refused in one line (exit 4), not the whole pull
    ended as a usage error."""
    _, b, remote = folder
    record_path = remote / records.version_path("uncategorized", "data", 0)
    record = json.loads(record_path.read_bytes())
    manifest = (remote / records.manifest_path(record["manifest"])).read_bytes()
    bad = manifest.replace(b'"a.txt"', b'"\\udc80a.txt"', 1)
    assert bad != manifest
    (remote / records.manifest_path(hash_bytes(bad))).write_bytes(bad)
    record["manifest"] = hash_bytes(bad)
    record_path.chmod(0o644)
    record_path.write_bytes(json.dumps(record, sort_keys=True).encode())
    res = b("pull", code=EXIT_VERIFY_FAILED)
    assert "not valid UTF-8" in _one_line(res.err), res.err
    assert b.result("artifact", "ls") == []


def test_a_missing_object_fetched_again_must_match(folder: tuple[Store, Store, Path]) -> None:
    a, _, remote = folder
    local = a.path / "objects" / records.object_path(hash_bytes(FILES["a.txt"]))[8:]
    local.unlink()
    _object(remote, FILES["a.txt"]).chmod(0o644)
    _object(remote, FILES["a.txt"]).write_bytes(b"firs\n")
    res = a("artifact", "download", "data:v0", "--root", "out", code=EXIT_VERIFY_FAILED)
    assert "holds 5 bytes, not 6" in _one_line(res.err)
    assert not local.exists()
