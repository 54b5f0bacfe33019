"""Many remote requests at once, in a thread pool; the first error stops the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_all(fn: Callable[[T], R], items: Iterable[T], jobs: int) -> list[R]:
    """``[fn(item) for item in items]``, ``jobs`` at a time, results in order."""
    todo = list(items)
    if not todo:
        return []
    if jobs <= 1 or len(todo) == 1:
        return [fn(item) for item in todo]
    with ThreadPoolExecutor(max_workers=min(jobs, len(todo)),
                            thread_name_prefix="wbtool-transfer") as pool:
        futures: list[Future[R]] = [pool.submit(fn, item) for item in todo]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f in done and f.exception() is not None:
                for g in pending:
                    g.cancel()
                raise f.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
