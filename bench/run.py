"""``python -m bench run``: what wrapping a command in ``wbtool run`` costs.

Three questions, each timed against the same work without wbtool:

* how much wall time ``wbtool run -q -- CMD`` adds to a command that does
  nothing (``true``, ``python -c pass``);
* how fast a command's output passes through it, against a plain pipe;
* how much CPU the wrapper itself uses while its command sits quietly.

Every child runs in a temporary folder of its own, which is its working
folder and holds its store (``WBTOOL_DIR``); ``WBTOOL_*`` variables of the
calling shell are not passed on, so wbtool runs with its defaults. The first
round runs every case once, untimed (byte-code and page caches); then
``repeat`` timed rounds follow, each running every case once, so that a busy
moment of the machine hits wbtool and its anchors alike. The quiet runs come
last, all at the same time.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import align, environment, print_json

ADDED_TARGET_MS = 150.0
WANDB_INIT_FINISH_MS = 870.0  # wandb offline, import + init + finish, measured elsewhere
CAPTURE_TARGET = 0.5  # of a plain pipe's throughput
QUIET_TARGET_PCT = 1.0  # of one core
SAMPLE_AFTER_S = 2.0  # the quiet run's CPU is counted from here on
POLL_S = 0.5
BLOCK = 1 << 16
MIB = 1 << 20
CHILD_TIMEOUT_S = 600.0
WARMUP_DIVISOR = 10

# Writes argv[1] MiB of text lines (64-byte lines in 64 KiB blocks) to its
# stdout as fast as it can, and the seconds from its first write to its
# last into the file argv[2]. A write blocks while the reader is behind, so
# this is the reader's pace, less wbtool's start-up and the child's own.
WRITER = """\
import sys, time
lines = (f"step {i:06d} loss={1 / (i + 1):.6f} acc={i / 1024:.6f}" for i in range(1024))
block = "".join(f"{line:<63}\\n" for line in lines).encode()
count = (int(sys.argv[1]) << 20) // len(block)
out = sys.stdout.buffer
write = out.write
start = time.perf_counter()
for _ in range(count):
    write(block)
out.flush()
seconds = time.perf_counter() - start
with open(sys.argv[2], "w") as report:
    report.write(repr(seconds))
"""


@dataclass
class Case:
    """One measured quantity, and how it is judged.

    ``compare`` says what is judged: "added" (this median less the anchor's,
    below ``target``), "ratio" (this median over the anchor's, at least
    ``target``) or "" (the median itself, below ``target``).
    """

    key: str
    label: str
    unit: str
    group: str
    anchor: str | None = None
    anchor_name: str = ""
    compare: str = ""
    target: float | None = None
    reference: float | None = None
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and not self.error else None


def judged(case: Case, cases: Mapping[str, Case]) -> float | None:
    """The value held against the target: added ms, ratio, or the median itself."""
    value = case.median
    if value is None or not case.compare:
        return value
    anchor = cases[case.anchor].median if case.anchor else None
    if anchor is None:
        return None
    if case.compare == "added":
        return value - anchor
    return value / anchor if anchor else None


def status(case: Case, cases: Mapping[str, Case]) -> str:
    if case.error:
        return "ERROR"
    value = judged(case, cases)
    if case.target is None or value is None:
        return ""
    met = value >= case.target if case.compare == "ratio" else value < case.target
    return "PASS" if met else "MISS"


def target_text(case: Case) -> str:
    if case.target is None:
        return "-"
    if case.compare == "added":
        return f"<{case.target:g} {case.unit} added"
    if case.compare == "ratio":
        return f"≥{case.target:g}× {case.anchor_name}"
    if case.unit == "% core":
        return f"<{case.target:g}% of a core"
    return f"<{case.target:g} {case.unit}"


def as_dict(case: Case, cases: Mapping[str, Case]) -> dict[str, Any]:
    value = judged(case, cases)
    return {
        "case": case.key,
        "label": case.label.strip(),
        "unit": case.unit,
        "median": _round(case.median),
        "samples": [round(sample, 3) for sample in case.samples],
        "reference": case.reference,
        "anchor": case.anchor,
        "added": _round(value) if case.compare == "added" else None,
        "ratio": _round(value) if case.compare == "ratio" else None,
        "target": case.target,
        "target_text": None if case.target is None else target_text(case),
        "status": status(case, cases) or None,
        "error": case.error,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- children ---------------------------------------------------------------------------


def child_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WBTOOL_")}
    env["WBTOOL_DIR"] = str(home / ".wbtool")
    return env


def run_child(argv: Sequence[str], home: Path) -> float:
    """Run ``argv`` in ``home``, stdout to /dev/null; its wall time. Raises if it fails."""
    err_path = home / "stderr"
    with open(os.devnull, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            env=child_env(home), cwd=home,
        )
        # A blocking wait sees the exit at once; ``wait(timeout=…)`` polls
        # with growing sleeps and would add up to tens of milliseconds.
        watchdog = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            proc.wait()
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"exit status {proc.returncode}: {_tail(err_path)}")
    return seconds


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return " | ".join(text.splitlines()[-3:]) or "no output on stderr"


def run_folder(home: Path) -> Path:
    """The one run folder in a child's store."""
    runs = sorted((home / ".wbtool" / "runs").glob("*/run.json"))
    if len(runs) != 1:
        raise RuntimeError(f"expected one run in the store, found {len(runs)}")
    return runs[0].parent


def wall_ms(argv: Sequence[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        return run_child(argv, Path(tmp)) * 1000


def throughput(way: str, megabytes: int, wbtool: Sequence[str]) -> float:
    """MiB/s of the writer sent ``way`` ("direct", "pipe", "tee" or "wbtool")."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        home = Path(tmp)
        seconds_file = home / "seconds"
        writer = [sys.executable, "-c", WRITER, str(megabytes), str(seconds_file)]
        if way == "pipe":
            argv = ["sh", "-c", f"{shlex.join(writer)} | cat > /dev/null"]
        elif way == "tee":
            copy = shlex.quote(str(home / "copy.log"))
            argv = ["sh", "-c", f"{shlex.join(writer)} | tee {copy} > /dev/null"]
        elif way == "wbtool":
            argv = [*wbtool, "run", "-q", "--", *writer]
        else:
            argv = writer
        run_child(argv, home)
        seconds = float(seconds_file.read_text())
        if way == "wbtool":
            expected = megabytes * MIB
            log = run_folder(home) / "output.log"
            size = log.stat().st_size if log.is_file() else None
            if size != expected:
                found = "no output.log" if size is None else f"{size:,} bytes"
                raise RuntimeError(f"output.log: expected {expected:,} bytes, found {found}")
    return megabytes / seconds


# -- the quiet run --------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a live process, in clock ticks (its children not counted)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3, the state
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[11]) + int(fields[12])


@dataclass
class Quiet:
    """One ``wbtool run -q -- sleep S`` and its CPU samples: (seconds since start, ticks)."""

    home: Path
    proc: subprocess.Popen[bytes]
    started: float
    next_at: float = SAMPLE_AFTER_S
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    problem: str | None = None


def run_quiet(
    count: int, seconds: float, wbtool: Sequence[str], say: Callable[[str], None]
) -> tuple[list[float], list[float], list[str]]:
    """``count`` quiet runs at once: % of a core after start-up, CPU ms of start-up, problems.

    Each wbtool process is sampled every half second; the first sample is
    taken :data:`SAMPLE_AFTER_S` after it started, the last no later than
    ``seconds`` after, while its ``sleep`` is still running, so neither its
    start-up nor its finish is counted.
    """
    tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    argv = [*wbtool, "run", "-q", "--", "sleep", f"{seconds:g}"]
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        trials: list[Quiet] = []
        sampled = False
        try:
            for number in range(count):
                home = Path(tmp) / str(number)
                home.mkdir()
                with open(home / "stderr", "wb") as err:
                    proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                        env=child_env(home), cwd=home,
                    )
                trials.append(Quiet(home, proc, time.monotonic()))
            sample(trials, seconds)
            sampled = True
        finally:
            for trial in trials:
                if not sampled or trial.problem is not None:
                    trial.proc.kill()
                watchdog = threading.Timer(CHILD_TIMEOUT_S, trial.proc.kill)
                watchdog.start()
                try:
                    trial.proc.wait()
                finally:
                    watchdog.cancel()
        shares, startup_ms, problems = [], [], []
        for number, trial in enumerate(trials, 1):
            if trial.problem is None and trial.proc.returncode != 0:
                tail = _tail(trial.home / "stderr")
                trial.problem = f"exit status {trial.proc.returncode}: {tail}"
            if trial.problem is None and (trial.first is None or trial.last is None):
                trial.problem = "too short to sample"
            if trial.problem is not None or trial.first is None or trial.last is None:
                problems.append(f"quiet run {number}: {trial.problem}")
                say(f"  quiet run {number}/{count} failed: {trial.problem}")
                continue
            (t0, ticks0), (t1, ticks1) = trial.first, trial.last
            share = 100.0 * (ticks1 - ticks0) * tick_s / (t1 - t0)
            shares.append(share)
            startup_ms.append(ticks0 * tick_s * 1000)
            say(f"  quiet run {number}/{count}: {share:.3f}% of a core over {t1 - t0:.1f} s, "
                f"{ticks0 * tick_s * 1000:.0f} ms CPU in the first {t0:.1f} s")
    return shares, startup_ms, problems


def sample(trials: Sequence[Quiet], seconds: float) -> None:
    """Sample every trial's CPU time each half second from its first sample to ``seconds``."""
    while True:
        active = [t for t in trials if t.problem is None and t.next_at <= seconds]
        if not active:
            return
        trial = min(active, key=lambda t: t.started + t.next_at)
        time.sleep(max(0.0, trial.started + trial.next_at - time.monotonic()))
        ticks = cpu_ticks(trial.proc.pid)
        since = time.monotonic() - trial.started
        trial.next_at += POLL_S
        if ticks is None:
            trial.problem = f"wbtool ended {since:.1f} s after its start, before its command"
        elif trial.first is None:
            trial.first = (since, ticks)
        else:
            trial.last = (since, ticks)


# -- the rounds --------------------------------------------------------------------------


def build_cases(megabytes: int, quiet_seconds: float) -> list[Case]:
    return [
        Case("true", "true", "ms", "start"),
        Case("run_true", "  wbtool run -q -- true", "ms", "start", "true", "true", "added",
             ADDED_TARGET_MS),
        Case("python", "python -c pass", "ms", "start"),
        Case("run_python", "  wbtool run -q -- python -c pass", "ms", "start", "python",
             "python", "added", ADDED_TARGET_MS),
        Case("version", "wbtool --version (CLI start-up floor)", "ms", "start"),
        Case("wandb", "wandb import + init + finish", "ms", "start",
             reference=WANDB_INIT_FINISH_MS),
        Case("direct", f"{megabytes} MiB of output: straight to /dev/null", "MiB/s", "capture"),
        Case("pipe", "  piped: | cat > /dev/null", "MiB/s", "capture"),
        Case("tee", "  piped: | tee FILE > /dev/null", "MiB/s", "capture", "pipe", "pipe",
             "ratio"),
        Case("capture", "  wbtool run -q, stdout /dev/null", "MiB/s", "capture", "pipe",
             "pipe", "ratio", CAPTURE_TARGET),
        Case("quiet", f"wbtool run -q -- sleep {quiet_seconds:g}: CPU after start-up",
             "% core", "quiet", target=QUIET_TARGET_PCT),
        Case("quiet_startup", f"  CPU in its first {SAMPLE_AFTER_S:g} s", "ms", "quiet"),
    ]


def jobs(megabytes: int, wbtool: Sequence[str]) -> list[tuple[str, Callable[[], float]]]:
    python = sys.executable
    return [
        ("true", lambda: wall_ms(["true"])),
        ("run_true", lambda: wall_ms([*wbtool, "run", "-q", "--", "true"])),
        ("python", lambda: wall_ms([python, "-c", "pass"])),
        ("run_python", lambda: wall_ms([*wbtool, "run", "-q", "--", python, "-c", "pass"])),
        ("version", lambda: wall_ms([*wbtool, "--version"])),
        ("direct", lambda: throughput("direct", megabytes, wbtool)),
        ("pipe", lambda: throughput("pipe", megabytes, wbtool)),
        ("tee", lambda: throughput("tee", megabytes, wbtool)),
        ("capture", lambda: throughput("wbtool", megabytes, wbtool)),
    ]


def run_round(
    cases: Mapping[str, Case], megabytes: int, wbtool: Sequence[str], *, record: bool,
    say: Callable[[str], None],
) -> None:
    """Every timed case once; ``record`` False for the warm-up round."""
    for key, job in jobs(megabytes, wbtool):
        case = cases[key]
        if case.error:
            continue
        try:
            value = job()
        except (RuntimeError, OSError, ValueError) as exc:
            case.error = str(exc)
            say(f"  {case.label.strip():<42} failed: {exc}")
            continue
        say(f"  {case.label.strip():<42} {_number(value, case.unit):>10} {case.unit}")
        if record:
            case.samples.append(value)


# -- the report --------------------------------------------------------------------------

HEADER = ["case", "median", "unit", "vs anchor", "target", "result"]
RIGHT = {1, 3}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "% core":
        return f"{value:.3f}"
    return f"{value:,.0f}" if unit == "MiB/s" else f"{value:,.1f}"


def case_cells(case: Case, cases: Mapping[str, Case]) -> list[str]:
    if case.error:
        median = "error"
    elif case.reference is not None and not case.samples:
        median = f"{_number(case.reference, case.unit)} (ref)"
    else:
        median = _number(case.median, case.unit)
    value = judged(case, cases)
    if value is None or not case.compare:
        versus = "-"
    elif case.compare == "added":
        versus = f"+{value:,.1f} ms vs {case.anchor_name}"
    else:
        versus = f"{value:.2f}× {case.anchor_name}"
    return [case.label, median, case.unit, versus, target_text(case), status(case, cases)]


def render(cases: Sequence[Case]) -> str:
    by_key = {case.key: case for case in cases}
    body = [case_cells(case, by_key) for case in cases]
    breaks = [index > 0 and case.group != cases[index - 1].group
              for index, case in enumerate(cases)]
    return align(HEADER, body, RIGHT, breaks)


def main(*, repeat: int, megabytes: int, quiet_seconds: float, wbtool: Sequence[str],
         as_json: bool) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    cases = build_cases(megabytes, quiet_seconds)
    by_key = {case.key: case for case in cases}
    say(f"warm-up round ({max(1, megabytes // WARMUP_DIVISOR)} MiB of output, not counted)")
    run_round(by_key, max(1, megabytes // WARMUP_DIVISOR), wbtool, record=False, say=say)
    for number in range(1, repeat + 1):
        say(f"round {number}/{repeat}")
        run_round(by_key, megabytes, wbtool, record=True, say=say)
    say(f"{repeat} quiet run(s) of {quiet_seconds:g} s, at the same time")
    shares, startup_ms, problems = run_quiet(repeat, quiet_seconds, wbtool, say)
    by_key["quiet"].samples, by_key["quiet_startup"].samples = shares, startup_ms
    if problems and not shares:
        by_key["quiet"].error = by_key["quiet_startup"].error = problems[0]

    env = environment(shlex.join(wbtool), Path(tempfile.gettempdir()))
    env.update(repeat=repeat, megabytes=megabytes, quiet_seconds=quiet_seconds,
               wbtool_command=list(wbtool), clock_ticks_per_s=os.sysconf("SC_CLK_TCK"))
    if as_json:
        print_json({
            "benchmark": "run",
            "environment": env,
            "rows": [as_dict(case, by_key) for case in cases],
            "problems": problems,
        })
    else:
        print(
            f"wbtool {env['wbtool']}, Python {env['python']}, {env['platform']}, "
            f"{env['cpus']} CPUs; stores in {env['data_root']} ({env['filesystem']}); "
            f"median of {repeat} round(s) after a warm-up round; wbtool is "
            f"'{shlex.join(wbtool)}'"
        )
        print()
        print(render(cases))
        errors: dict[str, str] = {}
        for case in cases:
            if case.error:
                errors.setdefault(case.error, case.label.strip())
        remarks = [f"{label}: {error}" for error, label in errors.items()]
        remarks += [problem for problem in problems if problem not in errors]
        remarks += [
            "ms: wall time of the whole process; added: wbtool's median less the bare "
            "command's",
            "wandb: measured elsewhere, not here (offline mode, an empty run)",
            "MiB/s: the writer's pace from its first write to its last, so start-up is "
            "not counted; wbtool's output.log is checked to hold every byte; tee keeps one "
            "copy in a file beside the stores, as wbtool does with plain text "
            "(output.log holds it; output.raw points into it)",
            f"CPU: utime + stime of the wbtool process alone (not its command), from "
            f"{SAMPLE_AFTER_S:g} s after its start to {quiet_seconds:g} s, in clock ticks of "
            f"{1000 / os.sysconf('SC_CLK_TCK'):g} ms",
        ]
        print()
        for remark in remarks:
            print(f"- {remark}")
    failed = any(case.error for case in cases) or bool(problems)
    return 1 if failed else 0
