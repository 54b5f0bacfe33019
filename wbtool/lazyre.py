"""Regular expressions compiled on first use.

Compiling a pattern costs about half a millisecond here; modules on the path
of ``wbtool.init`` use these so that a run which never needs a pattern never
pays for it.
"""

from __future__ import annotations

import re
from typing import Any, cast


class _Lazy:
    def __init__(self, pattern: str, flags: int) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:
        compiled = re.compile(*self.__dict__["_source"])
        # Later look-ups find the bound method in the instance: no indirection.
        for attr in ("findall", "finditer", "fullmatch", "match", "search", "split", "sub",
                     "subn", "pattern", "flags"):
            self.__dict__[attr] = getattr(compiled, attr)
        return getattr(compiled, name)


def lazy_compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return cast("re.Pattern[str]", _Lazy(pattern, flags))

