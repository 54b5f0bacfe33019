"""YAML written by hand (config files), read with errors told in one line."""

from __future__ import annotations

import datetime
import os
from typing import Any

_PLAIN = (str, int, float, type(None))  # bool is an int
_KINDS = ((datetime.datetime, "a timestamp"), (datetime.date, "a date"),
          (bytes, "binary data"), (set, "a set"))


def load_file(path: str | os.PathLike[str]) -> Any:
    """A YAML file written by hand (settings, a run's config) as plain data:
    mappings, lists, strings, numbers, booleans and nulls.

    Raises OSError when the file cannot be read, and ValueError whose one-line
    message completes "the file is …" when it is not UTF-8 text, not valid
    YAML, or holds what wbtool cannot store as JSON (a date, binary data, a
    set, an alias inside its own anchor)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(f"not UTF-8 text: byte 0x{data[e.start]:02x} "
                         f"(line {line}, column {column})") from None
    try:
        doc = safe_load(text)
    except ValueError as e:
        raise ValueError(f"not valid YAML: {e}") from None
    _check_plain(doc, "", set(), set())
    return doc


def _check_plain(value: Any, where: str, open_: set[int], done: set[int]) -> None:
    """Raise ValueError naming the first value (by its key path) that is not
    plain data. ``open_`` holds the containers being walked (a cycle), ``done``
    those already checked (an alias used many times is walked once)."""
    if isinstance(value, _PLAIN) or id(value) in done:
        return
    if isinstance(value, (dict, list)):
        if id(value) in open_:
            raise ValueError(f"not plain data: {where or 'the document'!r} contains itself "
                             "(an alias inside its own anchor)")
        open_.add(id(value))
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            if not isinstance(key, _PLAIN):
                _check_plain(key, f"{where}/{key}" if where else str(key), open_, done)
            _check_plain(item, f"{where}/{key}" if where else str(key), open_, done)
        open_.discard(id(value))
        done.add(id(value))
        return
    kind = next((k for t, k in _KINDS if isinstance(value, t)), type(value).__name__)
    hint = ""
    if isinstance(value, datetime.date):
        kind += f" ({value.isoformat()})"
        hint = "; quote it to keep it as text"
    raise ValueError(f"not plain data: {where or 'the document'!r} is {kind}, "
                     f"which wbtool cannot store{hint}")


def safe_load(text: str) -> Any:
    """``yaml.safe_load``, raising ValueError with a one-line message (what
    is wrong and where) instead of PyYAML's several lines with a caret."""
    import yaml  # tens of milliseconds: only for files that are not JSON

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        message = f"{e.context}: {e.problem}" if e.context else str(e.problem or e.context)
        if mark is None:
            raise ValueError(message) from None
        raise ValueError(f"{message} (line {mark.line + 1}, column {mark.column + 1})") from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        raise ValueError(f"unacceptable character #x{code:04x}: {e.reason} "
                         f"(line {line}, column {column})") from None
    except yaml.YAMLError as e:
        raise ValueError(" ".join(str(e).split())) from None
    except RecursionError:  # thousands of nested brackets
        raise ValueError("nested too deeply") from None
