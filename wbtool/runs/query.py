"""Filters for ``Api().runs(filters=...)``, in the MongoDB-like form of the
reference's public API: ``{"state": "finished"}``, ``{"config.lr": {"$gt":
0.01}}``, ``{"summary_metrics.acc": {"$gte": 0.9}}``, ``{"tags": {"$in":
["best"]}}``, ``{"$or": [...]}``, ``{"$and": [...]}``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from wbtool.errors import UsageError

_MISSING = object()
_ALIASES = {"display_name": "name", "createdAt": "created_at", "jobType": "job_type",
            "summary": "summary_metrics"}


def filter_doc(record: Mapping[str, Any], state: str, config: Mapping[str, Any],
               summary: Mapping[str, Any]) -> dict[str, Any]:
    """A run as filters and sort keys see it: its record, its state as shown,
    its config and its summary (``summary_metrics``)."""
    return {**record, "state": state, "config": config, "summary_metrics": summary}


def lookup(doc: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (``summary.train.loss``): its first part names a
    field of ``doc`` (aliases such as ``summary`` allowed), the rest is found
    by :func:`resolve`."""
    head, _, rest = path.partition(".")
    value = doc.get(_ALIASES.get(head, head), _MISSING)
    if value is _MISSING or not rest:
        return value
    return resolve(value, rest)


def resolve(value: Any, path: str) -> Any:
    """``a.b`` in ``value``: each dot steps into a nested mapping (``{"a":
    {"b": 1}}``); where that finds nothing, the rest of the path is a flat key,
    as given (``{"a.b": 1}``, or ``{"train/loss": 1}`` for ``train/loss``) or
    with its dots read as slashes (``{"a/b": 1}``, how W&B scripts name
    metrics and how nested summaries are stored)."""
    key = resolve_key(value, path)
    if key is None:
        return _MISSING
    for part in key:
        value = value[part]
    return value


def resolve_key(value: Any, path: str) -> tuple[str, ...] | None:
    """The keys :func:`resolve` steps through to reach ``path``, None where
    there is nothing there."""
    if not isinstance(value, Mapping):
        return None
    head, dot, rest = path.partition(".")
    if dot and head in value:
        inner = resolve_key(value[head], rest)
        if inner is not None:
            return (head, *inner)
    for key in (path, path.replace(".", "/")):
        if key in value:
            return (key,)
    return None


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, arg: Any) -> bool:
        try:
            return value is not _MISSING and value is not None and op(value, arg)
        except TypeError:
            return False

    return check


def _eq(value: Any, arg: Any) -> bool:
    if isinstance(value, (list, tuple)) and not isinstance(arg, (list, tuple)):
        return arg in value  # {"tags": "x"}: the list holds x
    return bool(value == arg)


def _in(value: Any, arg: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(v in arg for v in value)
    return value in arg


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _eq,
    "$ne": lambda v, a: not _eq(v, a),
    "$gt": _cmp(lambda v, a: v > a),
    "$gte": _cmp(lambda v, a: v >= a),
    "$lt": _cmp(lambda v, a: v < a),
    "$lte": _cmp(lambda v, a: v <= a),
    "$in": lambda v, a: v is not _MISSING and _in(v, a),
    "$nin": lambda v, a: v is _MISSING or not _in(v, a),
    "$exists": lambda v, a: (v is not _MISSING) == bool(a),
    "$regex": lambda v, a: _regex(v, a),
}


def _regex(value: Any, pattern: str) -> bool:
    """Text that ``pattern`` matches; a list (tags) where any of its texts does."""
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, str) and re.search(pattern, v) is not None for v in value)
    return isinstance(value, str) and re.search(pattern, value) is not None


def _is_operators(cond: Any) -> bool:
    """Whether a field's condition is a mapping of operators (``{"$gt": 1}``)
    rather than a value to equal."""
    return isinstance(cond, Mapping) and bool(cond) and all(
        isinstance(k, str) and k.startswith("$") for k in cond)


def check(filters: Any) -> None:
    """Refuse a filter document :func:`matches` cannot apply, naming the problem."""
    if not isinstance(filters, Mapping):
        raise UsageError(f"a filter must be a mapping, not {filters!r}")
    for key, cond in filters.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, (list, tuple)):
                raise UsageError(f"{key} takes a list of filters, not {cond!r}")
            for f in cond:
                check(f)
        elif key == "$not":
            check(cond)
        elif not isinstance(key, str) or key.startswith("$"):
            raise UsageError(f"unknown filter operator {key!r}")
        elif _is_operators(cond):
            for op, arg in cond.items():
                if op not in _OPS:
                    raise UsageError(f"unknown filter operator {op!r}")
                if op in ("$in", "$nin") and not isinstance(arg, (list, tuple, set, frozenset)):
                    raise UsageError(f"{key}: {op} takes a list, not {arg!r}")
                if op == "$regex":
                    try:
                        re.compile(arg)
                    except (re.error, TypeError) as e:
                        raise UsageError(f"{key}: bad $regex {arg!r}: {e}") from None


def matches(doc: Mapping[str, Any], filters: Mapping[str, Any] | None) -> bool:
    if not filters:
        return True
    for key, cond in filters.items():
        if key == "$and":
            if not all(matches(doc, f) for f in cond):
                return False
        elif key == "$or":
            if not any(matches(doc, f) for f in cond):
                return False
        elif key == "$not":
            if matches(doc, cond):
                return False
        elif key.startswith("$"):
            raise UsageError(f"unknown filter operator {key!r}")
        else:
            value = lookup(doc, key)
            if _is_operators(cond):
                for op, arg in cond.items():
                    fn = _OPS.get(op)
                    if fn is None:
                        raise UsageError(f"unknown filter operator {op!r}")
                    if not fn(value, arg):
                        return False
            elif value is _MISSING or not _eq(value, cond):
                return False
    return True


# ``--where`` of ``wbtool runs list``: KEY OP VALUE, and the operator each OP is.
_WHERE = re.compile(r"\s*([^<>=!~\s][^<>=!~]*?)\s*(==|=|!=|<=|>=|<|>|~)\s*(.*?)\s*",
                    re.DOTALL)
_WHERE_OPS = {"=": "$eq", "==": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt",
              ">=": "$gte", "~": "$regex"}
_OP_CHARS = "<>=!~"


def parse_where(text: str) -> dict[str, Any]:
    """``config.lr<0.01`` → ``{"config.lr": {"$lt": 0.01}}``: the value is read
    as JSON where it is JSON (numbers, true, null, "quoted text", lists), else
    taken as text; ``~`` matches a regular expression."""
    import json

    m = _WHERE.fullmatch(text)
    if m is None:
        raise UsageError(f"--where needs KEY OP VALUE (OP one of = != < <= > >= ~), "
                         f"not {text!r}")
    key, op, raw = m.groups()
    value: Any = raw
    if op != "~":
        try:
            value = json.loads(raw)
        except ValueError:
            # '=>', '=<', '<<': an operator mistyped would compare with text
            # such as '>0.9' and match no run without a word
            if raw and raw[0] in _OP_CHARS:
                raise UsageError(
                    f"--where {text!r}: the value {raw!r} starts with an operator (OP is one "
                    f"of = != < <= > >= ~); to compare with that text, quote it as JSON: "
                    f"{key}{op}{json.dumps(raw)}") from None
            if not raw and op in ("<", "<=", ">", ">="):
                raise UsageError(f"--where {text!r} needs a VALUE after {op}") from None
    where = {key: {_WHERE_OPS[op]: value}}
    check(where)
    return where


def sort_runs(items: list[Any], doc: Callable[[Any], Mapping[str, Any]], order: str) -> None:
    """Sort ``items`` in place by ``order`` (``"KEY"``, ``"-KEY"`` descending)
    of ``doc(item)``: numbers by value, before anything else by its text; an
    item without the key last either way."""
    key, descending = sort_key(order)
    values = {id(item): lookup(doc(item), key) for item in items}
    missing = [i for i in items if _absent(values[id(i)])]
    present = [i for i in items if not _absent(values[id(i)])]

    def is_number(item: Any) -> bool:
        v = values[id(item)]
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    # Each part in order, descending or not: numbers stay before text.
    numbers = sorted(filter(is_number, present), key=lambda i: values[id(i)],
                     reverse=descending)
    texts = sorted((i for i in present if not is_number(i)), key=lambda i: str(values[id(i)]),
                   reverse=descending)
    items[:] = numbers + texts + missing


def _absent(value: Any) -> bool:
    return value is _MISSING or value is None or (type(value) is float and value != value)


def sort_key(order: str) -> tuple[str, bool]:
    """``"-created_at"`` → ("created_at", descending)."""
    if not isinstance(order, str):
        raise UsageError(f"order must be a string such as '-created_at', not {order!r}")
    order = order.strip() or "-created_at"
    if order[0] in "+-":
        return order[1:], order[0] == "-"
    return order, False
