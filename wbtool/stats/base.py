"""What every collector is: a name, ``sample()`` returning readings keyed as
the System Metrics Reference names them, an optional static ``inventory()``
for ``metadata.json``, and ``close()``.

Collectors are built by ``probe`` functions that return None when their
hardware or tool is absent; a probe never raises for absence.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

Reading = dict[str, float | int]


class Collector(Protocol):
    name: str

    def sample(self) -> Reading: ...

    def inventory(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Target:
    """The process whose use is measured, and whether its descendants count.

    ``pids()`` is the set to sum over right now: the root alone, or the root
    and every live descendant when the tree is tracked.
    """

    def __init__(self, pid: int | None = None, *, tree: bool = False) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.tree = tree

    def pids(self) -> list[int]:
        if not self.tree:
            return [self.pid]
        try:
            import psutil

            root = psutil.Process(self.pid)
            return [self.pid, *(p.pid for p in root.children(recursive=True))]
        except Exception:
            return [self.pid]


# name → probe(settings, target) → Collector | None
Probe = Callable[[Mapping[str, Any], Target], "Collector | None"]
