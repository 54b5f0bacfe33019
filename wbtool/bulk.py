"""Bulk work over millions of small objects.

Walking, hashing and recording a million files makes millions of
long-lived tuples, strings and manifest entries, none of them in a
reference cycle. Python's cycle collector, which runs every few hundred
allocations and now and then walks every tracked object, would only scan
them again and again: pausing it while such work runs took a re-log of a
million files with one change from about 9 s to 7.7 s. Reference counting
still frees everything as usual. Only plain functions may be wrapped: a
generator would run its body after the pause had ended.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector for the block (nested blocks are fine: only
    the outermost turns it back on, and only if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def gc_paused(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with the cycle collector paused (see :func:`paused_gc`)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return fn(*args, **kwargs)

    return wrapper
