"""Walking a folder to add it: the same answer from one process or two."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from tests.conftest import make_tree, read_tree
from wbtool import forked
from wbtool.artifacts import ingest
from wbtool.artifacts.materialize import materialize
from wbtool.hashing import hash_bytes
from wbtool.manifest import Manifest
from wbtool.store.layout import Store


def _walk_by_path(root: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], set[str]]:
    walked = ingest.walk_dir(root)
    by_rel = {rel: (local, walked.stat(i)) for i, (local, rel) in enumerate(walked.files)}
    assert len(by_rel) == len(walked.files)  # no file twice
    return by_rel, {why for _, why in walked.skipped}


def _count_helpers(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The arguments of every helper process started from here on."""
    started: list[object] = []

    class CountingJob(forked.ForkedJob):
        def __init__(self, *args: object) -> None:
            started.append(args)
            super().__init__(*args)

    monkeypatch.setattr(forked, "ForkedJob", CountingJob)
    return started


def test_a_large_walk_shared_with_a_helper_finds_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"d{i}/sub{j}/f{k}.txt": f"{i}{j}{k}".encode()
             for i in range(6) for j in range(3) for k in range(4)}
    files["top.txt"] = b"top"
    root = make_tree(tmp_path / "data", files)
    os.symlink(root / "d0" / "sub0" / "f0.txt", root / "d5" / "inside-link")
    os.symlink(tmp_path, root / "d4" / "outside-link")
    serial, serial_skipped = _walk_by_path(root)

    started = _count_helpers(monkeypatch)
    monkeypatch.setattr(ingest, "WALK_SHARE_AFTER", 5)
    shared, shared_skipped = _walk_by_path(root)
    assert started, "the walk was expected to share its folders with a helper"
    assert shared == serial
    assert set(shared) == {*files, "d5/inside-link"}
    assert shared_skipped == serial_skipped == {"symlink points outside the folder"}
    again, _ = _walk_by_path(root)
    assert list(again) == list(shared)  # the same order every time


@pytest.mark.parametrize("helper", [False, True], ids=["one process", "with a helper"])
def test_small_files_packed_by_two_processes_give_the_same_entries(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, helper: bool
) -> None:
    """The helper's half comes back flat (indices, digests, sizes, flags, and
    each pack's rows): what the parent rebuilds from it is every entry and
    every object's place, contents repeated across the halves included."""
    files = {f"d{i % 7}/f{i}.bin": f"content {i % 40}".encode() * (1 + i % 3)
             for i in range(300)}
    files["empty.bin"] = b""
    root = make_tree(tmp_path / "data", files)
    store = Store.open(store_dir)
    started = _count_helpers(monkeypatch)
    monkeypatch.setattr(ingest, "PARALLEL_SMALL_MIN", 50 if helper else 10**9)
    walked = ingest.walk_dir(root)
    entries, new = ingest.ingest(store, walked.files, validated=True, stats=walked.stats)
    assert bool(started) == helper
    assert new
    assert [e.path for e in entries] == [rel for _, rel in walked.files]  # in walk order
    assert {e.path: (e.digest, e.size) for e in entries} == {
        rel: (hash_bytes(data), len(data)) for rel, data in files.items()}
    assert store.objects.packed_digests() >= {e.digest for e in entries if e.size}
    for e in entries:
        assert store.objects.read_bytes(e.digest) == files[e.path]
    out = tmp_path / "out"
    materialize(store, Manifest(entries), out, link="copy")
    assert read_tree(out) == files


@pytest.mark.parametrize("helper", [False, True], ids=["one process", "with a helper"])
def test_immutable_small_files_are_linked_into_the_store_not_packed(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, helper: bool
) -> None:
    files = {f"d{i % 7}/f{i}.bin": f"content {i % 40}".encode() for i in range(120)}
    root = make_tree(tmp_path / "data", files)
    store = Store.open(store_dir)
    monkeypatch.setattr(ingest, "PARALLEL_SMALL_MIN", 50 if helper else 10**9)
    walked = ingest.walk_dir(root)
    entries, new = ingest.ingest(store, walked.files, immutable=True, validated=True,
                                 stats=walked.stats)
    assert new
    assert {e.path: e.size for e in entries} == {rel: len(data) for rel, data in files.items()}
    assert store.objects.packed_digests() == set()
    by_digest: dict[str, set[int]] = {}
    for e in entries:
        local = root / e.path
        by_digest.setdefault(e.digest, set()).add(local.stat().st_ino)
        assert hash_bytes(local.read_bytes()) == e.digest
    assert len(by_digest) == 40  # equal contents share one object
    for digest, inodes in by_digest.items():
        obj = os.stat(store.objects.path(digest))
        assert obj.st_ino in inodes  # the object is one of the user's files, linked
        assert stat.S_IMODE(obj.st_mode) & 0o222 == 0
    # every object is the content of its files: a download gives them back
    out = tmp_path / "out"
    materialize(store, Manifest(entries), out, link="copy")
    assert read_tree(out) == files


def test_immutable_files_on_another_filesystem_are_copied(
    tmp_path: Path, store_dir: Path
) -> None:
    other = Path("/dev/shm")
    store = Store.open(store_dir)
    if not other.is_dir() or os.stat(other).st_dev == os.stat(store_dir).st_dev:
        pytest.skip("needs a second filesystem at /dev/shm")
    with tempfile.TemporaryDirectory(dir=other) as far:
        files = {f"f{i}.bin": f"far {i}".encode() for i in range(40)}
        root = make_tree(Path(far), files)
        walked = ingest.walk_dir(root)
        entries, new = ingest.ingest(store, walked.files, immutable=True, validated=True,
                                     stats=walked.stats)
        assert new
        for e in entries:
            obj = os.stat(store.objects.path(e.digest))
            assert obj.st_ino != (root / e.path).stat().st_ino
            assert Path(store.objects.path(e.digest)).read_bytes() == files[e.path]
            assert (root / e.path).stat().st_mode & 0o200  # the user's file untouched


def test_immutable_files_that_cannot_be_made_read_only_are_copied_by_both_processes(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"f{i}.bin": f"theirs {i}".encode() for i in range(60)}
    root = make_tree(tmp_path / "data", files)
    modes = {rel: (root / rel).stat().st_mode for rel in files}
    store = Store.open(store_dir)

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)  # the forked helper inherits this
    monkeypatch.setattr(ingest, "PARALLEL_SMALL_MIN", 20)
    walked = ingest.walk_dir(root)
    entries, new = ingest.ingest(store, walked.files, immutable=True, validated=True,
                                 stats=walked.stats)
    assert new and len(entries) == len(files)
    for e in entries:
        local = (root / e.path).stat()
        assert local.st_nlink == 1 and local.st_mode == modes[e.path]
        assert Path(store.objects.path(e.digest)).read_bytes() == files[e.path]



@pytest.mark.parametrize("immutable", [False, True], ids=["mutable", "immutable"])
@pytest.mark.parametrize("size", [100, 300_000], ids=["packed", "own object"])
def test_a_file_removed_between_walk_and_read_is_named_as_not_found(
    tmp_path: Path, store_dir: Path, size: int, immutable: bool
) -> None:
    """It failed with FileNotFoundError (the command line: exit 1, "No such
    file or directory"), where a file named on the command line that does
    not exist is "not found" (exit 3)."""
    from wbtool.errors import NotFoundError

    root = make_tree(tmp_path / "data", {f"f{i:02}": bytes([i]) * size for i in range(40)})
    store = Store.open(store_dir)
    walked = ingest.walk_dir(root)
    (root / "f17").unlink()  # something else deletes it meanwhile
    with pytest.raises(NotFoundError, match="removed while it was being stored") as failed:
        ingest.ingest(store, walked.files, validated=True, stats=walked.stats,
                      immutable=immutable)
    assert str(root / "f17") in str(failed.value)
    assert failed.value.exit_code == 3
    assert os.listdir(store.tmp) == []
