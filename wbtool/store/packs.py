"""Pack files: many small objects in one file.

Creating a file costs tens to hundreds of microseconds on common
filesystems, far more than hashing a few KiB, so objects up to
:data:`PACK_MAX` bytes that arrive in bulk are appended to a pack instead of
each getting a file of its own. A pack is self-describing (a magic header,
then ``16-byte digest, 8-byte little-endian size, data`` per object), is
named by the digest of its whole content, lives at
``objects/pack/<digest>.pack``, is read-only, and is published like any
object: written under ``tmp/``, renamed, and only then indexed in the
``packed`` table (digest → pack, offset, size). In a durable store a pack is
flushed to disk, and its rename too, before anything indexes it.
"""

from __future__ import annotations

import contextlib
import os
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from wbtool import fsutil
from wbtool.hashing import new_hasher

if TYPE_CHECKING:
    from wbtool.store.objects import ObjectStore

MAGIC = b"WBTPACK1"
RECORD = struct.Struct("<16sQ")
PACK_MAX = 128 << 10  # objects up to this size are packed when added in bulk
PACK_TARGET = 64 << 20  # start a new pack after this many bytes
WRITE_BUFFER = 1 << 20
WRITEBACK_STEP = 8 << 20  # in a durable store, written bytes go to disk in steps this big


class PackWriter:
    """Appends objects to a temporary pack; :meth:`flush` publishes it."""

    def __init__(
        self, objects: ObjectStore, target_size: int = PACK_TARGET,
        on_publish: Callable[[str, list[tuple[str, int, int]]], None] | None = None,
    ) -> None:
        self.objects = objects
        self.on_publish = on_publish or objects.index_pack
        self.target = target_size
        self._fd: int | None = None
        self._tmp = ""
        self._hasher = new_hasher()
        self._offset = 0
        self._rows: list[tuple[str, int, int]] = []  # digest, offset, size
        self._buf = bytearray()
        self._pending: set[str] = set()
        self._written = self._sent = 0
        self.packs_written = 0

    def __contains__(self, digest: str) -> bool:
        return digest in self._pending

    def add(self, digest: str, data: bytes) -> None:
        if digest in self._pending:
            return
        if self._fd is None:
            self._open()
        buf = self._buf
        buf += RECORD.pack(bytes.fromhex(digest), len(data))
        buf += data
        self._rows.append((digest, self._offset + RECORD.size, len(data)))
        self._pending.add(digest)
        self._offset += RECORD.size + len(data)
        if len(buf) >= WRITE_BUFFER:
            self._drain()
        if self._offset >= self.target:
            self.flush()

    def _drain(self) -> None:
        assert self._fd is not None
        self._hasher.update(self._buf)
        fsutil.write_all(self._fd, self._buf)
        self._written += len(self._buf)
        self._buf = bytearray()
        if self.objects.durable and self._written - self._sent >= WRITEBACK_STEP:
            fsutil.start_writeback(self._fd, self._sent, self._written - self._sent)
            self._sent = self._written

    def _open(self) -> None:
        os.makedirs(self.objects.tmp, exist_ok=True)
        self._tmp = fsutil.tmp_name(self.objects.tmp, "pack")
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        self._hasher = new_hasher()
        self._buf = bytearray(MAGIC)
        self._offset = len(MAGIC)
        self._written = self._sent = 0  # bytes in the file; handed to the disk

    def flush(self) -> None:
        """Publish the current pack (rename, then index its objects)."""
        if self._fd is None:
            return
        self._drain()
        durable = self.objects.durable
        if durable:  # its index rows may be committed at once: on disk first
            fsutil.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = None
        name = self._hasher.hexdigest()
        final = self.objects.pack_path(name)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        if os.path.exists(final):  # the very same pack exists already
            os.unlink(self._tmp)
        else:
            os.rename(self._tmp, final)
            if durable:
                fsutil.fsync_dir(os.path.dirname(final))
        self._tmp = ""
        self.on_publish(name, self._rows)
        self._rows = []
        self._pending = set()
        self.packs_written += 1

    def abort(self) -> None:
        # The temp pack goes even when an interrupt struck between its
        # creation and ``_fd``, or between closing and publishing it.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = ""
        self._rows = []
        self._pending = set()
        self._buf = bytearray()

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.flush()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


class PackRows:
    """Index rows of published packs, kept compact until they are inserted."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.digests: list[str] = []
        self.packs = array("i")
        self.offsets = array("q")
        self.sizes = array("q")

    def add(self, name: str, rows: Iterable[tuple[str, int, int]]) -> None:
        self.names.append(name)
        pack = len(self.names) - 1
        for digest, offset, size in rows:
            self.digests.append(digest)
            self.packs.append(pack)
            self.offsets.append(offset)
            self.sizes.append(size)

    def __len__(self) -> int:
        return len(self.digests)

    def sorted_rows(self) -> Iterator[tuple[str, str, int, int]]:
        """(digest, pack, offset, size) in digest order."""
        for i in sorted(range(len(self.digests)), key=self.digests.__getitem__):
            yield self.digests[i], self.names[self.packs[i]], self.offsets[i], self.sizes[i]


def scan_pack(path: str) -> Iterator[tuple[str, int, int]]:
    """(digest, offset, size) of every object in a pack file, from the file
    alone (to rebuild the index)."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path}: not a wbtool pack")
        offset = len(MAGIC)
        while True:
            head = f.read(RECORD.size)
            if not head:
                return
            if len(head) < RECORD.size:
                raise ValueError(f"{path}: truncated at offset {offset}")
            raw, size = RECORD.unpack(head)
            offset += RECORD.size
            yield raw.hex(), offset, size
            f.seek(size, os.SEEK_CUR)
            offset += size
