"""Text shown on a terminal as it is: names, URLs and messages taken from the
command line, a config file, a remote or a program never drive the terminal.

Used by the command line and by a run's own messages on stderr alike.
"""

from __future__ import annotations

from functools import lru_cache

# Characters a terminal acts on instead of showing: C0 and C1 controls and
# DEL (escape sequences, carriage return, bell, newline), the line and
# paragraph separators, and the bidirectional overrides and isolates that
# reorder what follows them. Each is shown as its Python escape.
_UNSHOWN = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
            *range(0x2066, 0x206A)]
_ESCAPES = {c: chr(c).encode("unicode_escape").decode("ascii") for c in _UNSHOWN}


@lru_cache(maxsize=8)
def _escapes(keep: str) -> dict[int, str]:
    """:data:`_ESCAPES` less the characters of ``keep``."""
    return {c: e for c, e in _ESCAPES.items() if chr(c) not in keep}


def printable(text: str, keep: str = "") -> str:
    """``text`` with every character in :data:`_UNSHOWN` but those of
    ``keep`` written as its escape (``\\x1b``), so that a name or URL is
    shown as it is instead of driving the terminal. Text that is already
    escaped, and other unicode, is left as it is."""
    if text.isprintable():
        return text
    return text.translate(_escapes(keep) if keep else _ESCAPES)


def printable_lines(text: str) -> str:
    """``text`` as :func:`printable` shows it, its tabs and newlines kept: a
    message meant to span lines (an alert's text), where a one-line field
    (a name, an alert's title) goes through :func:`printable`."""
    return printable(text, keep="\t\n")
