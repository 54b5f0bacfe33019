"""A share of the work in a forked helper: answers, errors and interruption."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path, PurePosixPath

import pytest

from wbtool import forked

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _echo(value: object) -> object:
    return value


def _fail(path: str) -> None:
    os.stat(path)


def _nap(seconds: float) -> None:
    time.sleep(seconds)


def _run(fn: object, *args: object) -> object:
    job = forked.ForkedJob(fn, *args)  # type: ignore[arg-type]
    try:
        return job.result()
    finally:
        job.stop()


def test_plain_answers_come_back_whole() -> None:
    answer = [("written", 3, "a/b"), ("later", 0, "é")] * 1000
    assert _run(_echo, (answer, {"k": {1, 2}}, b"\0" * 70_000)) == (
        answer, {"k": {1, 2}}, b"\0" * 70_000)


def test_answers_marshal_cannot_write_come_back_by_pickle() -> None:
    assert _run(_echo, [PurePosixPath("a/b")]) == [PurePosixPath("a/b")]


def test_an_error_in_the_helper_is_raised_again(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _run(_fail, str(tmp_path / "missing"))


def test_stop_interrupts_a_helper_still_working() -> None:
    job = forked.ForkedJob(_nap, 60)
    pid = job._pid
    assert pid is not None
    started = time.monotonic()
    job.stop()
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: not left behind as a zombie


def test_stop_interrupts_a_helper_when_interrupts_are_ignored() -> None:
    """A shell starts a background job (``wbtool ... &`` in a script) with
    SIGINT ignored, and a forked helper inherits that: stopping it must not
    rely on SIGINT, nor make it heed the terminal's Ctrl-C its parent ignores."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = forked.ForkedJob(_nap, 60)
        started = time.monotonic()
        job.stop()
        assert time.monotonic() - started < 10
        # SIGINT stays ignored in a helper whose parent ignores it
        job = forked.ForkedJob(_interrupt_self, 0)
        try:
            assert job.result() == "still here"
        finally:
            job.stop()
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_self(_: int) -> str:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    return "still here"


def test_a_thread_pool_waits_for_its_workers_through_a_second_interrupt() -> None:
    """Ctrl-C twice: the ``with`` block still ends only once the running
    worker has finished (and cleaned up); work not yet started is dropped."""
    import signal
    import threading
    import time

    finished: list[str] = []

    def work(name: str) -> None:
        time.sleep(0.4)
        finished.append(name)

    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt), forked.thread_pool(1, "test-pool") as pool:
        pool.submit(work, "running")
        pool.submit(work, "queued")
        time.sleep(0.05)  # the first is under way
        timer.start()
        raise KeyboardInterrupt  # the first Ctrl-C; the timer sends the second
    timer.join()
    assert finished == ["running"]
    assert not [t for t in threading.enumerate() if t.name.startswith("test-pool")]


def test_an_interrupt_while_a_worker_starts_leaves_no_worker_running() -> None:
    """Ctrl-C can land in ``Thread.start`` while a pool starts a worker: that
    worker then ran on, unknown to the pool, past the end of the ``with``
    block (and a process that exits then kills it in the middle of a write)."""
    import random
    import threading

    running: set[int] = set()
    lock = threading.Lock()

    def work(k: int) -> None:
        with lock:
            running.add(k)
        time.sleep(0.002)
        with lock:
            running.discard(k)

    for trial in range(150):
        timer = threading.Timer(random.uniform(0, 0.003), os.kill,
                                (os.getpid(), signal.SIGINT))
        try:
            timer.start()
            with forked.thread_pool(4, f"t{trial}-") as pool:
                list(pool.map(work, range(8)))
                timer.join()  # the interrupt lands in the block, if not before
        except KeyboardInterrupt:
            timer.join()  # it has struck: nothing is left to land later
        with lock:
            assert not running, f"trial {trial}: work still running after the pool ended"


def test_an_interrupt_while_handlers_are_put_back_leaves_none_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C striking right after the first handler is put back stops the
    putting back: the stop request must not stay held for good."""
    import threading

    stops: list[int] = []
    before = signal.signal(signal.SIGUSR1, lambda signum, frame: stops.append(signum))
    real_signal = signal.signal

    def ctrl_c_once_sigint_is_back(signum: int, handler: object) -> object:
        old = real_signal(signum, handler)  # type: ignore[arg-type]
        if signum == signal.SIGINT and handler is signal.default_int_handler:
            monkeypatch.setattr(signal, "signal", real_signal)
            raise KeyboardInterrupt  # as if Ctrl-C landed at this moment
        return old

    try:
        with pytest.raises(KeyboardInterrupt), forked.thread_pool(2, "test-held") as pool:
            pool.submit(time.sleep, 0.01)
            monkeypatch.setattr(signal, "signal", ctrl_c_once_sigint_is_back)
            pool.submit(time.sleep, 0.01)  # the second worker starts with signals held
        assert threading.current_thread() is threading.main_thread()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)  # Python runs the handler at its next check
        assert stops == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, before)
