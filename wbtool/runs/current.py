"""The process's active runs, and what happens to them when it exits.

``wbtool.run`` is the current run (the last one ``init`` made current);
module-level ``wbtool.log`` and friends delegate to it. Runs that are still
active when the interpreter exits are finished: ``finished`` on a normal
exit, ``failed`` after an uncaught exception or a non-zero ``sys.exit``,
``killed`` after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wbtool.runs.run import Run


class _Registry:
    def __init__(self) -> None:
        self.active: list[Run] = []
        self.current: Run | None = None
        self.hooked = False
        self.exit_code: int | None = None
        self.exception: type[BaseException] | None = None
        self.lock = threading.Lock()
        # wbtool.setup(settings=...); None: no call in this process (its
        # parent's, from the environment)
        self.defaults: dict[str, Any] | None = None


_REG = _Registry()


def current() -> Run | None:
    return _REG.current


def active() -> list[Run]:
    return list(_REG.active)


def add(run: Run, *, make_current: bool) -> None:
    with _REG.lock:
        _REG.active.append(run)
        if make_current:
            _REG.current = run
    _install_hooks()


# wbtool.setup's settings, as JSON, for the processes this one starts: a
# multiprocessing worker of the spawn or forkserver method is a new
# interpreter, which inherits the environment and nothing else.
SETUP_ENV = "WBTOOL_SETUP_SETTINGS"


def set_defaults(values: dict[str, Any]) -> None:
    """The settings that ``wbtool.setup`` gave, under every later ``init``'s own,
    in this process and in those it starts from now on."""
    import json

    _REG.defaults = dict(values)
    if values:
        os.environ[SETUP_ENV] = json.dumps(values, sort_keys=True, default=str)
    else:
        os.environ.pop(SETUP_ENV, None)


def defaults() -> dict[str, Any]:
    """The settings of this process's ``wbtool.setup``; without one, those of
    the process that started it."""
    if _REG.defaults is not None:
        return dict(_REG.defaults)
    text = os.environ.get(SETUP_ENV)
    if not text:
        return {}
    import json

    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        from wbtool.errors import SettingsError

        raise SettingsError(name=SETUP_ENV, reason="expected a JSON object of settings "
                                                   "(wbtool.setup sets it)")
    return values


def forget(run: Run) -> None:
    with _REG.lock:
        if run in _REG.active:
            _REG.active.remove(run)
        if _REG.current is run:
            _REG.current = None


def _finish_all(state: str, exit_code: int) -> None:
    for run in reversed(active()):
        with contextlib.suppress(Exception):
            run._finish(state, exit_code)


def _at_exit() -> None:
    if not _REG.active:
        return
    exc = _REG.exception
    if exc is not None and issubclass(exc, KeyboardInterrupt):
        _finish_all("killed", 130)
    elif exc is not None:
        _finish_all("failed", 1)
    elif _REG.exit_code:
        _finish_all("failed", _REG.exit_code)
    else:
        _finish_all("finished", 0)


def exit_status(code: Any) -> int:
    """The status a process exits with on ``SystemExit(code)``, as Python
    computes it (for a 64-bit C long): None is 0, an int its low byte (255
    beyond a C long), anything else (a message) 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if -2**63 <= code < 2**63 else 0xFF
    return 1


def _install_hooks() -> None:
    if _REG.hooked:
        return
    _REG.hooked = True
    atexit.register(_at_exit)

    previous_hook = sys.excepthook

    def excepthook(tp: type[BaseException], value: BaseException, tb: Any) -> None:
        _REG.exception = tp
        previous_hook(tp, value, tb)

    sys.excepthook = excepthook

    original_exit = sys.exit

    def exit(code: Any = None) -> Any:  # records the code an atexit hook cannot see
        _REG.exit_code = exit_status(code)
        return original_exit(code)

    sys.exit = exit

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)

    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)


def _after_fork_in_child() -> None:
    """A forked child (a multiprocessing worker) starts with no active runs:
    the copies it inherited are its parent's to log to and finish, so that
    ``init`` here starts (or, under ``wbtool run``, joins) a run of its own
    and its exit ends none of them. The current run stays current, so that
    ``wbtool.log`` is told it is ignored rather than failing."""
    for run in _REG.active:
        run._after_fork()
    _REG.active = []
    _REG.lock = threading.Lock()
    _REG.exit_code = None
    _REG.exception = None


def _on_sigterm(signum: int, frame: Any) -> None:
    """Finish every active run as killed, then die of SIGTERM as we would have."""
    _finish_all("killed", 128 + signum)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
