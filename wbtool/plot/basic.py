"""Charts of a table's columns (``line``, ``scatter``, ``bar``, ``histogram``)
and of several series (``line_series``), named and shaped as W&B's."""

from __future__ import annotations

from typing import Any

from wbtool.media.table import Table
from wbtool.plot.chart import CustomChart, plot_table
from wbtool.plot.inputs import as_list, column, title_text


def line(table: Table, x: str, y: str, stroke: str | None = None, title: str = "",
         split_table: bool = False) -> CustomChart:
    """A line of column ``y`` against column ``x``; ``stroke``: a column whose
    values split the rows into one line each."""
    fields = {"x": column(table, x, "x"), "y": column(table, y, "y"),
              "stroke": None if stroke is None else column(table, stroke, "stroke")}
    return plot_table("wandb/line/v0", table, fields, {"title": title_text(title)},
                      split_table)


def scatter(table: Table, x: str, y: str, title: str = "",
            split_table: bool = False) -> CustomChart:
    """A point per row: column ``y`` against column ``x``."""
    fields = {"x": column(table, x, "x"), "y": column(table, y, "y")}
    return plot_table("wandb/scatter/v0", table, fields, {"title": title_text(title)},
                      split_table)


def bar(table: Table, label: str, value: str, title: str = "",
        split_table: bool = False) -> CustomChart:
    """A bar per row: its ``label`` column names it, its ``value`` column sizes it."""
    fields = {"label": column(table, label, "label"), "value": column(table, value, "value")}
    return plot_table("wandb/bar/v0", table, fields, {"title": title_text(title)},
                      split_table)


def histogram(table: Table, value: str, title: str = "",
              split_table: bool = False) -> CustomChart:
    """A histogram of the ``value`` column (W&B bins it when it draws it)."""
    fields = {"value": column(table, value, "value")}
    return plot_table("wandb/histogram/v0", table, fields, {"title": title_text(title)},
                      split_table)


def line_series(xs: Any, ys: Any, keys: Any = None, title: str = "", xname: str = "x",
                split_table: bool = False) -> CustomChart:
    """Several lines on one chart: ``ys`` holds one series of values per line;
    ``xs`` one list of x values for them all, or one per line; ``keys`` names
    the lines (``line_0``, ``line_1``, ... when not given). The table holds a
    row ``[x, key, y]`` per point (columns ``step``, ``lineKey``, ``lineVal``)."""
    y_series = as_list(ys, "ys")
    for i, series in enumerate(y_series):
        y_series[i] = as_list(series, f"ys[{i}]")
    x_list = as_list(xs, "xs")
    if x_list and all(isinstance(v, (list, tuple)) for v in x_list):
        x_series = [list(v) for v in x_list]
        if len(x_series) != len(y_series):
            raise ValueError(f"xs has {len(x_series)} series and ys has {len(y_series)}: give "
                             "one x series for each y series, or one for them all")
    else:
        x_series = [x_list] * len(y_series)
    names = [f"line_{i}" for i in range(len(y_series))] if keys is None \
        else [str(k) for k in as_list(keys, "keys")]
    if len(names) != len(y_series):
        raise ValueError(f"keys has {len(names)} names and ys has {len(y_series)} series: "
                         "give one name per series")
    data: list[list[Any]] = []
    for i, (xx, yy) in enumerate(zip(x_series, y_series, strict=True)):
        if len(xx) != len(yy):
            shown = "xs" if x_series[0] is x_list else f"xs[{i}]"
            raise ValueError(f"{shown} has {len(xx)} values and ys[{i}] has {len(yy)}: "
                             "each x needs its y")
        data.extend([x, names[i], y] for x, y in zip(xx, yy, strict=True))
    if not isinstance(xname, str):
        raise ValueError(f"xname must be a string, not {type(xname).__name__}")
    table = Table(columns=["step", "lineKey", "lineVal"], data=data)
    return plot_table("wandb/lineseries/v0", table,
                      {"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
                      {"title": title_text(title), "xname": xname}, split_table)
