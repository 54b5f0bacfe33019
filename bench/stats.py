"""``python -m bench stats``: what sampling system metrics costs the process that does it.

The benchmark process starts 50 idle children (``sleep``) and samples
itself with its process tree tracked (51 processes), through
``Sampler.sample_once`` over the system collector, as a run's sampler thread
does: every ``interval`` seconds for ``seconds`` seconds. The CPU time per
sample is ``Sampler.cpu_seconds / Sampler.samples`` (``time.thread_time``
around each sample); the share of one core at the default 2 s interval is
that time over 2,000 ms. Two more rows show where the time goes: the same
readings for this process alone (the machine-wide files only), and the
tree through psutil instead of /proc.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report import align, environment, print_json

CHILDREN = 50
SAMPLE_TARGET_MS = 2.0  # CPU per sample, the tree of 51 tracked
DEFAULT_INTERVAL_S = 2.0  # x_stats_sampling_interval's default
CORE_TARGET_PCT = 0.2  # of one core at the default interval


@dataclass
class Case:
    """One way of sampling, measured once per round."""

    label: str
    interval_s: float
    tree: bool
    readers: str = "procfs"  # "procfs, anew": find the tree at every sample; "psutil"
    judged: bool = True
    ms_per_sample: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    rss_mib: float | None = None
    rss_growth_mib: float | None = None
    threads: int | None = None
    error: str | None = None

    @property
    def ms(self) -> float | None:
        return statistics.median(self.ms_per_sample) if self.ms_per_sample else None

    @property
    def core_pct(self) -> float | None:
        ms = self.ms
        return None if ms is None else 100.0 * ms / (DEFAULT_INTERVAL_S * 1000)

    def status(self) -> str:
        if self.error:
            return "ERROR"
        ms, pct = self.ms, self.core_pct
        if not self.judged or ms is None or pct is None:
            return ""
        missed = [name for name, ok in (("ms", ms < SAMPLE_TARGET_MS),
                                        ("core", pct < CORE_TARGET_PCT)) if not ok]
        return "PASS" if not missed else "MISS: " + ", ".join(missed)

    def as_dict(self) -> dict[str, Any]:
        ms, pct = self.ms, self.core_pct
        return {
            "case": self.label,
            "interval_s": self.interval_s,
            "tree": self.tree,
            "readers": self.readers,
            "threads": self.threads,
            "samples": self.samples,
            "ms_per_sample": None if ms is None else round(ms, 4),
            "ms_per_sample_rounds": [round(value, 4) for value in self.ms_per_sample],
            "core_pct_at_2s": None if pct is None else round(pct, 4),
            "rss_mib": None if self.rss_mib is None else round(self.rss_mib, 1),
            "rss_growth_mib": None if self.rss_growth_mib is None else round(
                self.rss_growth_mib, 1),
            "targets": ([f"<{SAMPLE_TARGET_MS:g} ms/sample",
                         f"<{CORE_TARGET_PCT:g}% of a core at {DEFAULT_INTERVAL_S:g} s"]
                        if self.judged else []),
            "status": self.status() or None,
            "error": self.error,
        }


def build_cases() -> list[Case]:
    tree = f"tree of {CHILDREN + 1}"
    return [
        Case(f"{tree}, every 1 s", 1.0, True),
        Case(f"{tree}, every 0.1 s", 0.1, True),
        Case(f"{tree}, found anew each sample, every 1 s", 1.0, True, readers="procfs, anew"),
        Case("this process alone, every 0.1 s", 0.1, False, judged=False),
        Case(f"{tree}, psutil readers, every 1 s", 1.0, True, readers="psutil", judged=False),
    ]


def rss_mib() -> float | None:
    """The resident memory of this process now (Linux), else its peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def start_children(count: int) -> list[subprocess.Popen[bytes]]:
    sleep = shutil.which("sleep")
    argv = [sleep, "3600"] if sleep else [sys.executable, "-c", "import time; time.sleep(3600)"]
    return [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for _ in range(count)]


def make_collector(case: Case) -> Any:
    from wbtool.settings import Settings
    from wbtool.stats import system
    from wbtool.stats.base import Target

    target = Target(os.getpid(), tree=case.tree)
    settings = Settings(x_stats_track_process_tree=case.tree).to_dict()
    if case.readers == "psutil":
        import psutil

        return system.SystemCollector(settings, system._PsutilProcesses(target, psutil),
                                      system._PsutilSystem(psutil), psutil)
    if case.readers == "procfs, anew":
        if not system._has_procfs():
            return None
        return system.SystemCollector(settings, system._ProcfsProcesses(target, again=False),
                                      system._ProcfsSystem())
    return system.probe(settings, target)


def measure(case: Case, seconds: float, expected: int) -> None:
    """One round of ``case``: sample every interval for ``seconds``."""
    from wbtool.stats.sampler import Sampler

    warnings: list[str] = []
    before = rss_mib()
    collector = make_collector(case)
    if collector is None:
        case.error = "no system collector on this machine"
        return
    sampler = Sampler([collector], lambda row: None, interval=case.interval_s,
                      started=time.time(), warn=warnings.append)
    row: dict[str, Any] = {}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(case.interval_s)
            row = sampler.sample_once()
    finally:
        sampler.stop()
    if warnings:
        case.error = warnings[0]
        return
    case.threads = row.get("proc.cpu.threads")
    if case.tree and (case.threads or 0) < expected:
        case.error = f"the tree shows {case.threads} threads, expected at least {expected}"
    after = rss_mib()
    case.ms_per_sample.append(1000 * sampler.cpu_seconds / max(1, sampler.samples))
    case.samples.append(sampler.samples)
    case.rss_mib = after
    if before is not None and after is not None:
        case.rss_growth_mib = max(case.rss_growth_mib or 0.0, after - before)


HEADER = ["case", "samples", "ms/sample", "% core at 2 s", "RSS MiB", "target", "result"]
RIGHT = {1, 2, 3, 4}


def cells(case: Case) -> list[str]:
    ms, pct = case.ms, case.core_pct
    target = (f"<{SAMPLE_TARGET_MS:g} ms, <{CORE_TARGET_PCT:g}%" if case.judged else "-")
    return [
        case.label,
        "-" if not case.samples else str(sum(case.samples)),
        "-" if ms is None else f"{ms:.3f}",
        "-" if pct is None else f"{pct:.4f}",
        "-" if case.rss_mib is None else f"{case.rss_mib:.1f}",
        target,
        case.status(),
    ]


def render(cases: Sequence[Case]) -> str:
    body = [cells(case) for case in cases]
    return align(HEADER, body, RIGHT)


def main(*, repeat: int, seconds: float, wbtool: str, as_json: bool) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    cases = build_cases()
    baseline = rss_mib()
    children = start_children(CHILDREN)
    try:
        time.sleep(0.2)  # let every child reach its sleep
        for number in range(1, repeat + 1):
            for case in cases:
                say(f"round {number}/{repeat}: {case.label} for {seconds:g} s")
                measure(case, seconds, CHILDREN + 1)
    finally:
        for child in children:
            with contextlib.suppress(OSError):
                child.kill()
        for child in children:
            child.wait()

    env = environment(wbtool)
    env.update(repeat=repeat, seconds=seconds, children=CHILDREN,
               rss_before_mib=None if baseline is None else round(baseline, 1))
    failed = any(case.error for case in cases)
    if as_json:
        print_json({"benchmark": "stats", "environment": env,
                    "rows": [case.as_dict() for case in cases]})
        return 1 if failed else 0
    print(f"wbtool {env['wbtool']}, Python {env['python']}, {env['platform']}, "
          f"{env['cpus']} CPUs; {CHILDREN} idle children; {seconds:g} s per case; "
          f"median of {repeat} round(s)")
    print()
    print(render(cases))
    print()
    remarks = [f"{case.label}: {case.error}" for case in cases if case.error]
    remarks.append("ms/sample: CPU time (time.thread_time) of Sampler.sample_once over the "
                   "system collector; % core at 2 s = ms/sample / 2000 ms")
    growth = max((case.rss_growth_mib or 0.0 for case in cases), default=0.0)
    remarks.append(f"RSS: this whole process after the case ({baseline or 0:.1f} MiB before "
                   f"the first); the most one collector added: {growth:.1f} MiB")
    for remark in remarks:
        print(f"- {remark}")
    return 1 if failed else 0
