"""What every check of ``wbtool doctor`` yields, and how findings are worded."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"
SHOWN = 5  # names listed in a line; --json holds up to LISTED
LISTED = 1000

Progress = Callable[[int, int], None]
ProgressBar = Callable[[str, int], contextlib.AbstractContextManager[Progress]]


@contextlib.contextmanager
def no_bar(description: str, total: int) -> Iterator[Progress]:
    yield lambda files, nbytes: None


@dataclass
class Check:
    """One finding: ``status`` is ok, warn or fail; ``hint`` names the repair.
    ``fatal``: the store could not be opened, and the checks that need it
    were not run."""

    area: str
    name: str
    status: str
    detail: str
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    fatal: bool = False
    remote: bool = False  # a finding about a remote, not about the store

    def to_json(self) -> dict[str, Any]:
        return {"area": self.area, "name": self.name, "status": self.status,
                "detail": self.detail, "hint": self.hint, "data": self.data}


def names(labels: list[str], total: int | None = None) -> str:
    """The first few of ``labels``, and how many more there are."""
    total = len(labels) if total is None else total
    shown = ", ".join(labels[:SHOWN])
    return shown + (f" and {total - SHOWN} more" if total > SHOWN else "")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")
