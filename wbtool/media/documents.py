"""Media objects read back from the JSON documents an artifact holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def from_document(doc: Mapping[str, Any], read: Callable[[str], bytes]) -> Any:
    """The ``Table``, ``Image`` or ``Histogram`` of a document, by its
    ``_type``; ``read(path)``: the bytes of a file it names."""
    kind = doc.get("_type")
    if kind == "table":
        from wbtool.media.table import from_document as table

        return table(doc, read)
    if kind == "image-file":
        from wbtool.media.image import Image

        path = doc.get("path")
        if not isinstance(path, str):
            raise ValueError("the image's document names no file")
        return Image._from_file_bytes(read(path), dict(doc))
    if kind == "histogram":
        from wbtool.media.histogram import Histogram

        return Histogram(np_histogram=(doc.get("values") or [], doc.get("bins") or [0.0]))
    raise ValueError(f"not a media document: _type {kind!r}")
