"""What ``wbtool.Image``, ``Audio``, ``Video``, ``Html`` and ``Object3D``
share: each is one file's bytes, logged to a run as
``media/<folder>/<key>_<step>_<hash>.<ext>`` or added to an artifact as
``media/<folder>/<hash>.<ext>``, with a JSON document that names it.

A subclass says its document's ``_type``, its folder and the ``_type`` of a
list of it, and adds its own fields (a sample rate, a size) to the document.
"""

from __future__ import annotations

import io
import os
from typing import Any, ClassVar

from wbtool.hashing import hash_bytes
from wbtool.media.base import Media, is_run_target, write_run_file


class FileMedia(Media):
    """One media file's bytes, its format (the file extension) and a caption."""

    _folder: ClassVar[str]  # under media/: "images", "audio", "videos", "html", "object3D"
    _sequence_type: ClassVar[str]  # the _type of a list of them in a row
    _bytes: bytes
    format: str
    _caption: Any = None

    def _fields(self) -> dict[str, Any]:
        """This type's own fields of the document (none by default)."""
        return {}

    def _extension(self) -> str:
        """The extension of the file's name (its format by default)."""
        return self.format

    def _restore(self, meta: dict[str, Any]) -> None:
        """Take this type's own fields back from a document."""

    @classmethod
    def _from_file_bytes(cls, data: bytes, meta: dict[str, Any]) -> Any:
        """One read back from an artifact: its bytes and its JSON document."""
        obj = cls.__new__(cls)
        obj._bytes = data
        fmt = meta.get("format")
        if not isinstance(fmt, str):
            raise ValueError(f"the {meta.get('_type')} document names no format")
        obj.format = fmt
        obj._caption = meta.get("caption")
        obj._restore(meta)
        return obj

    @property
    def caption(self) -> Any:
        return self._caption

    @property
    def digest(self) -> str:
        return hash_bytes(self._bytes)

    def to_bytes(self) -> bytes:
        """The file's bytes."""
        return self._bytes

    def _meta(self, digest: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"_type": self._log_type, "digest": digest,
                               "size": len(self._bytes), "format": self.format}
        doc.update(self._fields())
        if self._caption is not None:
            doc["caption"] = plain_caption(self._caption, type(self).__name__)
        return doc

    def _to_row(self, target: Any, key: str) -> dict[str, Any]:
        if not is_run_target(target):
            return self.to_json(target)
        doc = self._meta(hash_bytes(self._bytes))
        rel = write_run_file(target, self._folder, key, self._bytes, self._extension())
        if rel is not None:
            doc["path"] = rel
        return doc

    def to_json(self, run_or_artifact: Any = None) -> dict[str, Any]:
        """The JSON document; given an artifact, the file is added to it and
        the document names it by its path in the artifact."""
        digest = hash_bytes(self._bytes)
        doc = self._meta(digest)
        if run_or_artifact is not None and hasattr(run_or_artifact, "new_file"):
            rel = f"media/{self._folder}/{digest[:20]}.{self._extension()}"
            with run_or_artifact.new_file(rel, mode="wb") as f:
                f.write(self._bytes)
            doc["path"] = rel
        return doc

    @classmethod
    def _sequence_fields(cls, items: list[Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        """Fields a list of this type adds to its row value (none by default)."""
        return {}

    @classmethod
    def _log_sequence(cls, items: Any, target: Any, key: str) -> Any:
        """A list logged under one key: each file written, one dict in the row."""
        from wbtool.runs.values import _kept, _normalise

        if not all(isinstance(i, cls) for i in items):
            return [_kept(_normalise(v, key, 1, target)) for v in items]
        if not is_run_target(target):
            return [i.to_json(target) for i in items]
        docs = [i._to_row(target, key) for i in items]
        row: dict[str, Any] = {"_type": cls._sequence_type, "count": len(docs)}
        row.update(cls._sequence_fields(list(items), docs))
        if all("path" in d for d in docs):
            row["filenames"] = [d["path"] for d in docs]
        if any(i._caption is not None for i in items):
            row["captions"] = [d.get("caption") for d in docs]
        return row

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, FileMedia)
        return (self._bytes == other._bytes and self.format == other.format
                and self._caption == other._caption and self._fields() == other._fields())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {len(self._bytes)} bytes>"


def number_field(meta: dict[str, Any], name: str, *types: type) -> Any:
    """The field ``name`` of a document read back where it is a number of
    ``types`` (int or float unless given; never a bool), else None: a
    document edited by hand gives no text or list where a number belongs."""
    value = meta.get(name)
    return value if type(value) in (types or (int, float)) else None


def plain_caption(value: Any, owner: str) -> Any:
    """A caption as plain JSON data."""
    from wbtool.runs.values import normalise

    try:
        return normalise(value, "caption")
    except ValueError as e:
        raise ValueError(f"wbtool.{owner}: caption must be plain data (a string, numbers, "
                         f"lists, dicts): {e}") from None


def read_source(data: Any, owner: str, what: str) -> tuple[bytes, str | None] | None:
    """(bytes, file name or None) of a path or an open file (read from its
    start), None for anything else; FileNotFoundError for a path that names
    no file."""
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            with open(path, "rb") as f:
                return f.read(), path
        except FileNotFoundError:
            raise FileNotFoundError(f"wbtool.{owner}: no such {what} file: {path}") from None
        except IsADirectoryError:
            raise ValueError(f"wbtool.{owner}: {path} is a folder, not a file") from None
    read = getattr(data, "read", None)
    if callable(read):
        name = getattr(data, "name", None)
        name = os.fsdecode(name) if isinstance(name, (str, bytes)) else None
        if isinstance(data, io.TextIOBase) and name is not None and os.path.isfile(name):
            # a file opened as text (open("mesh.glb")): its bytes as they are on
            # disk, not decoded and with its line ends unchanged
            with open(name, "rb") as f:
                return f.read(), name
        seekable = getattr(data, "seekable", None)
        if callable(seekable) and seekable():
            data.seek(0)  # the whole file, as the W&B SDK reads it
        content = read()
        if isinstance(content, str):
            content = content.encode("utf-8")
        if not isinstance(content, (bytes, bytearray)):
            raise ValueError(f"wbtool.{owner}: reading the open file gave a "
                             f"{type(content).__name__}, not text or bytes")
        return bytes(content), name
    return None


def extension(name: str, known: tuple[str, ...]) -> str | None:
    """The one of ``known`` extensions (longest first: "pts.json") that ``name``
    ends with, lower case; None for none."""
    lower = name.lower()
    for ext in sorted(known, key=len, reverse=True):
        if lower.endswith("." + ext):
            return ext
    return None


def as_array(data: Any) -> Any:
    """A numpy array of a tensor or an array; None for anything else."""
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a PyTorch tensor
        data = data.detach().cpu().numpy()
    elif type(data).__module__.startswith(("tensorflow", "jax")) and hasattr(data, "numpy"):
        data = data.numpy()
    return data if hasattr(data, "dtype") and hasattr(data, "shape") else None
