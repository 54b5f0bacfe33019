"""``python -m bench log``: the cost of ``run.log``, of starting a run, and its durability.

Every measurement runs in a fresh Python process with its own store
(``WBTOOL_DIR``) and working folder, so that imports, threads and files of
one cannot help or hinder the next. The first round runs every case once,
untimed, at a hundredth of the calls (byte-code and page caches); then
``repeat`` timed rounds follow, each running every case once, so that a busy
moment of the machine hits wbtool and wandb alike. Durability trials run
last: a child logs rows, the benchmark kills it with SIGKILL a set time
after its last ``run.log`` and counts the rows in its ``history.jsonl``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from bench.report import align, environment, print_json

LOG3_TARGET = 100_000.0  # calls/s
LOG50_TARGET = 20_000.0  # calls/s
STARTUP_TARGET_MS = 100.0
# wandb offline, measured elsewhere; shown when wandb is not installed here.
WANDB_REFERENCE = {"log3": 6_900.0, "log50": 2_180.0, "startup": 870.0}
DURABILITY_ROWS = 1_000
KILL_DELAYS_S = (2.0, 0.5)
JUDGED_DELAY_S = 2.0  # a kill this long after the last log must lose nothing
CHILD_TIMEOUT_S = 600.0
WARMUP_DIVISOR = 100

# Text run in the children. ``{open}`` becomes the tool's import and init.
OPEN = {
    "wbtool": (
        "import wbtool\n"
        'run = wbtool.init(project="bench", settings={"quiet": True, "console": "off"})\n'
    ),
    "wandb": 'import wandb\nrun = wandb.init(project="bench")\n',
}
PEAK = """\
def peak_mib():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
"""
LOG_SCRIPT = """\
import json, sys, time
calls, width = int(sys.argv[1]), int(sys.argv[2])
keys = [f"metric_{{k:02d}}" for k in range(width)]
rows = [{{key: step * 0.001 + k for k, key in enumerate(keys)}} for step in range(calls)]
{open}log = run.log
start = time.perf_counter()
for row in rows:
    log(row)
logged = time.perf_counter()
run.finish()
done = time.perf_counter()
{peak}
print("BENCH", json.dumps({{"loop_s": logged - start, "finish_s": done - logged,
                           "peak_mib": peak_mib()}}))
"""
STARTUP_SCRIPT = """\
import time
start = time.perf_counter()
{open}run.finish()
done = time.perf_counter()
print("BENCH", done - start)
"""
IMPORT_SCRIPT = """\
import time
start = time.perf_counter()
import {tool}
done = time.perf_counter()
print("BENCH", done - start)
"""
DURABILITY_SCRIPT = """\
import sys, time
{open}for step in range(int(sys.argv[1])):
    run.log({{"i": step, "x": step * 0.5}})
print("logged", run.id, flush=True)
time.sleep(3600)
"""


@dataclass
class Case:
    """One measured quantity, with its wandb counterpart when there is one."""

    key: str
    label: str
    unit: str  # "calls/s" or "ms"
    target: float | None = None
    samples: list[float] = field(default_factory=list)
    wandb: list[float] = field(default_factory=list)
    wandb_reference: float | None = None
    peak_mib: float | None = None
    error: str | None = None

    @property
    def faster_is_higher(self) -> bool:
        return self.unit == "calls/s"

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and not self.error else None

    def anchor(self) -> tuple[float | None, str]:
        """wandb's median and where it comes from ("measured", "reference" or "")."""
        if self.wandb:
            return statistics.median(self.wandb), "measured"
        if self.wandb_reference is not None:
            return self.wandb_reference, "reference"
        return None, ""

    def vs_target(self) -> float | None:
        value = self.median
        return None if value is None or self.target is None else value / self.target

    def speedup(self) -> float | None:
        """How many times faster than wandb (below 1: slower)."""
        value, _source = self.anchor()
        if value is None or not self.median:
            return None
        return self.median / value if self.faster_is_higher else value / self.median

    def status(self) -> str:
        if self.error:
            return "ERROR"
        ratio = self.vs_target()
        if ratio is None:
            return ""
        met = ratio >= 1.0 if self.faster_is_higher else ratio < 1.0
        return "PASS" if met else "MISS"

    def as_dict(self) -> dict[str, Any]:
        wandb_value, source = self.anchor()
        return {
            "case": self.key,
            "label": self.label.strip(),
            "unit": self.unit,
            "median": _round(self.median),
            "samples": [round(value, 3) for value in self.samples],
            "peak_mib": _round(self.peak_mib),
            "target": self.target,
            "vs_target": _round(self.vs_target()),
            "wandb_median": _round(wandb_value),
            "wandb_samples": [round(value, 3) for value in self.wandb],
            "wandb_source": source or None,
            "speedup_vs_wandb": _round(self.speedup()),
            "status": self.status() or None,
            "error": self.error,
        }


@dataclass
class Kill:
    """Trials that SIGKILL a child ``delay_s`` after its last ``run.log``."""

    delay_s: float
    logged: list[int] = field(default_factory=list)
    found: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def status(self) -> str:
        if not self.logged or len(self.problems) == len(self.logged):
            return "ERROR"
        if self.delay_s < JUDGED_DELAY_S:
            return ""  # informative: rows reach the file about once a second
        return "PASS" if self.found == self.logged and not self.problems else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kill_after_s": self.delay_s,
            "rows_logged": self.logged,
            "rows_found": self.found,
            "problems": self.problems,
            "status": self.status() or None,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- children ---------------------------------------------------------------------------


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WBTOOL_DIR=str(home / ".wbtool"),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(home),
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_CONFIG_DIR=str(home / "config"),
    )
    return env


def run_child(
    script: str, args: Sequence[str] = (), *, want_payload: bool = True
) -> tuple[float, str]:
    """Run ``python -c script`` in a fresh folder; its wall time and its ``BENCH`` payload.

    Output goes to files, not pipes, so that a helper process the child
    leaves behind cannot hold the benchmark up.
    """
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        home = Path(tmp)
        out_path, err_path = home / "stdout", home / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", script, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=child_env(home),
                cwd=home,
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
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
    payload = [line[6:] for line in stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or (want_payload and not payload):
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output on stderr"
        raise RuntimeError(f"exit status {proc.returncode}: {tail}")
    return seconds, payload[-1] if payload else ""


def measure_log(tool: str, calls: int, width: int) -> dict[str, Any]:
    script = LOG_SCRIPT.format(open=OPEN[tool], peak=PEAK)
    _seconds, payload = run_child(script, [str(calls), str(width)])
    result: dict[str, Any] = json.loads(payload)
    return result


def measure_seconds(script: str) -> tuple[float, float]:
    """Wall time of the child process, and the time the child measured itself."""
    wall, payload = run_child(script)
    return wall, float(payload)


@dataclass
class Victim:
    """A child of a durability trial."""

    kill: Kill
    home: Path
    proc: subprocess.Popen[str]
    stream: IO[str]
    run_id: str | None = None
    kill_at: float | None = None
    killed: bool = False
    problem: str | None = None


def start_victim(kill: Kill, home: Path) -> Victim:
    home.mkdir()
    with open(home / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", DURABILITY_SCRIPT.format(open=OPEN["wbtool"]),
             str(DURABILITY_ROWS)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=child_env(home),
            cwd=home,
            text=True,
        )
    assert proc.stdout is not None
    return Victim(kill, home, proc, proc.stdout)


def watch(victims: Sequence[Victim]) -> None:
    """SIGKILL each child its delay after it reports its last log."""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    by_stream = {victim.stream: victim for victim in victims}
    while True:
        now = time.monotonic()
        for victim in victims:
            if victim.kill_at is not None and not victim.killed and now >= victim.kill_at:
                victim.proc.send_signal(signal.SIGKILL)
                victim.killed = True
        waiting = [v for v in victims if v.run_id is None and v.problem is None]
        due = [v.kill_at for v in victims if v.kill_at is not None and not v.killed]
        if not waiting and not due:
            return
        if now >= deadline:
            for victim in waiting:
                victim.problem = "no report from the child in time"
            return
        timeout = min([deadline, *due]) - now
        ready, _, _ = select.select([v.stream for v in waiting], [], [], timeout)
        for stream in ready:
            victim = by_stream[stream]
            line = stream.readline()
            parts = line.split()
            if len(parts) == 2 and parts[0] == "logged":
                victim.run_id = parts[1]
                victim.kill_at = time.monotonic() + victim.kill.delay_s
            else:
                tail = (victim.home / "stderr").read_text(errors="replace").strip()
                last = " | ".join(tail.splitlines()[-3:]) or "no output on stderr"
                victim.problem = f"child did not report its run: {last}"


def count_rows(victim: Victim) -> int:
    """Rows in the killed run's history; sets ``problem`` if they are not 0, 1, 2, ..."""
    from wbtool.runs.history import iter_rows

    if victim.run_id is None:
        return 0
    history = victim.home / ".wbtool" / "runs" / victim.run_id / "history.jsonl"
    if not history.is_file():
        victim.problem = f"no {history.relative_to(victim.home)}"
        return 0
    found = list(iter_rows(history))
    if [row.get("i") for row in found] != list(range(len(found))):
        victim.problem = "rows out of order, repeated or damaged"
    return len(found)


# -- the rounds --------------------------------------------------------------------------


def build_cases(calls3: int, calls50: int) -> list[Case]:
    ref = WANDB_REFERENCE
    return [
        Case("log3_loop", f"{calls3:,} × log, 3 keys: loop", "calls/s", LOG3_TARGET,
             wandb_reference=ref["log3"]),
        Case("log3_finish", "  finish()", "ms"),
        Case("log3_total", "  loop + finish()", "calls/s"),
        Case("log50_loop", f"{calls50:,} × log, 50 keys: loop", "calls/s", LOG50_TARGET,
             wandb_reference=ref["log50"]),
        Case("log50_finish", "  finish()", "ms"),
        Case("log50_total", "  loop + finish()", "calls/s"),
        Case("startup_wall", "import + init + finish: process wall", "ms", STARTUP_TARGET_MS,
             wandb_reference=ref["startup"]),
        Case("startup_inproc", "  in-process", "ms"),
        Case("python_pass", "  python -c pass (baseline)", "ms"),
        Case("import", "import alone: in-process", "ms"),
    ]


@dataclass(frozen=True)
class Result:
    """What one child measured: values by case key, its peak memory, a progress line."""

    values: dict[str, float]
    peak_mib: float | None
    line: str


def log_job(tool: str, prefix: str, calls: int, width: int) -> Result:
    result = measure_log(tool, calls, width)
    loop_s, finish_s = float(result["loop_s"]), float(result["finish_s"])
    peak = result.get("peak_mib")
    values = {
        f"{prefix}_loop": calls / loop_s,
        f"{prefix}_finish": finish_s * 1000,
        f"{prefix}_total": calls / (loop_s + finish_s),
    }
    line = f"{calls / loop_s:12,.0f} calls/s  finish {finish_s * 1000:8.1f} ms"
    return Result(values, None if peak is None else float(peak), line)


def startup_job(tool: str) -> Result:
    wall, inproc = measure_seconds(STARTUP_SCRIPT.format(open=OPEN[tool]))
    values = {"startup_wall": wall * 1000, "startup_inproc": inproc * 1000}
    return Result(values, None, f"{wall * 1000:12.1f} ms wall  {inproc * 1000:8.1f} ms in-process")


def import_job(tool: str) -> Result:
    _wall, inproc = measure_seconds(IMPORT_SCRIPT.format(tool=tool))
    return Result({"import": inproc * 1000}, None, f"{inproc * 1000:12.1f} ms in-process")


def bare_job() -> Result:
    wall, _payload = run_child("pass", want_payload=False)
    return Result({"python_pass": wall * 1000}, None, f"{wall * 1000:12.1f} ms wall")


def run_round(
    cases: Mapping[str, Case], tools: Sequence[str], calls3: int, calls50: int, *,
    record: bool, say: Callable[[str], None],
) -> None:
    """Every case once for every tool; ``record`` False for the warm-up round."""
    jobs: list[tuple[str, str, list[str], Callable[[], Result]]] = []
    for tool in tools:
        for prefix, calls, width in (("log3", calls3, 3), ("log50", calls50, 50)):
            keys = [f"{prefix}_loop", f"{prefix}_finish", f"{prefix}_total"]
            jobs.append((tool, f"{prefix} log", keys, partial(log_job, tool, prefix, calls, width)))
        jobs.append((tool, "startup", ["startup_wall", "startup_inproc"],
                     partial(startup_job, tool)))
        jobs.append((tool, "import", ["import"], partial(import_job, tool)))
    jobs.append(("python", "-c pass", ["python_pass"], bare_job))

    for tool, name, keys, job in jobs:
        measured = tool != "wandb"
        if measured and cases[keys[0]].error:
            continue
        try:
            result = job()
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            say(f"  {tool:<7} {name:<10} failed: {exc}")
            if measured:
                for key in keys:
                    cases[key].error = str(exc)
            continue
        say(f"  {tool:<7} {name:<10} {result.line}")
        if not record:
            continue
        for key, value in result.values.items():
            (cases[key].samples if measured else cases[key].wandb).append(value)
        if measured and result.peak_mib is not None:
            case = cases[keys[0]]
            case.peak_mib = max(case.peak_mib or 0.0, result.peak_mib)


def run_kills(trials: int, say: Callable[[str], None]) -> list[Kill]:
    """Every trial at once: each child is killed its delay after its own last log."""
    kills = [Kill(delay) for delay in KILL_DELAYS_S]
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        victims: list[Victim] = []
        try:
            for trial in range(trials):
                for number, kill in enumerate(kills):
                    victims.append(start_victim(kill, Path(tmp) / f"{trial}-{number}"))
            watch(victims)
        finally:
            for victim in victims:
                if victim.proc.poll() is None:
                    victim.proc.kill()
                victim.proc.wait()
                victim.stream.close()
        for index, victim in enumerate(victims):
            found = count_rows(victim)
            kill = victim.kill
            kill.logged.append(DURABILITY_ROWS)
            kill.found.append(found)
            trial = index // len(kills) + 1
            if victim.problem:
                kill.problems.append(f"trial {trial}: {victim.problem}")
            say(f"  kill {kill.delay_s:.1f} s after the last log, trial {trial}/{trials}:"
                f" {found}/{DURABILITY_ROWS} rows"
                + (f" ({victim.problem})" if victim.problem else ""))
    return kills


# -- the report --------------------------------------------------------------------------

HEADER = ["case", "median", "unit", "vs target", "wandb offline", "vs wandb", "peak MiB",
          "target", "result"]
RIGHT = {1, 3, 4, 5, 6}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if unit == "calls/s" else f"{value:,.1f}"


def case_cells(case: Case) -> list[str]:
    wandb_value, source = case.anchor()
    wandb_text = _number(wandb_value, case.unit)
    if source == "reference":
        wandb_text += " (ref)"
    speedup = case.speedup()
    if speedup is None:
        vs_wandb = "-"
    elif speedup >= 1:
        vs_wandb = f"{speedup:.1f}× faster"
    else:
        vs_wandb = f"{1 / speedup:.1f}× slower"
    ratio = case.vs_target()
    if case.target is None:
        target = "-"
    elif case.faster_is_higher:
        target = f"≥{case.target:,.0f} calls/s"
    else:
        target = f"<{case.target:g} ms"
    return [
        case.label,
        "error" if case.error else _number(case.median, case.unit),
        case.unit,
        "-" if ratio is None else f"{ratio:.2f}×",
        wandb_text,
        vs_wandb,
        "-" if case.peak_mib is None else f"{case.peak_mib:.0f}",
        target,
        case.status(),
    ]


def kill_cells(kill: Kill) -> list[str]:
    share = sum(kill.found) / sum(kill.logged) if kill.logged else None
    return [
        f"SIGKILL {kill.delay_s:.1f} s after the last log",
        f"{sum(kill.found):,}/{sum(kill.logged):,}",
        "rows",
        "-" if share is None else f"{share:.1%}",
        "-",
        "-",
        "-",
        "no row lost" if kill.delay_s >= JUDGED_DELAY_S else "- (informative)",
        kill.status(),
    ]


def render(cases: Sequence[Case], kills: Sequence[Kill]) -> str:
    body = [case_cells(case) for case in cases]
    groups = [case.label.startswith("  ") for case in cases]
    body += [kill_cells(kill) for kill in kills]
    groups += [index > 0 for index in range(len(kills))]
    breaks = [index > 0 and not continued for index, continued in enumerate(groups)]
    return align(HEADER, body, RIGHT, breaks)


def main(*, repeat: int, calls3: int, calls50: int, trials: int, wandb: bool, wbtool: str,
         as_json: bool) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    has_wandb = wandb and importlib.util.find_spec("wandb") is not None
    tools = ["wbtool", "wandb"] if has_wandb else ["wbtool"]
    cases = build_cases(calls3, calls50)
    by_key = {case.key: case for case in cases}
    say("warm-up round (a hundredth of the calls, not counted)")
    run_round(by_key, tools, max(1, calls3 // WARMUP_DIVISOR),
              max(1, calls50 // WARMUP_DIVISOR), record=False, say=say)
    for number in range(1, repeat + 1):
        say(f"round {number}/{repeat}")
        run_round(by_key, tools, calls3, calls50, record=True, say=say)
    kills = run_kills(trials, say) if trials and not by_key["startup_wall"].error else []

    env = environment(wbtool, Path(tempfile.gettempdir()))
    env.update(repeat=repeat, trials=trials, calls3=calls3, calls50=calls50)
    env["wandb"] = metadata.version("wandb") if has_wandb else None
    if as_json:
        print_json({
            "benchmark": "log",
            "environment": env,
            "rows": [case.as_dict() for case in cases],
            "durability": [kill.as_dict() for kill in kills],
        })
    else:
        if has_wandb:
            wandb_text = f"wandb {env['wandb']} offline measured alongside"
        else:
            why = "left out" if not wandb else "not installed"
            wandb_text = f"wandb {why}: its figures are references, not measured here"
        print(
            f"wbtool {env['wbtool']}, Python {env['python']}, {env['platform']}, "
            f"{env['cpus']} CPUs; stores in {env['data_root']} ({env['filesystem']}); "
            f"median of {repeat} round(s) after a warm-up round; {wandb_text}"
        )
        print()
        print(render(cases, kills))
        errors = {case.error: case.label.strip() for case in reversed(cases) if case.error}
        remarks = [f"{label}: {error}" for error, label in reversed(errors.items())]
        remarks += [problem for kill in kills for problem in kill.problems]
        remarks += [
            f"SIGKILL {kill.delay_s:.1f} s after the last log: rows found per trial "
            f"{', '.join(map(str, kill.found))} (of {DURABILITY_ROWS} each)"
            for kill in kills
        ]
        remarks.append("loop: run.log calls only; finish() flushes and closes the run")
        remarks.append(
            "peak MiB: the wbtool child process (VmHWM), rows built before the loop included"
        )
        print()
        for remark in remarks:
            print(f"- {remark}")
    failed = any(case.error for case in cases) or any(kill.status() == "ERROR" for kill in kills)
    return 1 if failed else 0
