from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree, read_tree
from wbtool.hashing import hash_bytes
from wbtool.store.layout import Store
from wbtool.store.objects import Unpacked
from wbtool.store.packs import PackWriter, scan_pack

FILES = {f"d{i % 7}/f{i:03d}.txt": f"small file {i}\n".encode() * (i % 5 + 1) for i in range(60)}


def packed_rows(store_dir: Path) -> list[tuple[str, str, int, int]]:
    store = Store.open(store_dir)
    return store.index.db.execute("SELECT digest, pack, offset, size FROM packed").fetchall()


def test_pack_writer_publishes_self_describing_packs(store_dir: Path) -> None:
    store = Store.open(store_dir)
    blobs = [os.urandom(n) for n in (0, 1, 100, 5000)]
    with PackWriter(store.objects) as writer:
        for b in blobs:
            writer.add(hash_bytes(b), b)
        writer.add(hash_bytes(blobs[2]), blobs[2])  # duplicates are stored once
    rows = store.index.db.execute("SELECT pack FROM packed").fetchall()
    assert len(rows) == 4 and len({r[0] for r in rows}) == 1
    pack = store.objects.pack_path(rows[0][0])
    assert hash_bytes(Path(pack).read_bytes()) == rows[0][0]  # named by its content
    scanned = list(scan_pack(pack))
    assert [d for d, _, _ in scanned] == [hash_bytes(b) for b in blobs]
    for b in blobs:
        assert store.objects.read_bytes(hash_bytes(b)) == b
        assert store.objects.has(hash_bytes(b))
    assert not os.listdir(store.tmp)


@pytest.mark.parametrize("durable", [True, False])
def test_pack_writer_hands_written_steps_to_the_disk_when_durable(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    from wbtool import fsutil
    from wbtool.store import packs

    started: list[tuple[int, int]] = []
    real = fsutil.start_writeback

    def spy(fd: int, offset: int, length: int) -> bool:
        started.append((offset, length))
        return real(fd, offset, length)

    monkeypatch.setattr(fsutil, "start_writeback", spy)
    monkeypatch.setattr(packs, "WRITE_BUFFER", 10_000)
    monkeypatch.setattr(packs, "WRITEBACK_STEP", 30_000)
    store = Store.open(store_dir)
    store.objects.durable = durable
    blobs = [os.urandom(4000) for _ in range(50)]
    with PackWriter(store.objects) as writer:
        for b in blobs:
            writer.add(hash_bytes(b), b)
    for b in blobs:
        assert store.objects.read_bytes(hash_bytes(b)) == b
    if not durable:
        assert started == []
        return
    assert len(started) >= 5
    assert all(n >= 30_000 for _, n in started)
    assert [o for o, _ in started] == [0] + [o + n for o, n in started[:-1]]  # contiguous


def test_aborted_pack_leaves_nothing(store_dir: Path) -> None:
    store = Store.open(store_dir)
    with pytest.raises(KeyboardInterrupt), PackWriter(store.objects) as writer:
        writer.add(hash_bytes(b"x"), b"x")
        raise KeyboardInterrupt
    assert store.index.db.execute("SELECT COUNT(*) FROM packed").fetchone()[0] == 0
    assert not os.listdir(store.tmp)


def test_many_small_files_are_packed_and_round_trip(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    rows = packed_rows(store_dir)
    assert len(rows) == len(set(FILES.values()))
    loose = [p for p in (store_dir / "objects").glob("??/*")]
    assert len(loose) == 1  # only the manifest
    for link in ("copy", "hardlink", "symlink"):
        out = tmp_path / f"out-{link}"
        cli("artifact", "checkout", "ds", str(out), "--link", link, check=True)
        assert read_tree(out) == FILES
    cli("artifact", "verify", "ds", check=True)


def _log_with_a_corrupt_packed_object(cli: Cli, tmp_path: Path, store_dir: Path) -> str:
    """Log FILES as ds, then damage one packed object; return its digest."""
    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    digest, pack, offset, _ = packed_rows(store_dir)[0]
    path = store_dir / "objects" / "pack" / f"{pack}.pack"
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"#")
    return digest


def test_verify_detects_corruption_inside_a_pack(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    _log_with_a_corrupt_packed_object(cli, tmp_path, store_dir)
    res = cli("artifact", "verify", "ds")
    assert res.code == 4 and "corrupt" in res.err


def test_gc_deletes_dead_packs_and_keeps_live_objects(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    old = make_tree(tmp_path / "old", FILES)
    cli("artifact", "log", "old", str(old), "--type", "dataset", check=True)
    new_files = {k: v + b"new" for k, v in list(FILES.items())[:30]}
    new = make_tree(tmp_path / "new", new_files)
    cli("artifact", "log", "new", str(new), "--type", "dataset", check=True)
    cli("artifact", "rm", "old:v0", check=True)
    res = cli("artifact", "cache", "gc", "--grace", "0", "--json", check=True).json()["result"]
    assert res["removed"] >= len(set(FILES.values()))
    rows = packed_rows(store_dir)
    assert {r[0] for r in rows} == {hash_bytes(v) for v in new_files.values()}
    cli("artifact", "verify", "new", check=True)
    out = tmp_path / "out"
    cli("artifact", "download", "new", "--root", str(out), check=True)
    assert read_tree(out) == new_files


def test_gc_repacks_mostly_dead_packs(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "add", "both", str(data), "--type", "dataset", check=True)
    cli("artifact", "log", "both", check=True)
    keep = dict(list(FILES.items())[:20])
    cli("artifact", "log", "part", str(make_tree(tmp_path / "part", keep)), "--type", "dataset",
        check=True)
    cli("artifact", "rm", "both:v0", check=True)
    res = cli("artifact", "cache", "gc", "--grace", "0", "--json", check=True).json()["result"]
    assert res["repacked"] == 1
    packs = {r[1] for r in packed_rows(store_dir)}
    assert len(packs) == 1
    assert len(list((store_dir / "objects" / "pack").iterdir())) == 1
    cli("artifact", "verify", "part", check=True)


def test_many_files_are_packed_and_written_by_two_processes(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    """Enough small files that a forked helper packs and writes half of them."""
    files = {f"d{i % 50}/f{i}.txt": b"%d\n" % i * (i % 7 + 1) for i in range(4500)}
    data = make_tree(tmp_path / "data", files)
    res = cli("artifact", "log", "ds", str(data), "--type", "dataset", "--json", check=True)
    assert res.json()["result"]["file_count"] == len(files)
    rows = packed_rows(store_dir)
    assert {r[0] for r in rows} == {hash_bytes(v) for v in files.values()}
    assert len({r[1] for r in rows}) == 2  # one pack per process
    out = tmp_path / "out"
    cli("artifact", "checkout", "ds", str(out), check=True)
    assert read_tree(out) == files
    cli("artifact", "verify", "ds", "--root", str(out), check=True)


def _loose(store_dir: Path) -> set[str]:
    return {p.parent.name + p.name for p in (store_dir / "objects").glob("??/*")}


def test_hardlink_checkout_unpacks_packed_objects_once(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    digests = {d for d, _, _, _ in packed_rows(store_dir)}
    assert not digests & _loose(store_dir)
    first, second = tmp_path / "first", tmp_path / "second"
    cli("artifact", "checkout", "ds", str(first), "--link", "hardlink", check=True)
    assert digests <= _loose(store_dir)  # each now has a file of its own
    cli("artifact", "checkout", "ds", str(second), "--link", "hardlink", check=True)
    assert read_tree(first) == read_tree(second) == FILES
    for rel, content in FILES.items():
        obj = store_dir / "objects" / hash_bytes(content)[:2] / hash_bytes(content)[2:]
        a, b, o = (os.stat(first / rel), os.stat(second / rel), os.stat(obj))
        assert a.st_ino == b.st_ino == o.st_ino  # one inode: linked, not copied
        assert a.st_mode & 0o222 == 0
    cli("artifact", "verify", "ds", check=True)
    cli("artifact", "verify", "ds", "--root", str(second), check=True)


def test_hardlink_checkout_refuses_a_corrupt_packed_object(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    digest = _log_with_a_corrupt_packed_object(cli, tmp_path, store_dir)
    res = cli("artifact", "checkout", "ds", str(tmp_path / "out"), "--link", "hardlink")
    assert res.code == 7 and "corrupt" in res.err
    assert digest not in _loose(store_dir)  # the bad bytes were not given a name


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
@pytest.mark.parametrize("unpacked_first", [0, 80], ids=["all-packed", "some-unpacked"])
def test_link_checkout_shares_files_with_a_forked_helper(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, unpacked_first: int,
    link: str,
) -> None:
    """With many files a forked helper links half of them. It must not use
    the index, so objects it finds still packed are linked by the parent
    (all-packed: both know every location up front; some-unpacked: the
    first objects have files already, so nobody looks locations up ahead)."""
    import wbtool
    from wbtool.artifacts import materialize

    monkeypatch.setattr(materialize, "PARALLEL_SERIAL_MIN", 16)
    files = {f"{d}/{i:03d}.bin": f"{d}{i}".encode() * 9 for d in "ab" for i in range(80)}
    art = wbtool.Artifact("many", "dataset")
    art.add_dir(str(make_tree(tmp_path / "data", files)))
    art.save()
    logged = wbtool.Api().artifact("many:v0")
    if unpacked_first:
        logged.download(str(tmp_path / "some"), path_prefix="a/", link=link)
    out = tmp_path / "out"
    logged.checkout(str(out), link=link)
    assert read_tree(out) == files
    for rel, content in files.items():
        digest = hash_bytes(content)
        assert os.path.samefile(out / rel, store_dir / "objects" / digest[:2] / digest[2:])
    assert os.listdir(Store.open(store_dir).tmp) == []
    assert logged.verify(str(out)) is None


def _swap_after_writing(monkeypatch: pytest.MonkeyPatch, action) -> None:
    """Run ``action(dest)`` once, right after a packed object's bytes are
    written at a checkout path (and took its name there) and before the
    store links that file."""
    from wbtool import fsutil
    from wbtool.store import objects

    real = fsutil.new_file
    done: list[bool] = []

    @contextlib.contextmanager
    def new_file(path: str, mode: int = 0o644) -> Iterator[int]:
        with real(path, mode) as fd:
            yield fd
        if not done:
            done.append(True)
            action(os.fspath(path))

    monkeypatch.setattr(objects.fsutil, "new_file", new_file)


def _swap_one_written_file(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the first file a checkout writes from a pack, before the store
    links it; the list gets the path once that happened."""
    swapped: list[str] = []

    def swap(dest: str) -> None:
        other = Path(dest).with_name("other")
        other.write_bytes(b"not the object")
        os.replace(other, dest)
        swapped.append(dest)

    _swap_after_writing(monkeypatch, swap)
    return swapped


def _assert_store_kept_nothing_of_it(cli: Cli, store_dir: Path) -> None:
    cli("artifact", "verify", "ds", check=True)
    for p in (store_dir / "objects").glob("??/*"):
        assert hash_bytes(p.read_bytes()) == p.parent.name + p.name


def test_hardlink_checkout_keeps_a_copy_when_the_object_is_unpacked_meanwhile(
    cli: Cli, tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wbtool

    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    store = Store.open(store_dir)
    raced: list[str] = []

    def unpack_elsewhere(dest: str) -> None:  # as another process would
        digest = hash_bytes(Path(dest).read_bytes())
        loc = store.objects.locate(digest)
        assert loc is not None
        other = Unpacked()
        raced.append(store.objects.unpack(digest, loc, other))
        store.objects.settle(other)

    _swap_after_writing(monkeypatch, unpack_elsewhere)
    out = tmp_path / "out"
    wbtool.Api().artifact("ds:v0").checkout(str(out), link="hardlink")
    assert read_tree(out) == FILES
    (obj,) = raced
    copies = [p for p in out.rglob("*") if p.is_file() and not os.path.samefile(p, obj)
              and hash_bytes(p.read_bytes()) == Path(obj).parent.name + Path(obj).name]
    assert copies and os.stat(copies[0]).st_mode & 0o222 == 0  # a read-only copy
    cli("artifact", "verify", "ds", check=True)


def test_hardlink_checkout_never_stores_a_file_swapped_in_meanwhile(
    cli: Cli, tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wbtool
    from wbtool.errors import ConflictError

    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    swapped = _swap_one_written_file(monkeypatch)
    with pytest.raises(ConflictError, match="replaced"):
        wbtool.Api().artifact("ds:v0").checkout(str(tmp_path / "out"), link="hardlink")
    assert swapped
    monkeypatch.undo()
    _assert_store_kept_nothing_of_it(cli, store_dir)


def test_hardlink_checkout_over_changed_files_links_the_store_objects(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    out = make_tree(tmp_path / "out", {rel: b"stale\n" for rel in FILES})
    cli("artifact", "checkout", "ds", str(out), "--link", "hardlink", check=True)
    assert read_tree(out) == FILES
    for rel, content in FILES.items():
        digest = hash_bytes(content)
        assert os.path.samefile(out / rel, store_dir / "objects" / digest[:2] / digest[2:])
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp files left


def test_an_interrupt_while_a_pack_is_published_leaves_no_temp_pack(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C can land after the temp pack is closed and before it is renamed."""
    store = Store.open(store_dir)

    def interrupted(name: str) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), PackWriter(store.objects) as writer:
        writer.add(hash_bytes(b"x"), b"x")
        monkeypatch.setattr(store.objects, "pack_path", interrupted)
    assert os.listdir(store.tmp) == []


@pytest.mark.parametrize("durable", [True, False])
def test_a_durable_pack_is_on_disk_before_it_is_indexed(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """Index rows are committed as soon as a pack is published: in a durable
    store its data, then its rename, are flushed first."""
    from wbtool import fsutil

    events: list[str] = []
    real_data, real_dir = fsutil.fdatasync, fsutil.fsync_dir

    def fdatasync(fd: int) -> None:
        events.append("data " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_data(fd)

    def fsync_dir(path: str) -> None:
        events.append("folder " + os.path.basename(path))
        real_dir(path)

    store = Store.open(store_dir)
    store.objects.durable = durable
    monkeypatch.setattr(fsutil, "fdatasync", fdatasync)
    monkeypatch.setattr(fsutil, "fsync_dir", fsync_dir)

    def publish(name: str, rows: list[tuple[str, int, int]]) -> None:
        assert os.path.isfile(store.objects.pack_path(name))
        events.append("indexed")
        store.objects.index_pack(name, rows)

    blobs = [os.urandom(100) for _ in range(20)]
    with PackWriter(store.objects, on_publish=publish) as writer:
        for b in blobs:
            writer.add(hash_bytes(b), b)
    if not durable:
        assert events == ["indexed"]
    else:
        assert len(events) == 3 and events[0].startswith("data .pack.")  # the temp pack
        assert events[1:] == ["folder pack", "indexed"]
    for b in blobs:
        assert store.objects.read_bytes(hash_bytes(b)) == b


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_an_interrupted_link_checkout_names_nothing_it_unpacked(
    cli: Cli, tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    """Files written from packs by a checkout that did not finish were never
    flushed: the store must not have taken them as objects of their own."""
    import wbtool
    from wbtool.store import objects

    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    before = _loose(store_dir)  # the manifest
    real = objects.ObjectStore._read_packed_checked
    read: list[str] = []

    def interrupting(self: objects.ObjectStore, digest: str, loc: tuple[str, int, int]) -> bytes:
        read.append(digest)
        if len(read) == 10:
            raise KeyboardInterrupt
        return real(self, digest, loc)

    monkeypatch.setattr(objects.ObjectStore, "_read_packed_checked", interrupting)
    with pytest.raises(KeyboardInterrupt):
        wbtool.Api().artifact("ds:v0").checkout(str(tmp_path / "out"), link=link)
    assert len(read) == 10
    assert _loose(store_dir) == before
    assert os.listdir(Store.open(store_dir).tmp) == []
    monkeypatch.undo()
    cli("artifact", "checkout", "ds", str(tmp_path / "again"), "--link", link, check=True)
    assert read_tree(tmp_path / "again") == FILES
    assert _loose(store_dir) - before == {hash_bytes(v) for v in FILES.values()}


def test_a_first_hardlink_checkout_links_repeated_content_to_one_file(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    files = {**FILES, **{f"copy/{rel}": content for rel, content in FILES.items()}}
    data = make_tree(tmp_path / "data", files)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    out = tmp_path / "out"
    cli("artifact", "checkout", "ds", str(out), "--link", "hardlink", check=True)
    assert read_tree(out) == files
    for rel in FILES:
        assert os.path.samefile(out / rel, out / "copy" / rel)


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_a_first_link_checkout_settles_unpacked_objects_in_groups(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    """Objects unpacked for links are settled a group at a time (in the
    forked helper too), with repeated content across the groups: every file
    ends up linked to its one object, and nothing is left under tmp/."""
    import wbtool
    from wbtool.artifacts import materialize
    from wbtool.store import objects

    monkeypatch.setattr(materialize, "PARALLEL_SERIAL_MIN", 16)
    monkeypatch.setattr(materialize, "SETTLE_EVERY", 7)
    real = objects.ObjectStore.settle
    partial: list[int] = []

    def settle(self: objects.ObjectStore, unpacked: Unpacked, *, final: bool = True) -> None:
        if not final:
            partial.append(len(unpacked))
        real(self, unpacked, final=final)

    monkeypatch.setattr(objects.ObjectStore, "settle", settle)
    # Half the files each (a/ here, c/ in the helper), each half repeating
    # its own content: a file is linked to the object only where no other
    # process unpacked the same object first (else it keeps a copy).
    files = {f"{d}/{i:03d}.bin": f"{d}{i % 150}".encode() * 9 for d in "ac" for i in range(300)}
    art = wbtool.Artifact("many", "dataset")
    art.add_dir(str(make_tree(tmp_path / "data", files)))
    art.save()
    out = tmp_path / "out"
    wbtool.Api().artifact("many:v0").checkout(str(out), link=link)
    assert partial  # a group settled before the end (one in this process at least)
    assert read_tree(out) == files
    for rel, content in files.items():
        digest = hash_bytes(content)
        assert os.path.samefile(out / rel, store_dir / "objects" / digest[:2] / digest[2:])
    assert os.listdir(Store.open(store_dir).tmp) == []


def test_a_file_swapped_in_early_fails_the_checkout_only_once_all_is_written(
    cli: Cli, tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file replaced before the store could link it is found when its
    group is settled; the checkout still writes every other file, then
    fails, as when all files are settled at the end."""
    import wbtool
    from wbtool.artifacts import materialize
    from wbtool.errors import ConflictError

    monkeypatch.setattr(materialize, "SETTLE_EVERY", 5)
    data = make_tree(tmp_path / "data", FILES)
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    swapped = _swap_one_written_file(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(ConflictError, match="replaced"):
        wbtool.Api().artifact("ds:v0").checkout(str(out), link="hardlink")
    (dest,) = swapped
    written = read_tree(out)
    assert written.keys() == FILES.keys()
    assert {rel: b for rel, b in written.items() if str(out / rel) != dest} == {
        rel: b for rel, b in FILES.items() if str(out / rel) != dest}
    monkeypatch.undo()
    _assert_store_kept_nothing_of_it(cli, store_dir)
