"""``run_all``: results in order, the first error raised, items taken lazily."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from wbtool.remote.pool import WINDOW, run_all


def test_results_in_order() -> None:
    assert run_all(lambda i: i * i, range(100), 4) == [i * i for i in range(100)]
    assert run_all(lambda i: i, [], 4) == []
    assert run_all(lambda i: i + 1, [1, 2], 1) == [2, 3]


def test_items_are_taken_as_workers_free_up() -> None:
    jobs = 3
    taken = 0
    finished = 0
    lock = threading.Lock()
    ahead: list[int] = []

    def items() -> Iterator[int]:
        nonlocal taken
        for i in range(200):
            with lock:
                ahead.append(taken - finished)
            taken += 1
            yield i

    def work(i: int) -> int:
        nonlocal finished
        time.sleep(0.001)
        with lock:
            finished += 1
        return i

    assert run_all(work, items(), jobs) == list(range(200))
    assert max(ahead) <= WINDOW * jobs  # never a task per item queued up front


def test_first_error_stops_taking_items() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(10_000):
            taken.append(i)
            yield i

    def work(i: int) -> int:
        if i == 5:
            raise ValueError("broken object")
        return i

    with pytest.raises(ValueError, match="broken object"):
        run_all(work, items(), 4)
    assert len(taken) < 100
