"""``output.raw``: a command's console exactly as it came, timestamped.

Each chunk read from the command is one frame: a JSON header line
``{"t": <unix time>, "s": "<stream>", "n": <length>}``, then the chunk's
``n`` bytes as they were, then a newline. Only the header is JSON, so
recording costs a copy of the bytes, not an escape of each one.

Plain text (the bulk of most consoles) reaches ``output.log`` unchanged. A
frame for such bytes is only its header, with ``"log": <offset>``: its ``n``
bytes are those of ``output.log`` from that offset on, so they are stored
once. Those bytes are written to ``output.log`` before the frame is.

A reader stops at a torn last frame, and at a frame whose bytes are not yet
in ``output.log`` (a reader that follows a live run, or a copy of the run
taken while it ran).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

NAME = "output.raw"
LOG_NAME = "output.log"


def frame(t: float, stream: str, data: bytes) -> bytes:
    return header(t, stream, len(data)) + data + b"\n"


def header(t: float, stream: str, size: int) -> bytes:
    return b'{"t":%.6f,"s":"%s","n":%d}\n' % (t, stream.encode(), size)


def log_header(t: float, stream: str, size: int, offset: int) -> bytes:
    """A whole frame: ``size`` bytes that ``output.log`` holds from ``offset`` on."""
    return b'{"t":%.6f,"s":"%s","n":%d,"log":%d}\n' % (t, stream.encode(), size, offset)


def read_frames(path: str | os.PathLike) -> Iterator[tuple[float, str, bytes]]:
    """(time, stream, bytes) of every complete frame."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - a generator owns it
    except FileNotFoundError:
        return
    log: int | None = None
    try:
        while True:
            header = f.readline()
            if not header.endswith(b"\n"):
                return
            try:
                head = json.loads(header)
                size = int(head["n"])
                offset = head.get("log")
                if offset is not None:
                    offset = int(offset)
            except (ValueError, KeyError, TypeError):
                return
            if offset is None:
                data = f.read(size + 1)
                if len(data) < size + 1:
                    return
                data = data[:size]
            else:
                if log is None:
                    try:
                        log = os.open(Path(path).with_name(LOG_NAME), os.O_RDONLY)
                    except OSError:
                        return
                data = os.pread(log, size, offset) if offset >= 0 else b""
                if len(data) < size:
                    return
            yield float(head.get("t") or 0), str(head.get("s") or ""), data
    finally:
        f.close()
        if log is not None:
            os.close(log)
