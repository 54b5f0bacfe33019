"""Timing subprocesses: wall time, exit status and peak resident memory of each run."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STDERR_TAIL = 2000


@dataclass(frozen=True)
class Sample:
    """One run of a command."""

    seconds: float
    peak_mib: float | None
    returncode: int
    stderr: str



@dataclass
class Timing:
    """The timed runs of one command in one case (its samples and CPU seconds)."""

    samples: list[Sample] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    error: str | None = None
    command: str | None = None

    @property
    def median_s(self) -> float | None:
        if self.error or not self.samples:
            return None
        return statistics.median(s.seconds for s in self.samples)

    @property
    def median_cpu_s(self) -> float | None:
        return None if self.error or not self.cpu_s else statistics.median(self.cpu_s)

    @property
    def peak_mib(self) -> float | None:
        peaks = [s.peak_mib for s in self.samples if s.peak_mib is not None]
        return max(peaks) if peaks and not self.error else None


@dataclass
class Trial:
    """One run to time, with what to do after it (outside the timing).

    ``check`` runs only after the warm-up run and returns a problem to report,
    or None; ``cleanup`` runs after every run.
    """

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    check: Callable[[], str | None] | None = None
    cleanup: Callable[[], None] | None = None


@dataclass
class Measurement:
    """The timed runs of one case (the warm-up run is not among them)."""

    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    command: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def median_s(self) -> float | None:
        return statistics.median(s.seconds for s in self.samples) if self.ok else None

    @property
    def peak_mib(self) -> float | None:
        peaks = [s.peak_mib for s in self.samples if s.peak_mib is not None]
        return max(peaks) if self.ok and peaks else None


# Runs a command and writes its peak RSS in KiB to a file; used where GNU time
# is missing. The child is forked (not spawned with vfork) so that the
# figure starts from this small launcher's memory, not from the caller's.
LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_pid, status, usage = os.wait4(pid, 0)
kib = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
with open(sys.argv[1], "w") as out:
    out.write(f"{kib}\\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(128 - code if code < 0 else code)
"""


@functools.cache
def peak_wrapper() -> tuple[str, ...]:
    """The command prefix that reports a child's peak RSS (KiB) into a file named last.

    Peak memory cannot be read from this process's own ``wait4``: Linux
    carries the memory high-water mark of the process that calls ``exec``
    into the new program, and ``subprocess`` starts children with
    ``vfork``, so every child would inherit this process's size. GNU time
    forks from a process of a megabyte or two; the Python launcher, used
    when GNU time is missing, from one of about ten.
    """
    gnu_time = Path("/usr/bin/time")
    if gnu_time.is_file():
        probe = subprocess.run(
            [str(gnu_time), "-f", "%M", "-o", os.devnull, "true"], capture_output=True
        )
        if probe.returncode == 0:
            return (str(gnu_time), "-f", "%M", "-o")
    return (sys.executable, "-c", LAUNCHER)


def run_timed(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Sample:
    """Run ``argv`` with stdout discarded; return its wall time, status and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        peak_file = os.path.join(tmp, "peak")
        err_file = os.path.join(tmp, "stderr")
        with open(err_file, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.run(
                [*peak_wrapper(), peak_file, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=None if env is None else dict(env),
                cwd=cwd,
                check=False,
            )
            seconds = time.perf_counter() - start
        with open(err_file, "rb") as err:
            stderr = err.read().decode("utf-8", "replace")
        peak_kib = _last_number(peak_file)
    peak_mib = None if peak_kib is None else peak_kib / 1024
    return Sample(seconds, peak_mib, proc.returncode, stderr[-STDERR_TAIL:])


def _last_number(path: str) -> float | None:
    """The number on the last line of ``path`` (GNU time may write a status line first)."""
    try:
        with open(path) as handle:
            lines = [line.strip() for line in handle if line.strip()]
        return float(lines[-1])
    except (OSError, ValueError, IndexError):
        return None


def run_quiet(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an untimed helper command and raise if it fails."""
    return subprocess.run(
        list(argv),
        check=True,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        cwd=cwd,
    )


def describe(argv: Sequence[str]) -> str:
    return shlex.join(str(part) for part in argv)


def find_wbtool(explicit: str | None = None) -> str:
    """The wbtool executable: the one given, else the one beside this Python, else on PATH."""
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise FileNotFoundError(f"wbtool executable not found: {explicit}")
        return found
    beside = Path(sys.executable).with_name("wbtool")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("wbtool")
    if found is None:
        raise FileNotFoundError("no 'wbtool' executable beside this Python or on PATH")
    return found
