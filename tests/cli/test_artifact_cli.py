"""``wbtool artifact`` through the real entry point, against a private store."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    SKIPPED_LINKS,
    Cli,
    Result,
    is_error,
    linked_tree,
    make_tree,
    read_tree,
    unprivileged,
    write_protected,
)
from wbtool.errors import NotFoundError, UsageError
from wbtool.hashing import hash_bytes, hash_file

TREE = {
    "a.txt": b"alpha\n",
    "empty.bin": b"",
    "nested/deeper/c.csv": b"1,2,3\n" * 100,
    "données/é ü.txt": "unicode ✓".encode(),
    "big.bin": os.urandom(5 << 20),
}


def versions(store: Path, name: str) -> list[int]:
    db = sqlite3.connect(store / "index.db")
    try:
        return [r[0] for r in db.execute(
            "SELECT v.idx FROM versions v JOIN collections c ON c.id=v.collection_id"
            " WHERE c.name=? ORDER BY v.idx", (name,))]
    finally:
        db.close()


def test_round_trip_is_byte_identical(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", TREE)
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    doc = res.json()["result"]
    assert doc["version"] == "v0" and doc["file_count"] == len(TREE) and doc["created"]
    assert doc["aliases"] == ["latest"]
    cli("artifact", "download", "ds:v0", "--root", str(tmp_path / "out"), check=True)
    assert read_tree(tmp_path / "out") == TREE
    # the default root is ./artifacts/<name>:<version>
    cli("artifact", "download", "ds", check=True)
    assert read_tree(tmp_path / "work" / "artifacts" / "ds:v0") == TREE


def test_a_path_prefix_is_a_string_prefix_and_one_that_matches_nothing_is_noted(
    cli: Cli, tmp_path: Path
) -> None:
    data = make_tree(tmp_path / "data", {"models/m.pt": b"m"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    out = tmp_path / "out"
    res = cli("artifact", "download", "ds", "--root", str(out), "--path-prefix", "model/",
              check=True)
    assert "no file of ds:v0 starts with 'model/'" in res.err and "0 written" in res.out
    res = cli("artifact", "download", "ds", "--root", str(out), "--path-prefix", "models/",
              check=True)
    assert res.err == "" and read_tree(out) == {"models/m.pt": b"m"}
    cli("artifact", "download", "ds", "--root", str(tmp_path / "o2"), "--path-prefix", "model",
        check=True)  # a string prefix, not a folder's name
    assert read_tree(tmp_path / "o2") == {"models/m.pt": b"m"}


def test_version_bump_and_noop(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    data = make_tree(tmp_path / "data", {"x": b"1"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["created"] is False
    assert versions(store_dir, "ds") == [0]
    (data / "x").write_bytes(b"2")
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["version"] == "v1"
    assert versions(store_dir, "ds") == [0, 1]
    res = cli("artifact", "diff", "ds:v0", "ds:v1", "--json", check=True)
    assert res.json()["result"] == {"added": [], "removed": [], "changed": ["x"]}


def test_type_mismatch_is_a_conflict(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"x": b"1"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    (data / "x").write_bytes(b"2")
    res = cli("artifact", "log", "ds", str(data), "--type", "model")
    assert res.code == 5 and "type" in res.err


def test_checkout_removes_extra_files(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"keep.txt": b"k", "sub/s.txt": b"s"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    target = make_tree(tmp_path / "target", {
        "keep.txt": b"modified", "extra.txt": b"x", "junk/deep/y": b"y", "sub/other": b"o"})
    os.symlink("/etc/passwd", target / "link")
    before = read_tree(target)
    # Files that no version of ds has are someone's work: refused, nothing deleted.
    refused = cli("artifact", "checkout", "ds:latest", str(target))
    assert refused.code == 5, refused.err
    assert refused.err.startswith(f"wbtool: error: {target} holds 3 files that no version of "
                                  "ds has (such as 'extra.txt')")
    assert "--force" in refused.err and len(refused.err.splitlines()) == 1
    assert read_tree(target) == before and os.path.islink(target / "link")
    res = cli("artifact", "checkout", "ds:latest", str(target), "--force", "--json",
              check=True)
    assert res.json()["result"]["removed"] == 4
    assert read_tree(target) == {"keep.txt": b"k", "sub/s.txt": b"s"}
    assert not (target / "junk").exists() and not os.path.lexists(target / "link")


def test_checkout_deletes_what_other_versions_left_without_force(
        cli: Cli, tmp_path: Path) -> None:
    """Switching a checkout between versions deletes the files of the other
    version (and a link), as git does; a file of nobody's is kept and told."""
    v0 = make_tree(tmp_path / "v0", {"a.txt": b"a0", "old/only0.txt": b"z"})
    v1 = make_tree(tmp_path / "v1", {"a.txt": b"a1", "new/only1.txt": b"y"})
    cli("artifact", "log", "ds", str(v0), "--type", "dataset", check=True)
    cli("artifact", "log", "ds", str(v1), "--type", "dataset", check=True)
    ws = tmp_path / "ws"
    cli("artifact", "checkout", "ds:v0", str(ws), check=True)
    os.symlink(tmp_path / "v0", ws / "link")
    res = cli("artifact", "checkout", "ds:v1", str(ws), "--json", check=True)
    assert res.json()["result"]["removed"] == 2
    assert read_tree(ws) == {"a.txt": b"a1", "new/only1.txt": b"y"}
    (ws / "notes.txt").write_bytes(b"mine")
    assert cli("artifact", "checkout", "ds:v0", str(ws)).code == 5
    assert read_tree(ws) == {"a.txt": b"a1", "new/only1.txt": b"y", "notes.txt": b"mine"}


def test_checkout_keeps_a_store_inside_a_folder_it_deletes(
        cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"a.txt": b"a"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    ws = make_tree(tmp_path / "ws", {"other/.wbtool/config.yaml": b"format: 1\n",
                                     "other/notes.txt": b"n", "loose.txt": b"l"})
    cli("artifact", "checkout", "ds", str(ws), "--force", check=True)
    assert read_tree(ws) == {"a.txt": b"a", "other/.wbtool/config.yaml": b"format: 1\n"}


def test_checkout_never_empties_the_home_folder_or_the_root(
        cli: Cli, tmp_path: Path) -> None:
    """An unset variable (``checkout m:v1 "$OUT/"``) must not wipe a machine:
    the home folder and ``/`` are refused even with --force (``/`` is only
    asked of the check itself: a test must never aim a checkout at it)."""
    from wbtool.artifacts.materialize import refuse_dangerous_root

    home = make_tree(tmp_path / "home", {".bashrc": b"mine", "work/train.py": b"code"})
    data = make_tree(tmp_path / "data", {"a.txt": b"a"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    before = read_tree(home)
    for target in (str(home), str(home) + "/", str(home / "work" / "..")):
        res = cli("artifact", "checkout", "ds", target, "--force", env={"HOME": str(home)})
        assert res.code == 2 and "refusing to check out into" in res.err, res.err
        assert read_tree(home) == before
    for root in ("/", "//", "/."):
        with pytest.raises(UsageError, match="refusing to check out into"):
            refuse_dangerous_root(root)
    empty = cli("artifact", "checkout", "ds", "")
    assert empty.code == 2 and "name the folder" in empty.err


@pytest.mark.parametrize("link", ["copy", "hardlink", "symlink"])
def test_checkout_link_modes(cli: Cli, tmp_path: Path, link: str) -> None:
    data = make_tree(tmp_path / "data", {"a": b"A", "d/b": b"B"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    out = tmp_path / "out"
    cli("artifact", "checkout", "ds", str(out), "--link", link, check=True)
    assert read_tree(out) == {"a": b"A", "d/b": b"B"}
    if link == "copy":
        (out / "a").write_bytes(b"mine")  # copies are the user's to change
    cli("artifact", "verify", "ds", check=True)  # the store is unaffected


@pytest.mark.parametrize("policy", ["mutable", "immutable"])
@pytest.mark.parametrize("count", [2, 20], ids=["loose", "packed"])
def test_a_symlinked_checkout_logged_again_keeps_its_files(
    cli: Cli, tmp_path: Path, store_dir: Path, policy: str, count: int
) -> None:
    """A checkout with ``--link symlink`` holds links into the store's
    objects: logging that folder again, with a file added, keeps the files
    they name instead of skipping them as links that point outside it.
    A link to any other file outside the folder is still skipped."""
    files = {f"d/f{i}": f"content {i}".encode() for i in range(count)}
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "data", files)), "--type", "t",
        check=True)
    out = tmp_path / "out"
    cli("artifact", "checkout", "ds", str(out), "--link", "symlink", check=True)
    assert all((out / rel).is_symlink() for rel in files)
    (out / "new").write_bytes(b"new")
    os.symlink(tmp_path / "data" / "d" / "f0", out / "outside")
    res = cli("artifact", "log", "ds", str(out), "--policy", policy, "--json")
    assert res.code == 0, res.err
    assert res.err.count("skipped") == 1 and "outside" in res.err
    assert res.json()["result"]["file_count"] == count + 1
    cli("artifact", "verify", "ds:v1", check=True)
    back = tmp_path / "back"
    cli("artifact", "download", "ds:v1", "--root", str(back), check=True)
    assert read_tree(back) == {**files, "new": b"new"}


def test_verify_detects_corrupt_object_and_modified_download(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", {"a": b"A" * 100, "b": b"B" * 100})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    out = tmp_path / "out"
    cli("artifact", "download", "ds", "--root", str(out), check=True)
    assert cli("artifact", "verify", "ds", "--root", str(out)).code == 0
    (out / "a").write_bytes(b"tampered")
    res = cli("artifact", "verify", "ds", "--root", str(out), "--json")
    assert res.code == 4
    assert "modified: a" in res.json()["result"]["problems"]
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    # corrupt the stored object itself
    obj = store_dir / "objects" / hash_bytes(b"B" * 100)[:2] / hash_bytes(b"B" * 100)[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"bitrot")
    res = cli("artifact", "verify", "ds")
    assert res.code == 4 and "corrupt" in res.err


def test_aliases_tags_and_latest(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"x": b"1"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", "--alias", "best", check=True)
    (data / "x").write_bytes(b"2")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    info = cli("artifact", "info", "ds:best", "--json", check=True).json()["result"]
    assert info["version"] == "v0" and info["aliases"] == ["best"]
    assert cli("artifact", "info", "ds:latest", "--json").json()["result"]["version"] == "v1"
    cli("artifact", "alias", "add", "ds:v1", "best", check=True)  # moves the alias
    assert cli("artifact", "info", "ds:best", "--json").json()["result"]["version"] == "v1"
    cli("artifact", "tag", "add", "ds:v0", "golden", check=True)
    assert cli("artifact", "info", "ds:v0", "--json").json()["result"]["tags"] == ["golden"]
    cli("artifact", "tag", "rm", "ds:v0", "golden", check=True)
    cli("artifact", "alias", "rm", "ds", "best", check=True)
    assert cli("artifact", "info", "ds:best").code == 3
    assert cli("artifact", "alias", "add", "ds:v1", "v7").code == 2  # looks like a version


def test_version_numbers_of_any_size_are_not_found(cli: Cli, tmp_path: Path) -> None:
    """A version number past what the store can hold names no version, like
    any other missing one; only ASCII digits make a version number."""
    data = make_tree(tmp_path / "data", {"x": b"1"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    for version in ("v9223372036854775807", "v9223372036854775808", "v99999999999999999999",
                    "v" + "9" * 5000):
        res = cli("artifact", "info", f"ds:{version}")
        assert res.code == 3 and "not found" in res.err, (version, res.err[-300:])
        assert res.err.count("\n") == 1 and "Traceback" not in res.err
        res = cli("artifact", "alias", "rm", "ds", version)
        assert res.code == 3 and "not found" in res.err, (version, res.err[-300:])
    for version in ("v\u0660", "v\uff10", "v\u0661\u0662"):  # Arabic-Indic and fullwidth digits
        res = cli("artifact", "info", f"ds:{version}")
        assert res.code == 2 and "Traceback" not in res.err, (version, res.err)



def test_version_numbers_with_leading_zeros_name_no_version(cli: Cli, tmp_path: Path) -> None:
    """``v00``, ``v01`` and ``v007`` are not v0, v1 and v7: a version number
    has no leading zeros, and no alias can be spelled so, so they are not
    found (exit 3), on the command line and in the Python API alike."""
    import wbtool

    data = make_tree(tmp_path / "data", {"x": b"1"})
    for content in (b"1", b"2"):
        (data / "x").write_bytes(content)
        cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    assert cli("artifact", "info", "ds:v1", "--json", check=True).json()["result"]["version"] \
        == "v1"
    for version in ("v00", "v01", "v001", "v010"):
        res = cli("artifact", "info", f"ds:{version}")
        assert res.code == 3, (version, res.err)
        assert res.err == f"wbtool: error: artifact version not found: uncategorized/ds:{version}\n"
        res = cli("artifact", "alias", "add", f"ds:{version}", "best")
        assert res.code == 3, (version, res.err)
        res = cli("artifact", "alias", "add", "ds:v1", version)
        assert res.code == 2 and "version numbers" in res.err, (version, res.err)
        with pytest.raises(NotFoundError):
            wbtool.Api().artifact(f"ds:{version}")
        assert not wbtool.Api().artifact_exists(f"ds:{version}")
    assert wbtool.Api().artifact("ds:v1").version == "v1"


def test_a_name_in_another_entity_is_not_found(cli: Cli, tmp_path: Path) -> None:
    """A store has one entity: ENTITY/PROJECT/NAME with another is not found
    (exit 3, one line naming both), not read as this store's NAME."""
    data = make_tree(tmp_path / "data", {"x": b"1"})
    env = {"WBTOOL_ENTITY": "team"}
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True, env=env)
    res = cli("artifact", "info", "team/uncategorized/ds:v0", "--json", check=True, env=env)
    assert res.json()["result"]["version"] == "v0"
    for args in (("info", "other/uncategorized/ds:v0"), ("download", "other/uncategorized/ds"),
                 ("link", "ds:v0", "other/uncategorized/portfolio"),
                 ("alias", "add", "other/uncategorized/ds:v0", "best")):
        res = cli("artifact", *args, env=env)
        assert res.code == 3, (args, res.err)
        named = next(a for a in reversed(args) if a.startswith("other/"))
        assert res.err == (f"wbtool: error: {named}: "
                           "entity 'other' not found: this store's entity is 'team'\n")
    res = cli("artifact", "info", "ds:v0", "--json", check=True, env=env)
    assert res.json()["result"]["aliases"] == ["latest"]


def test_latest_cannot_be_added_by_hand(cli: Cli, tmp_path: Path) -> None:
    """As ``alias rm ds latest`` says: 'latest' always names the newest
    version, so ``alias add`` refuses it too, before touching any alias."""
    data = make_tree(tmp_path / "data", {"x": b"1"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    (data / "x").write_bytes(b"2")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    for args in (("ds:v0", "latest"), ("ds:v0", "best", "latest"), ("ds:v1", "latest")):
        res = cli("artifact", "alias", "add", *args)
        assert res.code == 2, (args, res.err)
        assert res.err == ("wbtool: error: 'latest' always names the newest version;"
                           " it cannot be added\n")
    assert cli("artifact", "info", "ds:v0", "--json").json()["result"]["aliases"] == []
    assert cli("artifact", "info", "ds:latest", "--json").json()["result"]["version"] == "v1"
    assert cli("artifact", "info", "ds:best").code == 3
    res = cli("artifact", "alias", "rm", "ds", "latest")
    assert res.code == 2 and "always names the newest version" in res.err
    for bad in ("", "no spaces", "a/b"):
        res = cli("artifact", "alias", "rm", "ds", bad)
        assert res.code == 2 and res.err.startswith("wbtool: error: invalid alias"), res.err


def test_rm_with_aliases_and_gc(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    data = make_tree(tmp_path / "data", {"x": b"only-in-v0"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", "--alias", "old", check=True)
    (data / "x").write_bytes(b"in-v1")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    res = cli("artifact", "rm", "ds:v0")  # it has an alias: named, with the flag to pass
    assert res.code == 5 and res.err == (
        "wbtool: error: ds:v0 has aliases old; pass --delete-aliases to delete it anyway\n")
    cli("artifact", "rm", "ds:v0", "--delete-aliases", check=True)
    assert cli("artifact", "info", "ds:v0").code == 3
    gone = hash_bytes(b"only-in-v0")
    assert (store_dir / "objects" / gone[:2] / gone[2:]).exists()
    res = cli("artifact", "cache", "gc", "--grace", "0", "--json", check=True)
    assert res.json()["result"]["removed"] >= 1
    assert not (store_dir / "objects" / gone[:2] / gone[2:]).exists()
    cli("artifact", "verify", "ds:v1", check=True)  # v1 survives the gc


def test_an_artifact_whose_versions_were_all_deleted(cli: Cli, tmp_path: Path,
                                                    store_dir: Path) -> None:
    """It keeps its type and numbering, so every listing shows it with no
    versions: ``ls NAME`` of it said "artifact not found" where ``ls`` (of
    its project, or of every one) listed it."""
    data = make_tree(tmp_path / "data", {"x": b"x"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", "-p", "p", check=True)
    cli("artifact", "log", "kept", str(data), "--type", "dataset", "-p", "q", check=True)
    cli("artifact", "rm", "p/ds:v0", "--delete-aliases", check=True)
    empty = {"project": "p", "name": "ds", "type": "dataset", "kind": "sequence",
             "versions": 0, "latest": None, "size": 0}
    for args in ([], ["--all-projects"], ["-p", "p"]):
        listed = cli("artifact", "ls", *args, "--json", check=True).json()["result"]
        assert empty in listed, args  # type: ignore[operator]
        assert "p\tds\tdataset\t0\t\t0 B\n" in cli("artifact", "ls", *args, check=True).out
    for args in (["p/ds"], ["ds", "-p", "p"]):
        res = cli("artifact", "ls", *args)
        assert (res.code, res.out) == (0, ""), res.err
        assert res.err == "wbtool: note: p/ds (type dataset) has no versions left\n"
        assert cli("artifact", "ls", *args, "--json", check=True).json()["result"] == []
    is_error(cli("artifact", "ls", "p/other"), 3, "artifact not found: p/other")
    is_error(cli("artifact", "info", "p/ds"), 3, "artifact version not found: p/ds:latest")
    res = cli("artifact", "log", "p/ds", str(data), "--json", check=True)  # its type stays
    assert res.json()["result"]["version"] == "v1"  # type: ignore[index]


def test_gc_forgets_the_objects_of_a_lost_pack_so_a_new_log_stores_them_again(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    """A pack file deleted by hand left its index rows: every later log took
    its objects as stored, so logging the same files again made another
    broken version, and gc kept the rows for good."""
    data = make_tree(tmp_path / "data", {f"f{i}.txt": f"file {i}\n".encode() for i in range(300)})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    packs = list((store_dir / "objects" / "pack").glob("*.pack"))
    assert packs, "small files are packed"
    for pack in packs:
        pack.unlink()
    assert cli("artifact", "verify", "ds:v0").code == 4
    cli("gc", "--grace", "0", check=True)
    (data / "new.txt").write_bytes(b"new\n")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    cli("artifact", "verify", "ds:v1", check=True)  # every object stored again
    cli("artifact", "verify", "ds:v0", check=True)  # and v0 needs no other


def test_cache_gc_collects_the_whole_store_and_takes_no_project(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    """Objects are shared by every project of a store: ``--project`` would
    promise a collection of one project's objects that gc cannot make, so it
    is refused before anything goes; an object that one project dropped and
    another still uses stays."""
    data = make_tree(tmp_path / "data", {"shared": b"in-both", "x": b"only-in-a"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", "--project", "a", check=True)
    (data / "x").unlink()
    cli("artifact", "log", "ds", str(data), "--type", "dataset", "--project", "b", check=True)
    cli("artifact", "rm", "a/ds:v0", "--delete-aliases", check=True)
    res = cli("artifact", "cache", "gc", "--grace", "0", "--project", "a")
    assert res.code == 2 and "no such option: --project" in res.err
    gone, shared = hash_bytes(b"only-in-a"), hash_bytes(b"in-both")
    assert (store_dir / "objects" / gone[:2] / gone[2:]).exists()
    cli("artifact", "cache", "gc", "--grace", "0", check=True)
    assert not (store_dir / "objects" / gone[:2] / gone[2:]).exists()
    assert (store_dir / "objects" / shared[:2] / shared[2:]).exists()
    cli("artifact", "verify", "b/ds:v0", check=True)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_gc_deletes_nothing_while_a_manifest_cannot_be_read(
    cli: Cli, tmp_path: Path, store_dir: Path, damage: str
) -> None:
    """What an unreadable manifest names is unknown: gc stops rather than
    delete objects that a pull of that manifest would need again."""
    data = make_tree(tmp_path / "data", {"x": b"only-in-v0"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    (data / "x").write_bytes(b"in-v1")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    db = sqlite3.connect(store_dir / "index.db")
    (mdigest,) = db.execute("SELECT manifest FROM versions WHERE idx=0").fetchone()
    db.close()
    manifest = store_dir / "objects" / mdigest[:2] / mdigest[2:]
    if damage == "missing":
        manifest.unlink()
    else:
        manifest.chmod(0o644)
        manifest.write_bytes(b'{"entries": {}, "hash": "xxh3-128", "version": 1}')
    res = cli("artifact", "cache", "gc", "--grace", "0")
    assert res.code == 7 and "cannot read the manifest of uncategorized/ds:v0" in res.err
    assert res.err.count("\n") == 1
    kept = hash_bytes(b"only-in-v0")
    assert (store_dir / "objects" / kept[:2] / kept[2:]).exists()
    cli("artifact", "rm", "ds:v0", check=True)  # the way out the message names
    cli("artifact", "cache", "gc", "--grace", "0", check=True)
    assert not (store_dir / "objects" / kept[:2] / kept[2:]).exists()
    cli("artifact", "verify", "ds:v1", check=True)


@pytest.mark.parametrize("grace", ["-1", "nan", "inf", "-inf", "1e999"])
def test_gc_refuses_a_grace_that_is_no_number_of_seconds(cli: Cli, tmp_path: Path,
                                                         store_dir: Path, grace: str) -> None:
    """With a negative or NaN grace period every unreferenced object counts as
    old, those of an artifact being built right now too: refused, nothing goes."""
    data = make_tree(tmp_path / "data", {"x": b"only-in-v0"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    cli("artifact", "rm", "ds:v0", "--delete-aliases", check=True)
    gone = hash_bytes(b"only-in-v0")
    for args in (("artifact", "cache", "gc"), ("gc",)):
        res = cli(*args, "--grace", grace)
        assert res.code == 2, (args, res.err)
        assert res.err.startswith("wbtool: error: the grace period (--grace) must be a number "
                                  "of seconds, 0 or more, not ") and res.err.count("\n") == 1
    assert (store_dir / "objects" / gone[:2] / gone[2:]).exists()


def test_staging_several_adds_then_one_log(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    make_tree(tmp_path / "d1", {"a.txt": b"a", "sub/b.txt": b"b"})
    make_tree(tmp_path / "d2", {"c.txt": b"c"})
    (tmp_path / "model.pt").write_bytes(b"weights")
    cli("artifact", "add", "bundle", str(tmp_path / "d1"), "--type", "model", check=True)
    cli("artifact", "add", "bundle", str(tmp_path / "d2"), check=True)
    cli("artifact", "add", "bundle", str(tmp_path / "model.pt"), "--name-in-artifact",
        "weights/model.pt", check=True)
    status = cli("artifact", "status", "bundle", "--json", check=True).json()["result"]
    assert status[0]["files"] == 4 and status[0]["type"] == "model"
    res = cli("artifact", "log", "bundle", "--json", check=True).json()["result"]
    assert res["version"] == "v0" and res["file_count"] == 4 and res["type"] == "model"
    assert cli("artifact", "status", "--json").json()["result"] == []
    out = tmp_path / "out"
    cli("artifact", "download", "bundle", "--root", str(out), check=True)
    assert read_tree(out) == {"a.txt": b"a", "sub/b.txt": b"b", "c.txt": b"c",
                              "weights/model.pt": b"weights"}
    assert cli("artifact", "log", "bundle").code == 3  # nothing staged any more
    cli("artifact", "add", "bundle", str(tmp_path / "d2"), check=True)
    cli("artifact", "reset", "bundle", check=True)
    assert cli("artifact", "status", "--json").json()["result"] == []


def test_status_with_a_project_lists_only_that_projects_drafts(
        cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    for project in ("p1", "p2"):
        cli("artifact", "add", "ds", str(tmp_path / "a.txt"), "--type", "dataset",
            "--project", project, check=True)
    every = cli("artifact", "status", "--json", check=True).json()["result"]
    assert sorted(d["project"] for d in every) == ["p1", "p2"]
    for project in ("p1", "p2"):
        mine = cli("artifact", "status", "-p", project, "--json", check=True).json()["result"]
        assert [d["project"] for d in mine] == [project]
        text = cli("artifact", "status", "-p", project, check=True).out
        assert f"{project}/ds" in text and ({"p1", "p2"} - {project}).pop() not in text


def test_incremental_draft_starts_from_the_latest_version(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"a.txt": b"a", "b.txt": b"b", "sub/s.txt": b"s"})
    (tmp_path / "c.txt").write_bytes(b"c")
    (tmp_path / "b2.txt").write_bytes(b"B")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    cli("artifact", "add", "ds", str(tmp_path / "c.txt"), "--incremental", check=True)
    cli("artifact", "add", "ds", str(tmp_path / "b2.txt"), "--name-in-artifact", "b.txt",
        check=True)
    cli("artifact", "reset", "ds", "sub", check=True)  # in an incremental draft: a removal
    status = cli("artifact", "status", "ds", "--json", check=True).json()["result"][0]
    assert status["based_on"] == "v0" and status["type"] == "dataset"
    assert status["changes"] == {"added": ["c.txt"], "removed": ["sub/s.txt"],
                                 "changed": ["b.txt"]}
    text = cli("artifact", "status", "ds", check=True).out
    assert "on top of v0: 1 added, 1 changed, 1 removed" in text and "- sub/s.txt" in text
    assert cli("artifact", "log", "ds", "--json", check=True).json()["result"]["version"] == "v1"
    out = tmp_path / "out"
    cli("artifact", "download", "ds:v1", "--root", str(out), check=True)
    assert read_tree(out) == {"a.txt": b"a", "b.txt": b"B", "c.txt": b"c"}
    # the one-step form: the latest version's files plus PATH
    cli("artifact", "log", "ds", str(data / "sub"), "--name-in-artifact", "back", "-i",
        check=True)
    cli("artifact", "download", "ds:v2", "--root", str(tmp_path / "out2"), check=True)
    assert read_tree(tmp_path / "out2") == {**read_tree(out), "back/s.txt": b"s"}


def test_files_are_removed_from_the_next_version_without_adding_any(
    cli: Cli, tmp_path: Path
) -> None:
    data = make_tree(tmp_path / "data", {"a.txt": b"a", "bad.csv": b"x"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    res = cli("artifact", "add", "ds")
    assert res.code == 2 and "--incremental alone" in res.err
    res = cli("artifact", "add", "ds", "-i", "--json", check=True).json()["result"]
    assert res["staged"] == 0 and res["draft_files"] == 2 and res["based_on"] == "v0"
    cli("artifact", "reset", "ds", "bad.csv", check=True)
    assert cli("artifact", "log", "ds", "--json", check=True).json()["result"]["version"] == "v1"
    cli("artifact", "download", "ds", "--root", str(tmp_path / "out"), check=True)
    assert read_tree(tmp_path / "out") == {"a.txt": b"a"}


def test_an_incremental_draft_of_a_new_artifact_lists_its_files_as_added(
    cli: Cli, tmp_path: Path
) -> None:
    """Every incremental draft's status has the same shape: before the first
    version, what it changes is every file added."""
    data = make_tree(tmp_path / "data", {"a.txt": b"a", "sub/s.txt": b"s"})
    cli("artifact", "add", "ds", str(data), "-i", "--type", "dataset", check=True)
    status = cli("artifact", "status", "ds", "--json", check=True).json()["result"][0]
    assert status["incremental"] and status["based_on"] is None
    assert status["changes"] == {"added": ["a.txt", "sub/s.txt"], "removed": [], "changed": []}
    text = cli("artifact", "status", "ds", check=True).out
    assert "on top of no version: 2 added, 0 changed, 0 removed" in text
    assert "  + sub/s.txt" in text


def test_an_incremental_draft_is_not_committed_over_a_newer_version(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", {"a.txt": b"a"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    (tmp_path / "c.txt").write_bytes(b"c")
    cli("artifact", "add", "ds", str(tmp_path / "c.txt"), "-i", check=True)
    script = ("import wbtool, sys\n"
              "art = wbtool.Artifact('ds', 'dataset', incremental=True)\n"
              "art.add_file(sys.argv[1], name='other.txt')\n"
              "art.save()\n")
    subprocess.run([sys.executable, "-c", script, str(data / "a.txt")], check=True,
                   env={**os.environ, "WBTOOL_DIR": str(store_dir)})
    res = cli("artifact", "log", "ds")
    assert res.code == 5 and res.err.count("\n") == 1
    assert "changed from v0 to v1" in res.err and "reset ds" in res.err
    assert versions(store_dir, "ds") == [0, 1]
    status = cli("artifact", "status", "ds", "--json").json()["result"][0]
    assert status["based_on"] == "v0" and status["latest"] == "v1"
    assert "the latest version is now v1: 'wbtool artifact log' refuses this draft" in cli(
        "artifact", "status", "ds", check=True).out
    # a draft that started empty cannot become incremental: it would drop every file
    cli("artifact", "reset", "ds", check=True)
    cli("artifact", "add", "ds", str(tmp_path / "c.txt"), check=True)
    for command in ("add", "log"):
        extra = [str(tmp_path / "c.txt")] if command == "add" else []
        res = cli("artifact", command, "ds", *extra, "--incremental")
        assert res.code == 5 and "started empty" in res.err
    assert versions(store_dir, "ds") == [0, 1]


def test_a_staged_object_gone_from_the_store_stops_the_log(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    (tmp_path / "staged.txt").write_bytes(b"staged earlier")
    (tmp_path / "new.txt").write_bytes(b"added by the log")
    cli("artifact", "add", "ds", str(tmp_path / "staged.txt"), "--type", "dataset", check=True)
    gone = store_dir / "objects" / hash_bytes(b"staged earlier")[:2] / hash_bytes(
        b"staged earlier")[2:]
    os.chmod(gone.parent, 0o755)
    gone.unlink()  # as if removed by a garbage collection meanwhile
    res = cli("artifact", "log", "ds", str(tmp_path / "new.txt"))
    assert res.code == 5, res.err
    assert "missing from the store" in res.err and "staged.txt" in res.err
    assert cli("artifact", "ls", "--json", check=True).json()["result"] == []


def test_an_object_gone_behind_the_stat_cache_is_stored_again_by_the_log(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    """A file known from the stat cache is not read again; if its object has
    gone from the store meanwhile, the log must not record a version that
    cannot be read back: it reads the file again and stores it."""
    data = make_tree(tmp_path / "data", {"a.txt": b"cached content", "b.txt": b"other"})
    old = time.time() - 3600
    for f in data.iterdir():
        os.utime(f, (old, old))  # settled: the stat cache keeps them
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    digest = hash_bytes(b"cached content")
    gone = store_dir / "objects" / digest[:2] / digest[2:]
    gone.unlink()  # as if removed by a garbage collection cut short
    (data / "c.txt").write_bytes(b"new")  # a changed tree: no cached manifest
    res = cli("artifact", "log", "other", str(data), "--type", "dataset")
    assert res.code == 0, res.err
    assert gone.is_file()
    cli("artifact", "verify", "other", "--root", str(data), check=True)
    cli("artifact", "verify", "ds", check=True)


def test_concurrent_logs_get_distinct_versions(tmp_path: Path, store_dir: Path) -> None:
    procs = []
    for i in range(4):
        d = make_tree(tmp_path / f"data{i}", {"x": f"content {i}".encode(),
                                              "shared": b"same everywhere"})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "wbtool", "artifact", "log", "ds", str(d), "--type",
             "dataset", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    got = sorted(json.loads(o[0])["result"]["version"] for o in outs)
    assert got == ["v0", "v1", "v2", "v3"]
    assert versions(store_dir, "ds") == [0, 1, 2, 3]
    db = sqlite3.connect(store_dir / "index.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_incremental_logs_keep_each_others_files(
    tmp_path: Path, store_dir: Path
) -> None:
    base = make_tree(tmp_path / "base", {"base.txt": b"base"})
    subprocess.run([sys.executable, "-m", "wbtool", "artifact", "log", "ds", str(base),
                    "--type", "dataset"], check=True, capture_output=True)
    procs = []
    for i in range(4):
        d = make_tree(tmp_path / f"part{i}", {f"f{j}": b"%d-%d" % (i, j) for j in range(10)})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "wbtool", "artifact", "log", "ds", str(d), "-i",
             "--name-in-artifact", f"part{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert versions(store_dir, "ds") == [0, 1, 2, 3, 4]
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "wbtool", "artifact", "download", "ds", "--root",
                    str(out)], check=True, capture_output=True)
    assert read_tree(out) == {"base.txt": b"base", **{
        f"part{i}/f{j}": b"%d-%d" % (i, j) for i in range(4) for j in range(10)}}


def test_concurrent_adds_to_one_draft_lose_nothing(tmp_path: Path) -> None:
    procs = []
    for i in range(4):
        d = make_tree(tmp_path / f"part{i}", {f"part{i}/file{j}": b"%d-%d" % (i, j)
                                              for j in range(20)})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "wbtool", "artifact", "add", "ds", str(d), "--type",
             "dataset"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    cli = Cli(tmp_path / "work")
    res = cli("artifact", "log", "ds", "--json", check=True).json()["result"]
    assert res["file_count"] == 80


def test_bad_input_is_one_line_with_exit_code(cli: Cli, tmp_path: Path) -> None:
    cases = [
        (("artifact", "log", "../x", str(tmp_path), "--type", "dataset"), 2),
        (("artifact", "log", "ok", str(tmp_path / "missing"), "--type", "dataset"), 3),
        (("artifact", "log", "ok", str(tmp_path), "--type", "job"), 2),
        (("artifact", "info", "nothing:v0"), 3),
        (("artifact", "log", "ok", str(tmp_path), "--type", "t", "--metadata", "{bad"), 2),
        (("artifact", "download", "x:", "--root", "r"), 2),
    ]
    for args, code in cases:
        res = cli(*args)
        assert res.code == code, (args, res.err)
        assert "Traceback" not in res.err
        assert res.err.startswith("wbtool: error: "), res.err


def test_metadata_must_be_standard_json(cli: Cli, tmp_path: Path) -> None:
    """--metadata that no reader could take back (NaN, Infinity, nesting
    past a reader's stack) is a one-line usage error, and nothing is logged."""
    data = make_tree(tmp_path / "data", {"x": b"1"})
    deep, deeper = ('{"a":' + "[" * n + "]" * n + "}" for n in (150, 5000))
    for metadata, says in ((deeper, "not valid JSON"), (deep, "deep"),
                           ('{"a": NaN}', "finite"), ('{"a": 1e999}', "finite"),
                           ('{"a": [{"b": -Infinity}]}', "finite")):
        res = cli("artifact", "log", "m", str(data), "-t", "data", "--metadata", metadata)
        assert res.code == 2, (metadata[:40], res.err[-300:])
        assert res.err.startswith("wbtool: error: --metadata ") and says in res.err, res.err
        assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert cli("artifact", "info", "m").code == 3
    cli("artifact", "log", "m", str(data), "-t", "data", "--metadata",
        '{"a": [1, 2.5, {"b": null}], "c": 1e300}', check=True)

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    out = cli("artifact", "info", "m", "--json", check=True).out
    assert json.loads(out, parse_constant=refuse)["result"]["metadata"] == {
        "a": [1, 2.5, {"b": None}], "c": 1e300}


def test_a_pipe_socket_or_device_given_by_name_is_not_a_regular_file(
        cli: Cli, tmp_path: Path) -> None:
    """Named on the command line (not inside a folder, where they are
    skipped), they are a usage error, not "not found", and nothing is read."""
    os.mkfifo(tmp_path / "work" / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")  # relative: the cwd of the test and of wbtool
        data = make_tree(tmp_path / "data", {"x": b"1"})
        for path, kind in (("fifo", "a named pipe"), ("sock", "a socket"),
                           ("/dev/null", "a character device")):
            for args in (("add", "ds", path), ("log", "ds", str(data), path, "-t", "data")):
                res = cli("artifact", *args)
                assert res.code == 2, (args, res.err)
                assert res.err == f"wbtool: error: {path} is not a regular file ({kind})\n"
    assert cli("artifact", "info", "ds").code == 3
    assert cli("artifact", "status", "--json", check=True).json()["result"] == []
    res = cli("artifact", "add", "ds", str(tmp_path / "missing"))
    assert res.code == 3 and "file or folder not found" in res.err


def test_names_longer_than_a_filesystem_takes_are_refused_when_added(
        cli: Cli, tmp_path: Path) -> None:
    """A name of more than 255 bytes could be logged but never written out
    again: refused at add time, naming the limit; 255 bytes are fine."""
    data = make_tree(tmp_path / "data", {"x": b"1"})
    too_long, longest = "d/" + "é" * 128, "d/" + "é" * 127 + "x"  # 256 and 255 bytes
    for command in ("add", "log"):
        res = cli("artifact", command, "ds", str(data / "x"), "-t", "data",
                  "--name-in-artifact", too_long)
        assert res.code == 2, res.err
        assert res.err.startswith("wbtool: error: invalid entry path ") and res.err.endswith(
            ": a file or folder name in it is longer than 255 bytes\n"), res.err
    assert cli("artifact", "status", "--json", check=True).json()["result"] == []
    assert cli("artifact", "info", "ds").code == 3
    cli("artifact", "log", "ds", str(data / "x"), "-t", "data", "--name-in-artifact", longest,
        check=True)
    cli("artifact", "download", "ds", "--root", str(tmp_path / "out"), check=True)
    assert read_tree(tmp_path / "out") == {longest: b"1"}


def test_hostile_manifest_writes_nothing(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    data = make_tree(tmp_path / "data", {"safe.txt": b"s"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    # forge a manifest that escapes the download root and point v0 at it
    evil = json.dumps({"version": 1, "hash": "xxh3-128", "entries": {
        "../escaped.txt": {"digest": hash_bytes(b"s"), "size": 1},
        "safe.txt": {"digest": hash_bytes(b"s"), "size": 1}}}, sort_keys=True).encode()
    digest = hash_bytes(evil)
    obj = store_dir / "objects" / digest[:2] / digest[2:]
    obj.parent.mkdir(exist_ok=True)
    obj.write_bytes(evil)
    db = sqlite3.connect(store_dir / "index.db")
    db.execute("UPDATE versions SET manifest=?", (digest,))
    db.commit()
    db.close()
    out = tmp_path / "dl" / "root"
    res = cli("artifact", "download", "ds", "--root", str(out))
    assert res.code == 7 and "refused" in res.err
    assert not (tmp_path / "dl" / "escaped.txt").exists()
    assert not out.exists() or not any(out.iterdir())


def test_download_never_writes_through_a_symlink(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"sub/f.txt": b"payload"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "sub")
    res = cli("artifact", "download", "ds", "--root", str(root))
    assert res.code == 2 and "symlink" in res.err
    assert list(outside.iterdir()) == []
    # checkout replaces the link by a real folder, still writing nothing outside
    cli("artifact", "checkout", "ds", str(root), check=True)
    assert not (root / "sub").is_symlink() and (root / "sub" / "f.txt").read_bytes() == b"payload"
    assert list(outside.iterdir()) == []


def test_symlinks_in_added_folders(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"real.txt": b"inside"})
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"do not take me")
    os.symlink(data / "real.txt", data / "alias.txt")  # inside: stored as content
    os.symlink(secret, data / "leak.txt")  # outside: skipped
    os.symlink(tmp_path / "nowhere", data / "dangling")  # dangling: skipped
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["file_count"] == 2
    assert "leak.txt" in res.err and "outside" in res.err
    assert res.err.count("leak.txt") == 1  # said once
    out = tmp_path / "out"
    cli("artifact", "download", "ds", "--root", str(out), check=True)
    assert read_tree(out) == {"real.txt": b"inside", "alias.txt": b"inside"}


def test_a_folder_reference_lists_its_skipped_links_as_paths_do(cli: Cli, tmp_path: Path) -> None:
    """``add --reference`` of a folder left its skipped links out of the
    --json "skipped" list (and only logged them), unlike a PATH's."""
    folder = linked_tree(tmp_path)
    for how in (["--reference", folder.as_uri()], [str(folder)]):
        name = "refs" if how[0] == "--reference" else "copied"
        res = cli("artifact", "add", name, *how, "--type", "dataset", "--json", check=True)
        result = res.json()["result"]
        assert result["staged"] == 3, result
        skipped = {s["path"]: s["reason"] for s in result["skipped"]}
        assert sorted(skipped) == sorted(str(folder / link) for link in SKIPPED_LINKS)
        for link, why in SKIPPED_LINKS.items():
            assert why in skipped[str(folder / link)]
        assert res.err == ""
        res = cli("artifact", "add", f"{name}2", *how, "--type", "dataset", check=True)
        assert sorted(res.err.splitlines()) == sorted(
            f"skipped {folder / link}: {why}" for link, why in skipped_reasons(skipped, folder))


def skipped_reasons(skipped: dict[str, str], folder: Path) -> list[tuple[str, str]]:
    return [(os.path.relpath(path, folder), why) for path, why in skipped.items()]


def test_a_file_name_that_is_not_utf8_is_refused_by_name(cli: Cli, tmp_path: Path) -> None:
    """Named on the command line (a folder's walk skips it with a note), a
    file whose name is not UTF-8 is refused in one line naming the path."""
    data = tmp_path / "data"
    data.mkdir()
    odd = os.fsdecode(os.fsencode(data) + b"/\xff.txt")
    Path(odd).write_bytes(b"latin-1 name")
    for args in (("log", "ds", odd), ("add", "ds", odd),
                 ("add", "ds", str(data), "--name-in-artifact", "\udcff")):
        res = cli("artifact", *args, "--type", "dataset")
        assert res.code == 2 and res.err.count("\n") == 1, res.err
        assert "invalid entry path" in res.err and "not valid UTF-8" in res.err
    assert cli("artifact", "ls", "--json", check=True).json()["result"] == []


def test_stat_cache_skips_unchanged_files(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    data = make_tree(tmp_path / "data", {"a": b"1111", "b": b"2"})
    old = time.time() - 10
    for p in data.iterdir():
        os.utime(p, ns=(int(old * 1e9), int(old * 1e9)))
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    db = sqlite3.connect(store_dir / "index.db")
    assert db.execute("SELECT COUNT(*) FROM stat_cache").fetchone()[0] == 2
    # Rewrite "a" in place with the same size and put its mtime back: the
    # stat is unchanged, so the file must not be read again (no new version).
    st = os.stat(data / "a")
    with open(data / "a", "r+b") as f:
        f.write(b"9999")
    os.utime(data / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["created"] is False
    # A real change (new mtime) is seen.
    (data / "a").write_bytes(b"changed")
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["version"] == "v1"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["log", "add", "log-settled"])
def test_ctrl_c_leaves_no_partial_state(tmp_path: Path, store_dir: Path, command: str) -> None:
    """``log-settled``: files last written long ago, which a durable store
    writes past the page cache while a second thread hashes them."""
    data = tmp_path / "data"
    data.mkdir()
    block = os.urandom(1 << 20)
    for i in range(40):  # 40 files of 8 MiB: long enough to interrupt
        (data / f"f{i:02d}.bin").write_bytes(block * 7 + i.to_bytes(4, "big") * (1 << 18))
    if command == "log-settled":
        for p in data.iterdir():
            os.utime(p, (1_600_000_000, 1_600_000_000))
        command = "log"
    # interrupt once the first objects appear
    interrupt_wbtool(["artifact", command, "ds", str(data), "--type", "dataset"], lambda: (
        (store_dir / "objects").is_dir() and any((store_dir / "objects").glob("*/*"))), 0.01)
    cli = Cli(tmp_path / "work")
    if command == "log" and versions(store_dir, "ds") == [0]:
        # On a loaded machine the interrupt can come after the version was
        # recorded (exit 130 all the same): then that version must be whole.
        cli("artifact", "verify", "ds:v0", check=True)
        pytest.skip("the interrupt arrived after the version was recorded")
    assert versions(store_dir, "ds") == []
    db = sqlite3.connect(store_dir / "index.db")
    assert db.execute("SELECT COUNT(*) FROM drafts").fetchone()[0] == 0
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [p for p in (store_dir / "tmp").iterdir() if p.name != ".reflink-probe"] == []
    assert_store_complete(store_dir)
    # and the store still works
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    cli("artifact", "verify", "ds", check=True)


def interrupt_wbtool(args: list[str], ready: Callable[[], bool], poll: float) -> None:
    """Run wbtool, send SIGINT once ``ready()``, and check it stopped cleanly (130)."""
    proc = subprocess.Popen([sys.executable, "-m", "wbtool", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if ready():
            break
        time.sleep(poll)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("wbtool finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def assert_store_complete(store_dir: Path) -> None:
    """Every object and pack under its final name is complete."""
    for obj in (store_dir / "objects").glob("??/*"):
        assert hash_file(obj)[0] == obj.parent.name + obj.name
    for pack in (store_dir / "objects").glob("pack/*.pack"):
        assert hash_file(pack)[0] == pack.stem


@pytest.mark.slow
def test_ctrl_c_while_packing_many_small_files(tmp_path: Path, store_dir: Path) -> None:
    """Interrupting the two packing processes leaves no temp pack and no version."""
    data = tmp_path / "data"
    for d in range(60):
        (data / f"d{d}").mkdir(parents=True)
        for i in range(200):
            (data / f"d{d}" / f"f{i}").write_bytes(os.urandom(2048))
    old = time.time() - 10
    tmp = store_dir / "tmp"
    interrupt_wbtool(["artifact", "log", "ds", str(data), "--type", "dataset"], lambda: (
        tmp.is_dir() and any(p.name.startswith(".pack.") for p in tmp.iterdir())), 0.002)
    time.sleep(0.5)  # the helper process exits on its own interrupt
    assert versions(store_dir, "ds") == []
    assert [p for p in (store_dir / "tmp").iterdir() if p.name != ".reflink-probe"] == []
    assert_store_complete(store_dir)
    db = sqlite3.connect(store_dir / "index.db")
    for (pack,) in db.execute("SELECT DISTINCT pack FROM packed"):
        assert (store_dir / "objects" / "pack" / f"{pack}.pack").is_file()
    for p in data.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    cli = Cli(tmp_path / "work")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    cli("artifact", "verify", "ds", check=True)


def test_json_listing_and_settings_show(cli: Cli, tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"a": b"1"})
    cli("artifact", "log", "ds", str(data), "--type", "dataset", "--project", "p1", check=True)
    doc = cli("artifact", "ls", "--project", "p1", "--json", check=True).json()
    assert doc["schema"] == 1
    assert [c["name"] for c in doc["result"]] == ["ds"]
    # With no project set, every project is listed (as by `runs list`).
    cli("artifact", "log", "other", str(data), "--type", "dataset", check=True)
    listed = cli("artifact", "ls", "--json", check=True).json()["result"]
    assert [(c["project"], c["name"]) for c in listed] == [("p1", "ds"),
                                                           ("uncategorized", "other")]
    for only_default in ({"WBTOOL_PROJECT": "uncategorized"}, {"WBTOOL_PROJECT": "none"}):
        listed = cli("artifact", "ls", "--json", env=only_default, check=True).json()["result"]
        assert [c["name"] for c in listed] == (
            ["other"] if only_default["WBTOOL_PROJECT"] == "uncategorized" else [])
    everything = cli("artifact", "ls", "--all-projects", "--json",
                     env={"WBTOOL_PROJECT": "none"}, check=True).json()["result"]
    assert len(everything) == 2
    shown = cli("settings", "show", "project", "--json",
                env={"WBTOOL_PROJECT": "envp"}, check=True).json()["result"]
    assert shown["project"] == {"value": "envp", "source": "env WBTOOL_PROJECT"}
    res = cli("settings", "show", "nonsense")
    assert res.code == 2 and "nonsense" in res.err
    res = cli("artifact", "ls", env={"WBTOOL_X_STATS_SAMPLING_INTERVAL": "-1"})
    assert res.code == 2 and "x_stats_sampling_interval" in res.err


def test_version_flag(cli: Cli) -> None:
    import wbtool

    res = cli("--version", check=True)
    assert res.out.strip() == f"wbtool {wbtool.__version__}"


def test_relog_of_an_unchanged_folder_uses_the_walk_fingerprint(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", {f"f{i}": b"%d" % i for i in range(30)})
    old = time.time() - 10
    for p in data.iterdir():
        os.utime(p, (old, old))
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    db = sqlite3.connect(store_dir / "index.db")
    assert db.execute("SELECT COUNT(*) FROM tree_cache").fetchone()[0] == 1
    # Drop the stat cache: a re-log must still not read any file.
    db.execute("DELETE FROM stat_cache")
    db.commit()
    os.chmod(data / "f3", 0o644)
    with open(data / "f3", "r+b") as f:  # same size, mtime put back: invisible to a walk
        f.write(b"X")
    os.utime(data / "f3", (old, old))
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--alias", "again",
              "--json", check=True).json()["result"]
    assert res["created"] is False and "again" in res["aliases"]
    assert db.execute("SELECT COUNT(*) FROM stat_cache").fetchone()[0] == 0
    # A visible change makes a new version, and the store stays verifiable.
    (data / "f4").write_bytes(b"changed")
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json",
              check=True).json()["result"]
    assert res["version"] == "v1"
    # After gc the cache is forgotten, and logging v0's tree again still works.
    cli("artifact", "rm", "ds:v1", check=True)
    cli("artifact", "cache", "gc", "--grace", "0", check=True)
    assert db.execute("SELECT COUNT(*) FROM tree_cache").fetchone()[0] == 0
    cli("artifact", "verify", "ds:v0", check=True)


def test_fast_entry_knows_the_options_of_the_artifact_commands_it_parses() -> None:
    """The entry point parses plain ``artifact log``, ``checkout``, ``download``
    and ``verify`` calls itself; it must know exactly the options (and
    choices) they declare."""
    import typer.main

    from wbtool.cli import artifact as artifact_cmd
    from wbtool.cli import fast

    for fn, table in ((artifact_cmd.log, fast.ARTIFACT_LOG_OPTIONS),
                      (artifact_cmd.checkout, fast.ARTIFACT_CHECKOUT_OPTIONS),
                      (artifact_cmd.download, fast.ARTIFACT_DOWNLOAD_OPTIONS),
                      (artifact_cmd.verify, fast.ARTIFACT_VERIFY_OPTIONS)):
        command = typer.main.get_command_from_info(
            typer.models.CommandInfo(callback=fn), pretty_exceptions_short=True,
            rich_markup_mode=None)
        declared = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)
                    if opt.startswith("-")} - {"--help"}
        assert declared == set(table), fn.__name__
    assert fast.ARTIFACT_LOG_OPTIONS["--policy"][1] == tuple(p.value for p in artifact_cmd.Policy)
    for table in (fast.ARTIFACT_CHECKOUT_OPTIONS, fast.ARTIFACT_DOWNLOAD_OPTIONS):
        assert table["--link"][1] == tuple(link.value for link in artifact_cmd.Link)


def test_fast_entry_parses_artifact_calls() -> None:
    from wbtool.cli import fast

    log, checkout = fast.ARTIFACT_LOG_OPTIONS, fast.ARTIFACT_CHECKOUT_OPTIONS
    assert fast._parse_artifact(
        ["ds", "d1", "--type", "dataset", "-a", "x", "--alias=y", "--policy", "immutable",
         "d2", "--json", "--", "-odd"], log, 1, None
    ) == (["ds", "d1", "d2", "-odd"], {"type": "dataset", "aliases": ["x", "y"],
                                       "policy": "immutable", "as_json": True})
    assert fast._parse_artifact(["ds:v0", "out", "--link=hardlink"], checkout, 2, 2) == (
        ["ds:v0", "out"], {"link": "hardlink"})
    # anything the full parser should explain goes to it
    for argv in (["ds", "--policy", "frozen"], ["ds", "--help"], ["ds", "--type"],
                 ["ds", "--type", "-x"], ["ds", "--json=1"], ["ds", "--bogus"], ["ds", "-tX"],
                 ["ds", "-t=X"]):  # click reads that as the type "=X"
        assert fast._parse_artifact(argv, log, 1, None) is None, argv
    assert fast._parse_artifact(["--type", "t"], log, 1, None) is None  # no name
    assert fast._parse_artifact(["ds:v0"], checkout, 2, 2) is None
    assert fast._parse_artifact(["ds:v0", "a", "b"], checkout, 2, 2) is None
    assert fast._parse_artifact(["ds:v0", "out", "--link", "hard"], checkout, 2, 2) is None


def test_plain_artifact_calls_do_not_load_the_full_command_line(
    tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", {"a.txt": b"a"})
    env = {**os.environ, "WBTOOL_DIR": str(store_dir)}
    for args in (
        ("artifact", "log", "ds", str(data), "--type", "dataset"),
        ("artifact", "checkout", "ds:v0", str(tmp_path / "co"), "--link", "copy"),
        ("artifact", "download", "ds", "--root", str(tmp_path / "dl")),
        ("artifact", "verify", "ds:latest", "--json"),
        ("artifact", "verify", "ds:v0", "--root", str(tmp_path / "dl")),
    ):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "from wbtool.cli.fast import main; main()",
             *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                    if line.startswith("import time:")}
        assert not {m for m in imported if m.split(".")[0] in ("typer", "click")}, args
    # an unusual call still goes to the full command line, which explains it
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from wbtool.cli.fast import main; main()",
         "artifact", "verify", "ds:v0", "--bogus"], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "typer" in proc.stderr


def test_fast_entry_answers_as_the_full_command_line(tmp_path: Path, store_dir: Path) -> None:
    """The same calls through the fast path and through Typer: the same
    output, the same exit status, the same one-line errors."""
    data = make_tree(tmp_path / "data", {"a.txt": b"a", "d/b.txt": b"b"})
    env = {**os.environ, "WBTOOL_DIR": str(store_dir)}

    def both(*args: str) -> list[tuple[int, str, str]]:
        """Each answer, with its own checkout folder (OUT in ``args``)."""
        answers = []
        for n, entry in enumerate(("from wbtool.cli.fast import main",
                                   "from wbtool.cli.main import main")):
            out = str(tmp_path / f"out-{n}-{len(answers_seen)}")
            argv = [out if a == "OUT" else a for a in args]
            proc = subprocess.run([sys.executable, "-c", f"{entry}; main()", *argv],
                                  capture_output=True, text=True, env=env, cwd=tmp_path,
                                  timeout=120)
            answers.append((proc.returncode, proc.stdout.replace(out, "OUT"),
                            proc.stderr.replace(out, "OUT")))
        answers_seen.append(args)
        return answers

    answers_seen: list[tuple[str, ...]] = []

    first = subprocess.run([sys.executable, "-m", "wbtool", "artifact", "log", "ds", str(data),
                            "--type", "dataset"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    for args in (
        ("artifact", "log", "ds", str(data), "--type", "dataset"),  # unchanged, twice
        ("artifact", "log", "ds", str(data), "--type", "dataset", "--json"),
        ("artifact", "log", "ds", str(tmp_path / "missing"), "--type", "dataset"),
        ("artifact", "log", "ds", str(data), "--type", "job"),
        ("artifact", "checkout", "ds:v0", "OUT"),
        ("artifact", "checkout", "ds:v9", "OUT"),
        ("artifact", "checkout", "ds:v0", "OUT", "--link", "hardlink", "--json"),
        ("artifact", "download", "ds", "--root", "OUT"),
        ("artifact", "download", "ds:v0", "--root", "OUT", "--path-prefix", "d", "--json"),
        ("artifact", "download", "ds:v9", "--root", "OUT"),
        ("artifact", "verify", "ds:latest"),
        ("artifact", "verify", "ds:v0", "--json"),
        ("artifact", "verify", "ds:v0", "--root", str(data)),
        ("artifact", "verify", "ds:v0", "--root", str(tmp_path / "missing")),
        ("artifact", "verify", "ds:v9"),
    ):
        fast, full = both(*args)
        assert fast == full, args
        if "missing" in str(args) or "job" in args or "ds:v9" in args:
            assert fast[0] not in (0, 1) and fast[2].count("\n") == 1, (args, fast)


# -- the store is never part of what is logged or written ----------------------------

def _store_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and not p.name.startswith("index.db") and p.name != "lock"}


def test_log_of_the_folder_holding_the_store_leaves_the_store_out(
    cli: Cli, store_dir: Path
) -> None:
    make_tree(store_dir.parent, {"data/one.txt": b"1\n", "two.txt": b"2\n"})
    cli("artifact", "log", "proj", "data", "--type", "dataset", check=True)  # makes the store
    res = cli("artifact", "log", "proj", ".", "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["file_count"] == 2
    assert "a wbtool store" in res.err
    res = cli("artifact", "log", "inner", str(store_dir / "objects"), "--type", "dataset")
    assert res.code == 2 and "inside the wbtool store" in res.err


def test_checkout_into_the_folder_holding_the_store_keeps_the_store(
    cli: Cli, store_dir: Path
) -> None:
    """Checkout deletes what is not in the artifact, except the store itself."""
    work = store_dir.parent
    make_tree(work, {"data/one.txt": b"1\n", "stray.txt": b"x"})
    cli("artifact", "log", "ds", "data", "--type", "dataset", check=True)
    before = _store_files(store_dir)
    cli("artifact", "checkout", "ds", ".", "--force", check=True)
    assert {k: v for k, v in read_tree(work).items() if not k.startswith(".wbtool/")} == {
        "one.txt": b"1\n"}
    assert _store_files(store_dir) == before
    cli("artifact", "verify", "ds", "--root", ".", check=True)
    cli("artifact", "verify", "ds", check=True)


@pytest.mark.parametrize("command", ["checkout", "download"])
def test_an_entry_that_would_land_on_the_store_is_refused_before_anything_is_written(
    cli: Cli, tmp_path: Path, store_dir: Path, command: str
) -> None:
    src = make_tree(tmp_path / "src", {"config.yaml": b"garbage\n"})
    cli("artifact", "log", "evil", str(src / "config.yaml"), "--type", "dataset",
        "--name-in-artifact", ".wbtool/config.yaml", check=True)
    before = _store_files(store_dir)
    args = ["."] if command == "checkout" else ["--root", "."]
    res = cli("artifact", command, "evil", *args)
    assert res.code == 2 and "over the wbtool store" in res.err
    assert _store_files(store_dir) == before
    cli("artifact", "ls", check=True)


@pytest.mark.parametrize("command", ["checkout", "download"])
def test_a_root_inside_the_store_is_refused(
    cli: Cli, tmp_path: Path, store_dir: Path, command: str
) -> None:
    make_tree(tmp_path / "src", {"config.yaml": b"garbage\n", "index.db": b"garbage\n"})
    cli("artifact", "log", "evil", str(tmp_path / "src"), "--type", "dataset", check=True)
    before = _store_files(store_dir)
    for root in (store_dir, store_dir / "objects"):
        args = [str(root)] if command == "checkout" else ["--root", str(root)]
        res = cli("artifact", command, "evil", *args)
        assert res.code == 2 and "inside the wbtool store" in res.err, res.err
    assert _store_files(store_dir) == before
    cli("artifact", "verify", "evil", check=True)


@pytest.mark.parametrize("command", ["checkout", "download"])
def test_copies_replace_earlier_hard_links_into_the_store(
    cli: Cli, tmp_path: Path, store_dir: Path, command: str
) -> None:
    """Files left by a hard-link checkout share their inode with the store;
    asking for copies must not keep them, or an edit would corrupt the store."""
    files = {"f1.bin": os.urandom(300_000), "f2.bin": os.urandom(300_000)}
    cli("artifact", "log", "b", str(make_tree(tmp_path / "big", files)), "--type", "data",
        check=True)
    out = tmp_path / "out"
    cli("artifact", "checkout", "b", str(out), "--link", "hardlink", check=True)
    assert os.stat(out / "f1.bin").st_nlink == 2
    args = [str(out)] if command == "checkout" else ["--root", str(out)]
    res = cli("artifact", command, "b", *args, "--link", "copy", "--json", check=True)
    assert res.json()["result"]["written"] == 2
    for name in files:
        assert os.stat(out / name).st_nlink == 1
        os.chmod(out / name, 0o644)
        with open(out / name, "ab") as f:
            f.write(b"an edit")
    cli("artifact", "verify", "b", check=True)  # the store is untouched


def test_a_path_that_would_be_both_a_file_and_a_folder_is_refused(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    one = make_tree(tmp_path / "one", {"a.txt": b"a"})
    folder = make_tree(tmp_path / "kd", {"x/y": b"y"})
    cli("artifact", "add", "k", str(one / "a.txt"), "--name-in-artifact", "x", "--type", "data",
        check=True)
    cli("artifact", "add", "k", str(folder), "--type", "data", check=True)
    res = cli("artifact", "log", "k")
    assert res.code == 2 and "'x' would be both a file and a folder" in res.err, res.err
    assert res.err.count("\n") == 1
    assert cli("artifact", "ls", "k").code == 3  # no version
    cli("artifact", "reset", "k", check=True)
    cli("artifact", "log", "k", str(folder), "--type", "data", check=True)  # one tree: fine


def test_a_stored_time_no_date_can_show_is_printed_as_a_number(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    """Stores filled by older pulls may hold such times: listing must not fail."""
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "d", {"a": b"a"})), "--type", "data",
        check=True)
    db = sqlite3.connect(store_dir / "index.db")
    with db:
        db.execute("UPDATE versions SET created_at = -1e300")
    db.close()
    assert "-1e+300" in cli("artifact", "ls", "ds", check=True).out
    assert cli("artifact", "info", "ds", "--json", check=True).json()["result"]["created_at"]


def test_a_log_that_makes_no_version_says_which_options_it_did_not_apply(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = str(make_tree(tmp_path / "d", {"a.txt": b"a"}))
    cli("artifact", "log", "u", data, "--type", "data", "--metadata", '{"a": 1}', check=True)
    same = cli("artifact", "log", "u", data, "--type", "data", "--metadata", '{"a": 1}',
               check=True)
    assert same.err == ""
    res = cli("artifact", "log", "u", data, "--type", "data", "--metadata", '{"b": 2}',
              "-d", "new", "--alias", "prod", check=True)
    assert res.out.startswith("unchanged, still")
    assert "keeps its own description and metadata (--description and --metadata not applied)" \
        in res.err
    info = cli("artifact", "info", "u", "--json", check=True).json()["result"]
    assert info["metadata"] == {"a": 1} and "prod" in info["aliases"]


def test_a_log_with_no_files_says_so(cli: Cli, tmp_path: Path) -> None:
    res = cli("artifact", "log", "x3", "--type", "data")
    assert res.code == 3
    assert res.err == ("wbtool: error: no files to log for 'x3': none are staged, and no PATH "
                       "given held any (stage some with 'wbtool artifact add')\n")
    (tmp_path / "empty").mkdir()
    assert cli("artifact", "log", "x3", str(tmp_path / "empty"), "--type", "data").code == 3


def test_add_refuses_a_draft_that_could_never_be_logged(cli: Cli, tmp_path: Path) -> None:
    data = str(make_tree(tmp_path / "d", {"a.txt": b"a"}))
    cli("artifact", "log", "u", data, "--type", "data", check=True)
    cli("artifact", "link", "u:v0", "port", check=True)
    res = cli("artifact", "add", "u", data, "--type", "other")
    assert res.code == 5 and "has type 'data'" in res.err
    res = cli("artifact", "add", "port", data, "--type", "data")
    assert res.code == 5 and "portfolio collection" in res.err
    assert cli("artifact", "status", "--json", check=True).json()["result"] == []
    cli("artifact", "add", "u", data, check=True)  # the collection's type: fine


@pytest.mark.parametrize("incremental", [[], ["-i"]])
def test_log_into_a_portfolio_is_a_conflict(cli: Cli, tmp_path: Path,
                                            incremental: list[str]) -> None:
    data = str(make_tree(tmp_path / "d", {"a.txt": b"a"}))
    cli("artifact", "log", "u", data, "--type", "data", check=True)
    cli("artifact", "link", "u:v0", "port", check=True)
    res = cli("artifact", "log", "port", data, *incremental)  # its type is known
    assert res.code == 5 and "portfolio collection" in res.err, res.err
    assert res.err.count("\n") == 1


def test_a_run_id_that_is_no_id_is_refused(cli: Cli, tmp_path: Path) -> None:
    data = str(make_tree(tmp_path / "d", {"a.txt": b"a"}))
    for args, env in ((["--run", "../../../evil"], None), ([], {"WBTOOL_RUN_ID": "a b"})):
        res = cli("artifact", "log", "r", data, "--type", "data", *args, env=env)
        assert res.code == 2 and "invalid run id" in res.err and res.err.count("\n") == 1
    assert cli("artifact", "ls", "r").code == 3


@pytest.mark.parametrize("command", ["checkout", "download"])
def test_a_version_fetched_under_a_run_is_that_runs_input(cli: Cli, tmp_path: Path,
                                                          command: str) -> None:
    """``wbtool run -- wbtool artifact download …`` recorded no use: the run
    had no input and the version no ``used_by``."""
    import sys

    cli("artifact", "log", "f", str(make_tree(tmp_path / "d", {"a": b"a"})), "--type", "data",
        check=True)
    where = [str(tmp_path / "out")] if command == "checkout" else ["--root", str(tmp_path / "out")]
    cli("run", "--id", "user0001", "--no-stats", "-q", "--", sys.executable, "-m", "wbtool",
        "artifact", command, "f:v0", *where, check=True)
    cli("artifact", command, "f:v0", *where, "--run", "other001", check=True)
    cli("artifact", command, "f:v0", *where, check=True)  # no run: no use
    info = json.loads(cli("artifact", "info", "f:v0", "--json", check=True).out)["result"]
    assert info["used_by"] == ["other001", "user0001"]
    shown = json.loads(cli("runs", "show", "user0001", "--json", check=True).out)["result"]
    assert shown["artifacts_used"] == [{"name": "f:v0", "type": "data"}]
    res = cli("artifact", command, "f:v0", *where, env={"WBTOOL_RUN_ID": "a b"})
    assert res.code == 2 and "invalid run id" in res.err and res.err.count("\n") == 1


def test_a_run_this_store_lacks_is_warned_of_and_still_recorded(cli: Cli,
                                                                tmp_path: Path) -> None:
    """``artifact log/download/checkout --run nosuch99`` (a typo, or a run made
    on another machine and pulled later) recorded lineage for it without a
    word: it still does, with one warning line; a run the store holds gets none."""
    data = make_tree(tmp_path / "d", {"a": b"a"})
    warned = ("wbtool: warning: run nosuch99 is not in this store; f:v0 is recorded as "
              "its {} all the same (the run shows it once it is pulled here)")
    res = cli("artifact", "log", "f", str(data), "--type", "data", "--run", "nosuch99",
              "--json", check=True)
    assert json.loads(res.out)["result"]["run_id"] == "nosuch99"
    assert res.err.splitlines() == [warned.format("output")]
    for args in (["download", "f:v0", "--root", str(tmp_path / "dl")],
                 ["checkout", "f:v0", str(tmp_path / "co")]):
        res = cli("artifact", *args, "--run", "nosuch99", check=True)
        assert res.err.splitlines() == [warned.format("input")], args
        res = cli("artifact", *args, "--json", env={"WBTOOL_RUN_ID": "nosuch99"}, check=True)
        assert res.err.splitlines() == [warned.format("input")], args
        json.loads(res.out)  # stdout holds the document only
    info = json.loads(cli("artifact", "info", "f:v0", "--json", check=True).out)["result"]
    assert info["used_by"] == ["nosuch99"]

    cli("run", "--id", "here0001", "--no-stats", "-q", "--", "true", check=True)
    for args in (["log", "f", str(data), "--type", "data"],
                 ["download", "f:v0", "--root", str(tmp_path / "dl")],
                 ["checkout", "f:v0", str(tmp_path / "co")]):
        res = cli("artifact", *args, "--run", "here0001", check=True)
        assert res.err == "", args
    for bad in ("nosuch 99", "../nosuch99"):  # a malformed id: refused, nothing recorded
        res = cli("artifact", "download", "f:v0", "--root", str(tmp_path / "dl"), "--run", bad)
        is_error(res, 2, "invalid run id")
    info = json.loads(cli("artifact", "info", "f:v0", "--json", check=True).out)["result"]
    assert info["used_by"] == ["here0001", "nosuch99"]


def test_a_version_logged_for_a_run_records_its_history_step(cli: Cli, tmp_path: Path) -> None:
    """As ``run.log_artifact`` does, ``artifact log --run`` (and under ``wbtool
    run``) records the step of the run's latest history row: the row being
    built, else the last committed, none before any."""
    data = make_tree(tmp_path / "d", {"a": b"a"})

    def step(name: str, *args: str) -> object:
        (data / "a").write_text(name)
        res = cli("artifact", "log", name, str(data), "--type", "model", *args, "--json",
                  check=True)
        doc = json.loads(res.out)["result"]
        return doc["history_step"]

    script = ('"$2" -m wbtool log a=1 && "$2" -m wbtool log a=2 && echo under > "$1/a" && '
              '"$2" -m wbtool artifact log under "$1" --type model')
    cli("run", "--id", "user0001", "--no-stats", "-q", "--", "sh", "-c", script, "sh",
        str(data), sys.executable, check=True)
    info = json.loads(cli("artifact", "info", "under:v0", "--json", check=True).out)["result"]
    assert (info["run_id"], info["history_step"]) == ("user0001", 1)
    assert step("again", "--run", "user0001") == 1
    cli("log", "--run", "user0001", "--step", "7", "--no-commit", "a=3", check=True)
    assert step("pending", "--run", "user0001") == 7  # the row being built
    cli("log", "--run", "user0001", "a=4", check=True)
    assert step("committed", "--run", "user0001") == 7
    assert step("elsewhere", "--run", "other001") is None  # a run this store lacks
    assert step("no-run") is None
    # The same files again under another name: the walk cached by the first
    # log (of files not written just now) is reused.
    os.utime(data / "a", (1e9, 1e9))
    for name in ("walked", "cached"):
        res = cli("artifact", "log", name, str(data), "--type", "model", "--run", "user0001",
                  "--json", check=True)
        assert json.loads(res.out)["result"]["history_step"] == 7, name
    cli("run", "--id", "user0002", "--no-stats", "-q", "--", "true", check=True)
    assert step("empty", "--run", "user0002") is None  # no history row yet
    cli("artifact", "add", "staged", str(data), "--type", "model", check=True)
    staged = json.loads(cli("artifact", "log", "staged", "--run", "user0001", "--json",
                            check=True).out)["result"]
    assert staged["history_step"] == 7


@pytest.mark.parametrize("command", ["checkout", "download"])
def test_a_root_that_is_a_file_is_refused(cli: Cli, tmp_path: Path, command: str) -> None:
    cli("artifact", "log", "f", str(make_tree(tmp_path / "d", {"a": b"a"})), "--type", "data",
        check=True)
    afile = tmp_path / "afile"
    afile.write_bytes(b"mine")
    args = [str(afile)] if command == "checkout" else ["--root", str(afile)]
    res = cli("artifact", command, "f", *args)
    assert res.code == 2 and res.err == f"wbtool: error: {tmp_path / 'afile'} is not a folder\n"
    assert (tmp_path / "afile").read_bytes() == b"mine"


@pytest.mark.parametrize("index_state", ["closed", "in use"])
def test_a_store_this_user_cannot_write_can_be_read(
    cli: Cli, tmp_path: Path, store_dir: Path, index_state: str
) -> None:
    prefix = unprivileged()
    tree = {"a": b"a", "sub/b": b"bb"}
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "d", tree)), "--type", "data",
        check=True)
    db = sqlite3.connect(store_dir / "index.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()  # the last connection: SQLite removes -wal and -shm
    assert not (store_dir / "index.db-wal").exists()
    holder = None
    if index_state == "in use":  # another process has the index open: -wal and -shm exist
        holder = sqlite3.connect(store_dir / "index.db")
        holder.execute("SELECT count(*) FROM versions").fetchone()
        assert (store_dir / "index.db-shm").exists()
    before = (store_dir / "index.db").read_bytes()

    def wbtool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, sys.executable, "-m", "wbtool", *args],
                              capture_output=True, text=True, cwd=cli.cwd, timeout=60)

    try:
        with write_protected(store_dir):
            listed = wbtool("artifact", "ls", "--json")
            got = wbtool("artifact", "download", "ds", "--root", str(tmp_path / "out"))
            checked = wbtool("artifact", "verify", "ds")
            refused = [wbtool("artifact", "log", "ds", str(tmp_path / "d"), "--type", "data"),
                       wbtool("artifact", "alias", "add", "ds:v0", "best")]
    finally:
        if holder is not None:
            holder.close()
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)["result"]] == ["ds"]
    assert got.returncode == 0, got.stderr
    assert read_tree(tmp_path / "out") == tree
    assert checked.returncode == 0, checked.stderr
    for res in refused:
        assert res.returncode == 7, res.stderr
        assert res.stderr.count("\n") == 1
        assert "cannot be written here" in res.stderr and "needs write access" in res.stderr
    assert (store_dir / "index.db").read_bytes() == before


def test_log_takes_the_collection_type_once_it_has_versions(cli: Cli, tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": b"a", "b": b"b", "c": b"c"})
    cli("artifact", "add", "q", str(tmp_path / "a"), "-t", "dataset", check=True)
    cli("artifact", "log", "q", check=True)
    cli("artifact", "add", "q", str(tmp_path / "b"), check=True)  # no type given
    cli("artifact", "log", "q", check=True)
    cli("artifact", "log", "q", str(tmp_path / "c"), check=True)  # the one-step form too
    info = cli("artifact", "info", "q", "--json", check=True).json()["result"]
    assert (info["version"], info["type"]) == ("v2", "dataset")
    res = cli("artifact", "log", "fresh", str(tmp_path / "c"))
    assert res.code == 2 and "--type is needed" in res.err


def stored_objects(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in (store / "objects").rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("policy", ["mutable", "immutable"])
def test_log_refused_for_its_type_reads_no_file_and_leaves_it_alone(
    cli: Cli, tmp_path: Path, policy: str
) -> None:
    # A type error is found before any file is read: nothing is stored, and
    # an immutable file is neither linked into the store nor made read-only.
    make_tree(tmp_path, {"seed": b"seed", "f.bin": b"not stored\n", "g.bin": b"nor this\n"})
    cli("artifact", "log", "ds", str(tmp_path / "seed"), "--type", "dataset", check=True)
    cli("artifact", "add", "drafted", str(tmp_path / "seed"), "--type", "model", check=True)
    store = tmp_path / "work" / ".wbtool"
    before = stored_objects(store)
    f = tmp_path / "f.bin"
    mode = f.stat().st_mode
    for args, code, words in (
        (["fresh"], 2, "--type is needed"),
        (["ds", "--type", "model"], 5, "has type 'dataset'"),
        (["drafted", "--type", "dataset"], 5, "has type 'model'"),
    ):
        res = cli("artifact", "log", args[0], str(f), str(tmp_path / "g.bin"), *args[1:],
                  "--policy", policy)
        assert res.code == code and words in res.err, res.err
        assert res.err.count("\n") == 1
        assert f.stat().st_mode == mode and f.stat().st_nlink == 1
        assert stored_objects(store) == before


@pytest.mark.parametrize(("argv", "code", "out"), [
    (["artifact", "ls"], 0, ""),
    (["artifact", "status"], 0, "nothing staged\n"),
    (["artifact", "cache", "gc"], 0, "removed 0 object(s), 0 B; kept 0 referenced and 0 recent\n"),
    (["gc"], 0, "removed 0 object(s), 0 B; kept 0 referenced and 0 recent\n"),
    (["artifact", "ls", "ds"], 3, ""),
    (["artifact", "info", "ds"], 3, ""),
    (["artifact", "verify", "ds"], 3, ""),
    (["artifact", "download", "ds"], 3, ""),
    (["artifact", "checkout", "ds", "out"], 3, ""),
    (["artifact", "diff", "ds:v0", "ds:v1"], 3, ""),
    (["artifact", "rm", "ds:v0"], 3, ""),
    (["artifact", "reset", "ds"], 3, ""),
    (["artifact", "alias", "add", "ds:v0", "best"], 3, ""),
    (["artifact", "alias", "rm", "ds", "best"], 3, ""),
    (["artifact", "tag", "add", "ds:v0", "t"], 3, ""),
    (["artifact", "tag", "rm", "ds:v0", "t"], 3, ""),
    (["artifact", "link", "ds:v0", "reg"], 3, ""),
])
def test_looking_where_there_is_no_store_makes_none(cli: Cli, store_dir: Path, argv: list[str],
                                                     code: int, out: str) -> None:
    """Commands that only look, or change what is there, used to make an
    empty store (which the commands of every folder below then used)."""
    res = cli(*argv)
    assert (res.code, res.out) == (code, out), res.err
    if code:
        assert res.err == f"wbtool: error: wbtool store not found: {store_dir}\n"
    assert not store_dir.exists()


@pytest.mark.parametrize("mode", [0o000, 0o644], ids=["unreadable", "not enterable"])
@pytest.mark.parametrize("where", ["sub", "top"])
def test_a_folder_that_cannot_be_read_stops_the_log(
    cli: Cli, tmp_path: Path, store_dir: Path, mode: int, where: str
) -> None:
    """A folder inside the tree that could not be read was skipped with a
    warning, and a version logged without its files (an unreadable file
    stops the log, so must a folder)."""
    prefix = unprivileged()
    root = make_tree(tmp_path / "d", {"a": b"a", "sub/b": b"bb"})
    locked = root / "sub" if where == "sub" else root

    def wbtool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, sys.executable, "-m", "wbtool", *args],
                              capture_output=True, text=True, cwd=cli.cwd, timeout=60)

    locked.chmod(mode)
    try:
        logged = wbtool("artifact", "log", "ds", str(root), "--type", "data")
        added = wbtool("artifact", "add", "ds", str(root), "--type", "data")
    finally:
        locked.chmod(0o755)
    for res in (logged, added):
        is_error(Result(res.returncode, res.stdout, res.stderr), 1, "Permission denied",
                 str(locked))
    assert versions(store_dir, "ds") == []
    assert cli("artifact", "status", "ds", check=True).out == "nothing staged\n"
