"""The run cases of ``python -m bench sync``: ``wbtool sync`` of run folders.

A sync of runs checks its record of what was sent against the remote before
trusting it (``wbtool/remote/runsync.py``): one listing of the run folders per
project for a sync of every run, one whole listing of each run for a sync
that names its runs (``wbtool sync RUN_ID``, as ``wbtool run --sync`` and
``--live`` run it). These cases time what that costs when there is nothing
or little to send, on the moto server of the artifact cases and on a folder
remote, from two stores:

- "plain": N runs, each as a short training script leaves it (``wbtool.init``,
  ten ``run.log`` rows, ``finish()``), sent whole by a first sync;
- "parts": K runs whose history went out as P parts, one row each, as
  ``--live`` sends a run that logs a row between two of its pushes, and N
  plain runs beside them.

There is no anchor: ``wandb sync`` needs a server. The runs and the parts
are made by a child process of this Python (``BUILDER``) through wbtool's
own functions, the ones ``wbtool log`` and ``wbtool sync`` call: K × P
``wbtool log`` and ``wbtool sync RUN_ID`` processes (most of an hour at the
defaults) would leave the same objects on the remote. Each of the P passes
syncs every run of the store, listing the run folders once, where ``--live``
lists its run whole; the parts and the sync record come out the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets import format_count
from bench.fsutil import remove_tree, settle
from bench.report import Target, align, format_seconds
from bench.runner import Sample, Timing, describe, run_quiet

DEFAULT_RUNS = 200
QUICK_RUNS = 50
DEFAULT_PART_RUNS = 5
DEFAULT_PARTS = 2_000
QUICK_PARTS = 200
PROJECT = "bench"
REMOTES = ("moto", "folder")  # the names of the two remotes in each store

FIRST = "first sync"
NOOP = "no-op sync"
NOOP_RUN = "no-op sync RUN_ID"
APPENDED = "sync, 1 new row per run"
PLAIN_RUN = "1 plain run"

# DESIGN.md §3: "a second push with nothing new finishes in well under a
# second for 10,000 objects' worth of state".
NOOP_TARGET = Target("seconds", 1.0, inclusive=False)

HEADER = ["case", "data", "remote", "wbtool", "per item", "CPU", "target", "result"]
RIGHT = {3, 4, 5}

# Runs in a child process, with WBTOOL_DIR set to the store:
#   make COUNT ROWS     -> COUNT runs of project "bench", each with ROWS history rows;
#                          prints their ids as a JSON list
#   append ID...        -> one history row more in each run, as 'wbtool log --run ID'
#   parts PARTS ID...   -> PARTS times: one row more in each run, then a sync of the
#                          store's runs to each remote (the parts a live push leaves)
BUILDER = """\
import json, sys
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "make":
    import wbtool
    ids = []
    for _ in range(int(args[0])):
        run = wbtool.init(project="bench", config={"lr": 0.001, "batch": 64},
                          settings={"quiet": True, "console": "off"})
        for step in range(int(args[1])):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 100})
        run.finish()
        ids.append(run.id)
    print(json.dumps(ids))
    sys.exit(0)
from wbtool.context import Context
from wbtool.runs.shell import log_values
ctx = Context.from_settings(None)
if cmd == "append":
    for run_id in args:
        log_values(ctx, run_id, {"loss": 0.5, "acc": 0.9})
    sys.exit(0)
from wbtool.remote import config, runsync
from wbtool.remote.fs import open_remote
remotes = [open_remote(*config.resolve(ctx.store, name), create=True)
           for name in ("moto", "folder")]
for step in range(int(args[0])):
    for run_id in args[1:]:
        log_values(ctx, run_id, {"loss": 1.0 / (step + 1), "acc": step / 100000})
    for remote in remotes:
        runsync.push_runs(ctx.store.path, remote)
"""


RunResults = dict[tuple[str, str, str], Timing]  # (case, data, remote) → timing


@dataclass
class Store:
    """A store (``WBTOOL_DIR``) with the two remotes, and the runs it holds."""

    name: str
    work: Path
    env: dict[str, str]
    plain: list[str] = field(default_factory=list)
    parted: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.plain) + len(self.parted)


@dataclass
class Setup:
    """What the run cases need from the artifact cases' harness."""

    wbtool: str
    endpoint: str
    bucket: Any  # bench.sync.Bucket
    bucket_name: str
    env: dict[str, str]
    scratch: Path
    timed: Callable[..., tuple[Sample, float, str]]
    say: Callable[[str], None]


class BuildError(RuntimeError):
    """A store could not be made (an untimed step failed)."""


def _builder(setup: Setup, store: Store, *args: str) -> str:
    try:
        done = run_quiet([sys.executable, "-c", BUILDER, *args], env=store.env, cwd=store.work)
    except subprocess.CalledProcessError as exc:
        tail = " ".join((exc.stderr or "").split())[-500:]
        raise BuildError(f"building store {store.name} ({args[0]}) exited {exc.returncode}: "
                         f"{tail}") from None
    return done.stdout


def make_store(setup: Setup, name: str) -> Store:
    work = setup.scratch / f"runs-{name}"
    work.mkdir(parents=True)
    store = Store(name, work, {**setup.env, "WBTOOL_DIR": str(work / ".wbtool")})
    folder = setup.scratch / f"remote-{name}"
    for remote, url, options in (
        ("moto", f"s3://{setup.bucket_name}/{name}", ["-o", f"endpoint_url={setup.endpoint}"]),
        ("folder", str(folder), []),
    ):
        try:
            run_quiet([setup.wbtool, "remote", "add", remote, url, *options], env=store.env,
                      cwd=work)
        except subprocess.CalledProcessError as exc:
            raise BuildError(f"wbtool remote add {remote} exited {exc.returncode}: "
                             f"{' '.join((exc.stderr or '').split())[-500:]}") from None
    return store


def make_runs(setup: Setup, store: Store, count: int, rows: int) -> list[str]:
    ids: list[str] = json.loads(_builder(setup, store, "make", str(count), str(rows)))
    return ids


def sync_argv(setup: Setup, remote: str, run_ids: Sequence[str] = ()) -> list[str]:
    return [setup.wbtool, "sync", "--no-artifacts", "--json", "--remote", remote, *run_ids]


def runs_sent(stdout: str) -> int | None:
    try:
        return int(json.loads(stdout)["result"]["runs_sent"])
    except (ValueError, KeyError, TypeError):
        return None


def time_sync(setup: Setup, store: Store, remote: str, run_ids: Sequence[str], expect: int,
              timing: Timing | None) -> str | None:
    """Run one sync (timed into ``timing`` unless None); a problem, or None."""
    argv = sync_argv(setup, remote, run_ids)
    # A folder remote and the sync record are written with fsync: the disk must
    # not still be writing out what the untimed steps before left behind.
    settle(store.work)
    sample, cpu, stdout = setup.timed(argv, store.env, store.work)
    if sample.returncode != 0:
        return f"exited {sample.returncode}: {' '.join(sample.stderr.split())[-500:]}"
    sent = runs_sent(stdout)
    if sent != expect:
        return f"sent {sent} run(s), expected {expect}"
    if timing is not None:
        timing.command = describe(argv)
        timing.samples.append(sample)
        timing.cpu_s.append(cpu)
    return None


@dataclass(frozen=True)
class Sizes:
    runs: int
    part_runs: int
    parts: int

    @property
    def plain_label(self) -> str:
        return f"{format_count(self.runs)} runs"

    @property
    def parts_label(self) -> str:
        return (f"{format_count(self.runs)} runs + {self.part_runs} × "
                f"{self.parts:,} parts")


def measure_runs(setup: Setup, sizes: Sizes, repeat: int,
                 facts: list[str]) -> RunResults:
    """Make both stores, then time every run case ``repeat`` times, round by round;
    add what the remote held after the first syncs to ``facts``."""
    results: RunResults = {}

    def slot(case: str, data: str, remote: str) -> Timing:
        return results.setdefault((case, data, remote), Timing())

    def attempt(case: str, data: str, store: Store, remote: str, ids: Sequence[str],
                expect: int, timed: bool = True) -> None:
        timing = slot(case, data, remote)
        if timing.error:
            return
        problem = time_sync(setup, store, remote, ids, expect, timing if timed else None)
        if problem:
            timing.error = problem
        elif timed and timing.samples:
            sample = timing.samples[-1]
            setup.say(f"    {case}, {data}, {remote}: {sample.seconds:.3f} s")

    plain_label, parts_label = sizes.plain_label, sizes.parts_label
    setup.say(f"runs: making store 'plain' ({plain_label})")
    plain = make_store(setup, "plain")
    plain.plain = make_runs(setup, plain, sizes.runs, 10)
    for remote in REMOTES:
        attempt(FIRST, plain_label, plain, remote, (), sizes.runs)

    setup.say(f"runs: making store 'parts' ({parts_label}: {sizes.part_runs * sizes.parts:,} "
              f"history parts, one sync per row)")
    parts = make_store(setup, "parts")
    parts.parted = make_runs(setup, parts, sizes.part_runs, 0)
    _builder(setup, parts, "parts", str(sizes.parts), *parts.parted)
    parts.plain = make_runs(setup, parts, sizes.runs, 10)
    for remote in REMOTES:
        problem = time_sync(setup, parts, remote, (), sizes.runs, None)
        if problem:
            raise BuildError(f"the first sync of store 'parts' to {remote}: {problem}")
    _check_parts(setup, sizes, parts.parted[0])
    for name, store in (("plain", plain), ("parts", parts)):
        objects = len(setup.bucket.keys(name))
        facts.append(f"runs: store '{name}': {store.runs:,} runs, {objects:,} objects on the "
                     f"server after the first sync")

    many, few = parts.parted[0], parts.plain[0]
    run_many = f"1 run of {sizes.parts:,} parts"
    run_few = PLAIN_RUN
    cases = [
        (NOOP, plain_label, plain, ()),
        (NOOP, parts_label, parts, ()),
        (NOOP_RUN, run_many, parts, (many,)),
        (NOOP_RUN, run_few, parts, (few,)),
    ]
    setup.say("runs: warm-up (not counted)")
    for case, data, store, ids in cases:
        for remote in REMOTES:
            attempt(case, data, store, remote, ids, 0, timed=False)
    for number in range(repeat):
        setup.say(f"runs: round {number + 1}/{repeat}")
        for case, data, store, ids in cases:
            for remote in REMOTES:
                attempt(case, data, store, remote, ids, 0)
        _builder(setup, plain, "append", *plain.plain)
        for remote in REMOTES:
            attempt(APPENDED, plain_label, plain, remote, (), sizes.runs)
    return results


def _check_parts(setup: Setup, sizes: Sizes, run_id: str) -> None:
    """The many-parts run holds its parts on the server, as a live push leaves them."""
    prefix = f"parts/projects/{PROJECT}/runs/{run_id}/history.jsonl.parts"
    there = len(setup.bucket.keys(prefix))
    if there != sizes.parts:
        raise BuildError(f"run {run_id} has {there} history parts on the server, "
                         f"expected {sizes.parts}")


@dataclass
class RunLine:
    """One line of the runs table: one command on one remote."""

    case: str
    data: str
    remote: str
    value: float | None
    cpu: float | None
    error: str | None
    samples: list[float]
    command: str | None
    per_item: str = "-"
    target: Target | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if self.target is None:
            return ""
        if self.value is None:
            return "-"
        return "PASS" if self.target.met(self.value) else "MISS"

    def cells(self) -> list[str]:
        shown = "error" if self.error else format_seconds(self.value)
        return [self.case, self.data, self.remote, shown, self.per_item,
                format_seconds(self.cpu), "-" if self.target is None else self.target.text(),
                self.status]

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case, "data": self.data, "remote": self.remote, "unit": "s",
            "value": None if self.value is None else round(self.value, 4),
            "cpu_s": None if self.cpu is None else round(self.cpu, 4),
            "samples_s": [round(v, 4) for v in self.samples],
            "per_item": self.per_item, "error": self.error, "command": self.command,
            "target": None if self.target is None else self.target.text(),
            "status": self.status or None,
        }


def _per(value: float | None, count: int, what: str) -> str:
    if value is None or count <= 0:
        return "-"
    return f"{value / count * 1000:.2f} ms/{what}"


def build_run_lines(results: RunResults, sizes: Sizes) -> list[RunLine]:
    lines: list[RunLine] = []
    by_key = {key: timing for key, timing in results.items()}
    few = {remote: by_key.get((NOOP_RUN, PLAIN_RUN, remote)) for remote in REMOTES}
    for (case, data, remote), timing in by_key.items():
        value = timing.median_s
        line = RunLine(case, data, remote, value, timing.median_cpu_s, timing.error,
                       [s.seconds for s in timing.samples], timing.command)
        if case in (FIRST, APPENDED):
            runs = sizes.runs + (sizes.part_runs if data == sizes.parts_label else 0)
            line.per_item = _per(value, runs, "run")
        if case == NOOP_RUN and data != PLAIN_RUN:
            base = few[remote]
            base_s = base.median_s if base is not None else None
            if value is not None and base_s is not None:
                line.per_item = f"{(value - base_s) / sizes.parts * 1e6:+.0f} µs/part"
        if case in (NOOP, NOOP_RUN):
            line.target = NOOP_TARGET
        lines.append(line)
    order = {FIRST: 0, NOOP: 1, NOOP_RUN: 2, APPENDED: 3}
    lines.sort(key=lambda line: order[line.case])
    return lines


def render_runs(lines: Sequence[RunLine]) -> str:
    body = [line.cells() for line in lines]
    breaks = [i > 0 and line.case != lines[i - 1].case for i, line in enumerate(lines)]
    return align(HEADER, body, RIGHT, breaks)


def remarks(sizes: Sizes) -> list[str]:
    return [
        "runs: wall clock of the whole 'wbtool sync --no-artifacts --json --remote NAME "
        "[RUN_ID]' process; no anchor (wandb sync needs a server); CPU: user + system "
        "time of the process",
        f"runs: a plain run is wbtool.init, 10 run.log rows and finish(); the "
        f"{sizes.part_runs} many-parts runs had one row logged and synced at a time, "
        f"{sizes.parts:,} times ({sizes.part_runs * sizes.parts:,} parts in all), as "
        "'--live' leaves a run that logs a row between two pushes",
        "runs: no-op sync lists the run folders once per project; no-op sync RUN_ID lists "
        "that run whole: its cost per part is its median less the plain run's, over the "
        "parts; target < 1 s for a no-op (DESIGN.md §3, 'well under a second for "
        "10,000 objects' worth of state')",
        "runs: 1 new row per run: 'wbtool log' appends one history row to each plain run "
        "(untimed), then the sync sends one new part and summary.json of each",
    ]


def cleanup(setup: Setup) -> None:
    for name in ("plain", "parts"):
        remove_tree(setup.scratch / f"runs-{name}")
        remove_tree(setup.scratch / f"remote-{name}")
        setup.bucket.delete(name)
