"""``wbtool.termlog``, ``termwarn`` and ``termerror``: a program's (or a
framework integration's) messages, printed to stderr the way wbtool prints
its own, each line starting with ``wbtool: ``.

They follow the settings of the current run (without one, the settings that
``init`` would use): ``silent`` hides all three; ``show_info`` and ``quiet``
govern ``termlog``, ``show_warnings`` ``termwarn``, ``show_errors``
``termerror``. With ``repeat=False`` a message that was already printed in
this process (by any of the three) is not printed again.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

from wbtool.flags import flag

PREFIX = "wbtool"


class _Printed:
    def __init__(self) -> None:
        self.messages: set[str] = set()
        self.lock = threading.Lock()

    def first_time(self, message: str) -> bool:
        with self.lock:
            if message in self.messages:
                return False
            self.messages.add(message)
            return True


_PRINTED = _Printed()


def _settings() -> Any:
    from wbtool.runs import current

    run = current.current()
    if run is not None:
        return run.settings
    from wbtool.errors import WbtoolError
    from wbtool.settings import Settings, load

    try:
        return load(current.defaults())
    except (WbtoolError, OSError):  # a message is printed even beside a broken settings file
        return Settings()


def shown(s: Any, level: str) -> bool:
    """Whether the settings ``s`` let a message of ``level`` ("info",
    "WARNING", "ERROR") be printed."""
    if s.silent:
        return False
    if level == "info":
        return bool(s.show_info and not s.quiet)
    if level == "WARNING":
        return bool(s.show_warnings)
    return bool(s.show_errors)


def _emit(string: Any, level: str, newline: bool, repeat: bool, prefix: bool) -> None:
    newline, repeat = flag(newline, "newline"), flag(repeat, "repeat")
    prefix = flag(prefix, "prefix")
    text = str(string)
    if level != "info":
        text = "\n".join(f"{level} {line}" for line in text.split("\n"))
    if not repeat and not _PRINTED.first_time(text):
        return
    if not shown(_settings(), level):
        return
    if prefix:
        text = "\n".join(f"{PREFIX}: {line}" for line in text.split("\n"))
    stream = sys.stderr
    if stream is None:  # pythonw: no console to print on
        return
    with contextlib.suppress(OSError, ValueError):  # a closed or broken stderr
        stream.write(text + ("\n" if newline else ""))
        stream.flush()


def termlog(string: str = "", newline: bool = True, repeat: bool = True,
            prefix: bool = True) -> None:
    """Print an informational message to stderr."""
    _emit(string, "info", newline, repeat, prefix)


def termwarn(string: str, newline: bool = True, repeat: bool = True,
             prefix: bool = True) -> None:
    """Print a warning (``wbtool: WARNING ...``) to stderr."""
    _emit(string, "WARNING", newline, repeat, prefix)


def termerror(string: str, newline: bool = True, repeat: bool = True,
              prefix: bool = True) -> None:
    """Print an error (``wbtool: ERROR ...``) to stderr."""
    _emit(string, "ERROR", newline, repeat, prefix)
