from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wbtool.hashing import hash_bytes
from wbtool.store.layout import Store
from wbtool.store.objects import SMALL


@pytest.fixture
def store(store_dir: Path) -> Store:
    return Store.open(store_dir)


def test_layout_is_sharded(store: Store) -> None:
    digest, new = store.objects.put_bytes(b"hello")
    assert new
    p = Path(store.objects.path(digest))
    assert p.parent.name == digest[:2] and p.name == digest[2:]
    assert p.read_bytes() == b"hello"
    assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0  # read-only
    assert store.objects.put_bytes(b"hello") == (digest, False)
    assert list(store.objects) == [digest]


@pytest.mark.parametrize("size", [0, 10, SMALL + 12345])
def test_put_file_copies(store: Store, tmp_path: Path, size: int) -> None:
    src = tmp_path / "f.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    digest, got, new = store.objects.put_file(str(src))
    assert (digest, got, new) == (hash_bytes(data), size, True)
    obj = Path(store.objects.path(digest))
    assert obj.read_bytes() == data
    assert obj.stat().st_ino != src.stat().st_ino
    # the user's file is untouched and still writable
    assert src.read_bytes() == data and os.access(src, os.W_OK)
    src.write_bytes(b"changed")
    assert obj.read_bytes() == data
    assert not os.listdir(store.tmp)


@pytest.mark.parametrize("write_back", [True, False])
def test_large_copy_in_the_kernel_starts_writing_back_when_durable(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_back: bool
) -> None:
    """A large file settled on disk is copied by the kernel in steps; in a
    durable store whose filesystem takes no direct writes, each step is
    handed to the disk at once (the flush before the version is recorded
    then waits less), else it is left to the kernel."""
    from wbtool import fsutil
    from wbtool.store import objects as objects_mod

    src = tmp_path / "big.bin"
    data = os.urandom(SMALL + 300_000)
    src.write_bytes(data)
    os.utime(src, (1_600_000_000, 1_600_000_000))  # settled: the kernel may copy it
    started: list[tuple[int, int, bool]] = []

    def spy(fd: int, offset: int, length: int) -> bool:
        ok = real(fd, offset, length)
        started.append((offset, length, ok))
        return ok

    real = fsutil.start_writeback
    monkeypatch.setattr(fsutil, "start_writeback", spy)
    monkeypatch.setattr(objects_mod, "WRITEBACK_STEP", 100_000)
    store.objects.write_back = write_back
    store.objects.can_direct = False
    digest, size, new = store.objects.put_file(str(src))
    assert (digest, size, new) == (hash_bytes(data), len(data), True)
    assert Path(store.objects.path(digest)).read_bytes() == data
    if write_back:
        assert [(o, n) for o, n, _ in started] == [
            (k, 100_000) for k in range(0, len(data) - 100_000 + 1, 100_000)]
        assert all(ok for _, _, ok in started)  # the kernel took each hint
    else:
        assert started == []


def _takes_direct_writes(folder: Path) -> bool:
    probe = folder / ".direct-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | getattr(os, "O_DIRECT", 0), 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return hasattr(os, "O_DIRECT")


@pytest.mark.parametrize("size", [
    SMALL + 1,  # a tail of one byte
    SMALL + 3 * 65536,  # whole windows only
    SMALL + 3 * 65536 + 4096,  # whole pages, no tail
    SMALL + 5 * 65536 - 1,  # a tail of almost a page
])
def test_durable_large_copy_bypasses_the_page_cache(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """In a durable store a large file settled on disk is written past the
    page cache (O_DIRECT) from its own page-cache pages while it is hashed;
    the unaligned tail goes through the page cache. The object is exact."""
    from wbtool.store import objects as objects_mod

    if not _takes_direct_writes(Path(store.tmp)):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    monkeypatch.setattr(objects_mod, "DIRECT_WINDOW", 65536)  # several windows
    src = tmp_path / "big.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    os.utime(src, (1_600_000_000, 1_600_000_000))
    store.objects.write_back = True
    digest, got, new = store.objects.put_file(str(src))
    assert store.objects.can_direct is True
    assert (digest, got, new) == (hash_bytes(data), len(data), True)
    obj = Path(store.objects.path(digest))
    assert obj.read_bytes() == data
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    assert not os.listdir(store.tmp)


@pytest.mark.parametrize("path", ["direct", "kernel"])
def test_large_file_truncated_during_the_copy(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Another program truncating the file mid-copy makes the reads come up
    short (the hash reads the file; only the kernel touches mapped pages: no
    fatal signal); the copy starts over in user space and the object holds
    what the file holds now. Both for the direct copy of a durable store and
    the kernel's copy."""
    from wbtool import hashing
    from wbtool.store import objects as objects_mod

    if path == "direct" and not _takes_direct_writes(Path(store.tmp)):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    monkeypatch.setattr(objects_mod, "DIRECT_WINDOW", 65536)
    monkeypatch.setattr(hashing, "CHUNK", 65536)
    monkeypatch.setattr(hashing, "MAP_WINDOW", 65536)
    src = tmp_path / "big.bin"
    data = os.urandom(SMALL + 3 * 65536 + 100)
    src.write_bytes(data)
    os.utime(src, (1_600_000_000, 1_600_000_000))
    real_hasher = hashing.new_hasher
    hashers = []

    class TruncatingHasher:
        """Truncates the source to half after the first window is hashed."""

        def __init__(self) -> None:
            self.inner = real_hasher()
            self.calls = 0

        def update(self, chunk: bytes) -> None:
            self.inner.update(chunk)
            self.calls += 1
            if self.calls == 1 and len(hashers) == 1:
                os.truncate(src, len(data) // 2)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    def make() -> object:
        h = TruncatingHasher()
        hashers.append(h)
        return h

    monkeypatch.setattr(objects_mod, "new_hasher", make)
    monkeypatch.setattr(hashing, "new_hasher", make)
    store.objects.write_back = path == "direct"
    store.objects.can_direct = None if path == "direct" else False
    digest, got, new = store.objects.put_file(str(src))
    half = data[: len(data) // 2]
    assert (digest, got, new) == (hash_bytes(half), len(half), True)
    assert Path(store.objects.path(digest)).read_bytes() == half
    assert len(hashers) == 2  # the first copy, then the one in user space
    assert not os.listdir(store.tmp)


def test_large_copy_falls_back_where_direct_writes_are_refused(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that refuses O_DIRECT (EINVAL at open, as FUSE and some
    network filesystems do) gets the kernel copy instead, and is not asked
    again."""
    opened: list[int] = []
    real_open = os.open

    def refusing_open(path: str, flags: int, *args: int, **kwargs: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            opened.append(flags)
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    store.objects.write_back = True
    for k in range(2):
        src = tmp_path / f"big{k}.bin"
        data = os.urandom(SMALL + 4097)
        src.write_bytes(data)
        os.utime(src, (1_600_000_000, 1_600_000_000))
        digest, got, new = store.objects.put_file(str(src))
        assert (digest, got, new) == (hash_bytes(data), len(data), True)
        assert Path(store.objects.path(digest)).read_bytes() == data
    assert store.objects.can_direct is False
    assert len(opened) == (1 if hasattr(os, "O_DIRECT") else 0)  # learnt once


def test_immutable_hardlinks(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"promise")
    digest, _size, new = store.objects.put_file(str(src), immutable=True)
    assert new
    assert os.stat(store.objects.path(digest)).st_ino == src.stat().st_ino
    assert stat.S_IMODE(src.stat().st_mode) & 0o222 == 0


def test_immutable_file_that_cannot_be_made_read_only_is_copied(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else's file may be linkable but not ours to chmod: the store
    then keeps a read-only copy and leaves the file as it was."""
    src = tmp_path / "theirs.bin"
    src.write_bytes(b"owned by another user")
    before = src.stat()

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    digest, size, new = store.objects.put_file(str(src), immutable=True)
    assert new and size == before.st_size
    obj = os.stat(store.objects.path(digest))
    assert obj.st_ino != before.st_ino and src.stat().st_nlink == 1
    assert stat.S_IMODE(obj.st_mode) & 0o222 == 0
    assert stat.S_IMODE(src.stat().st_mode) == stat.S_IMODE(before.st_mode)
    assert Path(store.objects.path(digest)).read_bytes() == b"owned by another user"


def test_verify_detects_corruption(store: Store) -> None:
    digest, _ = store.objects.put_bytes(b"good")
    assert store.objects.verify(digest)
    p = store.objects.path(digest)
    os.chmod(p, 0o644)
    Path(p).write_bytes(b"evil")
    assert not store.objects.verify(digest)
    assert not store.objects.verify(hash_bytes(b"absent"))
