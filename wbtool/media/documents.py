"""Media objects read back from the JSON documents an artifact holds."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

# Media kept as one file beside the document, by the document's "_type":
# (module, class), the class taking the file's bytes and the document.
FILE_DOCUMENTS = {
    "image-file": ("wbtool.media.image", "Image"),
    "audio-file": ("wbtool.media.audio", "Audio"),
    "video-file": ("wbtool.media.video", "Video"),
    "html-file": ("wbtool.media.html", "Html"),
    "object3D-file": ("wbtool.media.object3d", "Object3D"),
}
# The "_type" of every document that from_document turns back into a media object.
MEDIA_DOCUMENTS = frozenset(("table", "histogram", *FILE_DOCUMENTS))


def from_document(doc: Mapping[str, Any], read: Callable[[str], bytes]) -> Any:
    """The ``Table``, ``Histogram``, ``Image``, ``Audio``, ``Video``, ``Html``
    or ``Object3D`` of a document, by its ``_type``; ``read(path)``: the bytes
    of a file it names."""
    kind = doc.get("_type")
    if kind == "table":
        from wbtool.media.table import from_document as table

        return table(doc, read)
    if isinstance(kind, str) and kind in FILE_DOCUMENTS:
        module, name = FILE_DOCUMENTS[kind]
        path = doc.get("path")
        if not isinstance(path, str):
            raise ValueError(f"the {kind} document names no file")
        cls = getattr(importlib.import_module(module), name)
        return cls._from_file_bytes(read(path), dict(doc))
    if kind == "histogram":
        from wbtool.media.histogram import Histogram

        return Histogram(np_histogram=(doc.get("values") or [], doc.get("bins") or [0.0]))
    raise ValueError(f"not a media document: _type {kind!r}")
