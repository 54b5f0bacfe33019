"""``history.jsonl`` (and ``system.jsonl``): append-only JSON lines.

The writer buffers rows in memory and appends them in whole lines, so the
file is valid JSON lines after every flush; readers skip a torn last line
(what a SIGKILL in the middle of a write leaves).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from wbtool.fsutil import as_atomic, write_all
from wbtool.runs.values import encode

READ_CHUNK = 1 << 20


class LineWriter:
    """Buffered appends of JSON rows to one file, flushed in whole lines."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        repair_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o644)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.rows_written = 0

    def append(self, row: dict[str, Any]) -> None:
        self._rows.append(row)

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows or self._fd < 0:
                return
            write_all(self._fd, ("\n".join(map(encode, rows)) + "\n").encode())
            self.rows_written += len(rows)

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def repair_tail(path: str) -> None:
    """Cut a torn last line (no trailing newline) so appends start clean."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        pos = size
        while pos > 0:
            start = max(0, pos - 65536)
            chunk = os.pread(fd, pos - start, start)
            if pos == size and chunk.endswith(b"\n"):
                return
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                os.ftruncate(fd, start + nl + 1)
                return
            pos = start
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def iter_lines(path: str | os.PathLike) -> Iterator[bytes]:
    """Complete lines (with their newline) of a JSON-lines file, streamed."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a generator owns it
    except FileNotFoundError:
        return
    with f:
        rest = b""
        while True:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                return  # whatever is left in ``rest`` is a torn line
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                yield from chunk[:cut].splitlines(keepends=True)


def iter_chunks(path: str | os.PathLike) -> Iterator[bytes]:
    """Blocks of whole lines, for copying a history out without parsing it."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    with f:
        rest = b""
        while True:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                return
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                yield chunk[:cut]


def iter_rows(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Parsed rows; lines that are not JSON objects are skipped."""
    loads = json.loads
    for block in iter_chunks(path):
        try:  # one parse per block is much faster than one per line
            rows = loads(b"[" + block.rstrip(b"\n").replace(b"\n", b",") + b"]")
        except ValueError:
            rows = []
            for line in block.splitlines():
                try:
                    rows.append(loads(line))
                except ValueError:
                    continue
        for row in rows:
            if type(row) is dict:
                yield row


def rewrite(path: str | os.PathLike, keep: Callable[[dict[str, Any]], bool],
            target: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Write the rows of ``path`` that ``keep`` accepts to ``target`` (default:
    ``path`` itself, atomically); returns them."""
    kept = [row for row in iter_rows(path) if keep(row)]
    dest = os.fspath(target if target is not None else path)
    with as_atomic(dest) as tmp, open(tmp, "wb") as f:
        for row in kept:
            f.write(encode(row).encode() + b"\n")
    return kept
