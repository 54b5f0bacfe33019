"""Content digests: xxh3-128 as lowercase hex, streamed in chunks."""

from __future__ import annotations

import mmap
import os
import re

import xxhash

ALGORITHM = "xxh3-128"
CHUNK = 1 << 20  # 1 MiB
MMAP_THRESHOLD = 64 << 20  # files above this are hashed through mmap
DIGEST_LEN = 32


def new_hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def hash_fd(fd: int, size: int | None = None) -> tuple[str, int]:
    """Digest of everything readable from ``fd`` (never all in memory)."""
    if size is None:
        size = os.fstat(fd).st_size
    if size >= MMAP_THRESHOLD:
        try:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                h = new_hasher()
                view = memoryview(mm)
                try:
                    for off in range(0, len(view), 16 * CHUNK):
                        h.update(view[off : off + 16 * CHUNK])
                finally:
                    view.release()
                return h.hexdigest(), len(mm)
        except (OSError, ValueError):
            os.lseek(fd, 0, os.SEEK_SET)
    h = new_hasher()
    total = 0
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            break
        h.update(chunk)
        total += len(chunk)
    return h.hexdigest(), total


def hash_file(path: str | os.PathLike) -> tuple[str, int]:
    """(digest, size) of a file, read once in chunks."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_fd(fd)
    finally:
        os.close(fd)


_DIGEST_RE = re.compile(r"[0-9a-f]{32}")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None
