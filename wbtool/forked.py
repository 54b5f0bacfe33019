"""Running a share of file-heavy work in a forked helper process.

Thousands of small files mean thousands of short system calls, which one
Python process issues from one core (threads only fight over the GIL). A
forked child inherits everything it needs (lists, sets, open pack files)
without pickling; only its result travels back, through a pipe.

Plain ``os.fork``: multiprocessing would cost more to import than the
helper saves on a folder of ten thousand files.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

_READ = 1 << 20
_MARSHAL, _PICKLE = b"M", b"P"
_STOP = signal.SIGUSR1  # what stop() sends a helper still working


def can_fork() -> bool:
    return (os.cpu_count() or 1) > 1 and hasattr(os, "fork")


class ForkedJob:
    """``fn(*args)`` in a forked child; :meth:`result` returns what it returned.

    An exception raised in the child is raised again by :meth:`result` (one
    that cannot be pickled becomes an ``OSError`` with its message). A result
    made of plain values travels by marshal, so a bytes-like value in it
    (an ``array``, say) arrives as ``bytes``. Always
    call :meth:`stop` (it interrupts a child still working, which then cleans
    up after itself as on Ctrl-C).
    """

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        read, write = os.pipe()
        # Ctrl-C and the stop request are held back across the fork, so that
        # neither can strike the child before the child is inside the code
        # that ends it.
        blocked = _block_interrupts()
        try:
            pid = os.fork()
        except BaseException:
            _restore(blocked)
            os.close(read)
            os.close(write)
            raise
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                # stop() asks with a signal of its own: SIGINT may be ignored
                # (a background job of a script), and then must stay so
                signal.signal(_STOP, _stop_requested)
                _restore(blocked)
                os.close(read)
                _child(write, fn, args)
                code = 0
            finally:
                os._exit(code)
        _restore(blocked)
        os.close(write)
        self._pid: int | None = pid
        self._read = read

    def result(self) -> Any:
        chunks = []
        while chunk := os.read(self._read, _READ):
            chunks.append(chunk)
        if not chunks:
            raise OSError("a helper process died")
        data = b"".join(chunks)
        del chunks  # a large answer is not held three times over while it is read
        try:
            if data[:1] == _MARSHAL:
                ok, payload = marshal.loads(memoryview(data)[1:])
            else:
                import pickle

                ok, payload = pickle.loads(memoryview(data)[1:])
        except Exception as e:
            raise OSError(f"a helper process failed and its answer cannot be read: {e}") from None
        if not ok:
            raise payload
        return payload

    def stop(self) -> None:
        if self._pid is not None:
            if not self._wait(0.05):
                os.kill(self._pid, _STOP)
                if not self._wait(30):
                    os.kill(self._pid, signal.SIGKILL)
                    self._wait(30)
            self._pid = None
        if self._read >= 0:
            os.close(self._read)
            self._read = -1

    def _wait(self, seconds: float) -> bool:
        """Reap the helper if it ends within ``seconds``; True if it did."""
        assert self._pid is not None
        deadline = time.monotonic() + seconds
        pause = 0.0001  # a helper that has answered is gone within a millisecond or so
        while True:
            try:
                if os.waitpid(self._pid, os.WNOHANG)[0] != 0:
                    return True
            except ChildProcessError:
                return True  # reaped already (SIGCHLD ignored, say)
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.005)


def _block_interrupts() -> set[int | signal.Signals] | None:
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, _STOP})


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C (and the stop request) held back until the block ends, then
    handled as they would have been. Python handles signals in the main
    thread only, so elsewhere nothing can interrupt the block anyway; and a
    signal mask would not do: the kernel hands a signal that the main thread
    blocks to another thread, and Python still raises it in the main one."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved: dict[int, Callable[[int, Any], Any]] = {}
    holding = True

    def hold(signum: int, frame: Any) -> None:
        # Once the block has ended this is the saved handler: a signal that
        # strikes while the handlers are put back (and stops that) finds
        # each one as it was, put back or not.
        if holding:
            caught.append(signum)
        else:
            saved[signum](signum, frame)

    for sig in (signal.SIGINT, _STOP):
        handler = signal.getsignal(sig)
        if callable(handler):  # an ignored or default disposition stays as it is
            saved[sig] = handler
            signal.signal(sig, hold)
    try:
        yield
    finally:
        holding = False
        for number, handler in saved.items():
            signal.signal(number, handler)
        for signum in dict.fromkeys(caught):
            saved[signum](signum, None)


def _stop_requested(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the helper cleans up as on Ctrl-C


def _restore(mask: set[int | signal.Signals] | None) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _child(fd: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        try:
            data = _dumps((True, fn(*args)))
        except BaseException as e:  # KeyboardInterrupt included: report, then exit
            try:
                data = _dumps((False, e))
            except Exception:
                data = _dumps((False, OSError(f"{type(e).__name__}: {e}")))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _dumps(answer: tuple[bool, Any]) -> bytes:
    """The answer as marshal writes it when it is made of plain values (lists,
    tuples, strings, numbers; a bytes-like value arrives as ``bytes``), else
    as pickle writes it: marshal is built in, pickle is an import and slower."""
    if answer[0]:
        try:
            return _MARSHAL + marshal.dumps(answer)
        except ValueError:
            pass
    import pickle

    return _PICKLE + pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)


def thread_pool(workers: int, name: str) -> Any:
    """A ``ThreadPoolExecutor`` (imported only when work needs one) whose
    ``with`` block never ends while a worker still runs: work not started is
    dropped, and an interrupt landing while the workers finish is held until
    they have (a worker killed mid-write by the exit would leave its temp
    file behind)."""
    from concurrent.futures import ThreadPoolExecutor

    class _Pool(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            # Submitting may start a worker: a Thread.start interrupted while
            # it waits for the new thread leaves that worker running unknown
            # to the pool, which then would not wait for it. (Once every
            # worker runs, no submit starts one, and none needs holding.)
            if len(getattr(self, "_threads", ())) >= workers:
                return super().submit(fn, *args, **kwargs)
            with _interrupts_held():
                return super().submit(fn, *args, **kwargs)

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            # Not Thread.join interrupted and retried: an interrupted join
            # marks a still running thread as finished. Held here, Ctrl-C
            # waits until the workers are done, then strikes.
            with _interrupts_held():
                self.shutdown(wait=True, cancel_futures=exc_type is not None)

    return _Pool(workers, thread_name_prefix=name)
