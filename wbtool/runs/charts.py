"""Terminal charts of a run's history, in fixed memory however long it is:
one pass over ``history.jsonl`` keeps a bounded series per numeric metric."""

from __future__ import annotations

import math
import sys
from typing import Any

SPARK = "▁▂▃▄▅▆▇█"
CHART_WIDTH = 60
NUMBERS = (int, float)
FLOAT_MAX = sys.float_info.max  # a larger int cannot be charted (float() overflows)
FLOAT_TEXT = {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}  # as str(float) writes


class Series:
    """One metric's history in fixed memory: overall min/max/last and at most
    ``2 * width`` bucket means (buckets double in span as points arrive)."""

    __slots__ = ("acc", "acc_n", "buckets", "count", "hi", "last", "lo", "span", "width")

    def __init__(self, width: int = CHART_WIDTH) -> None:
        self.width = width
        self.span = 1
        self.buckets: list[float] = []
        self.acc = 0.0
        self.acc_n = 0
        self.count = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.last = math.nan

    def feed(self, values: list[float]) -> None:
        """Add finite numbers (ints no larger than a float can hold), in step order."""
        if not values:
            return
        self.count += len(values)
        self.lo = min(self.lo, min(values))
        self.hi = max(self.hi, max(values))
        self.last = values[-1]
        i, n = 0, len(values)
        while i < n:
            take = min(self.span - self.acc_n, n - i)
            self.acc += sum(values[i:i + take], 0.0)  # in floats: overflow is inf
            self.acc_n += take
            i += take
            if self.acc_n == self.span:
                self.buckets.append(self.acc / self.span)
                self.acc, self.acc_n = 0.0, 0
                if len(self.buckets) >= 2 * self.width:
                    b = self.buckets
                    self.buckets = [(b[j] + b[j + 1]) / 2 for j in range(0, len(b), 2)]
                    self.span *= 2

    def points(self) -> list[float]:
        pts = self.buckets + ([self.acc / self.acc_n] if self.acc_n else [])
        if len(pts) <= self.width:
            return pts
        groups: list[list[float]] = [[] for _ in range(self.width)]
        for i, v in enumerate(pts):
            groups[i * self.width // len(pts)].append(v)
        return [sum(g) / len(g) for g in groups]


def sparkline(points: list[float]) -> str:
    if not points:
        return ""
    lo, hi = min(points), max(points)
    if hi - lo <= 0 or not math.isfinite(hi - lo):
        return SPARK[0] * len(points)
    top = len(SPARK) - 1
    return "".join(SPARK[min(top, int((v - lo) / (hi - lo) * top + 0.5))] for v in points)


# How a sample of a labelled process (a shared run's) starts its label, in JSON text.
LABEL_MARK = b'"_label":'


def chart_history(path: Any, width: int = CHART_WIDTH) -> dict[str, Series]:
    """Stream a history once; one fixed-size :class:`Series` per numeric metric."""
    from wbtool.runs.history import iter_chunks

    series: dict[str, Series] = {}
    nan = math.nan
    for block in iter_chunks(path):
        rows: list[dict[str, Any]] = [r for r in parse_block(block) if type(r) is dict]
        groups: dict[str, list[dict[str, Any]]] = {"": rows}
        if LABEL_MARK in block:  # samples of the processes of a shared run: one line each
            groups = {}
            for r in rows:
                groups.setdefault(str(r.get("_label") or ""), []).append(r)
        for label, members in groups.items():
            for k in set().union(*members):
                if k[:1] == "_":
                    continue
                # finite floats (v - v is NaN for NaN, ±inf and a missing key) and the
                # ints a float can hold; no bools
                vals = [v for r in members
                        if (type(v := r.get(k, nan)) is float and v - v == 0)
                        or (type(v) is int and -FLOAT_MAX <= v <= FLOAT_MAX)]
                if vals:
                    name = f"{k} ({label})" if label else k
                    s = series.get(name)
                    if s is None:
                        s = series[name] = Series(width)
                    s.feed(vals)
    return series


def parse_block(block: bytes, float_text: bool = False) -> list[Any]:
    """The values of a block of JSON lines: one parse per block, line by line (skipping
    bad lines) only when that fails. ``float_text`` keeps non-integer numbers as their
    JSON text, which is what CSV wants (and faster than parsing and printing them)."""
    import json

    hooks: dict[str, Any] = ({"parse_float": str, "parse_constant": FLOAT_TEXT.__getitem__}
                             if float_text else {})
    try:
        return list(json.loads(b"[" + block.rstrip(b"\n").replace(b"\n", b",") + b"]",
                               **hooks))
    except ValueError:
        rows = []
        for ln in block.splitlines():
            try:
                rows.append(json.loads(ln, **hooks))
            except ValueError:
                continue
        return rows
