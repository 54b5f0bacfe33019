"""``history.jsonl`` (and ``system.jsonl``): append-only JSON lines.

The writer buffers rows in memory and appends them in whole lines, so the
file is valid JSON lines after every flush; readers skip a torn last line
(what a SIGKILL in the middle of a write leaves).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from wbtool.fsutil import append_whole, as_atomic, naming
from wbtool.runs.values import JSON_SAFE, encode

READ_CHUNK = 1 << 20
# A flush of at least this many rows hands JSON encoding to a helper process.
OFFLOAD_ROWS = 4000
# Rows handed to the helper at a time: what a kill in the middle of a hand-over
# can lose, besides what was not yet handed over.
SEND_ROWS = 2048

# How a write of the helper's fails that is the disk's doing, not the helper's:
# it exits with that errno as its status, for the writer to tell.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)

# The helper: reads framed batches of rows (marshal) from stdin and appends
# them as JSON lines. It ignores the signals a terminal, a launcher or a batch
# system sends to the whole process group (SIGUSR1: time is almost up) and
# stops at end of input, so whatever the parent handed over is written even
# when the parent is killed.
_ENCODER = f"JSON_SAFE = {JSON_SAFE!r}\nWRITE_ERRNOS = {WRITE_ERRNOS!r}\n" + """
import json, marshal, os, signal, struct, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
          signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)
enc = json.JSONEncoder(separators=(",", ":"), allow_nan=True, ensure_ascii=False).encode
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
inp = sys.stdin.buffer
while True:
    head = inp.read(8)
    if len(head) < 8:
        break
    size = struct.unpack("<Q", head)[0]
    body = inp.read(size)
    if len(body) < size:  # the parent died while handing this batch over
        break
    rows = marshal.loads(body)
    view = memoryview(("\\n".join(map(enc, rows)) + "\\n").encode("utf-8", JSON_SAFE))
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:  # a full disk: the parent cuts off the torn line and tells why
        sys.exit(e.errno if e.errno in WRITE_ERRNOS else 1)
"""


class _Encoder:
    """A child process that turns batches of rows into JSON lines.

    Encoding JSON costs about twenty times more than handing the same rows
    over with ``marshal``; in a child it runs on another core, off the
    training process's GIL.
    """

    def __init__(self, path: str) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-E", "-c", _ENCODER, path], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, close_fds=True,
        )
        assert self.proc.stdin is not None
        self.pipe = self.proc.stdin
        import fcntl

        with contextlib.suppress(OSError, AttributeError):  # fewer stalls on bursts
            fcntl.fcntl(self.pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)

    def send(self, rows: list[dict[str, Any]]) -> None:
        import marshal

        body = marshal.dumps(rows)
        self.pipe.write(len(body).to_bytes(8, "little") + body)
        self.pipe.flush()

    def close(self) -> int:
        with contextlib.suppress(OSError):
            self.pipe.close()
        return self.proc.wait()

    def let_go(self) -> None:
        """In a forked child: point this copy of the pipe at /dev/null, so
        that the helper sees the end of its input once the parent closes its
        own copy (not once the child exits too), and nothing the child holds
        in its copy's buffer ever reaches the helper."""
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.dup2(null, self.pipe.fileno(), inheritable=False)
            finally:
                os.close(null)


class LineWriter:
    """Buffered appends of JSON rows to one file, flushed in whole lines.

    Small flushes are encoded here; once a flush is large (a fast logging
    loop), encoding moves to a helper process for the rest of the file's life,
    so rows keep their order.
    """

    def __init__(self, path: str | os.PathLike, *, offload: bool = True,
                 started: float | None = None) -> None:
        self.path = os.fspath(path)
        # The wall-clock time a row's _runtime counts from (None: rows are
        # timed by their _timestamp).
        self.started = started
        repair_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o644)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._offload = offload
        self._encoder: _Encoder | None = None
        # The _timestamp of the oldest row a flush is handing over (None: none is).
        self._sending_since: float | None = None
        self.rows_written = 0
        self.error: str | None = None

    def append(self, row: dict[str, Any]) -> None:
        self._rows.append(row)

    @property
    def pending(self) -> int:
        return len(self._rows)

    def lag(self, now: float) -> float:
        """Seconds since the oldest row not yet written (or handed to the
        helper, which writes it even if this process is killed) was logged,
        by its ``_timestamp``; 0 when every row is."""
        since = self._sending_since
        if since is None:
            rows = self._rows
            since = self._logged_at(rows[0]) if rows else None
        return now - since if isinstance(since, float) else 0.0

    def _logged_at(self, row: dict[str, Any]) -> float | None:
        """When ``row`` was logged: its ``_runtime`` after :attr:`started`
        where that is set (a row's ``_timestamp`` may be a time the user
        gave, from old logs replayed), else its ``_timestamp``."""
        if self.started is not None:
            runtime = row.get("_runtime")
            return self.started + runtime if isinstance(runtime, float) else None
        since = row.get("_timestamp")
        return since if isinstance(since, float) else None

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows or self._fd < 0:
                return
            if self._encoder is None and self._offload and len(rows) >= OFFLOAD_ROWS:
                self._start_encoder()
            if self._encoder is not None:
                sent = 0
                try:
                    while sent < len(rows):
                        chunk = rows[sent:sent + SEND_ROWS]
                        self._sending_since = self._logged_at(chunk[0])
                        self._encoder.send(chunk)
                        sent += len(chunk)
                        self.rows_written += len(chunk)
                    return
                except (OSError, ValueError) as e:  # the helper died: write here from now on
                    self._stop_encoder(f"the history encoder stopped ({e})")
                    rows = rows[sent:]
                finally:
                    self._sending_since = None
            data = ("\n".join(map(encode, rows)) + "\n").encode("utf-8", JSON_SAFE)
            try:
                with naming(self.path):
                    append_whole(self._fd, data)
            except OSError:
                self._rows[:0] = rows  # written by the next flush, once there is room
                raise
            self.rows_written += len(rows)

    def _start_encoder(self) -> None:
        try:
            self._encoder = _Encoder(self.path)
        except (OSError, ValueError):
            self._offload = False

    def _stop_encoder(self, error: str | None = None) -> None:
        encoder, self._encoder = self._encoder, None
        self._offload = False
        if encoder is not None:
            code = encoder.close()
            if code != 0:  # it may have died part-way through a line (a full disk)
                with contextlib.suppress(OSError):
                    repair_tail(self.path)
            if code in WRITE_ERRNOS:  # told by the helper: why it stopped
                error = f"the history encoder could not write {self.path}: {os.strerror(code)}"
            elif code != 0 and error is None:
                error = f"the history encoder exited with status {code}"
        if error is not None:
            self.error = error

    def after_fork(self) -> None:
        """In a forked child, whose copy of this writer is its parent's to
        write: let go of the helper process (the parent's), writing nothing."""
        self._lock = threading.Lock()  # the parent's may be held by a thread that is gone
        encoder, self._encoder = self._encoder, None
        self._offload = False
        if encoder is not None:
            encoder.let_go()

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0 and self._encoder is None:
                os.fsync(self._fd)

    def close(self, *, fsync: bool = False) -> None:
        """Write what is buffered, and close the file. A last flush that fails
        (a full disk) still closes the file and stops the helper: a process
        that goes on (a notebook) holds neither for good."""
        try:
            self.flush()
            with self._lock:
                self._stop_encoder()
                if fsync and self._fd >= 0:
                    os.fsync(self._fd)
        finally:
            with self._lock:
                self._stop_encoder()
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
            f.write(encode(row).encode("utf-8", JSON_SAFE) + b"\n")
    return kept


def media_files(rows: list[dict[str, Any]], root: str | os.PathLike) -> set[str]:
    """The files under ``media/`` of the run folder ``root`` that ``rows`` name
    (a value's ``path`` and ``filenames``, a chart's table), with the images
    that each named table holds."""
    from wbtool.names import is_clean_entry_path

    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            listed = value.get("filenames")
            named = [value.get("path"), *(listed if isinstance(listed, list) else [])]
            for rel in named:
                if (is_clean_entry_path(rel) and rel.startswith("media/")
                        and rel not in found):
                    found.add(rel)
                    if rel.endswith(".table.json"):
                        try:
                            with open(os.path.join(root, rel), "rb") as f:
                                walk(json.loads(f.read()).get("data"))
                        except (OSError, ValueError, AttributeError):
                            pass
            for item in value.values():
                walk(item)

    walk(rows)
    return found


def copy_media(rows: list[dict[str, Any]], source: str | os.PathLike,
               target: str | os.PathLike) -> None:
    """Give the run folder ``target`` the media files of the run folder
    ``source`` that ``rows`` name (a fork's rows): hard links where it can,
    else copies. A file the source lacks is left out."""
    import shutil

    for rel in sorted(media_files(rows, source)):
        src, dest = os.path.join(source, rel), os.path.join(target, rel)
        if not os.path.isfile(src) or os.path.islink(src) or os.path.exists(dest):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
