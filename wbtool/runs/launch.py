"""``wbtool run -- CMD``: run a command as a run.

The command runs as a child in its own process group. Its output goes to
the user unchanged and at once (through a pseudo-terminal when wbtool's
stdout is a terminal, so colours and progress bars still render; through
pipes otherwise) and into the run: ``output.log`` as a terminal shows it,
``output.raw`` as it came (timestamped chunks, per stream; see
:mod:`wbtool.runs.rawlog`).

Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to wbtool go to the
child's process group, and so do SIGUSR1 and SIGUSR2 (a batch system's "time
is almost up", which would otherwise end wbtool and the command); a second
SIGINT within :data:`SECOND_INTERRUPT` seconds kills it. On a terminal the
child is the foreground job, so Ctrl-C and Ctrl-Z reach it as if it ran
alone, and when it stops wbtool stops too (and resumes it on ``fg``). The
child dies with wbtool (a parent-death signal), and whatever is left of its
process group when it exits is terminated, so nothing is orphaned. Should
wbtool itself be killed (SIGKILL, the OOM killer), a small guard process in
a session of its own sees the end of a pipe that only wbtool held open and
kills the command's whole process group: the programs that the command
started die too, not only the command.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wbtool.fsutil import Appender, append_whole
from wbtool.runs import rawlog
from wbtool.runs.terminal import MAX_LINE, Chunk, TerminalLog
from wbtool.runs.values import MAX_STEP

if TYPE_CHECKING:
    from wbtool.runs.run import Run

READ_SIZE = 1 << 17
#: The fewest bytes that output.raw records by pointing into output.log.
SHARED_MIN = 1 << 10
PIPE_SIZE = 1 << 20  # asked of the pipes we read: fewer, larger reads
SECOND_INTERRUPT = 3.0
FLUSH_SECONDS = 1.0
# After the command exits, how long its leftovers may keep the output open.
DRAIN_SECONDS = 2.0
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Passed on too, but they ask nothing of the command's end (a checkpoint, say).
NOTICES = (signal.SIGUSR1, signal.SIGUSR2)
# Held from the start of ``wbtool run`` to its end: none of them may end wbtool
# before the command has started, or while it records how the command ended.
HELD = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, *NOTICES)
# The guard: waits on its stdin, which only wbtool holds open; a byte means
# wbtool ended the command's group itself, the end of the pipe (wbtool died)
# means the group is to be killed.
_GUARD = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,\n"
    "          signal.SIGUSR1, signal.SIGUSR2):\n"
    "    signal.signal(s, signal.SIG_IGN)\n"
    "if not os.read(0, 1):\n"
    "    try:\n"
    "        os.killpg(int(sys.argv[1]), signal.SIGKILL)\n"
    "    except OSError:\n"
    "        pass\n"
)


def exit_status(returncode: int) -> int:
    """A shell's exit status for a child's return code (128+N for signal N)."""
    return 128 - returncode if returncode < 0 else returncode


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        # More digits than Python converts: kept as the text it is, as
        # 'wbtool log' keeps it, never as the infinity float() would give.
        if text.lstrip("+-").isdigit():
            return text
    try:
        return float(text)
    except ValueError:
        return text


class _Stream:
    """One output of the child: where its bytes go, and its line model."""

    def __init__(self, name: str, fd: int, out_fd: int,
                 on_line: Callable[[_Stream, Chunk], None]) -> None:
        self.name = name
        self.fd = fd
        self.out_fd = out_fd
        self.out_ok = True
        self.ended = False  # read to its end: closed by the pumping loop
        # The line model writes a line in pieces at times (its start, then
        # the rest with the next read): the start of the line that
        # --capture-metrics has yet to see whole.
        self.unfinished = b""
        self.lines = TerminalLog(functools.partial(on_line, self))


class Launcher:
    def __init__(self, run: Run, command: list[str], *, console: bool = True,
                 capture: list[re.Pattern[str]] | None = None,
                 env: dict[str, str] | None = None, early: list[int] | None = None) -> None:
        self.run = run
        self.command = command
        self.console = console
        self.capture = capture or []
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._streams: list[_Stream] = []
        self._signals: list[int] = []
        self._early = early if early is not None else []  # held before wait() (HELD)
        self._last_interrupt = -1e9
        self.interrupted = False  # a terminating signal was passed on to the command
        self._tty_fd: int | None = None
        self._foreground = False  # the command is the terminal's foreground job
        self._pty_master: int | None = None
        self._winsize: bytes | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._guard_fd: int | None = None  # the pipe's end that keeps the guard waiting
        # False once output.log or output.raw could not be written (a full
        # disk): the output still reaches the user, and the command goes on.
        self._recording = True

    # -- the child's environment and process ------------------------------------
    def _child_env(self) -> dict[str, str]:
        from wbtool.runs.current import SETUP_ENV
        from wbtool.runs.init import ATTACH_ENV

        run = self.run
        env = dict(os.environ)
        # wbtool.setup's settings in the process that started wbtool run: they
        # are not the run's, which its program joins with wbtool run's own.
        env.pop(SETUP_ENV, None)
        env.update(self.env)
        assert run._ctx is not None
        env.update({
            "WBTOOL_RUN_ID": run.id,
            "WBTOOL_DIR": str(run._ctx.store.path.resolve()),
            "WBTOOL_PROJECT": run.project,
            ATTACH_ENV: "1",
        })
        if self.console:
            env["WBTOOL_CONSOLE_CAPTURED"] = "1"
        return env

    def _terminal(self) -> tuple[int | None, bool]:
        """stdin's terminal when it is this session's (job control applies), and
        whether wbtool is its foreground job."""
        try:
            if os.isatty(0):
                return 0, os.tcgetpgrp(0) == os.getpgrp()
        except OSError:  # not this session's terminal
            pass
        return None, False

    def _preexec(self) -> Callable[[], None]:
        tty = self._tty_fd if self._foreground else None
        prctl = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                prctl = None

        def child_setup() -> None:  # runs in the child between fork and exec
            os.setpgid(0, 0)
            if tty is not None:
                old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
                with contextlib.suppress(OSError):
                    os.tcsetpgrp(tty, os.getpid())
                signal.signal(signal.SIGTTOU, old)
            if prctl is not None:
                prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with wbtool

        return child_setup

    def _open_outputs(self) -> tuple[Any, Any, list[tuple[str, int, int]]]:
        """(stdout, stderr) for Popen, and the (name, read fd, copy-to fd) to pump."""
        if not self.console:
            return None, None, []
        if os.isatty(1):
            import fcntl
            import termios

            master, slave = os.openpty()
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.OPOST  # bytes pass through; the real terminal translates
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            with contextlib.suppress(OSError):
                self._winsize = fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(slave, termios.TIOCSWINSZ, self._winsize)
            self._pty_master = master
            same = os.isatty(2) and os.path.samestat(os.fstat(1), os.fstat(2))
            if same:
                return slave, slave, [("tty", master, 1)]
            err_r, err_w = os.pipe()
            return slave, err_w, [("tty", master, 1), ("stderr", err_r, 2)]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        return out_w, err_w, [("stdout", out_r, 1), ("stderr", err_r, 2)]

    # -- running ---------------------------------------------------------------------
    def start(self) -> None:
        folder = self.run._folder
        assert folder is not None
        self._tty_fd, self._foreground = self._terminal()
        stdout, stderr, pumps = self._open_outputs()
        self._log = Appender(folder.output, READ_SIZE)
        self._log_end = os.fstat(self._log.fileno()).st_size  # where the next line goes
        # Unbuffered: each chunk is one writev of header, bytes and newline.
        self._raw = open(folder.path / rawlog.NAME, "ab", buffering=0)  # noqa: SIM115
        env = self._child_env()
        try:
            try:
                self.proc = subprocess.Popen(
                    self.command, stdout=stdout, stderr=stderr, env=env,
                    preexec_fn=self._preexec(), close_fds=True,
                )
            except OSError as e:
                script = _shell_script(self.command[0], e)
                if script is None:
                    raise
                self.proc = subprocess.Popen(
                    ["/bin/sh", script, *self.command[1:]], stdout=stdout, stderr=stderr,
                    env=env, preexec_fn=self._preexec(), close_fds=True,
                )
        finally:
            for fd in {stdout, stderr} - {None}:
                os.close(fd)
        self._start_guard(self.proc.pid)
        for name, fd, out_fd in pumps:
            os.set_blocking(fd, False)
            with contextlib.suppress(OSError, ImportError):
                import fcntl

                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
            self._streams.append(_Stream(name, fd, out_fd, self._line))
        if self._foreground:  # the child is the foreground job (both sides set it)
            self._give_terminal(self.proc.pid)
        # The command's whole process tree (DataLoader workers, pipelines) unless
        # the user chose otherwise.
        settings = self.run.settings
        tree = None if settings.source("x_stats_track_process_tree") != "default" else True
        self.run._start_stats(self.proc.pid, tree=tree)

    def _start_guard(self, pgid: int) -> None:
        """Start the process that kills the command's group if wbtool dies
        (best effort: without it the parent-death signal still takes the
        command itself)."""
        read_fd, write_fd = os.pipe()
        try:
            self._guard = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _GUARD, str(pgid)], stdin=read_fd,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                start_new_session=True)  # no terminal's signals reach it
        except OSError:
            os.close(write_fd)
            return
        finally:
            os.close(read_fd)
        self._guard_fd = write_fd

    def release_guard(self, *, ended: bool) -> None:
        """Stop the guard: with ``ended`` (the command's group is gone) it
        leaves the group alone; else it kills what is left of it."""
        if self._guard_fd is not None:
            with contextlib.suppress(OSError):
                if ended:
                    os.write(self._guard_fd, b".")
            os.close(self._guard_fd)
            self._guard_fd = None
        if self._guard is not None and not ended:  # its kill lands before wbtool goes on
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._guard.wait(timeout=5)
        # Else it leaves on its own (a command as short as ``true`` would
        # otherwise wait for the guard's own start).
        self._guard = None

    def _give_terminal(self, pgid: int) -> None:
        if self._tty_fd is None:
            return
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(self._tty_fd, pgid)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, old)

    def wait(self) -> int:
        """Pump output and signals until the command is done; its return code."""
        assert self.proc is not None
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        handled = (*FORWARDED, *NOTICES, signal.SIGCHLD, signal.SIGWINCH)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        early, self._early[:] = list(self._early), []
        for signum in early:  # came while the command was being started
            self._forward(signum)
        sel = selectors.DefaultSelector()
        sel.register(wake_r, selectors.EVENT_READ, None)
        for stream in self._streams:
            sel.register(stream.fd, selectors.EVENT_READ, stream)
        exited_at: float | None = None
        last_flush = time.monotonic()
        try:
            while True:
                open_streams = len(sel.get_map()) - 1
                if exited_at is not None and (
                        open_streams == 0 or time.monotonic() - exited_at > DRAIN_SECONDS):
                    break
                for key, _ in sel.select(timeout=0.25):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            while os.read(wake_r, 512):
                                pass
                    elif key.data.ended or not self._pump(key.data):
                        sel.unregister(key.fd)
                        os.close(key.fd)
                self._handle_signals()
                # The command is the terminal's foreground job, so SIGWINCH goes
                # to it, not to us: follow the terminal's size by looking.
                self._resize()
                if exited_at is None and self._reap():
                    exited_at = time.monotonic()
                    self._end_group()
                    self.release_guard(ended=True)
                now = time.monotonic()
                if now - last_flush >= FLUSH_SECONDS:
                    last_flush = now
                    self._flush()
        finally:
            for key in list(sel.get_map().values()):
                if key.data is not None:
                    os.close(key.fd)
            sel.close()
            signal.set_wakeup_fd(old_wakeup)
            for s, h in previous.items():
                signal.signal(s, h)
            os.close(wake_r)
            os.close(wake_w)
            if self._foreground:  # never take the terminal from the shell (``bg``)
                self._give_terminal(os.getpgrp())
            self._close_logs()
        assert self.returncode is not None
        return self.returncode

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum in FORWARDED or signum in NOTICES:
            # Passed on here and now, not by the loop: the loop may be held up
            # for as long as a reader of the output does not read.
            self._forward(signum)
        else:
            self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGWINCH:
                self._resize()
            # SIGCHLD: _reap looks

    def _forward(self, signum: int) -> None:
        if self.returncode is not None:
            return
        if signum in NOTICES:
            self._kill_group(signum)
            return
        if signum == signal.SIGINT:
            now = time.monotonic()
            if now - self._last_interrupt <= SECOND_INTERRUPT:
                self._kill_group(signal.SIGKILL)
                self._say("second interrupt: killed the command")
                return
            self._last_interrupt = now
        self.interrupted = True
        self._kill_group(signum)

    def _kill_group(self, signum: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def _resize(self) -> None:
        if self._pty_master is None:
            return
        import fcntl
        import termios

        with contextlib.suppress(OSError):
            size = fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8)
            if size != self._winsize:
                self._winsize = size
                fcntl.ioctl(self._pty_master, termios.TIOCSWINSZ, size)
                self._kill_group(signal.SIGWINCH)

    def _reap(self) -> bool:
        """True once the command has exited; follows Ctrl-Z/fg on the way."""
        assert self.proc is not None
        try:
            pid, status = os.waitpid(self.proc.pid, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:
            self.returncode = self.proc.returncode if self.proc.returncode is not None else 0
            return True
        if pid == 0:
            return False
        if os.WIFSTOPPED(status):
            self._stopped()
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode
        return True

    def _stopped(self) -> None:
        """The command was stopped (Ctrl-Z, or reading the terminal in the
        background): stop too, and resume it when resumed."""
        if self._tty_fd is None:
            return  # no job control: whoever stopped it will continue it
        # What the command wrote before it stopped is shown before the
        # shell says "Stopped", as it would be without wbtool in between.
        for stream in self._streams:
            if not stream.ended:
                self._pump(stream)
        self._flush()
        if self._foreground:
            self._give_terminal(os.getpgrp())
        # Stop as the command would have alone: the whole job (a pipeline's
        # other commands too), and not at all in a process group no shell
        # can continue (the kernel discards SIGTSTP there), as under
        # ``docker run -it`` or ``tmux new 'wbtool run …'``.
        os.killpg(os.getpgrp(), signal.SIGTSTP)
        # … continued by the shell's fg/bg.
        try:
            self._foreground = os.tcgetpgrp(self._tty_fd) == os.getpgrp()
        except OSError:  # the terminal is gone
            self._foreground = False
        if self._foreground:
            self._give_terminal(self.proc.pid if self.proc else os.getpgrp())
        self._kill_group(signal.SIGCONT)

    def _end_group(self) -> None:
        """Terminate what the command left running in its process group."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        self._kill_group(signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
        self._kill_group(signal.SIGKILL)

    # -- output ------------------------------------------------------------------------
    def _pump(self, stream: _Stream) -> bool:
        """Move what the stream has; False at its end."""
        while True:
            try:
                data = os.read(stream.fd, READ_SIZE)
            except BlockingIOError:
                return True
            except OSError:  # EIO: the pseudo-terminal's other side is closed
                data = b""
            if not data:
                stream.lines.flush_partial()
                stream.ended = True
                return False
            broken = False
            if stream.out_ok:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(stream.out_fd, view):]
                except BlockingIOError:
                    import select

                    select.select([], [stream.out_fd], [])
                    try:
                        while view:
                            view = view[os.write(stream.out_fd, view):]
                    except OSError as e:
                        broken = e.errno == errno.EPIPE
                        stream.out_ok = False
                except OSError as e:  # the user's terminal or file went away: keep recording
                    broken = e.errno == errno.EPIPE
                    stream.out_ok = False
            now = time.time()
            same = stream.lines.feed_plain(data)
            at = self._log_end - same
            stream.lines.feed_rest(data, same)
            if self._recording:
                try:
                    self._record_raw(stream.name, data, now, same, at)
                except OSError as e:
                    self._stop_recording(e)
            if broken:
                # The reader of this output is gone (``wbtool run -- cmd | head``):
                # this end of the command's pipe closes, so that its next write
                # fails as it would in the pipeline without wbtool (SIGPIPE).
                stream.lines.flush_partial()
                stream.ended = True
                return False

    def _record_raw(self, name: str, data: bytes, now: float, same: int, at: int) -> None:
        """One chunk for output.raw, of which the first ``same`` bytes went to
        output.log as they came, at ``at``."""
        parts: list[bytes | memoryview]
        if same >= SHARED_MIN:
            # The raw record points at these bytes in output.log instead of
            # keeping a second copy, once they have left our buffer (nothing
            # is lost if we are killed).
            self._log.flush()
            parts = [rawlog.log_header(now, name, same, at)]
            if same < len(data):
                parts += [rawlog.header(now, name, len(data) - same),
                          memoryview(data)[same:], b"\n"]
        else:
            parts = [rawlog.header(now, name, len(data)), data, b"\n"]
        append_whole(self._raw.fileno(), parts)  # a whole frame: a torn one ends the record

    def _stop_recording(self, error: OSError) -> None:
        """The console can no longer be recorded (a full disk): say so once,
        and go on passing the output through and capturing metrics."""
        self._recording = False
        for f in (self._log, self._raw):
            with contextlib.suppress(OSError):
                f.close()  # what is still buffered is dropped: the disk refused it
        where = f": {error.filename}" if error.filename else ""
        assert self.run._folder is not None
        self._say(f"WARNING the command's output is no longer recorded in "
                  f"{self.run._folder.path} ({error.strerror or error}{where}); "
                  "the command goes on")

    def _line(self, stream: _Stream, data: Chunk) -> None:
        """Lines for output.log, from either stream's line model."""
        if self._recording:
            try:
                self._log.write(data)
            except OSError as e:
                self._stop_recording(e)
            else:
                self._log_end += len(data)
        if not self.capture or self.run._finished:
            return
        lines = (stream.unfinished + bytes(data)).split(b"\n")
        stream.unfinished = lines.pop()
        if len(stream.unfinished) >= MAX_LINE:  # written out in pieces, as a terminal wraps it
            lines.append(stream.unfinished)
            stream.unfinished = b""
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            row: dict[str, Any] = {}
            for pattern in self.capture:
                for m in pattern.finditer(line):
                    row.update({k: _number(v) for k, v in m.groupdict().items()
                                if v})  # a group that matched nothing holds no value
            step = row.pop("_step", None)
            if step is not None:
                self._log_at(row, step)
            elif row:
                self._log_next(row)

    def _log_at(self, row: dict[str, Any], step: Any) -> None:
        """Log a captured row at the step a ``_step`` group captured, as
        ``wbtool log --step`` does: rows of one step accumulate, and a later
        step commits them. A step that is no whole number from 0 to
        :data:`MAX_STEP` is left out of the row, with a warning."""
        if type(step) is int and 0 <= step <= MAX_STEP:
            self.run.log(row, step=step)
            return
        self.run._warn("capture", f"captured _step {str(step)[:40]!r} is not a step "
                       f"(a whole number from 0 to {MAX_STEP}): the line's values are logged "
                       "without one")
        if row:
            self._log_next(row)

    def _log_next(self, row: dict[str, Any]) -> None:
        """Log a captured row at the run's next step; past a row at
        :data:`MAX_STEP` there is none, and the line's values are left out,
        with a warning."""
        if self.run.step > MAX_STEP:
            self.run._warn("capture", f"the run has a row at step {MAX_STEP}, the highest a "
                           "step can be: a captured line's values are left out")
            return
        self.run.log(row)

    def _flush(self) -> None:
        if not self._recording:
            return
        try:
            self._log.flush()
        except OSError as e:
            self._stop_recording(e)

    def _close_logs(self) -> None:
        for stream in self._streams:
            stream.lines.flush_partial()
        if self._recording:
            try:
                self._log.close()  # writes what is still buffered
            except OSError as e:
                self._stop_recording(e)
        for f in (self._log, self._raw):
            with contextlib.suppress(OSError):
                f.close()

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2, f"wbtool: {message}\n".encode())


def _shell_script(name: str, error: OSError) -> str | None:
    """The path of the command that could not be started, where a shell would
    run it as a script of its own: an executable text file without a ``#!``
    line (what ``execvp`` and the shell do on ``ENOEXEC``)."""
    import shutil

    if error.errno != errno.ENOEXEC:
        return None
    path = shutil.which(name)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    return None if b"\0" in head else path  # a binary for another machine


def state_for(returncode: int, interrupted: bool = False) -> str:
    """finished on 0; killed by a signal, or ending badly after one was passed
    on (a program that catches SIGINT and exits 130); failed otherwise."""
    if returncode == 0:
        return "finished"
    return "killed" if returncode < 0 or interrupted else "failed"


def run_command(settings: dict[str, Any], config: Any, command: list[str], *,
                console: bool = True, capture: list[str] | None = None,
                report: Callable[[Run], None] | None = None, sync: bool = False,
                live: float | None = None) -> int:
    """Run ``command`` as a run; the shell exit status to return (the command's).

    ``sync`` pushes the run to the default remote when it has finished;
    ``live`` also every ``live`` seconds while it runs (see
    :mod:`wbtool.remote.autosync`)."""
    import shutil

    from wbtool.errors import NotFoundError, UsageError

    if not command:
        raise UsageError("wbtool run needs a command: wbtool run -- python train.py")
    if shutil.which(command[0]) is None:
        if os.sep in command[0] and os.path.isdir(command[0]):
            raise UsageError(f"cannot run {command[0]}: it is a folder")
        if os.sep in command[0] and os.path.exists(command[0]):
            raise UsageError(f"cannot run {command[0]}: it is not executable "
                             f"(chmod +x {command[0]}, or name its interpreter first)")
        raise NotFoundError(what="command", name=command[0])
    patterns = []
    for text in capture or ():
        try:
            pattern = re.compile(text)
        except re.error as e:
            raise UsageError(f"--capture-metrics {text!r} is not a valid regular expression: "
                             f"{e}") from None
        if not pattern.groupindex:
            raise UsageError(f"--capture-metrics {text!r} has no named group "
                             "(write (?P<name>...) for each value)")
        patterns.append(pattern)
    if live is not None:
        import threading

        # The pushing thread waits this long between pushes: past the longest
        # wait the platform takes, the wait itself fails.
        if not 0 < live <= threading.TIMEOUT_MAX:
            raise UsageError(f"--live takes a positive number of seconds, at most "
                             f"{threading.TIMEOUT_MAX:.0f}")
        sync = True
    if sync:
        _require_default_remote(settings)
    early: list[int] = []
    held = _hold_signals(early)
    try:
        status, run = _launch(settings, config, command, console=console, capture=patterns,
                              report=report, live=live, early=early)
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
    if sync and run is not None:
        # Once the run is recorded, a signal ends wbtool again: a push that
        # hangs on the network can be stopped as any other command.
        from wbtool.remote.autosync import push_now

        assert run._ctx is not None
        push_now(run._ctx.store.path, run.id)
    return status


def _hold_signals(early: list[int]) -> dict[int, Any]:
    """Note the signals in :data:`HELD` in ``early`` instead of dying of them;
    the handlers they had. One that is ignored (``nohup``) stays so, and the
    command inherits it ignored, as it would without wbtool."""
    def note(signum: int, frame: Any) -> None:
        early.append(signum)

    held: dict[int, Any] = {}
    for signum in HELD:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        try:
            held[signum] = signal.signal(signum, note)
        except ValueError:  # not the main thread, which alone takes signals
            break
    return held


def _launch(settings: dict[str, Any], config: Any, command: list[str], *, console: bool,
            capture: list[re.Pattern[str]], report: Callable[[Run], None] | None,
            live: float | None, early: list[int]) -> tuple[int, Run | None]:
    """The command run and recorded: its status, and the run (None where the
    command never started)."""
    from wbtool.runs.init import launch

    run = launch(settings, config, command)
    ending = [signum for signum in early if signum in FORWARDED]
    if ending:  # wbtool was asked to end before the command started: it never starts
        status = 128 + ending[0]
        run._warn("signal", f"{signal.Signals(ending[0]).name} came before the command "
                            "started: it was not started")
        run._finish("killed", status)
        return status, None
    launcher = Launcher(run, command, console=console, capture=capture, early=early)
    returncode: int | None = None
    pusher = None
    try:
        launcher.start()
        if live is not None:
            from wbtool.remote.autosync import LiveSync

            assert run._ctx is not None
            pusher = LiveSync(run._ctx.store.path, run.id, live)
            pusher.start()
        returncode = launcher.wait()
    finally:
        launcher.release_guard(ended=False)  # a no-op once the command has ended
        if pusher is not None:
            pusher.stop()
        if returncode is None:  # wbtool itself failed: take the command down with it
            if launcher.proc is not None and launcher.proc.poll() is None:
                launcher._kill_group(signal.SIGKILL)
                launcher.proc.wait()
            run._finish("failed", 1)
    status = exit_status(returncode)
    try:
        run._finish(state_for(returncode, launcher.interrupted), status)
    except OSError as e:  # a full disk: the command's status is still what wbtool exits with
        where = f": {e.filename}" if e.filename else ""
        run._warn("finish", f"how the run ended could not be recorded "
                            f"({e.strerror or e}{where})")
        report = None  # it would read a run still running
    if report is not None:
        report(run)
    return status, run


def _require_default_remote(settings: dict[str, Any]) -> None:
    """Fail before the command starts, not after it has run for hours."""
    from wbtool.context import Context
    from wbtool.errors import UsageError
    from wbtool.remote import config as remote_config
    from wbtool.settings import load

    store = Context.from_settings(load(dict(settings))).store
    if remote_config.get_default(store) is None:
        raise UsageError("--sync needs a default remote: wbtool remote add NAME URL --default")
