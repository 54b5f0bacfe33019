"""``python -m bench startup``: how long ``import wbtool`` and ``wbtool --help`` take."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import Row, Target, environment, print_json, render_table
from bench.runner import describe, run_timed

IMPORT_TARGET_MS = 60.0
HELP_TARGET_MS = 250.0
TOP_IMPORTS = 8


@dataclass(frozen=True)
class ImportLine:
    """One line of ``python -X importtime`` output."""

    name: str
    level: int
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[ImportLine]:
    """The lines of ``-X importtime`` output, in the order Python printed them.

    Each line reads ``import time: SELF | CUMULATIVE | <2 spaces per level>NAME``;
    a module's line comes after the lines of the modules it imported.
    """
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:"):
            continue
        parts = raw[len("import time:") :].split("|", 2)
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        field = parts[2][1:] if parts[2].startswith(" ") else parts[2]
        name = field.strip()
        level = (len(field) - len(field.lstrip(" "))) // 2
        lines.append(ImportLine(name, level, int(parts[0]), int(parts[1])))
    return lines


def wbtool_import(lines: Sequence[ImportLine]) -> tuple[int, list[ImportLine]]:
    """Cumulative microseconds of the top-level ``wbtool`` import, and its direct imports."""
    for index, line in enumerate(lines):
        if line.name == "wbtool" and line.level == 0:
            children = []
            for earlier in reversed(lines[:index]):
                if earlier.level <= line.level:
                    break
                if earlier.level == line.level + 1:
                    children.append(earlier)
            return line.cumulative_us, children
    raise ValueError("no top-level 'wbtool' line in the -X importtime output")


def measure_import(python: str) -> tuple[float, list[ImportLine]]:
    argv = [python, "-X", "importtime", "-c", "import wbtool"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"'{describe(argv)}' exited {proc.returncode}: {proc.stderr[-500:]}")
    cumulative_us, children = wbtool_import(parse_importtime(proc.stderr))
    return cumulative_us / 1000, children


def main(*, repeat: int, wbtool: str, as_json: bool) -> int:
    python = sys.executable
    try:
        measure_import(python)  # warm-up: byte-code caches, page cache
        runs = [measure_import(python) for _ in range(repeat)]
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import_ms = [ms for ms, _children in runs]
    median_import = statistics.median(import_ms)
    # The direct imports of the run closest to the median, heaviest first.
    _ms, children = min(runs, key=lambda run: abs(run[0] - median_import))
    heaviest = sorted(children, key=lambda line: line.cumulative_us, reverse=True)[:TOP_IMPORTS]

    help_argv = [wbtool, "--help"]
    help_runs = [run_timed(help_argv) for _ in range(repeat + 1)]
    failed = [sample for sample in help_runs if sample.returncode != 0]
    if failed:
        print(
            f"error: '{describe(help_argv)}' exited {failed[0].returncode}: {failed[0].stderr}",
            file=sys.stderr,
        )
        return 1
    help_s = [sample.seconds for sample in help_runs[1:]]

    rows = [
        Row(
            case="import wbtool",
            dataset="startup",
            median_s=median_import / 1000,
            samples_s=[ms / 1000 for ms in import_ms],
            targets=[Target("ms", IMPORT_TARGET_MS)],
            command=describe([python, "-X", "importtime", "-c", "import wbtool"]),
        ),
        Row(
            case="wbtool --help",
            dataset="startup",
            median_s=statistics.median(help_s),
            samples_s=help_s,
            peak_mib=max((s.peak_mib or 0.0) for s in help_runs[1:]) or None,
            targets=[Target("ms", HELP_TARGET_MS)],
            command=describe(help_argv),
        ),
    ]
    for row in rows:
        row.judge()

    env = environment(wbtool)
    env["repeat"] = repeat
    if as_json:
        print_json(
            {
                "benchmark": "startup",
                "environment": env,
                "rows": [row.as_dict() for row in rows],
                "heaviest_imports": [
                    {"module": line.name, "cumulative_ms": round(line.cumulative_us / 1000, 2)}
                    for line in heaviest
                ],
            }
        )
        return 0
    print(
        f"wbtool {env['wbtool']}, Python {env['python']}, {env['platform']}, "
        f"{env['cpus']} CPUs; median of {repeat} run(s) after one warm-up run"
    )
    print()
    print(render_table(rows, unit="ms"))
    if heaviest:
        print()
        print("heaviest imports made directly by 'import wbtool' (cumulative ms):")
        for line in heaviest:
            print(f"  {line.cumulative_us / 1000:8.1f}  {line.name}")
    return 0
