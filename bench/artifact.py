"""``python -m bench artifact``: wbtool's artifact log and checkout against plain tools.

Each case runs once untimed to warm the page cache and any lazy state, then
``repeat`` timed times; runs of all cases are interleaved round by round so
that a slow moment of a noisy machine hits a case and its anchor alike. The
report gives medians, the ratio of each wbtool case to its anchor, the peak
resident memory of each command, and PASS/MISS against the targets.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import cases as c
from bench.datasets import DEFAULT_C_FILES, DatasetSpec, ensure, spec_for
from bench.fsutil import BLOCK, Trash, remove_tree, settle
from bench.report import Row, Target, environment, print_json, render_table
from bench.runner import describe, run_timed

RACY_MTIME_PAUSE_S = 1.5
SMALL_PEAK_MIB = 150
LARGE_PEAK_MIB = 1024
DEFER_REMOVAL_FILES = 1000  # output trees with this many files are set aside, not deleted


def targets_for(case: str, spec: DatasetSpec) -> list[Target]:
    """The targets a case is held to on a data set (none where the issue sets none)."""
    many = spec.key == "c" and spec.files > DEFAULT_C_FILES
    if case == c.COLD:
        found = [Target("peak", LARGE_PEAK_MIB if many else SMALL_PEAK_MIB, inclusive=False)]
        if spec.key == "a":
            found.insert(0, Target("ratio", 1.0))
        elif spec.key == "b":
            found.insert(0, Target("ratio", 2.0))
        elif spec.files == DEFAULT_C_FILES:
            found.insert(0, Target("seconds", 5.0, inclusive=False))
        elif spec.files == 1_000_000:
            found.insert(0, Target("seconds", 60.0, inclusive=False))
        return found
    if case == c.WARM and spec.key == "c" and spec.files == DEFAULT_C_FILES:
        return [Target("seconds", 1.0, inclusive=False)]
    if case == c.IMMUTABLE:
        return [Target("ratio", 1.5)]
    # The checkout targets are set for the trees of small files, (b) and (c);
    # for one large file, cp -al is a single link() of about 2 ms.
    if case == c.CHECKOUT_COPY and spec.key != "a":
        return [Target("ratio", 1.2)]
    if case == c.CHECKOUT_HARDLINK and spec.key != "a":
        return [Target("ratio", 2.0)]
    return []


def run_cases(label: str, cases: Sequence[c.Case], repeat: int) -> list[str]:
    """Run every case ``repeat + 1`` times, interleaved; return problems found."""
    problems: list[str] = []
    busy = 0  # timed runs started on a disk that never went quiet
    by_name = {case.name: case for case in cases}
    for run in range(repeat + 1):
        for case in cases:
            result = case.result
            if case.skip or result.error:
                continue
            needed = by_name.get(case.needs or "")
            if needed is not None and needed.result.error:
                result.error = f"not run: '{needed.name}' failed"
                continue
            try:
                trial = case.make(run)
            except (OSError, subprocess.CalledProcessError) as exc:
                result.error = f"could not prepare the run: {_error_text(exc)}"
                continue
            result.command = describe(trial.argv)
            try:
                if not settle(trial.cwd or Path.cwd()) and run > 0:
                    busy += 1
                sample = run_timed(trial.argv, env=trial.env, cwd=trial.cwd)
                if sample.returncode != 0:
                    result.error = f"exit status {sample.returncode}: {_last_lines(sample.stderr)}"
                    continue
                if run == 0 and trial.check is not None:
                    problem = trial.check()
                    if problem:
                        problems.append(f"{label}, {case.name}: {problem}")
            except (OSError, subprocess.CalledProcessError) as exc:
                result.error = _error_text(exc)
                continue
            finally:
                if trial.cleanup is not None:
                    trial.cleanup()
            kind = "warm-up" if run == 0 else f"run {run}/{repeat}"
            print(
                f"  {label:<14} {case.name:<24} {kind:<9} {sample.seconds:8.3f} s"
                f" {_mib(sample.peak_mib)} MiB",
                file=sys.stderr,
                flush=True,
            )
            if run > 0:
                result.samples.append(sample)
    if busy:
        problems.append(
            f"{label}: {busy} timed run(s) started while the disk was still busy after 10 s "
            "of waiting (another program writing?): those timings are less reliable"
        )
    return problems


def _on_disk_bytes(spec: DatasetSpec) -> int:
    """About what one copy of a data set takes on disk, small files rounded up to a block."""
    per_file = -(-spec.total_bytes // max(spec.files, 1) // BLOCK) * BLOCK
    return per_file * spec.files


def _mib(value: float | None) -> str:
    return "      ?" if value is None else f"{value:7.0f}"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return f"'{describe(exc.cmd)}' exited {exc.returncode}: {_last_lines(exc.stderr or '')}"
    return str(exc)


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no output on stderr)"


def rows_for(spec: DatasetSpec, cases: Sequence[c.Case]) -> list[Row]:
    by_name = {case.name: case for case in cases}
    order = [
        c.COLD,
        c.COLD_NOSYNC,
        c.WARM,
        c.IMMUTABLE,
        c.CHECKOUT_COPY,
        c.CHECKOUT_HARDLINK,
        c.CHECKOUT_HARDLINK_FIRST,
        c.WANDB,
        c.DVC,
        c.CP_R,
        c.CP_R_SYNC,
        c.CP_A,
        c.CP_AL,
        c.HASH,
        c.CAT,
        c.TAR,
    ]
    order += [name for name in by_name if name not in order]
    rows = []
    for name in order:
        case = by_name[name]
        result = case.result
        row = Row(
            case=name,
            dataset=spec.label,
            median_s=result.median_s,
            samples_s=[s.seconds for s in result.samples],
            anchor=case.anchor,
            peak_mib=result.peak_mib,
            targets=targets_for(name, spec),
            command=result.command,
        )
        anchor = by_name.get(case.anchor or "")
        anchor_median = anchor.result.median_s if anchor is not None else None
        if row.median_s is not None and anchor_median:
            row.ratio = row.median_s / anchor_median
        if case.skip:
            row.status, row.note = "SKIP", case.skip
        elif result.error:
            row.status, row.note = "ERROR", result.error
        row.judge()
        rows.append(row)
    return rows


def main(
    *,
    sizes: Sequence[str],
    files: int | None,
    repeat: int,
    root: Path,
    wbtool: str,
    as_json: bool,
) -> int:
    root = root.resolve()
    specs = [spec_for(key, files) for key in sizes]
    generated = [ensure(root, spec)[1] for spec in specs]
    if any(generated):
        # Files written within the file system's timestamp granularity of a
        # later change look "racy" to stat caches; let the clock move on.
        time.sleep(RACY_MTIME_PAUSE_S)

    rows: list[Row] = []
    notes: list[str] = []
    remove_tree(root / "scratch")
    # one trash for the whole run: emptying it between data sets would slow
    # down the next one (see Trash)
    trash = Trash(root / "scratch" / ".trash")
    try:
        for spec in specs:
            data = root / spec.name
            scratch = root / "scratch" / spec.name
            scratch.mkdir(parents=True)
            print(f"{spec.label}: {data}", file=sys.stderr, flush=True)
            trash.prepare_for(_on_disk_bytes(spec), spec.files,
                              defer=spec.files >= DEFER_REMOVAL_FILES)
            emptied = trash.emptied_early
            try:
                builder = c.CaseBuilder(spec, data, scratch, wbtool, notes, trash)
                cases = builder.build()
                notes.extend(run_cases(spec.label, cases, repeat))
            finally:
                trash.discard(scratch)
            if trash.emptied_early > emptied:
                notes.append(
                    f"{spec.label}: the disk ran short of room, so earlier runs' output was "
                    f"deleted between runs {trash.emptied_early - emptied} time(s); runs "
                    "right after a deletion of many files can be slower"
                )
            rows.extend(rows_for(spec, cases))
    finally:
        remove_tree(root / "scratch")

    env = environment(wbtool, root)
    env["repeat"] = repeat
    if as_json:
        print_json(
            {
                "benchmark": "artifact",
                "environment": env,
                "datasets": [
                    {
                        **spec.as_dict(),
                        "name": spec.name,
                        "label": spec.label,
                        "total_bytes": spec.total_bytes,
                        "path": str(root / spec.name),
                    }
                    for spec in specs
                ],
                "rows": [row.as_dict() for row in rows],
                "notes": notes,
            }
        )
    else:
        print(
            f"wbtool {env['wbtool']}, Python {env['python']}, {env['platform']}, "
            f"{env['cpus']} CPUs; data in {root} ({env['filesystem']}); "
            f"median of {repeat} run(s) after one warm-up run"
        )
        print()
        print(render_table(rows))
        remarks = [*notes]
        remarks.extend(f"{row.dataset}, {row.case}: {row.note}" for row in rows if row.note)
        remarks.append(
            "tar writes to /dev/null, which GNU tar detects: it stats files without reading them"
        )
        print()
        for remark in remarks:
            print(f"- {remark}")
    failed = any(row.status == "ERROR" and row.case.startswith("wbtool") for row in rows)
    return 1 if failed else 0
