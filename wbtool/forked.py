"""Running a share of file-heavy work in a forked helper process.

Thousands of small files mean thousands of short system calls, which one
Python process issues from one core (threads only fight over the GIL). A
forked child inherits everything it needs (lists, sets, open pack files)
without pickling; only its result travels back, through a pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any


def can_fork() -> bool:
    return (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods()


class ForkedJob:
    """``fn(*args)`` in a forked child; :meth:`result` returns what it returned.

    An exception raised in the child is raised again by :meth:`result` (one
    that cannot be pickled becomes an ``OSError`` with its message). Always
    call :meth:`stop` (it interrupts a child still working, which then cleans
    up after itself as on Ctrl-C).
    """

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(send, fn, args), name="wbtool-helper",
                                 daemon=True)
        self._proc.start()
        send.close()

    def result(self) -> Any:
        try:
            ok, payload = self._recv.recv()
        except EOFError:
            raise OSError("a helper process died") from None
        if not ok:
            raise payload
        return payload

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.join(timeout=0.05)
        if self._proc.is_alive() and self._proc.pid is not None:
            os.kill(self._proc.pid, signal.SIGINT)
            self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._recv.close()


def _child(send: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result = fn(*args)
    except BaseException as e:  # KeyboardInterrupt included: report, then exit
        try:
            send.send((False, e))
        except Exception:
            send.send((False, OSError(f"{type(e).__name__}: {e}")))
    else:
        send.send((True, result))
    finally:
        send.close()
