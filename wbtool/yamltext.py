"""YAML written by hand (config files), read with errors told in one line."""

from __future__ import annotations

from typing import Any


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
