"""Turning what users log into JSON-ready rows.

``run.log`` is on the hot path of a training loop, so plain values (int,
float, str, bool, None) take a fast path; everything else goes through
:func:`normalise`. NaN and ±inf stay floats: history lines are written with
JSON's ``NaN``/``Infinity`` extension, which Python's ``json`` reads back.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

PLAIN = frozenset((int, float, str, bool, type(None)))
# Arrays up to this size are stored as lists; larger ones become histograms.
MAX_LIST_ARRAY = 32
HISTOGRAM_BINS = 64
# Deeper nesting than this is taken for a container that holds itself, which
# would otherwise recurse until Python raises RecursionError.
MAX_DEPTH = 100
# What _normalise returns for a value it warned it would not keep: run.log
# leaves the key out of the row, so the summary keeps the metric's last value.
SKIPPED = object()
# The highest step a history row may hold: what a 64-bit signed integer
# holds, as the reference's steps are.
MAX_STEP = 2**63 - 1
# The keys wbtool writes into history rows itself (``_label``: which process
# of a shared run logged the row). A value logged under one would be written
# over, or taken for wbtool's own: run.log and run.summary drop it with a
# warning.
RESERVED_KEYS = ("_step", "_runtime", "_timestamp", "_label")

encode = json.JSONEncoder(separators=(",", ":"), allow_nan=True, ensure_ascii=False).encode
# How JSON text is encoded as UTF-8: a lone surrogate (bytes that were not
# UTF-8, from a file name or an argument) is written as its JSON escape,
# which reads back as the same string, instead of failing the whole write.
JSON_SAFE = "backslashreplace"


def reserved_warning(where: str, key: str, *, deleted: bool = False) -> str:
    """What ``where`` (``run.log``, ``run.summary``) says when it leaves a
    value given under one of :data:`RESERVED_KEYS` out, or keeps one the
    user deleted."""
    if deleted:
        return f"{where}: the key {key!r} is reserved, so it was not deleted " \
               "(wbtool sets it in every row)"
    how = ("pass step= to run.log to log to a given step" if key == "_step"
           else "wbtool sets it in every row")
    return f"{where}: the key {key!r} is reserved, so its value was dropped ({how})"


class LogTarget(NamedTuple):
    """Where the files of media logged in a row go (``wbtool.Image``,
    ``wbtool.Table``): the run's folder (None for a run that keeps nothing:
    the row is built, no file is written) and the step of the row."""

    folder: str | None
    step: int


def _too_deep(key: str) -> ValueError:
    shown = key if len(key) <= 60 else key[:60] + "..."
    return ValueError(f"cannot log {shown!r}: it is nested more than {MAX_DEPTH} levels deep "
                      "(does it contain itself?)")


def flatten_into(row: dict[str, Any], data: Mapping[str, Any], prefix: str = "",
                 depth: int = 0, media: Any = None) -> None:
    """Copy ``data`` into ``row``: nested dicts become ``a/b`` keys.

    ``media``: where logged media write their files, a :class:`LogTarget`
    (or an artifact, for a table's cells); None writes none."""
    if depth > MAX_DEPTH:
        raise _too_deep(prefix.rstrip("/"))
    for key, value in data.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise ValueError(f"logged keys must be strings, not {type(key).__name__}: "
                                 f"{key!r}")
            key = str.__str__(key)  # numpy.str_, a str Enum: the plain string
        name = prefix + key
        if not key:  # "" or, under a nested dict, "a/": no name to read it back by
            raise ValueError(f"logged keys must be non-empty strings: cannot log {name!r}")
        if type(value) in PLAIN:
            if name in row:
                raise logged_twice(name)
            row[name] = value
        elif isinstance(value, Mapping):
            flatten_into(row, value, name + "/", depth + 1, media)
        else:
            value = _normalise(value, name, depth + 1, media)
            if type(value) is dict and "_type" not in value:  # a dataclass, a model
                flatten_into(row, value, name + "/", depth + 1, media)
            elif value is not SKIPPED:
                if name in row:
                    raise logged_twice(name)
                row[name] = value


def logged_twice(name: str) -> ValueError:
    """A key that one call gives two values, as ``a/b`` and as ``b`` in a
    dict under ``a``: keeping either would lose the other without a word."""
    return ValueError(f"cannot log {name!r} twice in one call (as a key and as a nested "
                      "dict's key): give one value")


def storable(items: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a run's config or summary that JSON can write. Their values
    were checked as they were set, but a nested one can be changed in place
    since (``run.config["opt"]["betas"] = {0.9}``, ``.append(object())``),
    and one that JSON cannot write failed every later write of the run, its
    end included: such a value is written as a config value is kept (a set
    as a list, an object as its text), a key that is not text as its text."""
    out = {}
    for key, value in items.items():
        if type(value) not in PLAIN:
            try:
                value = normalise(value, key, lenient=True)
            except ValueError:
                value = _loose(value, 0)
        out[key] = value
    return out


def _loose(value: Any, depth: int) -> Any:
    """:func:`storable` of a value that :func:`normalise` refuses."""
    if depth > MAX_DEPTH:  # a container that holds itself
        return str(value)
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _loose(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_loose(v, depth + 1) for v in value]
    try:
        return normalise(value, lenient=True)
    except ValueError:
        return str(value)


def _histogram(array: Any, key: str) -> dict[str, Any]:
    from wbtool.media.histogram import histogram_doc

    return histogram_doc(array, HISTOGRAM_BINS)


def normalise(value: Any, key: str = "", *, lenient: bool = False, media: Any = None) -> Any:
    """A JSON-ready copy of ``value``; raises ValueError for what cannot be
    logged. ``lenient`` (a config value, as the reference keeps one): an
    object of no type that can be logged is kept as its text instead, and a
    dict's number key as JSON writes it (``{0: "cat"}`` as ``{"0": "cat"}``).
    ``media``: as for :func:`flatten_into`."""
    return _kept(_normalise(value, key, 0, media, lenient=lenient))


def _normalise(value: Any, key: str, depth: int, media: Any = None, *,
               lenient: bool = False) -> Any:
    """:func:`normalise`, which returns :data:`SKIPPED` for an array it warned
    it would not keep; inside a list or dict that array becomes None, so the
    other items keep their places. ``media``: as for :func:`flatten_into`."""
    t = type(value)
    if t in PLAIN:
        return value
    if depth > MAX_DEPTH:
        raise _too_deep(key)
    if isinstance(value, (bool, int, float, str)):  # subclasses (IntEnum, numpy.float64)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return str.__str__(value)  # numpy.str_, a str Enum: the plain string
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if lenient and isinstance(k, (int, float)):
                k = json.dumps(k)  # as JSON writes it: a model config's id2label {0: ...}
            elif not isinstance(k, str):
                raise ValueError(f"logged keys must be strings: {key}/{k!r}")
            k = str.__str__(k)
            out[k] = _kept(_normalise(v, f"{key}/{k}", depth + 1, media, lenient=lenient))
        return out
    if isinstance(value, (list, tuple)):
        if value and hasattr(value[0], "_log_sequence"):  # a list of wbtool.Image, Audio, ...
            return value[0]._log_sequence(value, media, key)
        return [_kept(_normalise(v, key, depth + 1, media, lenient=lenient)) for v in value]
    if isinstance(value, os.PathLike):  # argparse's type=Path, a config dataclass's paths
        return os.fsdecode(value)
    # Tensors (PyTorch, TensorFlow, JAX) → numpy without importing them.
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    elif t.__module__.startswith(("tensorflow", "jax", "jaxlib")) and hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # numpy scalar or array
        if value.shape == () and hasattr(value, "item"):
            return _normalise(value.item(), key, depth, lenient=lenient)
        size = int(getattr(value, "size", 0))
        if size <= MAX_LIST_ARRAY:
            return _normalise(value.tolist(), key, depth, lenient=lenient)
        if value.dtype.kind in "biuf":
            return _histogram(value, key)
        warnings.warn(f"wbtool: {key!r}: an array of {size} {value.dtype} values is too large "
                      "to log as a list; it was not logged", stacklevel=4)
        return SKIPPED
    if hasattr(value, "_to_row"):  # wbtool.Image, Histogram, Table, Audio, Video, ...
        return value._to_row(media, key)
    if hasattr(value, "item") and callable(value.item):  # other scalar wrappers
        return _normalise(value.item(), key, depth, lenient=lenient)
    if hasattr(value, "to_json") and callable(value.to_json):
        return _normalise(value.to_json(), key, depth, lenient=lenient)
    return _normalise(_plain_stand_in(value, key, lenient), key, depth + 1, lenient=lenient)


def _plain_stand_in(value: Any, key: str, lenient: bool = False) -> Any:
    """What a common non-JSON value is logged as: a date as its ISO text, a
    Decimal as a float, a set as a sorted list, a dataclass or pydantic model
    (or an argparse Namespace) as a dict of its fields, an Enum as its value,
    UTF-8 bytes as text; with ``lenient``, anything else as its text."""
    import argparse
    import datetime
    import decimal
    import enum
    import uuid

    t = type(value)
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return math.nan if value.is_snan() else float(value)  # float() refuses a signaling NaN
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:  # items of mixed types: keep the set's own order
            return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    fields = record_fields(value)
    if fields is not None:
        return fields
    if isinstance(value, argparse.Namespace):
        return vars(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"cannot log {key!r}: its bytes are not UTF-8 text") from None
    if lenient:
        try:
            return str(value)
        except Exception:  # a __str__ that raises or gives no string: the object's name
            return object.__repr__(value)
    raise ValueError(f"cannot log {key!r}: values of type {t.__name__} are not supported "
                     "(use numbers, strings, booleans, lists, dicts or numpy arrays)")


def record_fields(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass instance or a pydantic (v2) model, as a dict;
    None for anything else (their classes included)."""
    if isinstance(value, type):
        return None
    import dataclasses

    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return dict(value.model_dump())
    return None


def _kept(value: Any) -> Any:
    return None if value is SKIPPED else value


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and not (type(value) is float and math.isnan(value))
