"""Behaviour of the Python ``wbtool.Artifact`` API on the local store.

Every test works against a private store folder and checks real outcomes:
bytes on disk, digests, version numbers, aliases and the exceptions the
W&B reference names for each situation.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import re
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import wbtool
from tests.conftest import SKIPPED_LINKS, linked_tree
from wbtool.errors import (
    ArtifactFinalizedError,
    ArtifactNotLoggedError,
    ConflictError,
    MissingExtraError,
    NotFoundError,
    RemoteUnreachableError,
    UsageError,
    VerificationError,
    WbtoolError,
)
from wbtool.hashing import hash_bytes
from wbtool.manifest import ManifestEntry

BIG_SIZE = 5 * 1024 * 1024 + 12_345  # over 5 MiB: the streamed large-file path
_sources = itertools.count()


# -- fixtures and helpers ------------------------------------------------------


@pytest.fixture(autouse=True)
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store folder, HOME and working directory for each test."""
    for key in list(os.environ):
        if key.startswith("WBTOOL_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    store_dir = tmp_path / "store" / ".wbtool"
    monkeypatch.setenv("WBTOOL_DIR", str(store_dir))
    monkeypatch.chdir(tmp_path)
    return store_dir


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        write(root / rel, data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def object_path(store: Path, digest: str) -> Path:
    return store / "objects" / digest[:2] / digest[2:]


def big_bytes(seed: int = 0, size: int = BIG_SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


def load(ref: str) -> wbtool.Artifact:
    return wbtool.Api().artifact(ref)


def logged(name: str, files: dict[str, bytes | str], tmp_path: Path,
           **kwargs: object) -> wbtool.Artifact:
    """Log ``files`` as the next version of ``name`` and return the artifact."""
    src = make_tree(tmp_path / f"src-{name}-{next(_sources)}", files)
    art = wbtool.Artifact(name, "dataset", **kwargs)  # type: ignore[arg-type]
    art.add_dir(str(src))
    art.save()
    return art


# -- round trip and properties ---------------------------------------------------


def test_round_trip_nested_unicode_empty_and_large_files(tmp_path: Path) -> None:
    big = big_bytes()
    files: dict[str, bytes | str] = {
        "top.txt": "top level\n",
        "a/b/c/deep.txt": "deep\n",
        "a/empty.bin": b"",
        "données/é.txt": "accents ✓\n",
        "a/b/sibling.json": '{"k": 1}',
    }
    src = make_tree(tmp_path / "src", files)
    single = write(tmp_path / "single" / "big.bin", big)

    art = wbtool.Artifact("round-trip", "dataset")
    art.add_dir(str(src))
    art.add_file(str(single), name="blobs/big.bin")
    assert art.state == "PENDING"
    assert art.is_draft()
    assert art.name == "round-trip"
    assert art.created_at is None
    art.save()

    assert art.state == "COMMITTED"
    assert not art.is_draft()
    assert art.version == "v0"
    assert art.name == "round-trip:v0"
    assert "latest" in art.aliases

    got = load("round-trip:v0")
    root = tmp_path / "out"
    returned = got.download(str(root))
    assert Path(returned) == root.absolute()

    expected = {k: (v.encode() if isinstance(v, str) else v) for k, v in files.items()}
    expected["blobs/big.bin"] = big
    assert read_tree(root) == expected
    assert (root / "a" / "empty.bin").stat().st_size == 0

    assert got.file_count == len(expected) == 6
    assert got.size == sum(len(v) for v in expected.values())
    assert got.digest == art.digest
    assert got.get_entry("blobs/big.bin").digest == hash_bytes(big)
    assert got.get_entry("données/é.txt").size == len("accents ✓\n".encode())


def test_properties_of_logged_artifact(tmp_path: Path) -> None:
    art = wbtool.Artifact("props", "model", description="first", metadata={"lr": 0.1})
    art.add_file(str(write(tmp_path / "w.bin", b"weights")))
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    art.save()
    after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)

    got = load("props:latest")
    assert got.type == "model"
    assert got.name == "props:v0"
    assert got.version == "v0"
    assert got.aliases == ["latest"]
    assert got.state == "COMMITTED"
    assert got.description == "first"
    assert got.metadata == {"lr": 0.1}
    assert got.size == len(b"weights")
    assert got.file_count == 1
    assert got.digest == art.digest and len(got.digest) == 32
    assert got.project == "uncategorized"
    entity, project, name = got.qualified_name.split("/")
    assert entity and project == "uncategorized" and name == "props:v0"
    assert art.qualified_name == got.qualified_name
    created = dt.datetime.fromisoformat(got.created_at.replace("Z", "+00:00"))
    assert before <= created <= after
    assert got.is_link is False


def test_save_into_named_project(tmp_path: Path) -> None:
    art = wbtool.Artifact("proj-art", "dataset")
    art.add_file(str(write(tmp_path / "x.txt", "x")))
    art.save(project="p")
    assert art.project == "p"
    got = load("p/proj-art:v0")
    assert got.project == "p"
    assert got.digest == art.digest
    with pytest.raises(NotFoundError):
        load("proj-art:v0")  # not in the default project


def test_api_artifact_with_wrong_type_is_refused(tmp_path: Path) -> None:
    """Api().artifact says what run.use_artifact says of a version of another
    type: the same error class and words, not "not found"."""
    logged("typed", {"a.txt": "a"}, tmp_path)
    assert load("typed:v0").type == "dataset"
    with pytest.raises(UsageError) as api_error:
        wbtool.Api().artifact("uncategorized/typed:v0", type="model")
    with wbtool.init(project="uncategorized", settings={"quiet": True}) as run, \
            pytest.raises(UsageError) as run_error:
        run.use_artifact("uncategorized/typed:v0", type="model")
    assert str(api_error.value) == str(run_error.value) == (
        "uncategorized/typed:v0 has type 'dataset', not 'model'")
    assert not wbtool.Api().artifact_exists("typed:v0", type="model")


@pytest.mark.parametrize("bad", [5, b"dataset", ["dataset"]])
def test_an_artifact_type_that_is_no_text_is_refused(tmp_path: Path, bad: object) -> None:
    """``Api().artifacts(type_name=5)`` matched no logged type and returned []
    without a word; ``artifact_exists(type=5)`` said False."""
    logged("typed", {"a.txt": "a"}, tmp_path)
    api = wbtool.Api()
    assert [a.name for a in api.artifacts(type_name="dataset")] == ["typed:v0"]
    shown = re.escape(f"not {type(bad).__name__}: {bad!r}")
    with pytest.raises(TypeError, match=f"^type_name must be a string, {shown}$"):
        api.artifacts(type_name=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"^type must be a string, {shown}$"):
        api.artifact_exists("typed:v0", type=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"^type must be a string, {shown}$"):
        api.artifact("typed:v0", type=bad)  # type: ignore[arg-type]


def test_digest_depends_only_on_content(tmp_path: Path) -> None:
    one = wbtool.Artifact("d1", "dataset")
    one.add_dir(str(make_tree(tmp_path / "one", {"x/a.txt": "a", "b.txt": "b"})))
    two = wbtool.Artifact("d2", "dataset")
    # Same paths and content, added in the opposite order, from elsewhere.
    two.add_file(str(write(tmp_path / "two" / "b.txt", "b")))
    two.add_file(str(write(tmp_path / "two" / "zz", "a")), name="x/a.txt")
    assert one.digest == two.digest
    three = wbtool.Artifact("d3", "dataset")
    three.add_dir(str(make_tree(tmp_path / "three", {"x/a.txt": "A", "b.txt": "b"})))
    assert three.digest != one.digest


# -- what happens to the user's files ----------------------------------------------


@pytest.mark.parametrize("size", [14, BIG_SIZE], ids=["small", "large"])
def test_default_policy_leaves_user_file_alone(tmp_path: Path, store: Path, size: int) -> None:
    payload = big_bytes(1, size)
    user = write(tmp_path / "user" / "data.bin", payload)
    os.chmod(user, 0o640)
    before = os.stat(user)

    art = wbtool.Artifact("mutable", "dataset")
    entry = art.add_file(str(user))

    after = os.stat(user)
    assert user.read_bytes() == payload
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert after.st_mtime_ns == before.st_mtime_ns
    assert after.st_ino == before.st_ino
    assert after.st_nlink == 1  # no hard link into the store

    obj = object_path(store, entry.digest)
    assert obj.read_bytes() == payload
    obj_st = os.stat(obj)
    assert obj_st.st_ino != after.st_ino
    assert stat.S_IMODE(obj_st.st_mode) & 0o222 == 0, "stored object must be read-only"


def test_content_at_add_time_is_what_gets_logged(tmp_path: Path) -> None:
    user = write(tmp_path / "data.txt", "original\n")
    art = wbtool.Artifact("snapshot", "dataset")
    art.add_file(str(user))
    user.write_text("changed after add\n")
    art.save()

    root = tmp_path / "out"
    load("snapshot:v0").download(str(root))
    assert (root / "data.txt").read_text() == "original\n"
    assert user.read_text() == "changed after add\n"


def test_large_file_changed_after_add_keeps_added_content(tmp_path: Path) -> None:
    payload = big_bytes(2)
    user = write(tmp_path / "big.bin", payload)
    art = wbtool.Artifact("big-snapshot", "dataset")
    art.add_file(str(user))
    with open(user, "r+b") as f:  # rewrite in place, same inode
        f.write(b"\0" * 4096)
    art.save()
    root = tmp_path / "out"
    load("big-snapshot:v0").download(str(root))
    assert (root / "big.bin").read_bytes() == payload


def test_immutable_policy_may_share_the_inode(tmp_path: Path, store: Path) -> None:
    user = write(tmp_path / "frozen.bin", b"frozen bytes")
    art = wbtool.Artifact("immutable", "dataset")
    entry = art.add_file(str(user), policy="immutable")
    obj = object_path(store, entry.digest)
    assert obj.read_bytes() == b"frozen bytes"
    # Same filesystem: the store is expected to link rather than copy.
    assert os.stat(obj).st_ino == os.stat(user).st_ino
    art.save()
    root = tmp_path / "out"
    load("immutable:v0").download(str(root))
    assert (root / "frozen.bin").read_bytes() == b"frozen bytes"


def test_invalid_policy_is_refused(tmp_path: Path) -> None:
    user = write(tmp_path / "f.txt", "f")
    art = wbtool.Artifact("policy", "dataset")
    with pytest.raises(ValueError):
        art.add_file(str(user), policy="sometimes")
    with pytest.raises(ValueError):
        art.add_dir(str(tmp_path), policy="sometimes")
    assert art.file_count == 0


# -- versions ---------------------------------------------------------------------


def test_changed_content_bumps_version_identical_content_does_not(tmp_path: Path) -> None:
    first = logged("bump", {"a.txt": "one"}, tmp_path)
    assert first.version == "v0"

    same = logged("bump", {"a.txt": "one"}, tmp_path)
    assert same.version == "v0"
    assert same.digest == first.digest
    with pytest.raises(NotFoundError):
        load("bump:v1")

    changed = logged("bump", {"a.txt": "two"}, tmp_path)
    assert changed.version == "v1"
    assert changed.digest != first.digest
    assert load("bump:latest").version == "v1"
    assert load("bump:v0").aliases == []
    assert load("bump:v0").digest == first.digest


def test_version_numbers_are_not_reused_after_delete(tmp_path: Path) -> None:
    logged("seq", {"a.txt": "0"}, tmp_path)
    v1 = logged("seq", {"a.txt": "1"}, tmp_path)
    v1.delete()
    assert load("seq:latest").version == "v0"
    v2 = logged("seq", {"a.txt": "2"}, tmp_path)
    assert v2.version == "v2"


def test_type_of_a_collection_cannot_change(tmp_path: Path) -> None:
    logged("fixed-type", {"a.txt": "a"}, tmp_path)
    other = wbtool.Artifact("fixed-type", "model")
    other.add_file(str(write(tmp_path / "b.txt", "b")))
    with pytest.raises(WbtoolError):
        other.save()
    with pytest.raises(NotFoundError):
        load("fixed-type:v1")


# -- add_dir / add_file merge and overwrite ----------------------------------------


def test_add_dir_changed_file_needs_merge(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "first", {"same.txt": "same", "shared.txt": "old"})
    second = make_tree(tmp_path / "second", {"shared.txt": "new", "extra.txt": "extra"})

    art = wbtool.Artifact("merge", "dataset")
    art.add_dir(str(first))
    with pytest.raises(ValueError):
        art.add_dir(str(second))
    assert art.get_entry("shared.txt").digest == hash_bytes(b"old")

    art.add_dir(str(second), merge=True)
    assert art.get_entry("shared.txt").digest == hash_bytes(b"new")
    assert art.get_entry("extra.txt").digest == hash_bytes(b"extra")
    assert art.get_entry("same.txt").digest == hash_bytes(b"same")  # never removed
    assert art.file_count == 3

    art.save()
    root = tmp_path / "out"
    load("merge:v0").download(str(root))
    assert read_tree(root) == {"same.txt": b"same", "shared.txt": b"new", "extra.txt": b"extra"}


def test_refused_add_dir_or_folder_reference_changes_nothing(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "d", {"a.txt": "a"})
    art = wbtool.Artifact("all-or-none", "dataset")
    art.add_dir(str(src))
    art.add_reference("file://" + quote(str(src.absolute())), name="refs")
    write(src / "a.txt", "changed")
    write(src / "new.txt", "new")
    before = sorted(e.path for e in art.manifest)
    with pytest.raises(ValueError, match=r"a\.txt"):
        art.add_dir(str(src))
    with pytest.raises(ValueError, match=r"a\.txt"):
        art.add_reference("file://" + quote(str(src.absolute())), name="refs")
    assert sorted(e.path for e in art.manifest) == before
    assert art.get_entry("a.txt").digest == hash_bytes(b"a")


def test_add_dir_unchanged_overlap_and_new_files_need_no_merge(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "first", {"a.txt": "a", "b.txt": "b"})
    second = make_tree(tmp_path / "second", {"a.txt": "a", "c.txt": "c"})
    art = wbtool.Artifact("overlap", "dataset")
    art.add_dir(str(first))
    art.add_dir(str(second))  # same content at a.txt, c.txt is new
    assert sorted(e.path for e in art.manifest) == ["a.txt", "b.txt", "c.txt"]


def test_add_dir_with_name_puts_files_under_prefix(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"x.txt": "x", "d/y.txt": "y"})
    art = wbtool.Artifact("prefixed", "dataset")
    art.add_dir(str(src), name="sub")
    assert sorted(e.path for e in art.manifest) == ["sub/d/y.txt", "sub/x.txt"]
    art.save()
    root = tmp_path / "out"
    load("prefixed:v0").download(str(root))
    assert read_tree(root) == {"sub/x.txt": b"x", "sub/d/y.txt": b"y"}


def test_replace_a_folder_by_remove_then_add(tmp_path: Path) -> None:
    old = make_tree(tmp_path / "old", {"keep.txt": "k", "gone.txt": "g"})
    new = make_tree(tmp_path / "new", {"keep.txt": "K"})
    art = wbtool.Artifact("replace", "dataset")
    art.add_dir(str(old), name="data")
    art.remove("data")
    art.add_dir(str(new), name="data")
    assert sorted(e.path for e in art.manifest) == ["data/keep.txt"]
    assert art.get_entry("data/keep.txt").digest == hash_bytes(b"K")


def test_add_dir_of_missing_folder_fails(tmp_path: Path) -> None:
    art = wbtool.Artifact("nodir", "dataset")
    with pytest.raises(OSError):
        art.add_dir(str(tmp_path / "does-not-exist"))


def test_add_file_existing_name_different_content_needs_overwrite(tmp_path: Path) -> None:
    one = write(tmp_path / "one" / "f.txt", "one")
    two = write(tmp_path / "two" / "f.txt", "two")
    art = wbtool.Artifact("overwrite", "dataset")
    art.add_file(str(one))
    art.add_file(str(one))  # same content again: fine
    with pytest.raises(ValueError):
        art.add_file(str(two))
    assert art.get_entry("f.txt").digest == hash_bytes(b"one")
    entry = art.add_file(str(two), overwrite=True)
    assert entry.path == "f.txt"
    assert art.get_entry("f.txt").digest == hash_bytes(b"two")
    assert art.file_count == 1


def test_add_file_returns_entry_and_default_name_is_basename(tmp_path: Path) -> None:
    user = write(tmp_path / "deep" / "dir" / "model.pt", b"\x00\x01\x02")
    art = wbtool.Artifact("entry", "model")
    entry = art.add_file(str(user))
    assert entry.path == "model.pt"
    assert entry.size == 3
    assert entry.digest == hash_bytes(b"\x00\x01\x02")
    named = art.add_file(str(user), name="ckpt/best.pt")
    assert named.path == "ckpt/best.pt"
    assert art.get_entry("ckpt/best.pt").digest == entry.digest


def test_add_file_of_missing_file_fails(tmp_path: Path) -> None:
    art = wbtool.Artifact("nofile", "dataset")
    with pytest.raises(OSError):
        art.add_file(str(tmp_path / "missing.txt"))
    assert art.file_count == 0


# -- remove, get_entry, get_added_local_path_name ------------------------------------


def test_remove_file_and_folder_prefix(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {
        "keep.txt": "k", "sub/a.txt": "a", "sub/deep/b.txt": "b", "subway.txt": "s",
    })
    art = wbtool.Artifact("remove", "dataset")
    art.add_dir(str(src))

    art.remove("keep.txt")
    with pytest.raises(KeyError):
        art.get_entry("keep.txt")

    art.remove("sub")  # a folder: everything under sub/, but not subway.txt
    assert sorted(e.path for e in art.manifest) == ["subway.txt"]

    entry = art.get_entry("subway.txt")
    art.remove(entry)  # a manifest entry works too
    assert art.file_count == 0


def test_remove_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    art = wbtool.Artifact("remove-missing", "dataset")
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    with pytest.raises(FileNotFoundError):
        art.remove("nope.txt")
    with pytest.raises(FileNotFoundError):
        art.remove("a.txt/child")
    assert art.file_count == 1


def test_an_entry_downloads_its_one_file(tmp_path: Path) -> None:
    logged("one-entry", {"a.txt": "a", "d/b.txt": "b"}, tmp_path)
    art = load("one-entry:v0")
    path = art.get_entry("d/b.txt").download()
    assert path == str(tmp_path / "artifacts" / "one-entry:v0" / "d" / "b.txt")
    assert read_tree(tmp_path / "artifacts") == {"one-entry:v0/d/b.txt": b"b"}
    (entry,) = art.files(["a.txt"])
    assert Path(entry.download(str(tmp_path / "out"))).read_bytes() == b"a"
    assert read_tree(tmp_path / "out") == {"a.txt": b"a"}
    with pytest.raises(ValueError, match="not a reference"):
        entry.ref_target()
    draft = wbtool.Artifact("one-entry", "dataset")
    draft.add_file(str(write(tmp_path / "c.txt", "c")))
    with pytest.raises(ArtifactNotLoggedError):
        draft.get_entry("c.txt").download()
    ref = f"file://{quote(str(tmp_path / 'c.txt'))}"
    draft.add_reference(ref, name="ref.txt")
    assert draft.get_entry("ref.txt").ref_target() == ref


def test_get_entry_missing_raises_key_error(tmp_path: Path) -> None:
    art = wbtool.Artifact("get-entry", "dataset")
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    assert art.get_entry("a.txt").size == 1
    with pytest.raises(KeyError):
        art.get_entry("b.txt")
    logged_art = logged("get-entry-logged", {"x.txt": "x"}, tmp_path)
    with pytest.raises(KeyError):
        load(logged_art.name).get_entry("y.txt")


def test_get_added_local_path_name(tmp_path: Path) -> None:
    single = write(tmp_path / "single.txt", "s")
    src = make_tree(tmp_path / "src", {"d/inner.txt": "i"})
    art = wbtool.Artifact("local-names", "dataset")
    art.add_file(str(single), name="renamed/single.txt")
    art.add_dir(str(src), name="tree")
    assert art.get_added_local_path_name(str(single)) == "renamed/single.txt"
    assert art.get_added_local_path_name(str(src / "d" / "inner.txt")) == "tree/d/inner.txt"
    assert art.get_added_local_path_name(str(tmp_path / "never-added.txt")) is None


# -- new_file -------------------------------------------------------------------------


def test_new_file_adds_written_content(tmp_path: Path) -> None:
    art = wbtool.Artifact("new-file", "dataset")
    with art.new_file("notes/readme.md") as f:
        f.write("# hello\nwörld\n")
    with art.new_file("raw.bin", mode="wb") as f:
        f.write(b"\x00\xff\x10")
    assert art.get_entry("notes/readme.md").digest == hash_bytes("# hello\nwörld\n".encode())
    assert art.get_entry("raw.bin").size == 3
    art.save()
    root = tmp_path / "out"
    load("new-file:v0").download(str(root))
    assert read_tree(root) == {
        "notes/readme.md": "# hello\nwörld\n".encode(),
        "raw.bin": b"\x00\xff\x10",
    }


def test_new_file_refuses_existing_name_in_exclusive_mode(tmp_path: Path) -> None:
    art = wbtool.Artifact("new-file-x", "dataset")
    with art.new_file("a.txt") as f:
        f.write("first")
    with pytest.raises(ValueError), art.new_file("a.txt") as f:
        f.write("second")
    assert art.get_entry("a.txt").digest == hash_bytes(b"first")


def test_new_file_modes_replace_append_and_refuse_as_open_does(tmp_path: Path) -> None:
    """Mode "x" refuses a name the artifact has, "w" replaces its entry, "a"
    appends to its content (text or bytes), as ``open`` treats a file."""
    art = wbtool.Artifact("new-file-modes", "dataset")
    with art.new_file("a.txt", mode="w") as f:
        f.write("first")
    with art.new_file("a.txt", mode="w") as f:
        f.write("second")
    assert art.get_entry("a.txt").digest == hash_bytes(b"second")
    with art.new_file("a.txt", mode="a") as f:
        f.write("+more")
    with art.new_file("a.txt", mode="ab") as f:
        f.write(b"+bytes")
    with art.new_file("new.txt", mode="a") as f:
        f.write("fresh")
    with pytest.raises(ValueError, match="mode 'x'"), art.new_file("a.txt", mode="x") as f:
        f.write("third")
    with art.new_file("raw.bin", mode="xb") as f:
        f.write(b"\x00")
    with art.new_file("raw.bin", mode="wb") as f:
        f.write(b"\x01\x02")
    art.add_reference("file://" + quote(str(write(tmp_path / "ref.txt", "ref"))), name="ref.txt")
    with pytest.raises(ValueError, match="reference"), art.new_file("ref.txt", mode="a"):
        pass
    art.save()
    root = tmp_path / "out"
    load("new-file-modes:v0").download(str(root))
    assert read_tree(root) == {"a.txt": b"second+more+bytes", "new.txt": b"fresh",
                               "raw.bin": b"\x01\x02", "ref.txt": b"ref"}


def test_adding_a_media_object_twice_needs_overwrite(tmp_path: Path) -> None:
    art = wbtool.Artifact("media-twice", "dataset")
    art.add(wbtool.Table(columns=["a"], data=[[1]]), "t")
    with pytest.raises(ValueError, match="already in the artifact"):
        art.add(wbtool.Table(columns=["a"], data=[[2]]), "t")
    first = art.get_entry("t.table.json").digest
    art.add(wbtool.Table(columns=["a"], data=[[2]]), "t", overwrite=True)
    assert art.get_entry("t.table.json").digest != first


def test_new_file_refuses_modes_that_do_not_write(tmp_path: Path) -> None:
    art = wbtool.Artifact("new-file-mode", "dataset")
    for mode in ("r", "rb", "r+", "", "b", "wx", "wa"):
        with pytest.raises(ValueError, match="does not write"), art.new_file("a.txt", mode=mode):
            pass
    assert art.file_count == 0


def test_add_dir_on_a_file_says_it_is_not_a_folder(tmp_path: Path) -> None:
    f = write(tmp_path / "plain.txt", "x")
    art = wbtool.Artifact("not-a-folder", "dataset")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        art.add_dir(str(f))
    with pytest.raises(NotADirectoryError, match="no such folder"):
        art.add_dir(str(tmp_path / "missing"))


def test_add_file_is_tmp_renames_only_the_file_name(tmp_path: Path) -> None:
    f = write(tmp_path / "file", "data")
    g = write(tmp_path / "g.txt", "text")
    art = wbtool.Artifact("tmp-names", "dataset")
    digest = hash_bytes(b"data")
    assert art.add_file(str(f), name="dir.v1/file", is_tmp=True).path == (
        f"dir.v1/file.{digest[:20]}")
    assert art.add_file(str(g), name="a.b/g.txt", is_tmp=True).path == (
        f"a.b/g.{hash_bytes(b'text')[:20]}.txt")


# -- finalized and draft states -----------------------------------------------------


def test_logged_artifact_cannot_be_changed(tmp_path: Path) -> None:
    user = write(tmp_path / "a.txt", "a")
    art = wbtool.Artifact("final", "dataset")
    art.add_file(str(user))
    art.save()
    other = write(tmp_path / "b.txt", "b")
    with pytest.raises(ArtifactFinalizedError):
        art.add_file(str(other))
    with pytest.raises(ArtifactFinalizedError):
        art.add_dir(str(tmp_path / "store"))
    with pytest.raises(ArtifactFinalizedError):
        art.remove("a.txt")
    with pytest.raises(ArtifactFinalizedError), art.new_file("c.txt") as f:
        f.write("c")
    with pytest.raises(ArtifactFinalizedError):
        art.add_reference(user.as_uri())

    reloaded = load("final:v0")
    with pytest.raises(ArtifactFinalizedError):
        reloaded.add_file(str(other))
    assert reloaded.file_count == 1
    assert art.file_count == 1


def test_finalize_freezes_a_draft(tmp_path: Path) -> None:
    art = wbtool.Artifact("finalized-draft", "dataset")
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    art.finalize()
    with pytest.raises(ArtifactFinalizedError):
        art.add_file(str(write(tmp_path / "b.txt", "b")))


def refuses_every_change(got: wbtool.Artifact, tmp_path: Path) -> None:
    """Every way of changing ``got``'s manifest raises ArtifactFinalizedError
    and changes nothing."""
    manifest = got.manifest
    entries = manifest.entries
    first = next(iter(manifest))
    other = ManifestEntry("c.txt", first.digest, first.size)
    before = {p: e.to_dict() for p, e in entries.items()}
    changes = [
        lambda: entries.__setitem__("c.txt", other),
        lambda: entries.__setitem__(first.path, other),
        lambda: entries.__delitem__(first.path),
        lambda: entries.pop(first.path),
        lambda: entries.popitem(),
        lambda: entries.clear(),
        lambda: entries.update({"c.txt": other}),
        lambda: entries.setdefault("c.txt", other),
        lambda: manifest.add(other),
        lambda: manifest.remove(first.path),
        lambda: setattr(manifest, "entries", {}),
        lambda: setattr(first, "digest", "0" * 32),
        lambda: setattr(first, "size", 99),
        lambda: setattr(first, "ref", "file:///etc/passwd"),
        lambda: got.add_file(str(write(tmp_path / "c.txt", "c"))),
    ]
    for change in changes:
        with pytest.raises(ArtifactFinalizedError):
            change()
    assert {p: e.to_dict() for p, e in got.manifest.entries.items()} == before


def test_a_logged_artifacts_manifest_is_read_only(tmp_path: Path) -> None:
    """The reference: the manifest "can't be changed once the artifact has
    been logged". Adding, replacing or removing an entry, or changing one,
    raises ArtifactFinalizedError, as add_file does, for the artifact just
    logged, one read back and one finalized; a new draft's can change."""
    art = logged("frozen", {"a.txt": "a", "b.txt": "b"}, tmp_path)
    final = wbtool.Artifact("frozen-draft", "dataset")
    final.add_file(str(write(tmp_path / "f.txt", "f")))
    final.finalize()
    for got in (art, load("frozen:v0"), final):
        refuses_every_change(got, tmp_path)
    assert load("frozen:v0").file_count == 2
    draft = art.new_draft()
    draft.manifest.entries["a.txt"].size = 5  # a draft's own copy
    draft.manifest.remove("b.txt")
    assert art.file_count == 2 and art.manifest.entries["a.txt"].size == 1


def test_draft_cannot_be_read_back(tmp_path: Path) -> None:
    art = wbtool.Artifact("draft", "dataset")
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    root = str(tmp_path / "out")
    with pytest.raises(ArtifactNotLoggedError):
        art.download(root)
    with pytest.raises(ArtifactNotLoggedError):
        art.verify(root)
    with pytest.raises(ArtifactNotLoggedError):
        art.checkout(root)
    with pytest.raises(ArtifactNotLoggedError):
        art.file(root)
    with pytest.raises(ArtifactNotLoggedError):
        art.new_draft()
    with pytest.raises(ArtifactNotLoggedError):
        art.delete()
    with pytest.raises(ArtifactNotLoggedError):
        art.link("portfolio")
    assert not (tmp_path / "out").exists()


# -- incremental versions ------------------------------------------------------------


def test_new_draft_logs_incremental_version(tmp_path: Path) -> None:
    v0 = logged("incr", {"a.txt": "a", "big.bin": big_bytes(3), "d/b.txt": "b"}, tmp_path)
    v0_digests = {e.path: e.digest for e in v0.manifest}

    draft = load("incr:latest").new_draft()
    assert draft.is_draft()
    assert draft.state == "PENDING"
    assert {e.path: e.digest for e in draft.manifest} == v0_digests
    draft.add_file(str(write(tmp_path / "added.txt", "added")), name="d/added.txt")
    draft.save()
    assert draft.version == "v1"

    v1 = load("incr:v1")
    v1_digests = {e.path: e.digest for e in v1.manifest}
    assert v1_digests == {**v0_digests, "d/added.txt": hash_bytes(b"added")}

    root0, root1 = tmp_path / "out0", tmp_path / "out1"
    load("incr:v0").download(str(root0))
    v1.download(str(root1))
    assert read_tree(root0) == {"a.txt": b"a", "big.bin": big_bytes(3), "d/b.txt": b"b"}
    assert read_tree(root1) == {**read_tree(root0), "d/added.txt": b"added"}


def test_new_draft_can_remove_files(tmp_path: Path) -> None:
    logged("incr-rm", {"a.txt": "a", "b.txt": "b"}, tmp_path)
    draft = load("incr-rm:v0").new_draft()
    draft.remove("b.txt")
    draft.save()
    assert draft.version == "v1"
    root = tmp_path / "out"
    load("incr-rm:v1").download(str(root))
    assert read_tree(root) == {"a.txt": b"a"}
    assert load("incr-rm:v0").file_count == 2


def test_incremental_artifact_goes_on_top_of_the_latest_version(tmp_path: Path) -> None:
    logged("incr-flag", {"a.txt": "a", "b.txt": "b"}, tmp_path)
    art = wbtool.Artifact("incr-flag", "dataset", incremental=True)
    art.add_file(str(write(tmp_path / "b2.txt", "B")), name="b.txt")
    art.add_file(str(write(tmp_path / "c.txt", "c")))
    art.save()
    assert art.version == "v1" and art.file_count == 3
    root = tmp_path / "out"
    load("incr-flag:v1").download(str(root))
    assert read_tree(root) == {"a.txt": b"a", "b.txt": b"B", "c.txt": b"c"}
    # the first version of a collection: nothing to start from
    first = wbtool.Artifact("incr-new", "dataset", incremental=True)
    first.add_file(str(tmp_path / "c.txt"))
    first.save()
    assert first.version == "v0" and first.file_count == 1


def test_new_draft_of_a_linked_version_logs_into_its_source(tmp_path: Path) -> None:
    """A portfolio only holds links, so the next version is its source's."""
    logged("incr-src", {"a.txt": "a"}, tmp_path).link("registry/best")
    linked = load("registry/best:latest")
    draft = linked.new_draft()
    draft.add_file(str(write(tmp_path / "b.txt", "b")))
    draft.save()
    assert draft.name == "incr-src:v1" and draft.project == linked.source_project
    assert sorted(draft.manifest.entries) == ["a.txt", "b.txt"]
    assert load("registry/best:latest").source_version == "v0"


def test_a_failed_incremental_save_keeps_only_what_was_added(tmp_path: Path) -> None:
    """Saving again after a failure goes on top of the latest version then,
    without the files of the one that was latest at the first try: a file
    that a newer version removed stays removed."""
    logged("incr-retry", {"a": "a", "x.txt": "x"}, tmp_path)
    art = wbtool.Artifact("incr-retry", "dataset", incremental=True)
    art.add_file(str(write(tmp_path / "b", "b")), name="a/b")
    with pytest.raises(UsageError, match="both a file and a folder"):
        art.save()
    assert sorted(art.manifest.entries) == ["a/b"]
    newer = load("incr-retry:latest").new_draft()
    newer.remove("x.txt")
    newer.save()
    art.remove("a/b")
    art.add_file(str(write(tmp_path / "c", "c")), name="c")
    art.save()
    assert art.version == "v2" and sorted(art.manifest.entries) == ["a", "c"]


def test_an_incremental_save_outlasts_many_versions_logged_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each version another process logs between reading the latest and
    recording this one is a try lost to a writer that has finished: the
    save goes on trying, as many times as there are such writers."""
    import subprocess

    from wbtool.artifacts.registry import Registry

    logged("incr-race", {"a": "a"}, tmp_path)
    read_latest, others = Registry.latest_files, 8

    def overtaken(self: Registry, project: str, name: str) -> object:
        files = read_latest(self, project, name)
        n = len(self.versions(project, name)) - 1
        if n < others:  # another process logs a version right after this read
            other = write(tmp_path / f"other{n}", f"{n}")
            subprocess.run([sys.executable, "-m", "wbtool", "artifact", "log", "incr-race",
                            str(other), "-i"], check=True, capture_output=True)
        return files

    monkeypatch.setattr(Registry, "latest_files", overtaken)
    art = wbtool.Artifact("incr-race", "dataset", incremental=True)
    art.add_file(str(write(tmp_path / "mine", "m")))
    art.save()
    assert art.version == f"v{others + 1}"
    assert sorted(art.manifest.entries) == sorted(
        ["a", "mine", *(f"other{n}" for n in range(others))])


def test_new_draft_without_changes_is_a_noop(tmp_path: Path) -> None:
    v0 = logged("incr-noop", {"a.txt": "a"}, tmp_path)
    draft = v0.new_draft()
    draft.save()
    assert draft.version == "v0"
    with pytest.raises(NotFoundError):
        load("incr-noop:v1")


# -- download, verify, checkout -------------------------------------------------------


def test_download_default_root_and_prefix(tmp_path: Path) -> None:
    logged("dl", {"x/a.txt": "a", "x/b.txt": "b", "y/c.txt": "c"}, tmp_path)
    art = load("dl:v0")
    path = art.download()
    assert Path(path) == (tmp_path / "artifacts" / "dl:v0").absolute()
    assert read_tree(Path(path)) == {"x/a.txt": b"a", "x/b.txt": b"b", "y/c.txt": b"c"}

    part = tmp_path / "part"
    art.download(str(part), path_prefix="x/")
    assert read_tree(part) == {"x/a.txt": b"a", "x/b.txt": b"b"}


def test_download_keeps_unrelated_files_in_root(tmp_path: Path) -> None:
    logged("dl-keep", {"a.txt": "a"}, tmp_path)
    root = tmp_path / "out"
    write(root / "mine.txt", "not from the artifact")
    load("dl-keep:v0").download(str(root))
    assert read_tree(root) == {"a.txt": b"a", "mine.txt": b"not from the artifact"}


def test_aliases_or_tags_that_are_no_list_are_refused(tmp_path: Path) -> None:
    """aliases=5 failed from inside ('int' object is not iterable)."""
    src = write(tmp_path / "a.txt", "a")
    with wbtool.init(project="uncategorized", settings={"quiet": True, "console": "off"}) as run:
        for option in ("aliases", "tags"):
            with pytest.raises(TypeError, match="expected a string or a list of strings, "
                                                "not int: 5"):
                run.log_artifact(str(src), name="al", type="dataset", **{option: 5})
    art = wbtool.Artifact("al", "dataset")
    with pytest.raises(TypeError, match="not int: 5"):
        art.aliases = 5  # type: ignore[assignment]
    with pytest.raises(TypeError, match="not int: 5"):
        art.tags.extend(5)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        load("al:v0")


def test_an_empty_root_is_refused_not_read_as_the_current_folder(tmp_path: Path) -> None:
    """download(root="") (an unset variable) wrote into the current folder,
    over files there of the same names."""
    logged("dl-empty", {"a.txt": "from the artifact"}, tmp_path)
    art = load("dl-empty:v0")
    write(Path("a.txt"), "mine")
    calls = [lambda: art.download(""), lambda: art.download(root=""),
             lambda: art.file(""), lambda: art.checkout(""), lambda: art.verify(""),
             lambda: art.get_entry("a.txt").download("")]
    for call in calls:
        with pytest.raises(ValueError, match=r"name the folder to .*: root is empty"):
            call()
    assert Path("a.txt").read_text() == "mine"


def test_downloaded_files_are_independent_of_the_store(tmp_path: Path, store: Path) -> None:
    art = logged("dl-independent", {"a.txt": "stored"}, tmp_path)
    root = tmp_path / "out"
    load("dl-independent:v0").download(str(root))
    out_file = root / "a.txt"
    obj = object_path(store, art.get_entry("a.txt").digest)
    assert os.stat(out_file).st_ino != os.stat(obj).st_ino
    out_file.write_text("edited by the user")  # downloaded files are writable
    assert obj.read_bytes() == b"stored"


def test_verify_clean_download_passes(tmp_path: Path) -> None:
    logged("verify", {"a.txt": "a", "d/b.txt": "b", "e.bin": b""}, tmp_path)
    art = load("verify:v0")
    root = tmp_path / "out"
    art.download(str(root))
    art.verify(str(root))  # no exception


@pytest.mark.parametrize("damage", ["modify", "same-size-modify", "delete", "extra", "extra-deep"])
def test_verify_detects_damage(tmp_path: Path, damage: str) -> None:
    logged("verify-bad", {"a.txt": "aaaa", "d/b.txt": "b"}, tmp_path)
    art = load("verify-bad:v0")
    root = tmp_path / "out"
    art.download(str(root))
    if damage == "modify":
        (root / "a.txt").write_text("something else")
    elif damage == "same-size-modify":
        (root / "a.txt").write_text("aaab")
    elif damage == "delete":
        (root / "d" / "b.txt").unlink()
    elif damage == "extra":
        write(root / "extra.txt", "extra")
    else:
        write(root / "new" / "dir" / "extra.txt", "extra")
    with pytest.raises(ValueError):
        art.verify(str(root))


def test_checkout_restores_and_removes_extras(tmp_path: Path) -> None:
    logged("checkout", {"a.txt": "a", "d/b.txt": "b", "d/e/c.txt": "c"}, tmp_path)
    art = load("checkout:v0")
    root = tmp_path / "out"
    art.download(str(root))
    (root / "a.txt").write_text("modified")
    (root / "d" / "e" / "c.txt").unlink()
    write(root / "extra.txt", "x")
    write(root / "d" / "extra.txt", "x")
    write(root / "junk" / "deeper" / "f.txt", "x")
    before = read_tree(root)
    with pytest.raises(ConflictError, match="holds 3 files that no version of checkout has"):
        art.checkout(str(root))  # files of nobody's: refused before anything is deleted
    assert read_tree(root) == before

    returned = art.checkout(str(root), force=True)
    assert Path(returned) == root.absolute()
    assert read_tree(root) == {"a.txt": b"a", "d/b.txt": b"b", "d/e/c.txt": b"c"}
    assert not (root / "junk").exists()
    art.verify(str(root))


def test_checkout_never_writes_through_a_symlink_in_root(tmp_path: Path) -> None:
    logged("checkout-link", {"d/b.txt": "b", "f/c.txt": "c"}, tmp_path)
    art = load("checkout-link:v0")
    outside = make_tree(tmp_path / "outside", {"precious.txt": "keep me"})
    root = tmp_path / "ws"
    root.mkdir()
    (root / "d").symlink_to(outside, target_is_directory=True)
    write(root / "f", "a file where the artifact has a folder")

    with pytest.raises(ValueError):
        art.download(str(root))  # download does not replace what is in the way
    assert read_tree(outside) == {"precious.txt": b"keep me"}

    art.checkout(str(root), force=True)  # "f" is nobody's file
    assert not (root / "d").is_symlink()
    assert read_tree(root) == {"d/b.txt": b"b", "f/c.txt": b"c"}
    assert read_tree(outside) == {"precious.txt": b"keep me"}


def test_checkout_into_empty_folder(tmp_path: Path) -> None:
    logged("checkout-new", {"a.txt": "a"}, tmp_path)
    root = tmp_path / "fresh"
    load("checkout-new:v0").checkout(str(root))
    assert read_tree(root) == {"a.txt": b"a"}


def test_checkout_switches_between_versions(tmp_path: Path) -> None:
    logged("switch", {"a.txt": "a0", "only0.txt": "z"}, tmp_path)
    logged("switch", {"a.txt": "a1", "only1/x.txt": "y"}, tmp_path)
    root = tmp_path / "ws"
    load("switch:v0").checkout(str(root))
    assert read_tree(root) == {"a.txt": b"a0", "only0.txt": b"z"}
    load("switch:v1").checkout(str(root))
    assert read_tree(root) == {"a.txt": b"a1", "only1/x.txt": b"y"}
    load("switch:v0").checkout(str(root))
    assert read_tree(root) == {"a.txt": b"a0", "only0.txt": b"z"}
    assert not (root / "only1").exists()


# -- aliases, tags, description, metadata ------------------------------------------------


def test_alias_set_after_logging_is_persisted_by_save(tmp_path: Path) -> None:
    art = logged("alias", {"a.txt": "a"}, tmp_path)
    art.aliases = ["best"]
    art.save()
    assert load("alias:best").version == "v0"
    got = load("alias:v0")
    assert sorted(got.aliases) == ["best", "latest"]


def test_alias_moves_to_newer_version(tmp_path: Path) -> None:
    v0 = wbtool.Artifact("moving", "dataset")
    v0.add_file(str(write(tmp_path / "a.txt", "0")))
    v0.aliases = ["best"]
    v0.save()
    assert load("moving:best").version == "v0"

    v1 = wbtool.Artifact("moving", "dataset")
    v1.add_file(str(write(tmp_path / "a.txt", "1")))
    v1.aliases = ["best"]
    v1.save()
    assert v1.version == "v1"
    assert load("moving:best").version == "v1"
    assert "best" not in load("moving:v0").aliases
    assert load("moving:v0").aliases == []


def test_removing_an_alias_by_save(tmp_path: Path) -> None:
    art = wbtool.Artifact("unalias", "dataset")
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    art.aliases = ["prod", "staging"]
    art.save()
    art.aliases = ["staging"]
    art.save()
    assert sorted(load("unalias:v0").aliases) == ["latest", "staging"]
    with pytest.raises(NotFoundError):
        load("unalias:prod")


def test_identical_content_with_new_alias_tags_existing_version(tmp_path: Path) -> None:
    logged("noop-alias", {"a.txt": "a"}, tmp_path)
    again = wbtool.Artifact("noop-alias", "dataset")
    again.add_file(str(write(tmp_path / "again" / "a.txt", "a")))
    again.aliases = ["candidate"]
    again.save()
    assert again.version == "v0"
    assert load("noop-alias:candidate").version == "v0"


def test_latest_always_names_the_newest_version(tmp_path: Path) -> None:
    art = logged("latest", {"a.txt": "a"}, tmp_path)
    art.aliases = []
    art.save()
    assert load("latest:latest").version == "v0"
    assert load("latest:v0").aliases == ["latest"]


def test_ttl_is_persisted_by_save(tmp_path: Path) -> None:
    logged("ttl", {"a.txt": "a"}, tmp_path)
    got = load("ttl:v0")
    got.ttl = dt.timedelta(days=3)
    got.save()
    assert load("ttl:v0").ttl == dt.timedelta(days=3)
    with pytest.raises(ValueError):
        got.ttl = 5  # type: ignore[assignment]


def test_invalid_alias_is_refused(tmp_path: Path) -> None:
    art = wbtool.Artifact("bad-alias", "dataset")
    with pytest.raises(ValueError):
        art.aliases = ["v3"]  # looks like a version
    with pytest.raises(ValueError):
        art.aliases = ["has space"]


def in_place_changes(labels: list[str]) -> list[Callable[[str], object]]:
    """Every way of adding one name to ``labels`` in place."""
    return [labels.append, lambda a: labels.insert(0, a), lambda a: labels.extend(["fine", a]),
            lambda a: labels.__iadd__([a]), lambda a: labels.__setitem__(slice(0, 0), [a])]


def test_an_invalid_alias_or_tag_is_refused_as_it_is_added(tmp_path: Path) -> None:
    """An alias added to ``aliases`` in place (append, insert, extend, +=,
    item or slice) is checked there: an invalid one is refused at once,
    the list stays as it was, and the next save stores what the list
    holds, so that the artifact's aliases are always what the store has
    after it. Tags likewise."""
    art = logged("alias-in-place", {"a.txt": "a"}, tmp_path)
    draft = wbtool.Artifact("alias-draft", "dataset")
    draft.add_file(str(write(tmp_path / "d.txt", "d")))
    for got in (art, load("alias-in-place:v0"), draft):
        aliases, tags = list(got.aliases), list(got.tags)
        for bad in ("bad/alias", "a:b", "v3", "v03", "", "has space"):
            for change in in_place_changes(got.aliases):
                with pytest.raises(ValueError, match="invalid alias"):
                    change(bad)
                assert got.aliases == aliases
        if got.aliases:
            with pytest.raises(ValueError, match="invalid alias"):
                got.aliases[0] = "x/y"
        with pytest.raises(ValueError, match="invalid tag"):
            got.tags.append("tab\tbed")
        assert got.aliases == aliases and got.tags == tags
        got.aliases.append("best")
        got.aliases += ["prod"]
        got.tags.append("checked")
        got.save()
        stored = load(f"{got.name.partition(':')[0]}:best")
        assert sorted(got.aliases) == sorted(stored.aliases) == sorted(
            {*aliases, "best", "prod", "latest"})
        assert got.tags == stored.tags == ["checked"]


def test_tags_description_metadata_persisted_by_save(tmp_path: Path) -> None:
    art = logged("meta", {"a.txt": "a"}, tmp_path, description="old", metadata={"k": 1})
    got = load("meta:v0")
    assert got.description == "old"
    assert got.metadata == {"k": 1}
    assert got.tags == []

    got.tags = ["nightly", "gold"]
    got.description = "new description"
    got.metadata = {"k": 2, "nested": {"x": [1, 2]}}
    got.save()

    again = load("meta:v0")
    assert sorted(again.tags) == ["gold", "nightly"]
    assert again.description == "new description"
    assert again.metadata == {"k": 2, "nested": {"x": [1, 2]}}
    assert again.digest == art.digest  # content is untouched
    assert again.version == "v0"
    with pytest.raises(NotFoundError):
        load("meta:v1")


def test_updated_at_moves_on_save(tmp_path: Path) -> None:
    logged("updated", {"a.txt": "a"}, tmp_path)
    got = load("updated:v0")
    first = got.updated_at
    assert first is not None
    got.description = "touched"
    got.save()
    assert load("updated:v0").updated_at >= first  # type: ignore[operator]
    assert load("updated:v0").created_at == got.created_at


def test_description_can_be_cleared_after_logging(tmp_path: Path) -> None:
    logged("clear-desc", {"a.txt": "a"}, tmp_path, description="to be removed")
    got = load("clear-desc:v0")
    got.description = None
    got.save()
    assert load("clear-desc:v0").description is None


def test_metadata_with_more_than_100_keys_is_refused(tmp_path: Path) -> None:
    many = {f"k{i}": i for i in range(101)}
    with pytest.raises(ValueError):
        wbtool.Artifact("too-many", "dataset", metadata=many)
    ok = wbtool.Artifact("hundred", "dataset", metadata={f"k{i}": i for i in range(100)})
    assert len(ok.metadata) == 100
    with pytest.raises(ValueError):
        ok.metadata = many
    assert len(ok.metadata) == 100


def test_metadata_grown_in_place_past_100_keys_is_refused_on_save(tmp_path: Path) -> None:
    logged("grown", {"a.txt": "a"}, tmp_path)
    got = load("grown:v0")
    got.metadata.update({f"k{i}": i for i in range(101)})
    with pytest.raises(ValueError):
        got.save()
    assert load("grown:v0").metadata == {}


def test_draft_metadata_grown_in_place_past_100_keys_is_refused_on_save(
    tmp_path: Path,
) -> None:
    art = wbtool.Artifact("grown-draft", "dataset")
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    art.metadata.update({f"k{i}": i for i in range(101)})
    with pytest.raises(ValueError):
        art.save()
    with pytest.raises(NotFoundError):
        load("grown-draft:v0")


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), [1, {"x": [1e999]}],
                                 _nested(5000), _nested(101)])
def test_metadata_that_is_not_standard_json_is_refused(tmp_path: Path, bad: object) -> None:
    """NaN and Infinity are not JSON, and nesting past a reader's stack could
    not be read back: refused when set and when saved, and nothing is stored."""
    with pytest.raises(ValueError, match="metadata"):
        wbtool.Artifact("odd", "dataset", metadata={"k": bad})
    art = wbtool.Artifact("odd", "dataset", metadata={"k": _nested(99)})  # 100 levels: fine
    with pytest.raises(ValueError, match="metadata"):
        art.metadata = {"k": bad}
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    art.metadata["k"] = bad
    with pytest.raises(ValueError, match="metadata"):
        art.save()
    with pytest.raises(NotFoundError):
        load("odd:v0")
    logged("odd", {"a.txt": "a"}, tmp_path)
    got = load("odd:v0")
    got.metadata["k"] = bad
    with pytest.raises(ValueError, match="metadata"):
        got.save()
    assert load("odd:v0").metadata == {}


@pytest.mark.parametrize("bad", [{1: "a", "1": "b"}, {"x": {2: "y"}}, {1: 2}, {None: 1},
                                 {"x": [{(1, 2): 3}]}])
def test_metadata_keys_that_are_not_text_are_refused(tmp_path: Path, bad: dict) -> None:
    """A key that is not text came back as text (1 as "1"), lost the value of a
    text key spelled the same, or failed the save with an error from deep in
    the JSON writer: refused when set and when saved, naming the key."""
    with pytest.raises(ValueError, match="metadata keys must be strings"):
        wbtool.Artifact("odd-keys", "dataset", metadata=bad)
    art = wbtool.Artifact("odd-keys", "dataset")
    with pytest.raises(ValueError, match="metadata keys must be strings"):
        art.metadata = bad
    art.add_file(str(write(tmp_path / "a.txt", "a")))
    art.metadata.update(bad)
    with pytest.raises(ValueError, match="metadata keys must be strings"):
        art.save()
    with pytest.raises(NotFoundError):
        load("odd-keys:v0")
    logged("odd-keys", {"a.txt": "a"}, tmp_path, metadata={"k": 1})
    got = load("odd-keys:v0")
    got.metadata.update(bad)
    with pytest.raises(ValueError, match="metadata keys must be strings"):
        got.save()
    assert load("odd-keys:v0").metadata == {"k": 1}


def test_names_longer_than_a_filesystem_takes_are_refused(tmp_path: Path) -> None:
    src = write(tmp_path / "a.txt", "a")
    art = wbtool.Artifact("long-names", "dataset")
    too_long = "é" * 128  # 256 bytes
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        art.add_file(str(src), name=f"d/{too_long}")
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        art.add_dir(str(tmp_path), name=too_long)
    with pytest.raises(ValueError, match="longer than 255 bytes"), art.new_file(too_long) as f:
        f.write("never")
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        art.add_reference(src.as_uri(), name=too_long)
    assert not art.manifest.entries


@pytest.mark.parametrize("uri", [5, None, b"file:///x", Path("/x")])
def test_a_reference_that_is_no_uri_is_refused(uri: Any) -> None:
    """It failed with AttributeError ('int' object has no attribute 'decode')."""
    art = wbtool.Artifact("refs", "dataset")
    with pytest.raises(UsageError, match="a URI string or a manifest entry, not "):
        art.add_reference(uri)
    assert not art.manifest.entries


# -- delete ----------------------------------------------------------------------------


def test_delete_with_alias_requires_delete_aliases(tmp_path: Path) -> None:
    v0 = wbtool.Artifact("del", "dataset")
    v0.add_file(str(write(tmp_path / "a.txt", "zero")))
    v0.aliases = ["best"]
    v0.save()
    logged("del", {"a.txt": "one"}, tmp_path)

    target = load("del:v0")
    with pytest.raises(WbtoolError, match=r"has aliases best; pass delete_aliases=True to"):
        target.delete()
    assert load("del:best").version == "v0"  # nothing was deleted
    for bad in ("False", "no", 0.0, None):  # a string that reads as "no" deleted it
        with pytest.raises(TypeError, match=f"delete_aliases must be True or False, not {bad!r}"):
            target.delete(delete_aliases=bad)  # type: ignore[arg-type]
    for false in (False, 0):  # a whole number is read for its truth, as in W&B
        with pytest.raises(WbtoolError, match=r"has aliases best; pass delete_aliases=True"):
            target.delete(delete_aliases=false)
    assert load("del:best").version == "v0"

    target.delete(delete_aliases=True)
    assert target.state == "DELETED"
    with pytest.raises(NotFoundError):
        load("del:v0")
    with pytest.raises(NotFoundError):
        load("del:best")

    v1 = load("del:latest")
    assert v1.version == "v1"
    root = tmp_path / "out"
    v1.download(str(root))
    assert read_tree(root) == {"a.txt": b"one"}


def test_delete_without_user_alias(tmp_path: Path) -> None:
    logged("del-plain", {"a.txt": "0"}, tmp_path)
    logged("del-plain", {"a.txt": "1"}, tmp_path)
    load("del-plain:v0").delete()  # only "latest"-less, no user alias: fine
    with pytest.raises(NotFoundError):
        load("del-plain:v0")
    assert load("del-plain:v1").digest == load("del-plain:latest").digest


# -- links -------------------------------------------------------------------------------


def test_link_and_unlink(tmp_path: Path) -> None:
    art = logged("linked-src", {"m.bin": b"model"}, tmp_path)
    src = load("linked-src:v0")
    assert src.source_artifact is src
    assert src.linked_artifacts == []

    link = src.link("my-portfolio")
    assert link.is_link is True
    assert link.name.startswith("my-portfolio:")
    assert link.digest == art.digest
    assert link.type == "dataset"
    assert link.linked_artifacts == []

    source = link.source_artifact
    assert source.is_link is False
    assert source.name == "linked-src:v0"
    assert source.digest == art.digest
    assert link.source_name == "linked-src:v0"
    assert link.source_version == "v0"

    listed = load("linked-src:v0").linked_artifacts
    assert [a.name for a in listed] == [link.name]
    assert all(a.is_link for a in listed)

    via_api = load("my-portfolio:latest")
    assert via_api.is_link
    root = tmp_path / "out"
    via_api.download(str(root))
    assert read_tree(root) == {"m.bin": b"model"}

    link.unlink()
    assert load("linked-src:v0").linked_artifacts == []
    with pytest.raises(NotFoundError):
        load(link.name)
    assert load("linked-src:v0").digest == art.digest  # the source is untouched


def test_used_by_includes_runs_that_used_a_link(tmp_path: Path) -> None:
    quiet = {"quiet": True, "console": "off"}
    with wbtool.init(project="p", settings=quiet) as producer:
        producer.log_artifact(str(write(tmp_path / "m.bin", "model")), name="src",
                              type="model")
    wbtool.Api().artifact("p/src:v0").link("p/portf", aliases=["prod"])
    with wbtool.init(project="p", settings=quiet) as direct:
        direct.use_artifact("p/src:v0")
    with wbtool.init(project="p", settings=quiet) as via_link:
        via_link.use_artifact("p/portf:prod")
    used = [r.id for r in wbtool.Api().artifact("p/src:v0").used_by()]
    assert sorted(used) == sorted([direct.id, via_link.id])


def test_link_with_alias_and_unlink_of_source_fails(tmp_path: Path) -> None:
    logged("link-alias", {"a.txt": "a"}, tmp_path)
    src = load("link-alias:v0")
    src.link("portfolio-a", aliases=["production"])
    assert load("portfolio-a:production").source_name == "link-alias:v0"
    with pytest.raises(ValueError):
        src.unlink()


@pytest.mark.parametrize("target", ["../x", "a b/port", "p/../port"])
def test_a_link_target_with_an_invalid_project_is_refused(tmp_path: Path, target: str) -> None:
    """A portfolio in project ``..`` could be named by no command afterwards."""
    src = logged("link-bad", {"a.txt": "a"}, tmp_path)
    with pytest.raises(UsageError):
        src.link(target)
    assert load("link-bad:v0").linked_artifacts == []


def test_a_reference_to_another_entity_is_not_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose ``entity`` setting names its entity refuses a reference
    or link target naming another, naming both, and never reads it as one of
    this store's; its own entity, and no entity, keep working. Without the
    setting, any entity is this store's (scripts name a team's)."""
    monkeypatch.setenv("WBTOOL_ENTITY", "team")
    art = logged("ent", {"a.txt": "a"}, tmp_path)
    assert art.entity == "team" and art.qualified_name == "team/uncategorized/ent:v0"
    api = wbtool.Api()
    assert api.artifact("team/uncategorized/ent:v0").digest == art.digest
    assert api.artifact(art.qualified_name).digest == art.digest
    assert api.artifact_exists("team/uncategorized/ent:v0")
    for ref in ("other/uncategorized/ent:v0", "other/uncategorized/ent"):
        with pytest.raises(NotFoundError, match="entity 'other' not found: this store's "
                                                "entity is 'team'"):
            api.artifact(ref)
        assert not api.artifact_exists(ref)
        with pytest.raises(NotFoundError, match=r"'other'.*'team'"):
            api.artifacts(name=ref.partition(":")[0])
    with wbtool.init(project="uncategorized", settings={"quiet": True, "console": "off"}) as run:
        assert run.use_artifact("team/uncategorized/ent:v0").digest == art.digest
        with pytest.raises(NotFoundError, match=r"'other'.*'team'"):
            run.use_artifact("other/uncategorized/ent:v0")
    with pytest.raises(NotFoundError, match=r"'other'.*'team'"):
        art.link("other/uncategorized/portfolio")
    assert load("ent:v0").linked_artifacts == []
    assert art.link("team/uncategorized/portfolio").name == "portfolio:v0"
    monkeypatch.delenv("WBTOOL_ENTITY")  # no entity named: any entity is this store's
    own = wbtool.Api().artifact("ent:v0").entity
    assert own != "team"
    for entity in (own, "team"):
        assert wbtool.Api().artifact(f"{entity}/uncategorized/ent:v0").digest == art.digest


def test_deleting_a_link_keeps_the_source(tmp_path: Path) -> None:
    logged("link-del", {"a.txt": "a"}, tmp_path)
    link = load("link-del:v0").link("portfolio-b")
    link.delete()
    with pytest.raises(NotFoundError):
        load("portfolio-b:v0")
    assert load("link-del:v0").file_count == 1


# -- references ----------------------------------------------------------------------------


def test_add_reference_to_a_file(tmp_path: Path) -> None:
    target = write(tmp_path / "ext" / "data.csv", "a,b\n1,2\n")
    art = wbtool.Artifact("ref-file", "dataset")
    entries = art.add_reference(target.as_uri())
    assert len(entries) == 1
    entry = art.get_entry("data.csv")
    assert entry.ref == target.as_uri()
    assert entry.digest == hash_bytes(b"a,b\n1,2\n")
    assert entry.size == len(b"a,b\n1,2\n")
    art.save()

    got = load("ref-file:v0")
    assert got.file_count == 1
    assert got.size == len(b"a,b\n1,2\n")
    root = tmp_path / "out"
    got.download(str(root))
    assert read_tree(root) == {"data.csv": b"a,b\n1,2\n"}
    got.verify(str(root))


def test_add_reference_to_a_folder_with_checksum(tmp_path: Path) -> None:
    files: dict[str, bytes | str] = {"a.txt": "a", "sub/b.txt": "bb", "sub/é.txt": "é"}
    folder = make_tree(tmp_path / "ext-dir", files)
    art = wbtool.Artifact("ref-dir", "dataset")
    entries = art.add_reference(folder.as_uri(), checksum=True)
    assert sorted(e.path for e in entries) == ["a.txt", "sub/b.txt", "sub/é.txt"]
    for path, data in files.items():
        raw = data.encode() if isinstance(data, str) else data
        entry = art.get_entry(path)
        assert entry.ref is not None and entry.ref.startswith("file://")
        assert entry.digest == hash_bytes(raw)
        assert entry.size == len(raw)
    art.save()

    root = tmp_path / "out"
    load("ref-dir:v0").download(str(root))
    assert read_tree(root) == {k: v.encode() for k, v in files.items() if isinstance(v, str)}


def test_a_folder_reference_treats_symlinks_as_a_logged_folder_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Links to files inside are tracked, every other link is skipped and
    named (never followed out of the folder, never looped on): the same
    files as add_dir takes from the folder."""
    folder = linked_tree(tmp_path)
    refs = wbtool.Artifact("refs", "dataset")
    with caplog.at_level("WARNING", logger="wbtool"):
        entries = refs.add_reference(folder.as_uri())
    assert sorted(e.path for e in entries) == ["a.txt", "sub/b.txt", "to-file-in"]
    assert refs.get_entry("to-file-in").digest == hash_bytes(b"a")
    said = caplog.text
    for link, why in SKIPPED_LINKS.items():
        line = next(x for x in said.splitlines() if f"{folder / link}:" in x)
        assert why in line, said
    copied = wbtool.Artifact("copied", "dataset")
    copied.add_dir(str(folder))
    assert {e.path: e.digest for e in entries} == {
        p: e.digest for p, e in copied.manifest.entries.items()}
    refs.save()
    out = tmp_path / "out"
    load("refs:v0").download(str(out))
    assert read_tree(out) == {"a.txt": b"a", "sub/b.txt": b"bb", "to-file-in": b"a"}


def test_a_folder_reference_never_takes_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store inside the folder, under a name other than .wbtool, was
    walked into the artifact as references to its own objects."""
    folder = make_tree(tmp_path / "project", {"data.txt": "d"})
    monkeypatch.setenv("WBTOOL_DIR", str(folder / "store"))
    first = wbtool.Artifact("first", "dataset")
    first.add_file(str(folder / "data.txt"))
    first.save()
    refs = wbtool.Artifact("refs", "dataset")
    assert [e.path for e in refs.add_reference(folder.as_uri())] == ["data.txt"]


def test_changed_file_reference_is_refused_on_download_and_checkout(tmp_path: Path) -> None:
    target = write(tmp_path / "ext" / "r.txt", "logged")
    art = wbtool.Artifact("ref-changed", "dataset")
    art.add_reference("file://" + quote(str(target.absolute())))
    unchecked = write(tmp_path / "ext" / "u.txt", "logged")
    art.add_reference(unchecked.as_uri(), checksum=False)  # tracked by URI: never refused
    art.add_file(str(write(tmp_path / "kept.txt", "kept")))
    art.save()
    write(target, "edited")  # same size, other content
    write(unchecked, "edited")
    got = load("ref-changed:v0")
    with pytest.raises(VerificationError, match="changed since it was logged"):
        got.download(str(tmp_path / "dl"))
    assert not (tmp_path / "dl" / "r.txt").exists()
    with pytest.raises(ValueError, match="changed since it was logged"):
        got.checkout(str(tmp_path / "co"))
    assert not (tmp_path / "co" / "r.txt").exists()
    write(target, "logged")
    got.download(str(tmp_path / "dl"))
    assert read_tree(tmp_path / "dl") == {"kept.txt": b"kept", "r.txt": b"logged",
                                          "u.txt": b"edited"}


def test_folder_reference_without_checksum_downloads_the_folder(tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "ext" / "d", {"a.txt": "a", "sub/b.txt": "b"})
    art = wbtool.Artifact("ref-dir-unchecked", "dataset")
    [entry] = art.add_reference(folder.as_uri(), checksum=False)
    assert entry.path == "d"
    art.add_file(str(write(tmp_path / "kept.txt", "kept")))
    art.save()
    write(folder / "c.txt", "c")  # tracked by URI: what is there now is downloaded
    got = load("ref-dir-unchecked:v0")
    root = tmp_path / "dl"
    got.download(str(root))
    assert read_tree(root) == {"kept.txt": b"kept", "d/a.txt": b"a", "d/sub/b.txt": b"b",
                               "d/c.txt": b"c"}
    got.download(str(root))  # again, over the first download
    got.verify(str(root))
    write(root / "stray.txt", "x")
    # The files the reference brought are the version's; only the stray one is refused.
    with pytest.raises(ConflictError, match=r"holds 1 file that .*'stray\.txt'"):
        got.checkout(str(root))
    (root / "stray.txt").unlink()
    write(root / "d" / "c.txt", "changed")
    got.checkout(str(root))
    assert read_tree(root) == {"kept.txt": b"kept", "d/a.txt": b"a", "d/sub/b.txt": b"b",
                               "d/c.txt": b"c"}


def test_add_reference_to_a_folder_under_a_name(tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "ext-dir", {"a.txt": "a"})
    art = wbtool.Artifact("ref-dir-named", "dataset")
    art.add_reference(folder.as_uri(), name="mirror")
    assert [e.path for e in art.manifest] == ["mirror/a.txt"]


def test_add_reference_folder_over_max_objects_is_refused(tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "ext-dir", {"1.txt": "1", "2.txt": "2", "3.txt": "3"})
    art = wbtool.Artifact("ref-max", "dataset")
    with pytest.raises(ValueError):
        art.add_reference(folder.as_uri(), max_objects=2)
    assert art.file_count == 0
    art.add_reference(folder.as_uri(), max_objects=3)
    assert art.file_count == 3


@pytest.mark.parametrize("bad", ["3", 2.5, True])
def test_add_reference_max_objects_that_is_no_int_is_refused(tmp_path: Path, bad: object) -> None:
    """It failed with a comparison error from inside ('>' not supported)."""
    folder = make_tree(tmp_path / "ext-dir", {"1.txt": "1"})
    art = wbtool.Artifact("ref-max-type", "dataset")
    with pytest.raises(TypeError, match=f"max_objects must be an int, not .*{bad!r}"):
        art.add_reference(folder.as_uri(), max_objects=bad)  # type: ignore[arg-type]
    assert art.file_count == 0


@pytest.mark.parametrize("bad", [5, None, b"ds:v0"])
def test_an_artifact_reference_that_is_no_text_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=f"invalid artifact reference {re.escape(repr(bad))}: "
                                         "must be a non-empty string"):
        wbtool.Api().artifact(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_name", ["../escape", "/abs"])
def test_add_reference_folder_unsafe_name_is_refused(tmp_path: Path, bad_name: str) -> None:
    folder = make_tree(tmp_path / "ext-dir", {"a.txt": "a"})
    art = wbtool.Artifact("ref-escape", "dataset")
    with pytest.raises(ValueError):
        art.add_reference(folder.as_uri(), name=bad_name)
    assert art.file_count == 0


def test_add_reference_file_unsafe_name_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path / "ext" / "f.txt", "f")
    art = wbtool.Artifact("ref-escape-file", "dataset")
    with pytest.raises(ValueError):
        art.add_reference(target.as_uri(), name="../f.txt")
    with pytest.raises(ValueError):
        art.add_reference("s3://bucket/key", name="../key", checksum=False)
    assert art.file_count == 0


def test_reference_to_an_unquoted_path_with_spaces(tmp_path: Path) -> None:
    target = write(tmp_path / "with space" / "f.txt", "spaced")
    art = wbtool.Artifact("ref-space", "dataset")
    art.add_reference("file://" + quote(str(target)))
    art.save()
    root = tmp_path / "out"
    load("ref-space:v0").download(str(root))
    assert read_tree(root) == {"f.txt": b"spaced"}


def test_add_reference_s3_without_checksum_records_uri(tmp_path: Path) -> None:
    art = wbtool.Artifact("ref-s3", "dataset")
    entries = art.add_reference("s3://bucket/path/to/key.parquet", checksum=False)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.ref == "s3://bucket/path/to/key.parquet"
    assert art.get_entry(entry.path).ref == "s3://bucket/path/to/key.parquet"
    assert entry.path == "key.parquet"
    art.save()
    got = load("ref-s3:v0")
    assert got.get_entry("key.parquet").ref == "s3://bucket/path/to/key.parquet"
    assert got.file_count == 1


def test_add_reference_s3_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if wbtool[s3] were not installed
    art = wbtool.Artifact("ref-s3-sum", "dataset")
    with pytest.raises(MissingExtraError, match=r"pip install 'wbtool\[s3\]'"):
        art.add_reference("s3://bucket/key.bin", checksum=True)
    assert art.file_count == 0


def test_add_reference_to_an_unreachable_store_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1",
                       "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    art = wbtool.Artifact("ref-s3-down", "dataset")
    with pytest.raises(RemoteUnreachableError, match="s3://bucket"):
        art.add_reference("s3://bucket/key.bin", checksum=True)
    assert art.file_count == 0


def test_add_reference_unknown_scheme_hashes_the_uri() -> None:
    art = wbtool.Artifact("ref-other", "dataset")
    [entry] = art.add_reference("ftp://host/path/file.bin")
    assert (entry.path, entry.size, entry.ref) == ("file.bin", None, "ftp://host/path/file.bin")
    assert entry.digest == hash_bytes(b"ftp://host/path/file.bin")


def test_missing_reference_on_download(tmp_path: Path) -> None:
    target = write(tmp_path / "ext" / "gone.txt", "soon gone")
    art = wbtool.Artifact("ref-gone", "dataset")
    art.add_reference(target.as_uri())
    art.add_file(str(write(tmp_path / "kept.txt", "kept")))
    art.save()
    target.unlink()
    got = load("ref-gone:v0")
    with pytest.raises(WbtoolError):
        got.download(str(tmp_path / "strict"))
    root = tmp_path / "lenient"
    got.download(str(root), allow_missing_references=True)
    assert read_tree(root) == {"kept.txt": b"kept"}


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a/b", "", "x y", "..", ".", "a:b", "tab\tname", "é"])
def test_invalid_artifact_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        wbtool.Artifact(name, "dataset")


@pytest.mark.parametrize("name", ["ok", "with.dots", "with-dash_and_underscore", "v1.2-rc_3"])
def test_valid_artifact_names_are_accepted(name: str) -> None:
    assert wbtool.Artifact(name, "dataset").name == name


@pytest.mark.parametrize("type_", ["job", "wbtool-history", "wandb-history", "", "a/b"])
def test_reserved_or_invalid_types_are_refused(type_: str) -> None:
    with pytest.raises(ValueError):
        wbtool.Artifact("fine-name", type_)


@pytest.mark.parametrize(
    "entry_name", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a/..", "..", ""]
)
def test_unsafe_entry_names_are_refused(tmp_path: Path, entry_name: str) -> None:
    user = write(tmp_path / "f.txt", "f")
    art = wbtool.Artifact("entry-names", "dataset")
    with pytest.raises(ValueError):
        art.add_file(str(user), name=entry_name)
    assert art.file_count == 0


def test_unsafe_names_refused_for_new_file_and_add_dir(tmp_path: Path) -> None:
    art = wbtool.Artifact("entry-names-2", "dataset")
    with pytest.raises(ValueError), art.new_file("../x.txt") as f:
        f.write("x")
    with pytest.raises(ValueError):
        art.add_dir(str(make_tree(tmp_path / "d", {"a": "a"})), name="../up")
    assert art.file_count == 0


# -- file(), files(), json_encode -----------------------------------------------------------


def test_file_on_single_file_artifact(tmp_path: Path) -> None:
    logged("single", {"only.txt": "the one"}, tmp_path)
    art = load("single:v0")
    path = art.file(str(tmp_path / "out"))
    assert Path(path) == (tmp_path / "out" / "only.txt").absolute()
    assert Path(path).read_bytes() == b"the one"

    default = art.file()
    assert Path(default).read_bytes() == b"the one"
    assert Path(default).resolve() == (tmp_path / "artifacts" / "single:v0" / "only.txt").resolve()


def test_file_on_multi_file_artifact_raises(tmp_path: Path) -> None:
    logged("multi", {"a.txt": "a", "b.txt": "b"}, tmp_path)
    with pytest.raises(ValueError):
        load("multi:v0").file(str(tmp_path / "out"))
    assert not (tmp_path / "out" / "a.txt").exists()


def test_files_lists_entries(tmp_path: Path) -> None:
    logged("listing", {"b.txt": "b", "a/c.txt": "c"}, tmp_path)
    got = load("listing:v0")
    assert sorted(f.path for f in got.files()) == ["a/c.txt", "b.txt"]


def test_json_encode(tmp_path: Path) -> None:
    art = wbtool.Artifact("encoded", "model")
    art.add_file(str(write(tmp_path / "w.bin", b"w")))
    draft_doc = art.json_encode()
    assert isinstance(draft_doc, dict)
    assert draft_doc["type"] == "model"
    assert draft_doc["digest"] == art.digest
    assert draft_doc["name"] == "encoded"
    art.save()
    doc = load("encoded:v0").json_encode()
    assert doc["name"] == "encoded:v0"
    assert doc["type"] == "model"
    assert doc["digest"] == art.digest
    json.dumps(doc)  # plain JSON types only


def test_the_api_never_adds_nor_deletes_a_store(store: Path, tmp_path: Path) -> None:
    """Neither the store in use nor another project's ``.wbtool`` folder is
    added to an artifact, deleted by a checkout, or counted by verify."""
    from wbtool.errors import UsageError
    from wbtool.store.layout import Store

    work = store.parent
    make_tree(work, {"data/one.txt": b"1\n"})
    Store.open(store).close()
    other = Store.open(work / "data" / ".wbtool")
    other.objects.put_bytes(b"another project's object")
    other.close()
    art = wbtool.Artifact("ds", "dataset")
    art.add_dir(str(work))
    assert sorted(art.manifest.entries) == ["data/one.txt"]
    assert set(art.skipped) == {(str(work / "data" / ".wbtool"), "a wbtool store"),
                                (str(store), "a wbtool store")}
    art.save()
    logged = wbtool.Api().artifact("ds:v0")
    logged.checkout(str(work))
    for kept in (store, work / "data" / ".wbtool"):
        assert (kept / "config.yaml").is_file() and (kept / "index.db").is_file()
    logged.verify(str(work))
    with pytest.raises(UsageError, match="inside the wbtool store"):
        logged.download(str(store / "objects"))


def test_a_file_and_a_folder_at_one_path_cannot_be_saved(tmp_path: Path) -> None:
    art = wbtool.Artifact("clash", "dataset")
    art.add_file(str(write(tmp_path / "a", b"a")), name="m/x")
    art.add_file(str(write(tmp_path / "b", b"b")), name="m/x/y.txt")
    with pytest.raises(ValueError, match="both a file and a folder"):
        art.save()


def test_add_file_names_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from wbtool.errors import UsageError

    art = wbtool.Artifact("odd", "dataset")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"is not a regular file \(a pipe, socket or device\)"):
        art.add_file(str(fifo))
    with pytest.raises(UsageError, match="a folder: use add_dir"):
        art.add_file(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        art.add_file(str(tmp_path / "missing"))


def test_what_a_gc_removed_is_neither_trusted_nor_committed(tmp_path: Path) -> None:
    """A process remembers which objects are packed; another process's gc can
    delete them. The version must not be saved over missing objects, and the
    next add must store them again."""
    import subprocess

    from wbtool.errors import ConflictError

    data = make_tree(tmp_path / "data", {f"f{k:02d}.txt": f"row {k}\n" for k in range(20)})
    old = wbtool.Artifact("old", "dataset")
    old.add_dir(str(data))
    old.save(project="p")
    old.delete()  # its pack is now garbage
    art = wbtool.Artifact("ds", "dataset")
    art.add_dir(str(data))  # dedupes onto that pack
    gc = subprocess.run([sys.executable, "-m", "wbtool", "artifact", "cache", "gc",
                         "--grace", "0"], capture_output=True, text=True)
    assert gc.returncode == 0, gc.stderr
    with pytest.raises(ConflictError, match="missing from the store"):
        art.save(project="p")
    again = wbtool.Artifact("ds", "dataset")
    again.add_dir(str(data))  # writes the objects anew
    again.save(project="p")
    assert wbtool.Api().artifact("p/ds:v0").verify(str(data)) is None
    wbtool.Api().artifact("p/ds:v0").download(str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(data))


def test_a_stale_handle_never_edits_the_version_that_took_its_row(tmp_path: Path) -> None:
    """Row ids come back after the newest version is deleted: a handle to the
    deleted version must not reach the new one."""
    a = wbtool.Artifact("alpha", "dataset")
    a.add_file(str(write(tmp_path / "x.txt", "x")))
    a.save(project="p")
    stale = wbtool.Api().artifact("p/alpha:v0")
    wbtool.Api().artifact("p/alpha:v0").delete()
    b = wbtool.Artifact("beta", "model", metadata={"owner": "bob"})
    b.add_file(str(write(tmp_path / "y.txt", "y")))
    b.aliases = ["prod"]
    b.save(project="p")
    stale.metadata = {"owner": "alice"}
    with pytest.raises(NotFoundError, match="alpha:v0 was deleted"):
        stale.save()
    with pytest.raises(NotFoundError):
        stale.delete(delete_aliases=True)
    beta = wbtool.Api().artifact("p/beta:v0")
    assert beta.metadata == {"owner": "bob"} and "prod" in beta.aliases


# -- the reference's remaining rules ------------------------------------------------


def test_save_in_a_run_is_logged_by_that_run(tmp_path: Path) -> None:
    quiet = {"quiet": True, "console": "off"}
    with wbtool.init(project="p", settings=quiet) as run:
        art = wbtool.Artifact("saved-in-run", "dataset")
        art.add_file(str(write(tmp_path / "a.txt", "a")))
        art.save()
        elsewhere = wbtool.Artifact("saved-elsewhere", "dataset")
        elsewhere.add_file(str(write(tmp_path / "b.txt", "b")))
        elsewhere.save(project="other")
    assert art.name == "saved-in-run:v0"
    assert load("p/saved-in-run:v0").logged_by().id == run.id
    assert load("other/saved-elsewhere:v0").logged_by().id == run.id

    outside = wbtool.Artifact("saved-outside", "dataset")
    outside.add_file(str(write(tmp_path / "c.txt", "c")))
    outside.save()
    assert outside.logged_by() is None


def test_add_file_and_add_reference_return_artifact_entries(tmp_path: Path) -> None:
    art = wbtool.Artifact("added-entries", "dataset")
    entry = art.add_file(str(write(tmp_path / "a.txt", "a")))
    with pytest.raises(ValueError, match="not a reference"):
        entry.ref_target()
    uri = (tmp_path / "a.txt").as_uri()
    (ref,) = art.add_reference(uri, name="ref.txt")
    assert ref.ref_target() == uri
    with pytest.raises(ArtifactNotLoggedError):
        entry.download(str(tmp_path / "early"))
    art.save()
    assert Path(entry.download(str(tmp_path / "out"))).read_bytes() == b"a"


def test_files_have_the_name_w_and_b_file_objects_have(tmp_path: Path) -> None:
    logged("named-files", {"b.txt": "b", "a/c.txt": "c"}, tmp_path)
    got = load("named-files:v0")
    assert [f.name for f in got.files()] == ["a/c.txt", "b.txt"]
    assert got.get_entry("b.txt").name == "b.txt"


def test_save_in_a_disabled_run_writes_nothing(store: Path) -> None:
    with wbtool.init(mode="disabled") as run:
        art = wbtool.Artifact("saved-disabled", "dataset")
        art.save()
        assert run.disabled
    assert art.is_draft()
    assert not store.exists()


@pytest.mark.parametrize("ttl", [dt.timedelta(0), dt.timedelta(seconds=-5)])
def test_a_ttl_that_is_not_positive_is_refused(tmp_path: Path, ttl: dt.timedelta) -> None:
    art = logged("short-lived", {"a.txt": "a"}, tmp_path)
    with pytest.raises(ValueError, match="ttl must be positive"):
        art.ttl = ttl
    art.save()
    assert load("short-lived:v0").ttl is None


def test_get_path_is_get_entry_with_a_deprecation_warning(tmp_path: Path) -> None:
    art = logged("old-name", {"a.txt": "a"}, tmp_path)
    with pytest.warns(DeprecationWarning, match="get_entry"):
        entry = art.get_path("a.txt")
    assert entry.digest == art.get_entry("a.txt").digest


@pytest.mark.parametrize("field", ["description", "metadata key", "metadata value"])
def test_text_that_is_not_utf8_is_refused_where_it_comes_in(field: str) -> None:
    """A lone surrogate in the metadata was stored (and then failed every
    sync); in the description, save() raised a UnicodeEncodeError from the
    index after the files were stored."""
    bad = "x\ud800"
    kwargs: dict[str, Any] = (
        {"description": bad} if field == "description"
        else {"metadata": {bad: 1} if field == "metadata key" else {"a": [bad]}})
    with pytest.raises(UsageError, match="not valid UTF-8"):
        wbtool.Artifact("ds", "dataset", **kwargs)
    art = wbtool.Artifact("ds", "dataset")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        if field == "description":
            art.description = bad
        else:
            art.metadata = kwargs["metadata"]


# -- arguments that are True or False ------------------------------------------------


def test_true_or_false_arguments_refuse_strings(tmp_path: Path) -> None:
    """Each was read as true, as any non-empty string is: ``overwrite="no"``
    replaced a file, ``merge="no"`` merged a folder, ``force="no"`` deleted
    files a checkout should have kept. Now each is a TypeError naming the
    argument, and the artifact is left as it was."""
    a1, a2 = write(tmp_path / "a.txt", "one"), write(tmp_path / "two" / "a.txt", "two")
    art = wbtool.Artifact("flags", "dataset")
    art.add_file(str(a1))
    art.add(wbtool.Table(columns=["a"], data=[[1]]), "t")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("overwrite", lambda: art.add_file(str(a2), overwrite="no")),
        ("is_tmp", lambda: art.add_file(str(a2), name="b.txt", is_tmp="no")),
        ("skip_cache", lambda: art.add_file(str(a2), name="b.txt", skip_cache="no")),
        ("merge", lambda: art.add_dir(str(a2.parent), merge="no")),
        ("skip_cache", lambda: art.add_dir(str(a2.parent), name="d", skip_cache="no")),
        ("checksum", lambda: art.add_reference(a2.as_uri(), name="r", checksum="no")),
        ("overwrite", lambda: art.add(wbtool.Table(columns=["a"], data=[[2]]), "t",
                                      overwrite="no")),
        ("incremental", lambda: wbtool.Artifact("flags", "dataset", incremental="no")),
    ]
    for arg, call in calls:
        with pytest.raises(TypeError, match=f"{arg} must be True or False, not 'no'"):
            call()
    assert sorted(e.path for e in art.manifest) == ["a.txt", "t.table.json"]
    assert art.get_entry("a.txt").digest == hash_bytes(b"one")
    art.save()
    root = tmp_path / "out"
    write(root / "mine.txt", "not the artifact's")
    for arg, call in [
        ("force", lambda: art.checkout(str(root), force="no")),
        ("allow_missing_references", lambda: art.download(str(root),
                                                          allow_missing_references="no")),
    ]:
        with pytest.raises(TypeError, match=f"{arg} must be True or False, not 'no'"):
            call()
    assert read_tree(root) == {"mine.txt": b"not the artifact's"}


def test_a_logged_entrys_extra_is_read_only(tmp_path: Path) -> None:
    """The reference's identity of a referenced object (an S3 ETag and
    version) is kept in its entry's ``extra``, which stayed a dict anyone
    could change in a logged artifact, while every other field refused."""
    entry = ManifestEntry("model.bin", hash_bytes(b"etag:abc"), 3, "s3://bucket/model.bin",
                          {"etag": "abc", "version_id": "v7", "parts": [1, 2]})
    art = wbtool.Artifact("pinned", "model")
    art.add_reference(entry)
    art.save()
    for got in (art, load("pinned:v0")):
        shown, kept = got.get_entry("model.bin").extra, got.manifest.entries["model.bin"].extra
        assert shown == kept == {"etag": "abc", "version_id": "v7", "parts": [1, 2]}
        changes: list[tuple[Callable[..., object], tuple[object, ...]]] = [
            (shown.__setitem__, ("version_id", "v1")), (shown.pop, ("etag",)),
            (shown["parts"].append, (3,)), (kept.clear, ())]
        for change, args in changes:
            with pytest.raises(ArtifactFinalizedError, match=r"entry 'model\.bin' belongs"):
                change(*args)
    draft = art.new_draft()
    draft.manifest.entries["model.bin"].extra["version_id"] = "v8"  # a draft's own copy
    draft.manifest.entries["model.bin"].extra["parts"].append(3)
    assert load("pinned:v0").get_entry("model.bin").extra == {
        "etag": "abc", "version_id": "v7", "parts": [1, 2]}
    assert art.get_entry("model.bin").extra["parts"] == [1, 2]


def test_a_logged_entry_added_as_a_reference_can_be_changed_in_the_draft(tmp_path: Path) -> None:
    """``add_reference(old.get_entry(...), name=...)`` put the logged entry's
    read-only ``extra`` into the draft: changing it there raised "entry
    'm.bin' belongs to a logged artifact". The draft now holds its own copy;
    the logged version is unchanged."""
    target = write(tmp_path / "ext" / "m.bin", "model")
    art = wbtool.Artifact("ref-extra", "model")
    art.add_reference(ManifestEntry("m.bin", hash_bytes(b"model"), 5, target.as_uri(),
                                    {"etag": "e1", "parts": [{"n": 1}]}))
    art.save()
    old = load("ref-extra:v0")
    new = old.new_draft()
    new.add_reference(old.get_entry("m.bin"), name="renamed.bin")
    renamed = new.get_entry("renamed.bin")
    renamed.extra["etag"] = "e2"
    renamed.extra["parts"].append({"n": 2})
    new.save()
    got = load("ref-extra:v1").get_entry("renamed.bin")
    assert got.extra == {"etag": "e2", "parts": [{"n": 1}, {"n": 2}]}
    assert load("ref-extra:v0").get_entry("m.bin").extra == {"etag": "e1", "parts": [{"n": 1}]}


def test_a_logged_entry_staged_into_a_draft_can_be_changed_there(tmp_path: Path) -> None:
    """Staging a logged version's entry (``wbtool artifact add``'s service)
    kept its read-only ``extra`` in the draft's manifest."""
    from wbtool.artifacts import staging
    from wbtool.context import Context, project_settings

    target = write(tmp_path / "ext" / "m.bin", "model")
    art = wbtool.Artifact("stage-extra", "model")
    art.add_reference(ManifestEntry("m.bin", hash_bytes(b"model"), 5, target.as_uri(),
                                    {"etag": "e1"}))
    art.save()
    entry = load("stage-extra:v0").get_entry("m.bin")
    ctx = Context.from_settings(project_settings(None), need_project=True)
    draft = staging.stage(ctx, art.project, "stage-extra-2", [entry], type="model")
    staged = draft.manifest.entries["m.bin"]
    staged.extra["etag"] = "e2"
    assert staged.extra == {"etag": "e2"} and entry.extra == {"etag": "e1"}


def test_folder_reference_whose_folder_another_download_makes_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = make_tree(tmp_path / "ext" / "d", {"a.txt": "a", "sub/b.txt": "b"})
    art = wbtool.Artifact("ref-dir-race", "dataset")
    art.add_reference(folder.as_uri(), checksum=False)
    art.save()
    got = load("ref-dir-race:v0")
    root = tmp_path / "dl"
    real_mkdir = os.mkdir

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path) == str(root / "d") and not os.path.lexists(path):
            real_mkdir(path)  # as another process downloading into ``root`` does, first
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    got.download(str(root))
    monkeypatch.undo()
    assert read_tree(root) == {"d/a.txt": b"a", "d/sub/b.txt": b"b"}
