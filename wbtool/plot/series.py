"""The lines of a logged chart, for a terminal: a logged chart's row names its
table's file in the run folder; line, scatter, line-series and curve charts
read as one series of y values per line, in x order."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from wbtool.plot.chart import LOG_TYPE, chart_name
from wbtool.runs.charts import CHART_WIDTH, FLOAT_MAX, Series

MAX_TABLE_BYTES = 16 << 20  # a larger table is not read to draw it
# Spec id → the fields that hold x, y and the line a row belongs to (or None).
SHAPES = {
    "wandb/line/v0": ("x", "y", "stroke"),
    "wandb/scatter/v0": ("x", "y", None),
    "wandb/lineseries/v0": ("step", "lineVal", "lineKey"),
    "wandb/area-under-curve/v0": ("x", "y", "class"),
}


def describe(doc: Mapping[str, Any]) -> str:
    """A logged chart in a few words: its kind, title and table file."""
    kind = chart_name(str(doc.get("spec_name") or "custom"))
    strings = doc.get("string_fields")
    strings = strings if isinstance(strings, dict) else {}
    title = strings.get("title")
    text = f"{kind} chart" + (f" {json.dumps(title, ensure_ascii=False)}" if title else "")
    axes = strings.get("y-axis-title"), strings.get("x-axis-title")
    if all(isinstance(a, str) and a for a in axes):
        text += f" ({axes[0]} against {axes[1]})"
    table = doc.get("table")
    if isinstance(table, dict):
        text += f" of {table.get('nrows')} rows x {table.get('ncols')} columns"
        if isinstance(table.get("path"), str):
            text += f": {table['path']}"
    return text


def is_chart(value: Any) -> bool:
    return isinstance(value, dict) and value.get("_type") == LOG_TYPE


def chart_series(doc: Mapping[str, Any], folder: str | os.PathLike[str],
                 width: int = CHART_WIDTH) -> dict[str, Series]:
    """One :class:`Series` of y values (in x order) per line of a logged chart;
    empty for a chart that is not drawn as lines or whose table cannot be read."""
    shape = SHAPES.get(str(doc.get("spec_name")))
    fields, table = doc.get("fields"), doc.get("table")
    if shape is None or not isinstance(fields, dict) or not isinstance(table, dict) \
            or not isinstance(table.get("path"), str):
        return {}
    path = os.path.join(folder, *table["path"].split("/"))
    try:
        if os.path.getsize(path) > MAX_TABLE_BYTES:
            return {}
        with open(path, "rb") as f:
            content = json.loads(f.read())
        columns, rows = content["columns"], content["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(columns, list) or not isinstance(rows, list):
        return {}
    x_col, y_col, by_col = (fields.get(f) if f else None for f in shape)
    if x_col not in columns or y_col not in columns:
        return {}
    xi, yi = columns.index(x_col), columns.index(y_col)
    bi = columns.index(by_col) if by_col in columns else None
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if not isinstance(row, list) or len(row) != len(columns):
            continue
        x, y = row[xi], row[yi]
        if _finite(x) and _finite(y):
            name = "" if bi is None else str(row[bi])
            lines.setdefault(name, []).append((float(x), float(y)))
    out = {}
    for name, points in lines.items():
        points.sort(key=lambda p: p[0])
        s = Series(width)
        s.feed([y for _, y in points])
        out[name] = s
    return out


def _finite(v: Any) -> bool:
    if type(v) is int:
        return -FLOAT_MAX <= v <= FLOAT_MAX
    return type(v) is float and math.isfinite(v)
