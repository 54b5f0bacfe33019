"""What every media type shares: how it becomes a history value, and where
its file goes in the run folder (``media/<kind>/<key>_<step>_<hash>.<ext>``)."""

from __future__ import annotations

import os
import re
from typing import Any

from wbtool.runs.values import LogTarget

# Characters other than letters, digits, "_", "." and "-" become "_" in a
# file name made from a logged key: "a/b" is "a_b", "../x" is "_x".
_UNSAFE = re.compile(r"[^\w.-]+")
STEM_BYTES = 100  # of the key, in the file name
HASH_CHARS = 20


class Media:
    """A value that ``run.log`` turns into a file of the run and a dict in the row."""

    _log_type = "media"

    def _to_row(self, target: Any, key: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


def file_stem(key: str) -> str:
    """A file name's first part made from a logged key: no folder, no NUL, no
    leading dot, at most :data:`STEM_BYTES` bytes of UTF-8."""
    if "\x00" in key:
        raise ValueError(f"cannot log media under {key!r}: the key holds a NUL character")
    stem = _UNSAFE.sub("_", key).lstrip(".")
    stem = stem.encode("utf-8")[:STEM_BYTES].decode("utf-8", "ignore")
    return stem or "media"


def media_path(kind: str, key: str, step: int, digest: str, ext: str) -> str:
    """The run-relative path of a logged file: ``media/<kind>/<key>_<step>_<hash>.<ext>``."""
    return f"media/{kind}/{file_stem(key)}_{step}_{digest[:HASH_CHARS]}.{ext}"


def write_run_file(target: LogTarget | None, kind: str, key: str, data: bytes,
                   ext: str) -> str | None:
    """Write ``data`` into the run folder at :func:`media_path`, atomically,
    and return that path; None (nothing written) for a run that keeps nothing.
    The name holds the content's hash, so a file already there holds these bytes."""
    if target is None or target.folder is None:
        return None
    from wbtool.fsutil import atomic_write
    from wbtool.hashing import hash_bytes

    rel = media_path(kind, key, target.step, hash_bytes(data), ext)
    path = os.path.join(target.folder, *rel.split("/"))
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, data, fsync=False)
    return rel


def is_run_target(target: Any) -> bool:
    """Whether media are logged to a run (or to nothing), not added to an artifact."""
    return target is None or isinstance(target, LogTarget)
