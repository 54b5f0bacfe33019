"""In a durable store, objects reach the disk before anything names them.

A power loss cannot be staged here; these tests record, at the flush calls
themselves, that each flush comes before the row or the version that
relies on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import make_tree
from wbtool import fsutil
from wbtool.artifacts import ingest
from wbtool.store.index import Index
from wbtool.store.layout import Store


def _record(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Log the store's flushes (as "syncfs", "data", "folder") and its
    stat-cache writes (as "stat rows") in the order they happen."""
    events: list[str] = []
    real_syncfs, real_data, real_dir = fsutil.syncfs, fsutil.fdatasync, fsutil.fsync_dir
    real_put = Index.stat_cache_put

    def syncfs(path: str) -> None:
        events.append("syncfs")
        real_syncfs(path)

    def fdatasync(fd: int) -> None:
        events.append("data")
        real_data(fd)

    def fsync_dir(path: str) -> None:
        events.append("folder")
        real_dir(path)

    def stat_cache_put(self: Index, rows, **kw) -> None:  # type: ignore[no-untyped-def]
        events.append("stat rows")
        real_put(self, rows, **kw)

    monkeypatch.setattr(fsutil, "syncfs", syncfs)
    monkeypatch.setattr(fsutil, "fdatasync", fdatasync)
    monkeypatch.setattr(fsutil, "fsync_dir", fsync_dir)
    monkeypatch.setattr(Index, "stat_cache_put", stat_cache_put)
    return events


@pytest.mark.parametrize(("count", "immutable", "durable", "settled", "expected"), [
    (3, False, True, True, ["syncfs", "stat rows"]),  # objects of their own
    (3, True, True, True, ["syncfs", "stat rows"]),  # hard links to the user's files
    (ingest.MIN_PACKED + 4, False, True, True, ["data", "folder", "stat rows"]),  # a pack
    (3, False, True, False, ["syncfs"]),  # too fresh to cache: a draft may name them next
    (3, False, False, True, ["stat rows"]),
])
def test_added_objects_are_on_disk_before_anything_names_them(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch,
    count: int, immutable: bool, durable: bool, settled: bool, expected: list[str],
) -> None:
    """A stat-cache hit is taken as "stored already", and a draft or a version
    names what an add returns: in a durable store the objects are flushed
    first, so that they survive a crash."""
    files = {f"f{i}.bin": os.urandom(200 + i) for i in range(count)}
    root = make_tree(tmp_path / "data", files)
    if settled:
        for name in files:
            os.utime(root / name, (1e9, 1e9))  # long settled: worth caching
    store = Store.open(store_dir)
    store.durable = durable
    events = _record(monkeypatch)
    walked = ingest.walk_dir(root)
    entries, wrote = ingest.ingest(store, walked.files, immutable=immutable, validated=True,
                                   stats=walked.stats)
    assert wrote and len(entries) == count
    assert events == expected
    assert len(store.index.stat_cache_load()) == (count if settled else 0)


@pytest.mark.parametrize("durable", [True, False])
def test_a_version_follows_its_manifest_to_disk_without_flushing_the_whole_store_again(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """The add flushed the objects; committing the version flushes only the
    manifest it writes (its bytes, then its name), and then records the row."""
    import wbtool
    from wbtool.artifacts.registry import Registry

    root = make_tree(tmp_path / "data", {"a.txt": b"a", "b.txt": b"b"})
    monkeypatch.setenv("WBTOOL_DIR", str(store_dir))
    monkeypatch.setenv("WBTOOL_X_STORE_FSYNC", "true" if durable else "false")
    events = _record(monkeypatch)
    real_insert = Registry._insert

    def insert(self: Registry, *args, **kw):  # type: ignore[no-untyped-def]
        events.append("version row")
        return real_insert(self, *args, **kw)

    monkeypatch.setattr(Registry, "_insert", insert)
    art = wbtool.Artifact("ds", "dataset")
    art.add_dir(str(root))
    del events[:]  # the add's own flush is the test above
    art.save(project="p")
    assert events == (["data", "folder", "version row"] if durable else ["version row"])
    assert wbtool.Api().artifact("p/ds:v0").verify() is None


def test_objects_fetched_from_a_remote_are_flushed_before_a_version_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wbtool.artifacts.registry import Registry
    from wbtool.hashing import hash_bytes
    from wbtool.remote import pull, push
    from wbtool.remote.fs import open_remote

    files = {"small.txt": b"small", "big.bin": os.urandom((4 << 20) + 1)}
    first = Store.open(tmp_path / "first" / ".wbtool")
    monkeypatch.setenv("WBTOOL_DIR", str(first.path))
    import wbtool

    art = wbtool.Artifact("ds", "dataset")
    art.add_dir(str(make_tree(tmp_path / "data", files)))
    art.save(project="p")
    remote = open_remote(str(tmp_path / "remote"), {}, create=True)
    push.push(Registry(first), remote, jobs=2)

    second = Store.open(tmp_path / "second" / ".wbtool")
    events = _record(monkeypatch)
    sizes = {hash_bytes(data): len(data) for data in files.values()}
    assert pull.fetch_objects(second, remote, sizes, jobs=2) == {}
    assert events == ["syncfs"]
    assert all(second.objects.verify(d) for d in sizes)


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_a_link_checkout_names_the_objects_it_unpacks_only_once_they_are_on_disk(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    """The first link checkout gives packed objects files of their own. The
    store names each only after a flush: a crash must not leave it naming a
    file that lost its bytes, which later checkouts would hand out."""
    import wbtool
    from wbtool.store import objects

    files = {f"f{i:02d}.bin": os.urandom(100 + i) for i in range(ingest.MIN_PACKED + 4)}
    monkeypatch.setenv("WBTOOL_DIR", str(store_dir))
    art = wbtool.Artifact("ds", "dataset")
    art.add_dir(str(make_tree(tmp_path / "data", files)))
    art.save()
    events = _record(monkeypatch)
    real_link, real_publish = objects._link_object, objects.ObjectStore._publish

    def link_object(src: str, final: str) -> None:
        events.append("named")
        real_link(src, final)

    def publish(self: objects.ObjectStore, tmp: str, digest: str) -> bool:
        events.append("named")
        return real_publish(self, tmp, digest)

    monkeypatch.setattr(objects, "_link_object", link_object)
    monkeypatch.setattr(objects.ObjectStore, "_publish", publish)
    out = tmp_path / "out"
    wbtool.Api().artifact("ds:v0").checkout(str(out), link=link)
    named = ["named"] * len(files)
    assert events == (["syncfs", *named] if link == "hardlink" else ["syncfs", *named, "syncfs"])
    for name, data in files.items():
        digest = objects.hash_bytes(data)
        assert os.path.samefile(out / name, store_dir / "objects" / digest[:2] / digest[2:])
    assert wbtool.Api().artifact("ds:v0").verify(str(out)) is None
