"""Result rows, targets, and their rendering as a plain-text table or JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = 1


@dataclass(frozen=True)
class Target:
    """A limit on one measured value: ``ratio`` (×), ``seconds`` or ``peak`` (MiB)."""

    metric: str
    limit: float
    inclusive: bool = True

    def text(self, anchor: str | None = None) -> str:
        sign = "≤" if self.inclusive else "<"
        if self.metric == "ratio":
            return f"{sign}{self.limit:.1f}× {anchor or 'anchor'}"
        if self.metric == "seconds":
            return f"{sign}{self.limit:g} s"
        if self.metric == "ms":
            return f"{sign}{self.limit:g} ms"
        return f"{sign}{self.limit:g} MiB"

    def met(self, value: float) -> bool:
        return value <= self.limit if self.inclusive else value < self.limit


@dataclass
class Row:
    """One line of a report: a case measured on one data set."""

    case: str
    dataset: str
    median_s: float | None = None
    samples_s: list[float] = field(default_factory=list)
    anchor: str | None = None
    ratio: float | None = None
    peak_mib: float | None = None
    targets: list[Target] = field(default_factory=list)
    status: str = ""
    note: str | None = None
    command: str | None = None

    def value(self, metric: str) -> float | None:
        if metric == "ratio":
            return self.ratio
        if metric == "seconds":
            return self.median_s
        if metric == "ms":
            return None if self.median_s is None else self.median_s * 1000
        return self.peak_mib

    def judge(self) -> None:
        """Set ``status`` from the targets, unless an error or skip already set it."""
        if self.status or not self.targets:
            return
        missed = []
        for target in self.targets:
            value = self.value(target.metric)
            if value is None or not target.met(value):
                missed.append(target.metric)
        if not missed:
            self.status = "PASS"
        elif len(missed) == len(self.targets):
            self.status = "MISS"
        else:
            self.status = "MISS: " + ", ".join(missed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "dataset": self.dataset,
            "median_s": _round(self.median_s, 4),
            "samples_s": [round(value, 4) for value in self.samples_s],
            "anchor": self.anchor,
            "ratio": _round(self.ratio, 3),
            "peak_mib": _round(self.peak_mib, 1),
            "targets": [
                {
                    "metric": t.metric,
                    "limit": t.limit,
                    "inclusive": t.inclusive,
                    "text": t.text(self.anchor),
                }
                for t in self.targets
            ],
            "status": self.status or None,
            "note": self.note,
            "command": self.command,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def environment(wbtool: str, data_root: Path | None = None) -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        version = metadata.version("wbtool")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info: dict[str, Any] = {
        "wbtool": version,
        "wbtool_executable": wbtool,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if data_root is not None:
        info["data_root"] = str(data_root)
        info["filesystem"] = filesystem_type(data_root)
    return info


def filesystem_type(path: Path) -> str:
    """The file-system type that holds ``path`` (Linux only; "unknown" elsewhere)."""
    best = ("", "unknown")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                inside = str(path).startswith(point.rstrip("/") + "/") or str(path) == point
                if inside and len(point) >= len(best[0]):
                    best = (point, parts[2])
    except OSError:
        pass
    return best[1]


def print_json(document: dict[str, Any]) -> None:
    json.dump({"schema": SCHEMA, **document}, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def format_seconds(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.1f}"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def align(header: Sequence[str], body: Sequence[Sequence[str]], right: set[int],
          breaks: Sequence[bool] = ()) -> str:
    """An aligned plain-text table: ``right`` holds the right-aligned columns;
    ``breaks[i]`` puts a blank line before body row ``i``."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        out = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
               for i, cell in enumerate(cells)]
        return "  ".join(out).rstrip()

    lines = [fmt(header), "  ".join("-" * width for width in widths)]
    for index, cells in enumerate(body):
        if index < len(breaks) and breaks[index]:
            lines.append("")
        lines.append(fmt(cells))
    return "\n".join(lines)


def render_table(rows: Sequence[Row], *, unit: str = "s") -> str:
    """Rows as an aligned plain-text table, a blank line between data sets."""
    header = ["case", "data", f"median {unit}", "vs anchor", "peak MiB", "target", "result"]
    right = {2, 3, 4}
    body = []
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}× {row.anchor}"
        peak = "-" if row.peak_mib is None else f"{row.peak_mib:.0f}"
        targets = ", ".join(t.text(row.anchor) for t in row.targets) or "-"
        body.append(
            [
                row.case,
                row.dataset,
                format_seconds(row.median_s, unit),
                ratio,
                peak,
                targets,
                row.status,
            ]
        )
    breaks = [i > 0 and row.dataset != rows[i - 1].dataset for i, row in enumerate(rows)]
    return align(header, body, right, breaks)
