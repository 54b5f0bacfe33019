"""Filesystem helpers: the one atomic-write helper, reflink, durable flushes.

Everything that publishes a file under a final name goes through
:func:`as_atomic` (or :func:`atomic_write`): the bytes land in a temporary
file beside the target (or in a staging folder on the same filesystem),
are optionally fsynced, and are renamed over the target only on success. On
any exception, ``KeyboardInterrupt`` included, the temporary file is removed.
A file that must not replace anything (an artifact's file written out) goes
through :func:`new_file` instead, which where it can names no temporary file
at all.

Everything appended to a file that only grows (a run's history, events and
console record) goes through :func:`append_whole` (or :func:`append_to`,
:class:`Appender`): all of the bytes, or none of them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

_FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h

StrPath = str | os.PathLike
# What a write refused for want of permission (or a read-only filesystem) fails with.
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# What a write that found no room left fails with.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_within(path: StrPath, folder: StrPath) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, links resolved."""
    real, real_folder = os.path.realpath(path), os.path.realpath(folder)
    return real == real_folder or real.startswith(real_folder + os.sep)


@contextlib.contextmanager
def naming(path: StrPath) -> Iterator[None]:
    """Name ``path`` in a full-disk ``OSError`` raised without a file name
    (a ``write`` names none), so that whoever tells the error can say which
    disk is full: the store's, or that of a folder written to."""
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL and e.filename is None:
            e.filename = os.fspath(path)
        raise


def tmp_name(directory: StrPath, hint: str = "") -> str:
    """A fresh, unlikely-to-collide file name inside ``directory``."""
    return os.path.join(directory, f".{hint[-40:]}.{os.urandom(6).hex()}.tmp")


@contextlib.contextmanager
def as_atomic(
    target: StrPath, *, staging: StrPath | None = None, fsync: bool = False
) -> Iterator[str]:
    """Yield a temporary path; rename it onto ``target`` when the block succeeds.

    ``staging`` must be on the same filesystem as ``target`` (defaults to the
    target's folder). With ``fsync`` the file and the target's folder are
    flushed to disk before and after the rename.
    """
    target = os.fspath(target)
    folder = os.fspath(staging) if staging is not None else os.path.dirname(target) or "."
    tmp = tmp_name(folder, os.path.basename(target))
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, target)
        if fsync:
            fsync_dir(os.path.dirname(target) or ".")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def new_file(path: StrPath, mode: int = 0o644, *, staging: StrPath | None = None) -> Iterator[int]:
    """Yield a descriptor open for writing a new file, which appears at
    ``path`` whole when the block succeeds (FileExistsError then if something
    is there already), and never in part: a process killed meanwhile leaves
    nothing of it under that name.

    Where the system can (Linux ``O_TMPFILE``), the file has no name at all
    until then, so that a kill leaves nothing behind, and costs one system
    call more than creating ``path`` directly. Elsewhere it is written under
    a temporary name (:func:`tmp_name`, which :func:`is_tmp_name`
    recognises) in ``staging`` (on the same filesystem as ``path``; defaults
    to the folder of ``path``), removed on any exception.
    """
    path = os.fspath(path)
    folder = os.fspath(staging) if staging is not None else os.path.dirname(path) or "."
    try:
        fd = _open_unnamed(folder, mode)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None  # not the folder
    if fd is not None:
        try:
            yield fd
            _name_unnamed(fd, path)
        finally:
            os.close(fd)
        return
    tmp = tmp_name(folder, os.path.basename(path))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None  # not the temporary name
    try:
        try:
            yield fd
        finally:
            os.close(fd)
        _publish_new(tmp, path)
    finally:  # the temporary name, or on an exception the whole file
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


_proc_fds: bool | None = None  # whether /proc/self/fd names open files (learnt once)


def _open_unnamed(folder: str, mode: int) -> int | None:
    """A file with no name yet in ``folder``, open for writing; None where
    the system or the filesystem has no such files."""
    global _proc_fds
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    if _proc_fds is None:
        _proc_fds = os.path.isdir("/proc/self/fd")
    if not _proc_fds:
        return None
    try:
        return os.open(folder, os.O_WRONLY | flag, mode)
    except OSError as e:
        # EISDIR: a kernel older than O_TMPFILE; the others: a filesystem without it
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL):
            return None
        raise


def _name_unnamed(fd: int, path: str) -> None:
    """Give the file of :func:`_open_unnamed` its name (linkat(2) through
    /proc, which needs no privilege); FileExistsError if ``path`` is taken."""
    try:
        # os.link calls linkat, which follows the /proc link, only when given
        # a folder's descriptor; an absolute path makes that one unused.
        os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None  # not the /proc name


def _publish_new(tmp: str, path: str) -> None:
    """Give the complete file at ``tmp`` the name ``path``, unless that is taken.

    On a filesystem without hard links it is renamed instead: on Linux with
    ``renameat2(RENAME_NOREPLACE)``, which never replaces either; elsewhere
    (or where the filesystem refuses that flag) by a check then a rename, a
    best effort that a file made between the two would be replaced by."""
    try:
        os.link(tmp, path)  # unlike a rename, never over something there
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
            raise OSError(e.errno, e.strerror, path) from None  # not the temporary name
        if _rename_noreplace(tmp, path):
            return
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path) from None
        os.rename(tmp, path)


_renameat2: Any = None
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(tmp: str, path: str) -> bool:
    """Rename ``tmp`` to ``path`` unless that is taken (FileExistsError then),
    with Linux ``renameat2(RENAME_NOREPLACE)``; False, having done nothing,
    where the system or the filesystem has no such rename."""
    global _renameat2
    if _renameat2 is None:
        import ctypes

        fn = getattr(_c_library(), "renameat2", None) if sys.platform == "linux" else None
        if fn is not None:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
            fn.restype = ctypes.c_int
        _renameat2 = fn or False
    if not _renameat2:
        return False
    import ctypes

    if _renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path),
                  _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # a kernel or filesystem without the flag
    raise OSError(err, os.strerror(err), path)


def is_tmp_name(name: str) -> bool:
    """Whether the file name ``name`` is one that :func:`tmp_name` gives:
    a temporary file that a write killed midway may have left."""
    return (len(name) > 18 and name[0] == "." and name.endswith(".tmp") and name[-17] == "."
            and all(c in "0123456789abcdef" for c in name[-16:-4]))


class FolderWriters:
    """Marks this process as one writing into ``folder`` (a shared ``flock``
    on the folder, held until :meth:`close`), and tells whether it was alone
    on arrival: ``alone`` is true only then, and while it is, no other
    process starts writing there (it waits in :meth:`__init__`), so that
    temporary files found there (:func:`is_tmp_name`) are leftovers of
    writers that are gone, not another process's work in progress. Call
    :meth:`share` once those are removed. Where the filesystem has no such
    locks, ``alone`` is true: as if no two processes ever shared a folder."""

    def __init__(self, folder: StrPath) -> None:
        import fcntl

        self.alone = True
        try:
            self._fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
        except OSError:  # a folder that cannot be read: writing there tells why
            self._fd = -1
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.alone = False
            fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits only while one is alone
        except OSError:  # no locks here (some network filesystems)
            os.close(self._fd)
            self._fd = -1

    def share(self) -> None:
        """Let other writers in (this one stays, sharing the folder)."""
        if self.alone and self._fd >= 0:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_SH)
        self.alone = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing releases the lock
            self._fd = -1

    def __enter__(self) -> FolderWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def atomic_write(
    target: StrPath, data: bytes, *, staging: StrPath | None = None, fsync: bool = True,
    mode: int = 0o644,
) -> None:
    """Write ``data`` to ``target`` atomically (temp file, fsync, rename)."""
    with as_atomic(target, staging=staging, fsync=False) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    if fsync:
        fsync_dir(os.path.dirname(os.fspath(target)) or ".")


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def append_whole(fd: int, data: bytes | bytearray | memoryview | list[Any]) -> None:
    """Append ``data`` (bytes, or a list of parts written with one ``writev``)
    to the file open for appending on ``fd``: all of it, or nothing.

    Every append-only file of whole lines (a run's history, events, console)
    is written through here. A write that stops short and then fails (a full
    disk, the file size limit) is cut back off, so that the file still ends
    at a line boundary: else the next append would glue its first line onto
    the torn one, and readers would lose both. The error is raised again."""
    parts = data if isinstance(data, list) else [data]
    total = sum(map(len, parts))
    start = os.fstat(fd).st_size
    try:
        done = os.writev(fd, parts) if len(parts) > 1 else os.write(fd, parts[0])
        if done < total:  # a short write: finish it, or fail on what stopped it
            write_all(fd, memoryview(b"".join(parts))[done:])
    except BaseException:
        with contextlib.suppress(OSError):
            # Only a torn tail, which this write left: not a whole one (an
            # interrupt after the last write), nor another writer's lines.
            if start < os.fstat(fd).st_size < start + total:
                os.ftruncate(fd, start)
        raise


def append_to(path: StrPath, data: bytes, mode: int = 0o644) -> None:
    """Append ``data`` to the file at ``path`` (made if missing) through
    :func:`append_whole`: all of it, or nothing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        with naming(path):
            append_whole(fd, data)
    finally:
        os.close(fd)


class Appender:
    """Buffered appends to one file, each flush through :func:`append_whole`:
    a flush that fails leaves the file as the last one that did not, and
    what it held is dropped (the disk refused it)."""

    def __init__(self, path: StrPath, buffer_size: int) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o666)
        self._buffer = bytearray()
        self._size = buffer_size

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= self._size:
            self.flush()

    def flush(self) -> None:
        data, self._buffer = self._buffer, bytearray()
        if data and self._fd >= 0:
            with naming(self.path):
                append_whole(self._fd, data)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1


def fsync_path(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fdatasync(fd: int) -> None:
    """Flush a file's data (and the metadata needed to read it) to disk."""
    sync = getattr(os, "fdatasync", None) or os.fsync  # macOS has only fsync
    sync(fd)


def fsync_dir(path: StrPath) -> None:
    """Flush a folder's entries (a rename into it) to disk; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_libc: Any = None
_writeback: Any = None
_SYNC_FILE_RANGE_WRITE = 2


def _c_library() -> Any:
    global _libc
    if _libc is None:
        import ctypes  # only here: importing ctypes costs start-up time

        # The process's own symbols include the C library's; looking it up by
        # name (ctypes.util.find_library) would start an ldconfig process.
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Have the kernel start writing a range of ``fd`` to disk, without waiting
    (Linux ``sync_file_range``): a later flush of a large file then finds
    most of it written already. False where that cannot be done (a hint
    only: nothing depends on it)."""
    global _writeback
    if _writeback is None:
        import ctypes

        fn = getattr(_c_library(), "sync_file_range", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        _writeback = fn or False
    return bool(_writeback) and _writeback(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


def syncfs(path: StrPath) -> None:
    """Flush everything written to the filesystem holding ``path``.

    One call makes a whole batch of freshly written objects durable, which is
    far cheaper than an fsync per object. Falls back to ``os.sync``.
    """
    fn = getattr(_c_library(), "syncfs", None)
    if fn is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if fn(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def clone_fd(sfd: int, dfd: int) -> bool:
    """Make the empty file open on ``dfd`` share ``sfd``'s extents
    (copy-on-write); False where the filesystem cannot."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fcntl.ioctl(dfd, _FICLONE, sfd)
    except OSError as e:
        if e.errno not in (
            errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM,
            errno.ENOSYS, errno.EBADF, errno.ENOTSUP,
        ):
            raise
        return False
    return True


class _NotCloned(Exception):
    """The filesystem cannot clone: the new file is dropped unnamed."""


def copy_into(
    src: StrPath, dst: StrPath, mode: int = 0o644, *, clone: bool = False,
    copy: Callable[[int, int], object] | None = None,
) -> bool:
    """Copy ``src`` to a new file ``dst``, which appears whole or not at all
    (:func:`new_file`; FileExistsError if something is there already).

    The bytes are copied kernel-side where possible, or by ``copy(sfd, dfd)``
    when given (which may raise to leave nothing at ``dst``). With ``clone``
    the new file instead shares ``src``'s extents (copy-on-write) and gets
    exactly ``mode``; False, leaving nothing behind, where the filesystem
    cannot. ``src`` is opened first: an error opening it names ``src``,
    one making the new file names ``dst``.
    """
    sfd = os.open(src, os.O_RDONLY)
    try:
        with new_file(dst, mode) as dfd:
            if not clone:
                (copy or copy_fd)(sfd, dfd)
            elif clone_fd(sfd, dfd):
                os.fchmod(dfd, mode)
            else:
                raise _NotCloned
    except _NotCloned:
        return False
    finally:
        os.close(sfd)
    return True


def reflink(src: StrPath, dst: StrPath) -> bool:
    """Clone ``src`` to a new file ``dst`` sharing extents (copy-on-write).

    Returns False, leaving nothing behind, where the filesystem cannot.
    """
    return copy_into(src, dst, clone=True)


def copy_fd(sfd: int, dfd: int) -> None:
    """Copy the rest of the file open on ``sfd`` to ``dfd`` (kernel-side where possible)."""
    copied = 0
    fast = getattr(os, "copy_file_range", None)
    if fast is not None:
        try:
            while True:
                n = fast(sfd, dfd, 1 << 30)
                if n == 0:
                    return
                copied += n
        except OSError as e:
            if copied or e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    while True:
        chunk = os.read(sfd, 1 << 20)
        if not chunk:
            return
        write_all(dfd, chunk)

