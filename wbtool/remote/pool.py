"""Many remote requests at once, in threads; the first error stops the rest.

The workers are daemon threads, and an interruption (Ctrl-C) of the thread
that waits for them returns within :data:`INTERRUPT_GRACE_SECONDS` (plus
the clean-up below, when there is one): a worker blocked on a server that
has stopped answering can neither delay the interruption nor keep the
process from exiting. What a worker had under way is a request that
either reaches the server whole or not at all, and nothing is published
until every request a record depends on has returned.

Calls nest (each large upload sends its parts through a ``run_all`` of its
own, inside a worker of the push's): when the outer call stops, the inner
ones raise :class:`Stopped` promptly and run their ``undo`` (a multipart
upload's abort), which an interrupted outer call waits for past its grace,
up to :data:`CLEANUP_SECONDS`: an abort that a busy server answers late is
not cut off by the process exiting.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

INTERRUPT_GRACE_SECONDS = 2.0
#: How long a nested call waits for its requests under way once the outer
#: call stopped: a request the server answers in this time is then covered
#: by the clean-up that follows (an abort misses parts still arriving).
NESTED_GRACE_SECONDS = 1.0
#: How much longer than its grace an interrupted call waits for the ``undo``
#: its nested calls began: a server that answers slowly still has the
#: upload taken back, one that stopped answering delays the exit this long.
CLEANUP_SECONDS = 5.0
POLL_SECONDS = 0.05  # how often a nested call looks whether the outer one stopped
WINDOW = 1  # items a worker takes before it has finished one: memory stays flat

# The stop events of the calls whose workers this code runs in.
_outer: contextvars.ContextVar[tuple[threading.Event, ...]] = contextvars.ContextVar(
    "wbtool_pool_outer", default=())
# How many stopped calls are waiting out their grace or running their undo.
_cleanups = 0
_cleaned = threading.Condition()


class Stopped(BaseException):
    """An enclosing ``run_all`` stopped (interrupted, or another item failed):
    the work under way in this one is abandoned. A BaseException, like the
    interrupt it usually stands for, so that no error handler takes it for a
    failure of its own."""


def run_all(fn: Callable[[T], R], items: Iterable[T], jobs: int, *,
            undo: Callable[[], object] | None = None) -> list[R]:
    """``[fn(item) for item in items]``, ``jobs`` at a time, results in order.

    Items are taken from ``items`` as workers free up, so a push of a
    million objects does not hold a million pending tasks. The first error
    stops taking new items; it is raised once the running ones have ended.
    When the call does not end whole (an item failed, it was stopped or
    interrupted), ``undo`` runs before the error is raised, to take back
    what the items left on the server; an error of its own is dropped.
    """
    if isinstance(items, Sized):
        jobs = min(jobs, len(items))
    outer = _outer.get()
    if jobs <= 1:
        try:
            return [_checked(fn, item, outer) for item in items]
        except BaseException:
            with _cleaning_up(undo):
                _undo(undo)
            raise
    source = enumerate(items)
    take = threading.Lock()
    results: dict[int, Any] = {}
    failure: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            with take:
                try:
                    i, item = next(source)
                except StopIteration:
                    return
                except BaseException as e:  # the items themselves failed
                    failure.append(e)
                    stop.set()
                    return
            try:
                results[i] = fn(item)
            except BaseException as e:
                failure.append(e)
                stop.set()
                return

    inside = (*outer, stop)

    def start(n: int) -> threading.Thread:
        context = contextvars.copy_context()
        context.run(_outer.set, inside)
        worker = threading.Thread(target=context.run, args=(work,),
                                  name=f"wbtool-transfer-{n}", daemon=True)
        worker.start()
        return worker

    workers = [start(n) for n in range(jobs)]
    try:
        for w in workers:
            _join(w, outer)
    except BaseException:  # interrupted: the workers stop after what they are doing
        stop.set()
        with _cleaning_up(undo):
            # A request under way to a server that answers ends in this time
            # (its temp file gone); one to a server that stopped answering
            # is left to die with the process.
            grace = NESTED_GRACE_SECONDS if outer else INTERRUPT_GRACE_SECONDS
            deadline = time.monotonic() + grace
            for w in workers:
                w.join(max(0.0, deadline - time.monotonic()))
            _undo(undo)
        if not outer:
            _wait_for_cleanups(deadline + CLEANUP_SECONDS)
        raise
    if failure:
        _undo(undo)
        raise failure[0]
    return [results[i] for i in range(len(results))]


def _undo(undo: Callable[[], object] | None) -> None:
    if undo is not None:
        with contextlib.suppress(Exception):
            undo()


@contextlib.contextmanager
def _cleaning_up(undo: Callable[[], object] | None) -> Iterator[None]:
    """Count a stopped call with an ``undo`` among those the outermost,
    interrupted call waits for before it lets the process go."""
    global _cleanups
    if undo is None:
        yield
        return
    with _cleaned:
        _cleanups += 1
    try:
        yield
    finally:
        with _cleaned:
            _cleanups -= 1
            _cleaned.notify_all()


def _wait_for_cleanups(until: float) -> None:
    with _cleaned:
        while _cleanups and (left := until - time.monotonic()) > 0:
            _cleaned.wait(left)


def _join(worker: threading.Thread, outer: tuple[threading.Event, ...]) -> None:
    """Wait for ``worker``; raise :class:`Stopped` if an enclosing call stops first."""
    if not outer:  # the outermost call: an interrupt reaches this thread itself
        worker.join()
        return
    while worker.is_alive():
        worker.join(POLL_SECONDS)
        if any(event.is_set() for event in outer):
            raise Stopped


def _checked(fn: Callable[[T], R], item: T, outer: tuple[threading.Event, ...]) -> R:
    if any(event.is_set() for event in outer):
        raise Stopped
    return fn(item)
