"""Many remote requests at once, in threads; the first error stops the rest.

The workers are daemon threads, and an interruption (Ctrl-C) of the thread
that waits for them returns within :data:`INTERRUPT_GRACE_SECONDS`: a worker
blocked on a server that has stopped answering can neither delay the
interruption nor keep the process from exiting. What a worker had under
way is a request that either reaches the server whole or not at all, and
nothing is published until every request a record depends on has returned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sized
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

INTERRUPT_GRACE_SECONDS = 2.0
WINDOW = 1  # items a worker takes before it has finished one: memory stays flat


def run_all(fn: Callable[[T], R], items: Iterable[T], jobs: int) -> list[R]:
    """``[fn(item) for item in items]``, ``jobs`` at a time, results in order.

    Items are taken from ``items`` as workers free up, so a push of a
    million objects does not hold a million pending tasks. The first error
    stops taking new items; it is raised once the running ones have ended.
    """
    if isinstance(items, Sized):
        jobs = min(jobs, len(items))
    if jobs <= 1:
        return [fn(item) for item in items]
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

    workers = [threading.Thread(target=work, name=f"wbtool-transfer-{n}", daemon=True)
               for n in range(jobs)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join()
    except BaseException:  # interrupted: the workers stop after what they are doing
        stop.set()
        # A request under way to a server that answers ends in this time
        # (its temp file gone, a large upload's parts taken back); one to a
        # server that stopped answering is left to die with the process.
        deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        raise
    if failure:
        raise failure[0]
    return [results[i] for i in range(len(results))]
