"""Many remote requests at once, in a thread pool; the first error stops the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WINDOW = 2  # tasks queued per worker: memory stays flat in the number of items


def run_all(fn: Callable[[T], R], items: Iterable[T], jobs: int) -> list[R]:
    """``[fn(item) for item in items]``, ``jobs`` at a time, results in order.

    Items are taken from ``items`` as workers free up (at most ``WINDOW``
    per worker waiting), so a push of a million objects does not hold a
    million pending tasks. The first error stops taking new items; it is
    raised once the running ones have ended.
    """
    if jobs <= 1:
        return [fn(item) for item in items]
    results: list[Any] = []
    pending: dict[Future[R], int] = {}
    failure: list[BaseException] = []

    def settle() -> None:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            i = pending.pop(f)
            error = f.exception()
            if error is not None:
                failure.append(error)
            else:
                results[i] = f.result()

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wbtool-transfer") as pool:
        for item in items:
            while len(pending) >= WINDOW * jobs and not failure:
                settle()
            if failure:
                break
            results.append(None)
            pending[pool.submit(fn, item)] = len(results) - 1
        while pending and not failure:
            settle()
        for f in pending:
            f.cancel()
    if failure:
        raise failure[0]
    return results
