"""The content-addressed object store.

It knows nothing of artifacts, runs or names: only digests. Objects live at
``objects/<first two hex chars>/<the other 30>``, are read-only, and appear
under their final name only complete (written under ``tmp/`` and renamed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from wbtool import fsutil
from wbtool.errors import ConflictError, CorruptObjectError
from wbtool.hashing import (
    CHUNK,
    copy_hashing,
    hash_bytes,
    hash_fd,
    hash_prefix,
    is_digest,
)

if TYPE_CHECKING:
    from wbtool.store.index import Index
    from wbtool.store.packs import PackRows

PackLocation = tuple[str, int, int]  # pack file path, offset, size

SMALL = 4 << 20  # files up to this size are read whole, then hashed
RACY_NS = 1_000_000_000  # a file written this recently may still be changing
OBJECT_MODE = 0o444
# Why a hard link (or a file to link to) cannot be made: fall back to a copy.
_CANNOT_LINK = (errno.EMLINK, errno.EACCES, errno.EPERM, errno.EROFS)
# ... and why a user's file cannot be linked into the store: copy it instead.
_CANNOT_LINK_HERE = (*_CANNOT_LINK, errno.EXDEV, errno.EOPNOTSUPP)


class Unpacked:
    """Files one checkout wrote from packs, which the store names as objects
    of their own only at :meth:`ObjectStore.settle`, once they are on disk: a
    crash must never leave the store naming a file that lost its bytes, which
    later hard-link checkouts would then hand out."""

    __slots__ = ("links", "replaced", "temps")

    def __init__(self) -> None:
        self.links: dict[str, tuple[str, int, int]] = {}  # digest → checked-out file, dev, ino
        self.temps: dict[str, str] = {}  # digest → temp file under tmp/ (for symbolic links)
        self.replaced: list[str] = []  # checked-out files replaced before they were settled

    def __len__(self) -> int:
        return len(self.links) + len(self.temps)

    def moved(self, old: str, new: str) -> None:
        """The file written last, at ``old``, was renamed to ``new``."""
        if self.links:
            digest, (path, dev, ino) = next(reversed(self.links.items()))
            if path == old:
                self.links[digest] = (new, dev, ino)


class ObjectStore:
    def __init__(
        self, root: str | os.PathLike, tmp: str | os.PathLike,
        index: Callable[[], Index] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self.tmp = os.fspath(tmp)
        self._index = index
        self._packed_set: set[str] | None = None
        self._packed_generation = 0  # the store's gc generation when it was loaded
        self._pack_fds: dict[str, int] = {}  # pack path → open fd (pread is thread-safe)
        self._lock = threading.Lock()
        self.can_reflink: bool | None = None  # learnt on first large put
        self.can_direct: bool | None = None  # O_DIRECT writes, learnt likewise
        # Objects must reach the disk before anything names them: large
        # copies start going to disk while being copied (a flush follows),
        # and packs are flushed before they are published.
        self.durable = False
        self._euid = os.geteuid() if hasattr(os, "geteuid") else None

    # -- layout ---------------------------------------------------------------
    def path(self, digest: str) -> str:
        return f"{self.root}/{digest[:2]}/{digest[2:]}"

    def pack_path(self, name: str) -> str:
        return f"{self.root}/pack/{name}.pack"

    # -- packs ----------------------------------------------------------------
    def index_pack(self, name: str, rows: Iterable[tuple[str, int, int]]) -> None:
        if self._index is None:
            raise RuntimeError("this object store has no index for packs")
        index = self._index()
        ordered = rows if isinstance(rows, list) else list(rows)
        ordered.sort()  # B-tree inserts in key order are several times faster
        with index.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO packed (digest, pack, offset, size) VALUES (?,?,?,?)",
                ((d, name, off, size) for d, off, size in ordered),
            )
        if self._packed_set is not None:
            self._packed_set.update(d for d, _, _ in ordered)

    def index_packs(self, rows: PackRows) -> None:
        """Index the objects of several published packs in one sorted pass."""
        if not len(rows):
            return
        if self._index is None:
            raise RuntimeError("this object store has no index for packs")
        with self._index().transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO packed (digest, pack, offset, size) VALUES (?,?,?,?)",
                rows.sorted_rows(),
            )
        if self._packed_set is not None:
            self._packed_set.update(rows.digests)

    def packed_digests(self) -> set[str]:
        """Every packed digest (for bulk presence checks), loaded once and again
        only after a garbage collection removed objects: packs published since
        may be missing from it, packs deleted since never linger in it."""
        if self._index is None:
            return set()
        index = self._index()
        generation = index.gc_generation()
        if self._packed_set is None or generation != self._packed_generation:
            self._packed_set = {d for (d,) in index.db.execute("SELECT digest FROM packed")}
            self._packed_generation = generation
        return self._packed_set

    def locate(self, digest: str) -> PackLocation | None:
        if self._index is None:
            return None
        row = self._index().db.execute(
            "SELECT pack, offset, size FROM packed WHERE digest=?", (digest,)
        ).fetchone()
        return None if row is None else (self.pack_path(row[0]), row[1], row[2])

    def locate_many(self, digests: Iterable[str]) -> dict[str, PackLocation]:
        """Pack locations of those ``digests`` that are packed."""
        if self._index is None:
            return {}
        db = self._index().db
        out: dict[str, PackLocation] = {}
        wanted = list(dict.fromkeys(digests))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for d, pack, off, size in db.execute(
                f"SELECT digest, pack, offset, size FROM packed WHERE digest IN ({marks})", chunk
            ):
                out[d] = (self.pack_path(pack), off, size)
        return out

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest)) or self.locate(digest) is not None

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` that are neither loose nor packed."""
        wanted = list(dict.fromkeys(digests))
        known = self.packed_digests()  # may predate other processes' packs:
        rest = [d for d in wanted if d not in known]
        packed = self.locate_many(rest)  # so ask the index about the rest
        return [d for d in rest if d not in packed and not os.path.exists(self.path(d))]

    def __iter__(self) -> Iterator[str]:
        """Every digest present, loose or packed (order unspecified)."""
        seen: set[str] = set()
        for digest in self.iter_loose():
            seen.add(digest)
            yield digest
        if self._index is not None:
            for (digest,) in self._index().db.execute("SELECT digest FROM packed").fetchall():
                if digest not in seen:
                    yield digest

    def iter_loose(self) -> Iterator[str]:
        try:
            shards = os.scandir(self.root)
        except FileNotFoundError:
            return
        with shards:
            for shard in shards:
                if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(shard.path) as it:
                    for entry in it:
                        digest = shard.name + entry.name
                        if is_digest(digest):
                            yield digest

    # -- writing --------------------------------------------------------------
    def _publish(self, tmp: str, digest: str) -> bool:
        """Move a complete temp file to its object name; False if present."""
        final = self.path(digest)
        if os.path.exists(final):
            os.unlink(tmp)
            return False
        try:
            os.rename(tmp, final)
        except FileNotFoundError:  # shard folder gone (never created or removed)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.rename(tmp, final)
        return True

    def put_bytes(self, data: bytes, *, flush: bool = False) -> tuple[str, bool]:
        """Store ``data``; return (digest, whether it was newly written).
        ``flush``: a new object is on disk, its name too, before this returns."""
        digest = hash_bytes(data)
        return digest, self._put_hashed(digest, data, flush=flush)

    def unpack(self, digest: str, loc: PackLocation, unpacked: Unpacked) -> str:
        """Give a packed object a file of its own, for symbolic links to point
        at; return its path. The pack keeps its copy. The file is written
        under ``tmp/`` now and takes its name at :meth:`settle`."""
        final = self.path(digest)
        if digest not in unpacked.temps and not os.path.exists(final):
            data = self._read_packed_checked(digest, loc)
            tmp = fsutil.tmp_name(self.tmp, digest)
            unpacked.temps[digest] = tmp  # before the file exists: discard() finds a partial one
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
            try:
                fsutil.write_all(fd, data)
            finally:
                os.close(fd)
        return final

    def link_out(
        self, digest: str, dest: str, loc: PackLocation | None = None, *,
        unpacked: Unpacked, locate: bool = True,
    ) -> bool:
        """Hard-link the object at the new path ``dest``; True when done.

        A packed object has no file of its own yet: the first time, it is
        written at ``dest`` (checked against its digest), and :meth:`settle`
        later links that file into the store, so later checkouts only link.
        Its pack location is ``loc`` or looked up in the index; without
        ``locate`` (where the index must not be used, as in a forked helper)
        such an object is left alone and the result is False. Where no link
        can be made (an inode at its link limit, a store this user cannot
        write to) ``dest`` gets a copy.
        """
        final = self.path(digest)
        try:
            os.link(final, dest)
            return True
        except FileNotFoundError:
            written = unpacked.links.get(digest)
            if written is not None:  # the same content earlier in this checkout
                with contextlib.suppress(FileNotFoundError):
                    os.link(written[0], dest)
                    return True
            if loc is None:
                if not locate:
                    return False
                loc = self.locate(digest)
            if loc is None:
                raise CorruptObjectError(digest=digest, path=self.root) from None
        except OSError as e:
            if e.errno != errno.EMLINK:
                raise
            self.copy_to(digest, dest)
            return True
        data = self._read_packed_checked(digest, loc)
        with fsutil.new_file(dest, OBJECT_MODE) as fd:  # never in part under ``dest``
            fsutil.write_all(fd, data)
            st = os.fstat(fd)
        unpacked.links.setdefault(digest, (dest, st.st_dev, st.st_ino))
        return True

    def settle(self, unpacked: Unpacked, *, final: bool = True) -> None:
        """Make the files a checkout wrote from packs objects of their own:
        flushed to disk first (in a durable store), so that the store never
        names a file whose bytes a crash could still lose. ConflictError if
        a checked-out file was replaced before it could be linked (the
        checkout would hold something else); the store keeps none of it.
        Not ``final``: settle those written so far, and keep any such
        conflict for the final call, so that the checkout goes on meanwhile."""
        if unpacked:
            self._settle(unpacked)
        replaced = unpacked.replaced
        if final and replaced:
            unpacked.replaced = []
            raise ConflictError(
                f"{replaced[0]} was replaced while it was being checked out"
                + (f" (and {len(replaced) - 1} more)" if len(replaced) > 1 else ""))

    def _settle(self, unpacked: Unpacked) -> None:
        if self.durable:
            fsutil.syncfs(self.root)
        for digest, tmp in unpacked.temps.items():
            self._publish(tmp, digest)
        published = bool(unpacked.temps)
        unpacked.temps.clear()
        replaced = unpacked.replaced
        for digest, (path, dev, ino) in unpacked.links.items():
            final = self.path(digest)
            try:
                _link_object(path, final)
            except FileExistsError:  # unpacked by another process meanwhile
                continue
            except OSError as e:
                if e.errno not in _CANNOT_LINK and e.errno != errno.ENOENT:
                    raise
                continue  # the file is gone: the store simply keeps no file of its own
            placed = os.stat(final)
            if (placed.st_dev, placed.st_ino) != (dev, ino):
                os.unlink(final)  # not the file that was checked and written
                replaced.append(path)
        unpacked.links.clear()
        if published and self.durable:
            fsutil.syncfs(self.root)  # symbolic links point at these names

    def discard(self, unpacked: Unpacked) -> None:
        """Remove the temp files of an unpacking that did not finish."""
        for tmp in unpacked.temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        unpacked.temps.clear()
        unpacked.links.clear()
        unpacked.replaced = []

    def _put_hashed(self, digest: str, data: bytes, *, flush: bool = False) -> bool:
        final = self.path(digest)
        if os.path.exists(final):
            if flush:  # placed by another process, which may not have flushed its name yet
                fsutil.fsync_dir(os.path.dirname(final))
            return False
        tmp = fsutil.tmp_name(self.tmp, digest)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
            try:
                fsutil.write_all(fd, data)
                if flush:
                    fsutil.fdatasync(fd)
            finally:
                os.close(fd)
            new = self._publish(tmp, digest)
            if new and flush:
                fsutil.fsync_dir(os.path.dirname(final))
            return new
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_file(self, src: str, *, immutable: bool = False) -> tuple[str, int, bool]:
        """Store the content of ``src``; return (digest, size, newly written).

        Mutable (default): the user's file is only read. Small files are read
        whole; large ones are cloned (reflink) or streamed into a temp file
        while being hashed, so each byte is read once.

        Immutable: the user promised never to change the file, so it is
        hard-linked into the store and made read-only (falls back to a copy
        across filesystems, and when a file was renamed over ``src`` while it
        was hashed: the store keeps what was hashed, never the newcomer).
        """
        fd = os.open(src, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if immutable:
                return self._put_linked(src, fd, st)
            if st.st_size <= SMALL:
                data = read_all(fd, st.st_size)
                digest, new = self.put_bytes(data)
                return digest, len(data), new
            return self._put_large(src, fd)
        finally:
            os.close(fd)

    def _put_large(self, src: str, fd: int) -> tuple[str, int, bool]:
        tmp = fsutil.tmp_name(self.tmp, os.path.basename(src))
        try:
            if self.can_reflink is not False:
                cloned = fsutil.reflink(src, tmp)
                self.can_reflink = cloned
                if cloned:
                    cfd = os.open(tmp, os.O_RDONLY)
                    try:
                        digest, size = hash_fd(cfd, mapped=True)  # a private clone
                    finally:
                        os.close(cfd)
                    os.chmod(tmp, OBJECT_MODE)
                    return digest, size, self._publish(tmp, digest)
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
            try:
                result = None
                if self.durable and _O_DIRECT and self.can_direct is not False:
                    result = self._copy_direct(fd, out)
                if result is None:
                    result = _copy_hashing_in_kernel(fd, out, write_back=self.durable)
                if result is None:
                    result = _copy_hashing_in_user(fd, out)
            finally:
                os.close(out)
            digest, size = result
            return digest, size, self._publish(tmp, digest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _copy_direct(self, fd: int, out: int) -> tuple[str, int] | None:
        """The durable copy of a large file settled on disk: written past the
        page cache (``out`` switched to O_DIRECT for the aligned part), so the
        flush that follows finds almost nothing left to write. None where the
        filesystem refuses such writes (learnt once), the source cannot be
        mapped, or it is changing; ``out`` is then empty again and the caller
        copies another way."""
        import fcntl

        before = os.fstat(fd)
        if time.time_ns() - before.st_mtime_ns < RACY_NS or before.st_size == 0:
            return None
        flags = fcntl.fcntl(out, fcntl.F_GETFL)
        try:
            fcntl.fcntl(out, fcntl.F_SETFL, flags | _O_DIRECT)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            self.can_direct = False
            return None
        try:
            copied = _copy_hashing_direct(fd, out, before)
        except _DirectRefused:
            self.can_direct = False
            copied = None
        finally:
            fcntl.fcntl(out, fcntl.F_SETFL, flags)
        if copied is None:
            os.ftruncate(out, 0)
            return None
        digest, size, tail = copied
        _pwrite_all(out, memoryview(tail), size - len(tail))
        self.can_direct = True
        return digest, size

    def _put_linked(self, src: str, fd: int, st: os.stat_result) -> tuple[str, int, bool]:
        data = None
        if st.st_size <= SMALL:
            data = read_all(fd, st.st_size)
            digest, size = hash_bytes(data), len(data)
        else:
            digest, size = hash_fd(fd, mapped=True)  # the user promised not to change it
        # Someone else's file could be linked but not made read-only: copy it
        # rather than link it and take the link back.
        if self._euid in (0, None, st.st_uid):
            final = self.path(digest)
            try:
                _link_object(src, final)
            except FileExistsError:  # present already (or linked by a racing writer)
                return digest, size, False
            except OSError as e:
                if e.errno not in _CANNOT_LINK_HERE:
                    raise
            else:
                placed = os.stat(final)
                if (placed.st_dev, placed.st_ino) != (st.st_dev, st.st_ino):
                    # ``src`` was replaced since it was opened (a file renamed
                    # over it): the store keeps a copy of what was hashed
                    os.unlink(final)
                else:
                    try:
                        os.fchmod(fd, OBJECT_MODE)  # the object's inode is the file's own
                        return digest, size, True
                    except PermissionError:  # not ours after all (an ACL, a root squash)
                        os.unlink(final)
        if data is None:
            os.lseek(fd, 0, os.SEEK_SET)
            return self._put_large(src, fd)
        return digest, size, self._put_hashed(digest, data)

    # -- reading --------------------------------------------------------------
    def read_packed(self, loc: PackLocation) -> bytes:
        path, offset, size = loc
        fd = self._pack_fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            with self._lock:
                if path in self._pack_fds:  # another thread was quicker
                    os.close(fd)
                    fd = self._pack_fds[path]
                else:
                    self._pack_fds[path] = fd
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise CorruptObjectError(digest=f"at {path}:{offset}", path=self.root)
        return data

    def close(self) -> None:
        """Close the pack files kept open for reading."""
        with self._lock:
            for fd in self._pack_fds.values():
                os.close(fd)
            self._pack_fds.clear()

    def _read_packed_checked(self, digest: str, loc: PackLocation) -> bytes:
        """A packed object's bytes; CorruptObjectError unless they match ``digest``."""
        data = self.read_packed(loc)
        if hash_bytes(data) != digest:
            raise CorruptObjectError(digest=digest, path=self.root)
        return data

    def read_bytes(self, digest: str) -> bytes:
        """The whole object, checked against its digest (for small objects)."""
        try:
            with open(self.path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            loc = self.locate(digest)
            if loc is None:
                raise CorruptObjectError(digest=digest, path=self.root) from None
            try:
                data = self.read_packed(loc)
            except FileNotFoundError:
                raise CorruptObjectError(digest=digest, path=self.root) from None
        if hash_bytes(data) != digest:
            raise CorruptObjectError(digest=digest, path=self.root)
        return data

    def copy_to(self, digest: str, dest: str, loc: PackLocation | None = None) -> None:
        """Write the object's bytes to a new file ``dest``, which appears whole
        or not at all (see :func:`fsutil.new_file`)."""
        if loc is None:
            loc = None if os.path.exists(self.path(digest)) else self.locate(digest)
        if loc is None:
            src = self.path(digest)
            try:
                fsutil.copy_into(src, dest)
            except FileNotFoundError as e:
                if e.filename != src:  # not ``dest``'s folder
                    raise
                raise CorruptObjectError(digest=digest, path=self.root) from None
            return
        data = self.read_packed(loc)
        with fsutil.new_file(dest) as fd:
            fsutil.write_all(fd, data)

    def verify(self, digest: str, loc: PackLocation | None = None) -> bool:
        """True when the object exists and its content matches its name."""
        try:
            fd = os.open(self.path(digest), os.O_RDONLY)
        except FileNotFoundError:
            loc = loc or self.locate(digest)
            if loc is None:
                return False
            try:
                return hash_bytes(self.read_packed(loc)) == digest
            except OSError:
                return False
        try:
            return hash_fd(fd)[0] == digest  # not mapped: it may be a user's file too
        finally:
            os.close(fd)

    def remove(self, digest: str) -> int:
        """Delete an object; return the bytes freed (0 if absent)."""
        p = self.path(digest)
        try:
            size = os.lstat(p).st_size
            os.unlink(p)
        except FileNotFoundError:
            return 0
        return size


WRITEBACK_STEP = 64 << 20  # large copies start going to disk in steps this big
# Durable large copies bypass the page cache (O_DIRECT) in windows this big,
# at offsets and lengths aligned to DIRECT_ALIGN.
DIRECT_WINDOW = 8 << 20
DIRECT_ALIGN = 4096
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def _copy_hashing_in_user(fd: int, out: int) -> tuple[str, int]:
    """Read, hash and write each chunk: the object holds exactly what was hashed."""
    os.lseek(fd, 0, os.SEEK_SET)
    os.lseek(out, 0, os.SEEK_SET)
    os.ftruncate(out, 0)
    return copy_hashing(fd, out)


def _copy_hashing_in_kernel(
    fd: int, out: int, *, write_back: bool = False
) -> tuple[str, int] | None:
    """Hash the source (reading it at offsets) while the kernel copies it
    (copy_file_range) on the other core: the copy itself never passes through
    user space. None where the kernel cannot (or the source is being written
    to right now), so the caller copies in user space instead.

    If the source changes during the copy, None as well: the user-space copy
    that follows hashes exactly the bytes it writes. ``write_back``: start
    writing each copied step to disk at once, for the flush that follows.
    """
    cfr = getattr(os, "copy_file_range", None)
    before = os.fstat(fd)
    if cfr is None or time.time_ns() - before.st_mtime_ns < RACY_NS or before.st_size == 0:
        return None
    size = before.st_size

    def copy(stop: threading.Event) -> None:  # in the kernel, without the GIL
        done = flushed = 0
        while done < size and not stop.is_set():
            copied = cfr(fd, out, min(size - done, WRITEBACK_STEP), done, done)
            if copied == 0:  # the file shrank meanwhile
                raise OSError(errno.EINVAL, "source shrank during the copy")
            done += copied
            if write_back and done - flushed >= WRITEBACK_STEP:
                fsutil.start_writeback(out, flushed, done - flushed)
                flushed = done

    digest, hashed, e = _hash_beside(fd, size, copy, "wbtool-copy")
    if e is not None:
        if isinstance(e, OSError) and e.errno in (
            errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENODEV,
            errno.EBADF,
        ):
            return None
        raise e
    if hashed != size or _changed(fd, before):
        return None  # changed under us: copy again in user space
    return digest, size


class _DirectRefused(Exception):
    """The filesystem refused a direct (O_DIRECT) write."""


class _Unmappable(Exception):
    """The source could not be mapped (a filesystem without mmap, a file that shrank)."""


def _copy_hashing_direct(
    fd: int, out: int, before: os.stat_result
) -> tuple[str, int, bytes] | None:
    """Copy the page-aligned part of ``fd`` through ``out`` (in O_DIRECT mode)
    while hashing the whole file on the other core; return (digest, size,
    the unaligned tail still to write), or None if the source changed.

    A writer thread hands the disk the source's own page-cache pages, window
    by window through a memory map: no byte is copied in memory. The hash
    reads the file at offsets; only the kernel touches the mapped pages, so
    a file truncated meanwhile fails a write (EFAULT) instead of faulting
    this process. _DirectRefused where the filesystem refuses the writes.
    """
    import mmap

    size = before.st_size
    aligned = size - size % DIRECT_ALIGN

    def write(stop: threading.Event) -> None:  # in the kernel, without the GIL
        off = 0
        while off < aligned and not stop.is_set():
            n = min(DIRECT_WINDOW, aligned - off)
            try:
                window = mmap.mmap(fd, n, access=mmap.ACCESS_READ, offset=off)
            except (OSError, ValueError) as e:
                raise _Unmappable(str(e)) from e
            with window, memoryview(window) as view:
                _pwrite_all(out, view, off)
            off += n

    digest, hashed, e = _hash_beside(fd, size, write, "wbtool-write")
    tail = os.pread(fd, size - aligned, aligned) if aligned < size else b""
    changed = hashed != size or len(tail) != size - aligned or _changed(fd, before)
    if e is not None:
        if isinstance(e, _Unmappable):
            return None  # the kernel's copy next
        if isinstance(e, OSError) and e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            raise _DirectRefused(str(e)) from e
        if not (changed and isinstance(e, OSError) and e.errno == errno.EFAULT):
            raise e  # a full disk, an I/O error: not for a second try to hide
    return None if changed else (digest, size, tail)


def _link_object(src: str, final: str) -> None:
    """Hard-link ``src`` at the object path ``final``; the shard folder is
    made on first use."""
    try:
        os.link(src, final)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.link(src, final)


def _changed(fd: int, before: os.stat_result) -> bool:
    """Whether the file behind ``fd`` was written to since ``before``."""
    after = os.fstat(fd)
    return (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns)


def _hash_beside(
    fd: int, size: int, work: Callable[[threading.Event], None], name: str
) -> tuple[str, int, BaseException | None]:
    """Hash the first ``size`` bytes of ``fd`` (read at offsets, never mapped:
    the file is the user's) while a thread runs ``work(stop)``; return (the
    digest, how many bytes there were, what ``work`` raised). An interrupt
    tells ``work`` to stop (it looks at ``stop`` between steps) and is raised
    once it has."""
    failed: list[BaseException] = []
    stop, finished = threading.Event(), threading.Event()

    def run() -> None:
        try:
            work(stop)
        except BaseException as e:
            failed.append(e)
        finally:
            finished.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        digest, hashed = hash_prefix(fd, size)
    except BaseException:
        stop.set()
        raise
    finally:
        _wait_stopping(finished, stop)
    return digest, hashed, failed[0] if failed else None


def _wait_stopping(finished: threading.Event, stop: threading.Event) -> None:
    """Wait until a helper thread sets ``finished``. An interrupt meanwhile
    asks it to ``stop``, and is raised only once it has: it must not go on
    writing through descriptors that are closed, then reused, once this
    returns."""
    interrupted: BaseException | None = None
    while not finished.is_set():
        try:
            finished.wait()
        except BaseException as e:
            stop.set()
            interrupted = interrupted or e
    if interrupted is not None:
        raise interrupted


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n == 0:
            raise OSError(errno.EIO, "the disk took no bytes")
        done += n


def read_all(fd: int, size_hint: int) -> bytes:
    """Read to EOF. On a regular file a short read means EOF, so one call
    usually suffices."""
    want = size_hint + 1
    first = os.read(fd, want)
    if len(first) < want:
        return first
    parts = [first]
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)

