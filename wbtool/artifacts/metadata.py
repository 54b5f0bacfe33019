"""An artifact version's metadata: a JSON object that every reader can read back.

Checked wherever it comes in (the Artifact API, ``--metadata``, a remote's
version records), so that what is stored always prints as standard JSON:
no NaN or Infinity, no text that is not UTF-8 (a lone surrogate), and no
nesting deeper than a reader's stack allows.
"""

from __future__ import annotations

import json
import math
from typing import Any

from wbtool.errors import UsageError

MAX_KEYS = 100  # the reference's limit
MAX_DEPTH = 100


def check_metadata(value: Any, what: str = "metadata") -> dict[str, Any]:
    """A shallow copy of ``value``, or UsageError saying what is wrong with it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a dict")
    if len(value) > MAX_KEYS:
        raise UsageError(f"{what} may have at most {MAX_KEYS} keys")
    stack: list[tuple[Any, int]] = [(value, 1)]  # no recursion: any depth is checked
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"{what} holds {item!r}: only finite numbers are allowed")
        if isinstance(item, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                raise UsageError(f"{what} is nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                # JSON keys are text: another key would come back as text, and
                # one beside a text key spelled the same would be lost.
                for key in item:
                    if not isinstance(key, str):
                        raise UsageError(f"{what} keys must be strings, not "
                                         f"{type(key).__name__}: {key!r}")
            items = item.values() if isinstance(item, dict) else item
            stack.extend((x, depth + 1) for x in items)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{what} must be JSON-serialisable: {e}") from None
    try:
        text.encode("utf-8")  # a lone surrogate ("\\ud800") is no text a JSON file can hold
    except UnicodeEncodeError as e:
        near = text[max(0, e.start - 20):e.end + 20]
        raise UsageError(f"{what} holds text that is not valid UTF-8 (near {near!r})") from None
    return dict(value)


def check_description(value: str | None, what: str = "description") -> str | None:
    """``value``, or UsageError where it is no text a JSON file can hold."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        near = value[max(0, e.start - 20):e.end + 20]
        raise UsageError(f"{what} holds text that is not valid UTF-8 (near {near!r})") from None
    return value


def parse_metadata(text: str, what: str = "--metadata") -> dict[str, Any]:
    """Metadata given as JSON text (a command-line option), checked."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise UsageError(f"{what} is not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise UsageError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object")
    return check_metadata(value, what)
