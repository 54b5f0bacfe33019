"""``run_all``: results in order, the first error raised, items taken lazily."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from wbtool.remote.pool import NESTED_GRACE_SECONDS, WINDOW, Stopped, run_all


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


def test_a_nested_call_stops_with_the_outer_one() -> None:
    """A large upload sends its parts through a call of its own inside a
    worker of the push's: when the push fails, the upload hears of it at
    once (to take its parts back) instead of waiting for parts that hang."""
    hang = threading.Event()
    cleaned: list[type[BaseException]] = []

    def upload_parts(_: int) -> None:
        try:
            run_all(lambda _part: hang.wait(30), range(4), 2)
        except BaseException as e:
            cleaned.append(type(e))
            raise

    def item(i: int) -> None:
        if i == 0:
            time.sleep(0.2)
            raise ValueError("another object failed")
        upload_parts(i)

    started = time.monotonic()
    with pytest.raises(ValueError, match="another object failed"):
        run_all(item, range(2), 2)
    assert time.monotonic() - started < NESTED_GRACE_SECONDS + 1
    assert cleaned == [Stopped]
    hang.set()
