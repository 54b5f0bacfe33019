"""``run_all``: results in order, the first error raised, items taken lazily."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from wbtool.remote.pool import (
    CLEANUP_SECONDS,
    INTERRUPT_GRACE_SECONDS,
    NESTED_GRACE_SECONDS,
    WINDOW,
    Stopped,
    run_all,
)


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


_INTERRUPTED_UPLOADS = """
import os, sys, threading, time
from wbtool.remote.pool import run_all

def say(line: str) -> None:  # one write: lines from two threads never run together
    os.write(1, (line + "\\n").encode())

undo_seconds = float(sys.argv[1])
hang = threading.Event()
parts = threading.Semaphore(0)

def part(_: int) -> None:
    parts.release()
    hang.wait(120)

def undo() -> None:
    time.sleep(undo_seconds)
    say("taken back")

def upload(_: int) -> None:
    run_all(part, range(2), 2, undo=undo)

def started() -> None:
    for _ in range(4):
        parts.acquire()
    time.sleep(0.2)  # the main thread is waiting on its workers by now
    say("hanging")

threading.Thread(target=started, daemon=True).start()
try:
    run_all(upload, range(2), 2)
except KeyboardInterrupt:
    say("interrupted")
"""


def _interrupt_uploads(undo_seconds: float) -> tuple[list[str], float]:
    """Run two uploads whose parts hang, Ctrl-C them once all four parts
    hang, and give back what the program printed and how long it took to end."""
    child = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_UPLOADS, str(undo_seconds)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "hanging\n"
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=60)
        return out.splitlines(), time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


@pytest.mark.slow
def test_ctrl_c_waits_for_a_slow_abort_past_its_grace() -> None:
    """An abort that a busy server answers after the interrupt's grace has
    run out still finishes before the process ends: otherwise the upload's
    parts stay on the server, billed."""
    slow = INTERRUPT_GRACE_SECONDS  # the parts' own grace comes first
    lines, took = _interrupt_uploads(slow)
    assert lines == ["taken back", "taken back", "interrupted"]
    assert took > NESTED_GRACE_SECONDS + slow  # it did wait


@pytest.mark.slow
def test_ctrl_c_waits_for_a_hung_abort_a_bounded_time() -> None:
    lines, took = _interrupt_uploads(120)
    assert lines == ["interrupted"]
    assert took > INTERRUPT_GRACE_SECONDS + CLEANUP_SECONDS - 0.5
    assert took < INTERRUPT_GRACE_SECONDS + CLEANUP_SECONDS + 3
