"""Content digests: xxh3-128 as lowercase hex, streamed in chunks."""

from __future__ import annotations

import mmap
import os
import re

import xxhash

ALGORITHM = "xxh3-128"
CHUNK = 1 << 20  # 1 MiB
BIG_FILE = 64 << 20  # files above this are read in bigger chunks
BIG_CHUNK = 8 << 20
MAP_WINDOW = 16 << 20  # large files are hashed through a memory map this big at a time
DIGEST_LEN = 32


def new_hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def copy_hashing(src: int, out: int) -> tuple[str, int]:
    """Copy the rest of ``src`` to ``out``, hashing each chunk on the way:
    (digest, size) of exactly the bytes written."""
    from wbtool.fsutil import write_all

    h = new_hasher()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := os.readv(src, [buf]):
        h.update(view[:n])
        write_all(out, view[:n])
        size += n
    return h.hexdigest(), size


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def hash_fd(fd: int, size: int | None = None, *, mapped: bool = False) -> tuple[str, int]:
    """Digest of everything readable from ``fd``, read in chunks into one
    reused buffer (constant memory, whatever the file's size).

    ``mapped``: hash a large file through a sliding memory map instead, which
    saves copying every byte out of the page cache. Only for files nobody
    truncates meanwhile (store objects, files under the immutable policy):
    reading a mapped page past a new end of file is a fatal signal.
    """
    if size is None:
        size = os.fstat(fd).st_size
    if mapped and size >= BIG_FILE:
        return hash_mapped(fd, size), size
    h = new_hasher()
    total = 0
    buf = bytearray(min(size + 1, BIG_CHUNK if size >= BIG_FILE else CHUNK))
    view = memoryview(buf)
    while True:
        n = os.readv(fd, [buf])
        if not n:
            break
        h.update(view[:n])
        total += n
    return h.hexdigest(), total


def hash_mapped(fd: int, size: int) -> str:
    """Digest of the first ``size`` bytes of ``fd``, through a sliding memory map."""
    h = new_hasher()
    off = 0
    while off < size:
        n = min(MAP_WINDOW, size - off)
        with mmap.mmap(fd, n, access=mmap.ACCESS_READ, offset=off) as window:
            h.update(window)
        off += n
    return h.hexdigest()


def hash_prefix(fd: int, size: int) -> tuple[str, int]:
    """Digest of the first ``size`` bytes of ``fd`` (read at offsets, so the
    descriptor's position is left alone), and how many there were: fewer
    where the file is shorter. Reading, unlike mapping, survives a file
    truncated meanwhile."""
    h = new_hasher()
    buf = bytearray(min(size, CHUNK))  # small enough to stay in the CPU's cache
    view = memoryview(buf)
    done = 0
    while done < size:
        n = os.preadv(fd, [view[: min(len(buf), size - done)]], done)
        if n == 0:
            break
        h.update(view[:n])
        done += n
    return h.hexdigest(), done


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
