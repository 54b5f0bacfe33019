from __future__ import annotations

import errno
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


@pytest.mark.parametrize("durable", [True, False])
def test_large_copy_in_the_kernel_starts_writing_back_when_durable(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
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
    store.objects.durable = durable
    store.objects.can_direct = False
    digest, size, new = store.objects.put_file(str(src))
    assert (digest, size, new) == (hash_bytes(data), len(data), True)
    assert Path(store.objects.path(digest)).read_bytes() == data
    if durable:
        assert [(o, n) for o, n, _ in started] == [
            (k, 100_000) for k in range(0, len(data) - 100_000 + 1, 100_000)]
        assert all(ok for _, _, ok in started)  # the kernel took each hint
    else:
        assert started == []


def _takes_direct_writes(folder: Path) -> bool:
    import fcntl

    if not hasattr(os, "O_DIRECT"):
        return False
    probe = folder / ".direct-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        probe.unlink()


@pytest.fixture
def direct_store(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A durable store that copies large files with direct writes, in small
    windows (several per test file), never by cloning them."""
    from wbtool.store import objects as objects_mod

    if not _takes_direct_writes(Path(store.tmp)):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    monkeypatch.setattr(objects_mod, "DIRECT_WINDOW", 65536)
    store.objects.durable = True
    store.objects.can_reflink = False
    return store


def _settled(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.utime(path, (1_600_000_000, 1_600_000_000))  # long unchanged: the kernel may copy it
    return path


def _put_settled(store: Store, path: Path, data: bytes) -> None:
    """Store ``data`` from a settled file at ``path``: a new, intact object."""
    digest, got, new = store.objects.put_file(str(_settled(path, data)))
    assert (digest, got, new) == (hash_bytes(data), len(data), True)
    assert Path(store.objects.path(digest)).read_bytes() == data


@pytest.mark.parametrize("size", [
    SMALL + 1,  # a tail of one byte
    SMALL + 3 * 65536,  # whole windows only
    SMALL + 3 * 65536 + 4096,  # whole pages, no tail
    SMALL + 5 * 65536 - 1,  # a tail of almost a page
])
def test_durable_large_copy_bypasses_the_page_cache(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """In a durable store a large file settled on disk is written past the
    page cache (O_DIRECT) from its own page-cache pages while it is hashed;
    the unaligned tail goes through the page cache. The object is exact, and
    the temp file is opened once: it is created read-only, and opening it
    again to write would fail for anyone but root."""
    objects = direct_store.objects
    data = os.urandom(size)
    src = _settled(tmp_path / "big.bin", data)
    opened: list[str] = []
    real_open = os.open

    def spy(path: str, flags: int, *args: int, **kwargs: object) -> int:
        opened.append(str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    digest, got, new = objects.put_file(str(src))
    assert objects.can_direct is True
    assert (digest, got, new) == (hash_bytes(data), len(data), True)
    obj = Path(objects.path(digest))
    assert obj.read_bytes() == data
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444
    assert not os.listdir(direct_store.tmp)
    assert len([p for p in opened if p.startswith(str(direct_store.tmp))]) == 1


def test_large_file_logged_without_root_privileges(store_dir: Path, tmp_path: Path) -> None:
    """Temp objects are created read-only, so the direct copy must not open
    one a second time to write: as anyone but root, that fails. Run the real
    command line as an ordinary user would (as root: with root's permission
    override dropped by ``setpriv``)."""
    import shutil
    import subprocess
    import sys

    argv = [sys.executable, "-m", "wbtool"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, and setpriv (util-linux) is not installed")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]
    data = os.urandom(SMALL + 3 * 65536 + 100)
    src = _settled(tmp_path / "big.bin", data)
    done = subprocess.run([*argv, "artifact", "log", "big", str(src), "--type", "model"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    obj = store_dir / "objects" / hash_bytes(data)[:2] / hash_bytes(data)[2:]
    assert obj.read_bytes() == data


@pytest.mark.parametrize("path", ["direct", "kernel"])
def test_large_file_truncated_while_it_is_hashed(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Another program truncating the file mid-copy makes the reads come up
    short (the hash reads the file; only the kernel touches mapped pages: no
    fatal signal); the copy starts over in user space and the object holds
    what the file holds now. Both for the direct copy and the kernel's."""
    from wbtool import hashing

    monkeypatch.setattr(hashing, "CHUNK", 65536)
    data = os.urandom(SMALL + 3 * 65536 + 100)
    src = _settled(tmp_path / "big.bin", data)
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

    monkeypatch.setattr(hashing, "new_hasher", make)
    if path == "kernel":
        direct_store.objects.can_direct = False
    digest, got, new = direct_store.objects.put_file(str(src))
    half = data[: len(data) // 2]
    assert (digest, got, new) == (hash_bytes(half), len(half), True)
    assert Path(direct_store.objects.path(digest)).read_bytes() == half
    assert len(hashers) == 2  # the first copy, then the one in user space
    assert not os.listdir(direct_store.tmp)


def test_large_file_truncated_under_a_direct_write(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file shrinks after a window was mapped and before the kernel
    reads it: the write fails (EFAULT, no signal), the copy starts over, and
    the store keeps using direct writes."""
    from wbtool.store import objects as objects_mod

    data = os.urandom(SMALL + 3 * 65536 + 100)
    src = _settled(tmp_path / "big.bin", data)
    real = objects_mod._pwrite_all
    faults: list[int] = []

    def truncating(fd: int, view: memoryview, offset: int) -> None:
        if offset == 65536 and len(view) == 65536:  # the writer's second window
            os.truncate(src, offset + 100)
            try:
                real(fd, view, offset)
            except OSError as e:
                faults.append(e.errno or 0)
                raise
        else:
            real(fd, view, offset)

    monkeypatch.setattr(objects_mod, "_pwrite_all", truncating)
    digest, got, new = direct_store.objects.put_file(str(src))
    assert faults == [errno.EFAULT]
    now = data[: 65536 + 100]
    assert (digest, got, new) == (hash_bytes(now), len(now), True)
    assert Path(direct_store.objects.path(digest)).read_bytes() == now
    assert direct_store.objects.can_direct is None  # not the filesystem's fault
    assert not os.listdir(direct_store.tmp)


def test_large_copy_falls_back_where_direct_writes_are_refused(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that refuses O_DIRECT (EINVAL, as FUSE and some network
    filesystems do) gets the kernel copy instead, and is not asked again."""
    import fcntl

    asked: list[int] = []
    real = fcntl.fcntl

    def refusing(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            asked.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", refusing)
    for k in range(2):
        data = os.urandom(SMALL + 4097)
        _put_settled(direct_store, tmp_path / f"big{k}.bin", data)
    assert direct_store.objects.can_direct is False
    assert len(asked) == 1  # learnt once


def test_direct_write_refused_midway(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal after some windows were written: the partial temp file is
    emptied, the kernel copies the whole file, direct writes are off."""
    from wbtool.store import objects as objects_mod

    real = objects_mod._pwrite_all

    def refusing(fd: int, view: memoryview, offset: int) -> None:
        if offset == 2 * 65536:
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, view, offset)

    monkeypatch.setattr(objects_mod, "_pwrite_all", refusing)
    data = os.urandom(SMALL + 3 * 65536 + 100)
    _put_settled(direct_store, tmp_path / "big.bin", data)
    assert direct_store.objects.can_direct is False


def test_source_that_cannot_be_mapped_is_copied_by_the_kernel(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some filesystems (FUSE in direct-I/O mode) cannot map files: such a
    source gets the kernel's copy, and the store keeps using direct writes."""
    import mmap

    def unmappable(*args: object, **kwargs: object) -> object:
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(mmap, "mmap", unmappable)
    data = os.urandom(SMALL + 4097)
    _put_settled(direct_store, tmp_path / "big.bin", data)
    assert direct_store.objects.can_direct is None


def test_interrupt_during_a_direct_copy_stops_the_writer(
    direct_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the writer thread is still at work: the interrupt is
    raised only once the writer has stopped (it must not write through
    descriptors closed, then reused, after), and the temp file is gone."""
    import signal
    import threading
    import time

    from wbtool.store import objects as objects_mod

    real = objects_mod._pwrite_all
    writes: list[int] = []

    def slow(fd: int, view: memoryview, offset: int) -> None:
        if not writes:  # the writer is at work: interrupt the main thread soon
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        writes.append(offset)
        time.sleep(0.02)
        real(fd, view, offset)

    monkeypatch.setattr(objects_mod, "_pwrite_all", slow)
    src = _settled(tmp_path / "big.bin", os.urandom(SMALL + 3 * 65536))

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            direct_store.objects.put_file(str(src))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not [t for t in threading.enumerate() if t.name == "wbtool-write"]
    seen = len(writes)
    assert 0 < seen < (SMALL + 3 * 65536) // 65536  # stopped early
    time.sleep(0.1)
    assert len(writes) == seen
    assert not os.listdir(direct_store.tmp)


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


@pytest.mark.parametrize("size", [100, SMALL + 12345])
def test_immutable_file_replaced_while_hashed_is_never_stored_under_the_old_digest(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """A new file renamed over the path (as a trainer re-saving a checkpoint
    does) between hashing and linking must not become the object: the store
    keeps a copy of the bytes it hashed."""
    from wbtool.store import objects

    src = tmp_path / "model.pt"
    data = os.urandom(size)
    src.write_bytes(data)
    newer = tmp_path / "model.pt.tmp"
    newer.write_bytes(b"the next checkpoint")
    real = objects._link_object

    def replace_then_link(path: str, final: str) -> None:
        if newer.exists():
            os.replace(newer, src)
        real(path, final)

    monkeypatch.setattr(objects, "_link_object", replace_then_link)
    digest, got, new = store.objects.put_file(str(src), immutable=True)
    assert (digest, got, new) == (hash_bytes(data), size, True)
    obj = Path(store.objects.path(digest))
    assert obj.read_bytes() == data
    assert obj.stat().st_ino != src.stat().st_ino
    assert src.read_bytes() == b"the next checkpoint"
    assert stat.S_IMODE(src.stat().st_mode) & 0o222  # the newer file is left writable
    assert store.objects.verify(digest)
    assert not os.listdir(store.objects.tmp)


def test_verify_detects_corruption(store: Store) -> None:
    digest, _ = store.objects.put_bytes(b"good")
    assert store.objects.verify(digest)
    p = store.objects.path(digest)
    os.chmod(p, 0o644)
    Path(p).write_bytes(b"evil")
    assert not store.objects.verify(digest)
    assert not store.objects.verify(hash_bytes(b"absent"))
