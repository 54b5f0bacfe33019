"""Checking what the chart helpers are given: lists, numpy arrays, tensors or
pandas objects become plain lists (numpy is never imported here), and what
cannot be charted is refused with a ValueError that names the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from wbtool.media.table import Table


def as_list(value: Any, name: str) -> list[Any]:
    """``value`` as a list of plain Python values (a nested list for a 2-D array)."""
    if value is None:
        raise ValueError(f"{name} is required")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a PyTorch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "to_numpy") and hasattr(value, "columns"):  # a pandas DataFrame
        value = value.to_numpy()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy, a pandas Series
        value = value.tolist()
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence of values, not {type(value).__name__}")
    return [v.tolist() if hasattr(v, "tolist") and hasattr(v, "shape") else v for v in value]


def number(value: Any, name: str) -> float:
    """A finite number (no bool), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{name} must hold finite numbers, not {value!r}")
    return float(value)


def matrix(value: Any, name: str) -> list[list[float]]:
    """A 2-D array of finite numbers, as rows of floats of one length."""
    rows = as_list(value, name)
    if not rows or not all(isinstance(r, (list, tuple)) for r in rows):
        raise ValueError(f"{name} must be 2-D (one row of class scores per sample)")
    width = len(rows[0])
    out = []
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{name} must be 2-D: row {i} has {len(row)} values, row 0 "
                             f"has {width}")
        out.append([number(v, name) for v in row])
    if width == 0:
        raise ValueError(f"{name} must have at least one column (one per class)")
    return out


def label(value: Any, name: str) -> Any:
    """A class label: an int or a string (a float that is whole is taken as an int)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"{name} must hold class labels (ints or strings), not {value!r}")


def same_length(a: list[Any], a_name: str, b: list[Any], b_name: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{a_name} has {len(a)} values and {b_name} has {len(b)}: "
                         "they must have one per sample")


def column(table: Any, col: Any, name: str) -> str:
    """``col``, checked to be a column of ``table``."""
    if not isinstance(table, Table):
        raise ValueError(f"table must be a wbtool.Table, not {type(table).__name__}")
    if col not in table.columns:
        raise ValueError(f"{name}: the table has no column {col!r} "
                         f"(columns: {', '.join(map(repr, table.columns))})")
    return str(col)


def title_text(title: Any) -> str:
    if title is None:
        return ""
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, not {type(title).__name__}")
    return title
