"""Console capture for a run's ``output.log``.

What the user sees on the terminal is never changed: every byte goes to the
real stream untouched. The log keeps what a terminal would *show*:

* ``\\r`` returns to column 0 and later characters overwrite, so a progress
  bar that redraws itself (tqdm, pip, rich) leaves only its last frame;
* colour and other escape sequences (CSI, OSC, DCS, two-byte ``ESC x``) are
  removed, even when split across writes;
* ``\\b`` moves one column back; erase-in-line (``ESC[K``, ``ESC[1K``,
  ``ESC[2K``) clears as a terminal would.

The line model is :class:`wbtool.runs.terminal.TerminalLog`.

:class:`ConsoleCapture` tees the current process's stdout and stderr through
:class:`~wbtool.runs.terminal.TerminalLog` into a file it appends to, in one of these modes:

``"wrap"``
    ``sys.stdout`` and ``sys.stderr`` become thin proxies that forward every
    call to the original stream and feed what ``write``/``writelines`` (so
    ``print``) write to the log. Bytes written to ``sys.stdout.buffer`` or to
    the descriptors, by C code or by child processes, are not captured, nor
    are writes through a stream object taken before ``start()``.
``"redirect"``
    File descriptors 1 and 2 are replaced by the write ends of pipes (of
    pseudo-terminals when the original is a terminal, so ``isatty()`` stays
    true for the process, its C libraries and its children, at the same
    window size); reader threads copy every byte to the original descriptor
    and to the log. Captures C extensions and child processes too. When 1
    and 2 lead to the same stream (one terminal, ``2>&1``) they share one
    pipe, so their relative order is kept (see :class:`ConsoleCapture`). If
    the original destination fails (a closed pipe), output is still drained
    and logged; the program no longer sees the error.
``"auto"``
    The same as ``"wrap"``, the safest: nothing below Python changes (no
    descriptor is replaced, no thread started), so nothing can block on a
    full pipe, lose output when the process dies abruptly, or show C
    libraries, debuggers and children anything but the real terminal. Whole
    programs are captured at descriptor level from outside the process, by
    ``wbtool run``.
``"off"``
    Nothing is captured.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from wbtool.errors import UsageError
from wbtool.fsutil import append_whole
from wbtool.runs.terminal import Chunk, TerminalLog

__all__ = ["MODES", "ConsoleCapture", "TerminalLog"]

MODES = ("auto", "wrap", "redirect", "off")

#: How long ``stop()`` waits for end-of-file on a pipe once the descriptors are
#: restored. Longer means a child process still holds the pipe; its later
#: output is still forwarded to the terminal, but no longer logged.
DRAIN_TIMEOUT = 1.0

_READ_SIZE = 1 << 16
_LOG_BUFFER = 1 << 16


class _TeeStream:
    """Stands in for ``sys.stdout``/``sys.stderr``: forwards, and feeds text."""

    def __init__(self, stream: Any, capture: ConsoleCapture, log: TerminalLog) -> None:
        self._tee_stream = stream
        self._tee_capture = capture
        self._tee_log = log

    def write(self, s: str) -> int:
        n: int = self._tee_stream.write(s)
        self._tee_capture._feed(self._tee_log, s)
        return n

    def writelines(self, lines: Any) -> None:
        lines = list(lines)
        self._tee_stream.writelines(lines)
        for line in lines:
            self._tee_capture._feed(self._tee_log, line)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_tee_"):  # not yet set: during copying, say
            raise AttributeError(name)
        return getattr(self._tee_stream, name)

    def __iter__(self) -> Any:
        return iter(self._tee_stream)

    def __repr__(self) -> str:
        return repr(self._tee_stream)


class _FdPump:
    """Redirected descriptors: saved originals, one pipe, and its reader thread.

    ``fds`` are descriptors that write to the same place (see
    :meth:`ConsoleCapture._start_redirect`); output goes back through a copy
    of the first.
    """

    def __init__(self, fds: list[int], capture: ConsoleCapture, log: TerminalLog) -> None:
        self.fds = fds
        self.capture = capture
        self.log = log
        self.saved: list[int] = []
        self.winsize: bytes | None = None
        self.read_end = self.write_end = -1
        try:
            for fd in fds:
                self.saved.append(os.dup(fd))
            self.out = self.saved[0]
            self.tty = os.isatty(self.out)
            if self.tty:
                self.read_end, self.write_end = os.openpty()
                self._setup_pty()
            else:
                self.read_end, self.write_end = os.pipe()
        except BaseException:
            for fd in [*self.saved, self.read_end, self.write_end]:
                if fd >= 0:
                    os.close(fd)
            raise
        self.thread = threading.Thread(target=self._run, name=f"wbtool-console-{fds[0]}",
                                       daemon=True)

    def _setup_pty(self) -> None:
        import termios

        attrs = termios.tcgetattr(self.write_end)
        attrs[1] &= ~termios.OPOST  # bytes pass through; the real terminal translates
        termios.tcsetattr(self.write_end, termios.TCSANOW, attrs)
        self._sync_winsize()

    def _sync_winsize(self) -> None:
        import fcntl
        import termios

        try:
            size = fcntl.ioctl(self.out, termios.TIOCGWINSZ, b"\0" * 8)
            if size != self.winsize:
                fcntl.ioctl(self.read_end, termios.TIOCSWINSZ, size)
                self.winsize = size
        except OSError:
            pass

    def start(self) -> None:
        for fd in self.fds:
            os.dup2(self.write_end, fd)
        self.thread.start()

    def restore(self) -> None:
        """Put the original descriptors back and let the pipe reach its end."""
        for fd, saved in zip(self.fds, self.saved, strict=True):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
        for saved in self.saved[1:]:
            os.close(saved)
        os.close(self.write_end)
        if self.thread.ident is None:  # never started: nobody else will close these
            os.close(self.read_end)
            os.close(self.out)

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self.read_end, _READ_SIZE)
                except InterruptedError:
                    continue
                except OSError:  # EIO: a pty whose other end is closed everywhere
                    break
                if not data:
                    break
                if self.tty:
                    self._sync_winsize()
                _write_all(self.out, data)
                self.capture._feed(self.log, data)
        finally:
            os.close(self.read_end)
            os.close(self.out)


def _write_all(fd: int, data: bytes) -> None:
    """Write everything to ``fd``; a failing terminal is the user's to see, not ours."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return
        view = view[n:]


class ConsoleCapture:
    """Tees this process's stdout and stderr into a terminal-cleaned log file.

    Use ``start()``/``stop()`` or ``with ConsoleCapture(path, mode):``. The
    file is opened for appending. Finished lines are buffered and written out
    by :meth:`flush` (which the run calls about every second), when the
    buffer fills, and by :meth:`stop`. A forked child drops its copy of the
    parent's buffer and appends only its own lines. Capture never raises from
    a user's write: any internal failure silently ends logging while output
    keeps flowing.

    In ``"wrap"`` mode both streams share one :class:`TerminalLog`: writes
    reach it synchronously, in the order the terminal receives them. In
    ``"redirect"`` mode, descriptors 1 and 2 that lead to the same stream (one
    terminal, pipe or socket, or one file through ``> out.txt 2>&1``) share
    one pipe and one :class:`TerminalLog`, so order is kept exactly at the
    destination and in the log. Descriptors that lead to different places get a pipe each, copied
    back to their own original by their own thread, and a
    :class:`TerminalLog` each writing whole lines to the same file: the pipes
    are read in chunks that need not match the program's writes, and one line
    model would splice a stderr chunk into the middle of a stdout line. Lines
    are then never torn, but the order of lines between the two streams is
    best-effort.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "auto",
                 label: str | None = None) -> None:
        if mode not in MODES:
            raise UsageError(f"console mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.path = os.fspath(path)
        # Lines start with "[label] " (the x_label setting): the processes of
        # a distributed job that share one run and one console log.
        self._prefix = f"[{label}] ".encode(errors="backslashreplace") if label else b""
        self._line_start = True
        self.mode = "wrap" if mode == "auto" else mode
        self._lock = threading.RLock()
        self._busy = False
        self._broken = False
        self._fd: int | None = None
        self._buffer = bytearray()
        self._forked = False
        self._fork_hooked = False
        self._logs: list[TerminalLog] = []
        self._started = False
        self._wrapped: list[tuple[str, Any, _TeeStream]] = []
        self._pumps: list[_FdPump] = []

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        if self._started or self.mode == "off":
            return
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o666)
        if not self._fork_hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_fork_hook(weakref.ref(self)))
            self._fork_hooked = True
        self._broken = False
        self._started = True
        try:
            if self.mode == "wrap":
                self._start_wrap()
            else:
                self._start_redirect()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Restore the streams, log everything written so far, close the file."""
        if not self._started:
            return
        self._started = False
        self._stop_wrap()
        self._stop_redirect()
        with self._lock:
            fd, logs = self._fd, self._logs
            self._logs = []
            try:
                if not self._broken:
                    for log in logs:
                        log.close()
                    self._write_buffer()
            except Exception:
                pass
            finally:
                self._broken = True
                self._fd = None
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def flush(self) -> None:
        """Make the lines captured so far durable in the file.

        An unfinished line (a progress bar still redrawing) stays back until
        it ends or the capture stops. Never raises.
        """
        try:
            with self._lock:
                if not self._broken and not self._busy:
                    self._busy = True
                    try:
                        self._write_buffer()
                    except Exception:
                        self._broken = True
                    finally:
                        self._busy = False
        except Exception:
            pass

    def __enter__(self) -> ConsoleCapture:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- feeding -------------------------------------------------------------

    def _new_log(self) -> TerminalLog:
        log = TerminalLog(self._write_log)
        self._logs.append(log)
        return log

    def _write_log(self, data: Chunk) -> None:
        if self._prefix and data:
            data = self._labelled(bytes(data))
        self._buffer += data
        if len(self._buffer) >= _LOG_BUFFER or self._forked:
            self._write_buffer()

    def _labelled(self, data: bytes) -> bytes:
        prefix = self._prefix
        whole = data.endswith(b"\n")
        body = (data[:-1] if whole else data).replace(b"\n", b"\n" + prefix)
        if self._line_start:
            body = prefix + body
        self._line_start = whole
        return body + b"\n" if whole else body

    def _write_buffer(self) -> None:
        data, self._buffer = self._buffer, bytearray()
        fd = self._fd
        if fd is None:
            raise OSError(errno.EBADF, "the console log is closed")
        append_whole(fd, data)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may be held forever), no
        copy of the parent's unwritten lines (the parent writes them), and no
        buffering, since such children often end with ``os._exit``."""
        self._lock = threading.RLock()
        self._busy = False
        self._buffer = bytearray()
        self._forked = True

    def _feed(self, log: TerminalLog, data: object) -> None:
        """Add output to a log; never raises. A failure ends logging for good."""
        try:
            with self._lock:
                if self._broken or self._busy:  # busy: a write from inside feeding
                    return
                self._busy = True
                try:
                    if isinstance(data, str):
                        log.feed_text(data)
                    elif isinstance(data, (bytes, bytearray)):
                        log.feed(bytes(data))
                except Exception:
                    self._broken = True
                finally:
                    self._busy = False
        except Exception:
            pass

    # -- wrap mode -------------------------------------------------------------

    def _start_wrap(self) -> None:
        log = self._new_log()
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            if original is None:
                continue
            proxy = _TeeStream(original, self, log)
            setattr(sys, name, proxy)
            self._wrapped.append((name, original, proxy))

    def _stop_wrap(self) -> None:
        for name, original, proxy in reversed(self._wrapped):
            if getattr(sys, name) is proxy:
                setattr(sys, name, original)
        self._wrapped.clear()

    # -- redirect mode ---------------------------------------------------------

    def _start_redirect(self) -> None:
        _flush_std()
        for fds in _same_destination_groups((1, 2)):
            try:
                pump = _FdPump(fds, self, self._new_log())
            except OSError:  # an unusable descriptor: leave it alone
                continue
            self._pumps.append(pump)
            pump.start()

    def _stop_redirect(self) -> None:
        if not self._pumps:
            return
        _flush_std()
        for pump in self._pumps:
            with contextlib.suppress(OSError):
                pump.restore()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        for pump in self._pumps:
            if pump.thread.ident is not None:
                pump.thread.join(max(deadline - time.monotonic(), 0.0))
        # A pump still running is held open by a child process: it goes on
        # forwarding to the terminal, while the log is closed by stop().
        self._pumps.clear()


def _fork_hook(ref: weakref.ReferenceType[ConsoleCapture]) -> Callable[[], None]:
    def after_fork_in_child() -> None:
        capture = ref()
        if capture is not None:
            capture._after_fork()

    return after_fork_in_child


def _same_destination_groups(fds: tuple[int, ...]) -> list[list[int]]:
    """Open descriptors, grouped when what they write lands in the same stream.

    Such descriptors share one pipe, so that what they write keeps its exact
    order (``2>&1``, or both on one terminal). Descriptors on one regular file
    count as one stream when both append, or when they stand at the same
    offset, as after ``> out.txt 2>&1``; descriptors at different offsets
    write to different places in the file and keep their own pipes.
    """
    groups: list[list[int]] = []
    for fd in fds:
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        for group in groups:
            if _same_stream(group[0], fd, st):
                group.append(fd)
                break
        else:
            groups.append([fd])
    return groups


def _same_stream(a: int, b: int, st_b: os.stat_result) -> bool:
    try:
        st_a = os.fstat(a)
        if (st_a.st_dev, st_a.st_ino) != (st_b.st_dev, st_b.st_ino):
            return False
        if not stat.S_ISREG(st_b.st_mode):
            return True
        import fcntl

        if fcntl.fcntl(a, fcntl.F_GETFL) & fcntl.fcntl(b, fcntl.F_GETFL) & os.O_APPEND:
            return True
        return os.lseek(a, 0, os.SEEK_CUR) == os.lseek(b, 0, os.SEEK_CUR)
    except OSError:
        return False


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
