"""``output.raw``: a command's console exactly as it came, timestamped.

Each chunk read from the command is one frame: a JSON header line
``{"t": <unix time>, "s": "<stream>", "n": <length>}``, then the chunk's
``n`` bytes as they were, then a newline. Only the header is JSON, so
recording costs a copy of the bytes, not an escape of each one. A reader
stops at a torn last frame.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

NAME = "output.raw"


def frame(t: float, stream: str, data: bytes) -> bytes:
    return header(t, stream, len(data)) + data + b"\n"


def header(t: float, stream: str, size: int) -> bytes:
    return b'{"t":%.6f,"s":"%s","n":%d}\n' % (t, stream.encode(), size)


def read_frames(path: str | os.PathLike) -> Iterator[tuple[float, str, bytes]]:
    """(time, stream, bytes) of every complete frame."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - a generator owns it
    except FileNotFoundError:
        return
    with f:
        while True:
            header = f.readline()
            if not header.endswith(b"\n"):
                return
            try:
                head = json.loads(header)
                size = int(head["n"])
            except (ValueError, KeyError, TypeError):
                return
            data = f.read(size + 1)
            if len(data) < size + 1:
                return
            yield float(head.get("t") or 0), str(head.get("s") or ""), data[:size]
