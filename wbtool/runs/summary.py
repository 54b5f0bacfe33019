"""``run.summary`` and ``run.define_metric``.

By default the summary holds the last value logged for every key. A metric
defined with ``summary="min,max,mean,first,last"`` holds a dict of those
aggregates instead; ``"none"`` keeps the key out of the summary. Values the
user writes to ``run.summary`` win over derived ones, except under the keys
wbtool sets in every row (``_step``, ``_runtime``, ...): a resumed run goes on
from those, so what the user writes there is dropped with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from wbtool.runs.values import RESERVED_KEYS, normalise, reserved_warning

AGGREGATES = ("min", "max", "mean", "first", "last", "best", "copy", "none")


_METRIC_FIELDS = ("step_metric", "step_sync", "hidden", "summary", "goal")


class Metric:
    """What ``define_metric`` returns: this call's settings for ``name``."""

    __slots__ = ("goal", "hidden", "name", "step_metric", "step_sync", "summary")

    def __init__(self, name: str, step_metric: str | None = None, step_sync: bool | None = None,
                 hidden: bool | None = None, summary: tuple[str, ...] | None = None,
                 goal: str | None = None) -> None:
        self.name = name
        self.step_metric = step_metric
        self.step_sync = step_sync
        self.hidden = hidden
        self.summary = summary
        self.goal = goal

    def __repr__(self) -> str:
        return f"Metric({self.to_json()!r})"

    @property
    def is_glob(self) -> bool:
        return any(c in self.name for c in "*?[")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for name in _METRIC_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


def parse_summary(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    parts = tuple(p.strip().lower() for p in value.split(",") if p.strip())
    for p in parts:
        if p not in AGGREGATES:
            raise ValueError(f"unknown summary {p!r}: use " + ", ".join(AGGREGATES))
    return parts


class _Aggregate:
    __slots__ = ("count", "goal", "kinds", "total", "values")

    def __init__(self, kinds: tuple[str, ...], goal: str | None) -> None:
        self.kinds = kinds
        self.goal = goal
        self.count = 0
        self.total = 0.0
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> Any:
        v = self.values
        numeric = type(value) in (int, float) and not (type(value) is float and math.isnan(value))
        if "first" in self.kinds and "first" not in v:
            v["first"] = value
        if "last" in self.kinds or "copy" in self.kinds:
            v["last"] = value
        if numeric:
            if "min" in self.kinds and ("min" not in v or value < v["min"]):
                v["min"] = value
            if "max" in self.kinds and ("max" not in v or value > v["max"]):
                v["max"] = value
            if "mean" in self.kinds:
                try:
                    total = self.total + value
                except OverflowError:  # an int past any float: the mean is past them too
                    total = math.inf if value > 0 else -math.inf
                self.count += 1
                self.total = total
                v["mean"] = total / self.count
            if "best" in self.kinds:
                best = v.get("best")
                if best is None or (value > best if self.goal == "maximize" else value < best):
                    v["best"] = value
        return dict(v)

    def seed(self, previous: Any, count: int) -> None:
        """Go on from the aggregates stored before (a resumed run, a metric
        defined again): a min over the whole run, not over this process's
        part of it. ``count`` is how many values the stored mean averages."""
        if not isinstance(previous, dict):
            return
        v = self.values
        kinds = {*self.kinds, "last"} if "copy" in self.kinds else set(self.kinds)
        for kind in ("first", "last"):
            if kind in kinds and kind in previous:
                v[kind] = previous[kind]
        for kind in ("min", "max", "best"):
            if kind in self.kinds and type(previous.get(kind)) in (int, float):
                v[kind] = previous[kind]
        mean = previous.get("mean")
        if "mean" in self.kinds and isinstance(mean, (int, float)) and count > 0:
            self.count = count
            self.total = mean * count
            v["mean"] = mean


class MetricTable:
    """``define_metric`` calls, merged by name, and the per-key lookup."""

    def __init__(self) -> None:
        self.defs: dict[str, Metric] = {}
        self._resolved: dict[str, Metric | None] = {}

    def define(self, name: str, step_metric: str | None, step_sync: bool | None,
               hidden: bool | None, summary: str | None, goal: str | None,
               overwrite: bool | None) -> Metric:
        if not isinstance(name, str) or not name:
            raise ValueError("define_metric needs a metric name")
        for arg, value, kind in (("step_metric", step_metric, str), ("step_sync", step_sync, bool),
                                 ("hidden", hidden, bool), ("summary", summary, str),
                                 ("goal", goal, str), ("overwrite", overwrite, bool)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"define_metric {arg} must be a {kind.__name__}, "
                                f"not {type(value).__name__}")
        if goal is not None and goal not in ("minimize", "maximize"):
            raise ValueError("goal must be 'minimize' or 'maximize'")
        new = Metric(name, step_metric, step_sync, hidden, parse_summary(summary), goal)
        if new.step_metric is not None and new.step_sync is None:
            new.step_sync = True
        old = self.defs.get(name)
        if old is not None and not overwrite:
            for name in _METRIC_FIELDS:
                if getattr(new, name) is None:
                    setattr(new, name, getattr(old, name))
        self.defs[name] = new
        self._resolved.clear()
        return new

    def lookup(self, key: str) -> Metric | None:
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found = self.defs.get(key)
        if found is None and not key.startswith("_"):
            import fnmatch

            for m in self.defs.values():  # the last matching glob wins
                if m.is_glob and fnmatch.fnmatchcase(key, m.name):
                    found = m
        self._resolved[key] = found
        return found

    def to_json(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.defs.values()]

    def load(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            try:
                summary = item.get("summary")
                self.define(item["name"], item.get("step_metric"), item.get("step_sync"),
                            item.get("hidden"), ",".join(summary) if summary else None,
                            item.get("goal"), True)
            except (KeyError, TypeError, ValueError):
                continue


def _counts(stored: Any) -> dict[str, int]:
    """A run record's ``summary_counts`` as far as it is well formed."""
    if not isinstance(stored, dict):
        return {}
    return {k: n for k, n in stored.items() if isinstance(k, str) and type(n) is int and n > 0}


class _Attributes(MutableMapping[str, Any]):
    """Keys read, set and deleted as attributes too: ``run.summary.acc``."""

    __slots__ = ()

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None


class Summary(_Attributes):
    """Dict-like, with attribute access, as the reference's ``run.summary``."""

    __slots__ = ("_aggs", "_counts", "_data", "_forgotten", "_gone", "_locked", "_media",
                 "_metrics", "_on_change", "_touched", "_user", "_warn")

    def __init__(self, metrics: MetricTable | None = None,
                 on_change: Callable[[], None] | None = None,
                 media: Callable[[], Any] | None = None,
                 warn: Callable[[str, str], None] | None = None) -> None:
        # Where an image or a table set by hand writes its file (the run's
        # folder at its current step), as run.log's do; None writes none.
        object.__setattr__(self, "_media", media or (lambda: None))
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_user", set())
        object.__setattr__(self, "_touched", set())  # keys set by this process since load()
        object.__setattr__(self, "_gone", set())  # keys it deleted since, not set again
        # Keys it deleted since the run's record last said which keys were set
        # by hand and how many values each mean averages.
        object.__setattr__(self, "_forgotten", set())
        object.__setattr__(self, "_aggs", {})
        object.__setattr__(self, "_counts", {})  # stored means: how many values each averages
        object.__setattr__(self, "_metrics", metrics or MetricTable())
        object.__setattr__(self, "_on_change", on_change or (lambda: None))
        object.__setattr__(self, "_locked", False)
        # How it says it left a reserved key alone: (kind, message), as a run
        # warns (once a run for each kind); a Python warning without a run.
        object.__setattr__(self, "_warn", warn or (lambda kind, message: warnings.warn(
            f"wbtool: {message}", stacklevel=4)))

    # -- derived from history -------------------------------------------------
    def observe(self, row: dict[str, Any]) -> None:
        """Fold one committed history row into the summary."""
        data = self._data
        self._touched.update(row)
        if self._gone:
            self._gone.difference_update(row)
        if not self._metrics.defs and not self._user:
            data.update(row)
            return
        for key, value in row.items():
            if key in self._user:
                continue
            metric = self._metrics.lookup(key)
            kinds = metric.summary if metric is not None else None
            if not kinds or kinds == ("last",):
                data[key] = value
            elif "none" in kinds:
                data.pop(key, None)
            else:
                agg = self._aggs.get(key)
                if agg is None or agg.kinds != kinds:
                    count = self._counts.get(key, 0) if agg is None else agg.count
                    agg = self._aggs[key] = _Aggregate(kinds, metric.goal if metric else None)
                    agg.seed(data.get(key), count)
                data[key] = agg.add(value)

    def load(self, data: dict[str, Any], user_keys: list[str] | None = None,
             counts: dict[str, Any] | None = None) -> None:
        self._data.clear()
        self._data.update(data)
        self._user.clear()
        # A reserved key set by hand before wbtool dropped those would stay
        # the user's: the next row's value takes its place again.
        self._user.update(k for k in user_keys or () if k not in RESERVED_KEYS)
        self._touched.clear()
        self._gone.clear()
        self._forgotten.clear()
        self._aggs.clear()
        self._counts.clear()
        self._counts.update(_counts(counts))

    @property
    def user_keys(self) -> list[str]:
        return sorted(self._user)

    @property
    def mean_counts(self) -> dict[str, int]:
        """How many values each ``mean`` in the summary averages: kept with
        the run, so that a resumed run's means go on from them."""
        counts = dict(self._counts)
        counts.update({k: agg.count for k, agg in self._aggs.items() if "mean" in agg.kinds})
        return counts

    # -- the mapping the user sees ----------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            return self._group(key)

    def _group(self, key: str) -> SummaryGroup:
        """The keys that logging a nested dict under ``key`` flattened to
        ``key/...``, as a mapping; KeyError when there are none."""
        if isinstance(key, str):
            prefix = key + "/"
            if any(k.startswith(prefix) for k in self._data):
                return SummaryGroup(self, prefix)
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise ValueError("summary keys must be strings")
        self._check_open()
        if key in RESERVED_KEYS:
            self._reserved(key)
            return
        self._data[key] = normalise(value, key, media=self._media())
        self._user.add(key)
        self._touched.add(key)
        self._gone.discard(key)
        self._forgotten.discard(key)
        self._on_change()

    def __delitem__(self, key: str) -> None:
        """Forget ``key``, or every key nested under it (``acc`` for ``acc/top1``
        and ``acc/top5``): what is logged under them from now on shows again,
        and their min/max/mean start over from there. A key wbtool sets
        in every row (``_step``) stays, with a warning."""
        self._check_open()
        if key in RESERVED_KEYS and key in self._data:
            self._reserved(key, deleted=True)
            return
        if key in self._data:
            keys = [key]
        else:
            prefix = key + "/" if isinstance(key, str) else None
            keys = [k for k in self._data if prefix is not None and k.startswith(prefix)]
            if not keys:
                raise KeyError(key)
        for k in keys:
            del self._data[k]
            self._user.discard(k)
            self._touched.discard(k)
            self._gone.add(k)
            self._forgotten.add(k)
            self._aggs.pop(k, None)
            self._counts.pop(k, None)
        self._on_change()

    def _reserved(self, key: str, deleted: bool = False) -> None:
        self._warn(f"summary reserved {key}", reserved_warning("run.summary", key,
                                                               deleted=deleted))

    def popitem(self) -> tuple[str, Any]:
        """A key and its value, taken out; never one of the keys wbtool sets
        in every row, which ``clear()`` leaves in place."""
        for key, value in self._data.items():
            if key not in RESERVED_KEYS:
                del self[key]
                return key, value
        raise KeyError("popitem(): no summary key but those wbtool sets")

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items = given = dict(other, **kwargs)
        if not all(isinstance(key, str) for key in items):
            raise ValueError("summary keys must be strings")
        self._check_open()
        media = self._media()
        items = {key: normalise(value, key, media=media)  # all or none
                 for key, value in items.items() if key not in RESERVED_KEYS}
        for key in RESERVED_KEYS:
            if key in given:  # a summary copied from another run holds them
                self._reserved(key)
        self._data.update(items)
        self._user.update(items)
        self._touched.update(items)
        self._gone.difference_update(items)
        self._forgotten.difference_update(items)
        if items:
            self._on_change()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def _lock(self) -> None:
        object.__setattr__(self, "_locked", True)

    def _check_open(self) -> None:
        if self._locked:
            from wbtool.errors import UsageError

            raise UsageError("this run is finished: its summary can no longer change")

    def changes(self) -> dict[str, Any]:
        """What this process set since :meth:`load`: all that it may merge
        into a summary that others (``wbtool log``, an attached program)
        write too; the rest may be older than what they wrote."""
        return {k: v for k, v in self._data.items() if k in self._touched}

    def merge_record(self, user_keys: Any, counts: Any) -> tuple[list[str], dict[str, int]]:
        """The run record's ``summary_user_keys`` and ``summary_counts`` when
        other processes write them too (a shared run): theirs as stored, less
        the keys this process deleted, with this process's own on top."""
        forgotten = self._forgotten
        theirs = user_keys if isinstance(user_keys, list) else ()
        keys = {k for k in theirs
                if isinstance(k, str) and k not in forgotten and k not in RESERVED_KEYS}
        keys |= self._user
        merged = {k: n for k, n in _counts(counts).items() if k not in forgotten}
        merged.update(self.mean_counts)
        forgotten.clear()
        return sorted(keys), merged

    def take_deleted(self) -> list[str]:
        """The keys this process deleted (and did not set again) since the
        last call: what the next merge into a shared summary takes out, once,
        so that a key another process sets later stays."""
        gone = sorted(self._gone)
        self._gone.clear()
        return gone

    def __repr__(self) -> str:
        return f"Summary({self._data!r})"


class SummaryGroup(_Attributes):
    """``run.summary["acc"]`` after ``run.log({"acc": {"top1": ...}})``: the
    summary's ``acc/...`` keys seen as one nested mapping. Reads and writes go
    to the summary itself, so ``run.summary["acc"]["top1"] = 1`` sets
    ``acc/top1``."""

    __slots__ = ("_prefix", "_summary")

    def __init__(self, summary: Summary, prefix: str) -> None:
        object.__setattr__(self, "_summary", summary)
        object.__setattr__(self, "_prefix", prefix)

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str):
            raise KeyError(key)
        try:
            return self._summary[self._prefix + key]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise ValueError("summary keys must be strings")
        self._summary[self._prefix + key] = value

    def __delitem__(self, key: str) -> None:
        """Delete ``key``, or every key nested under it."""
        if not isinstance(key, str):
            raise KeyError(key)
        try:
            del self._summary[self._prefix + key]
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        names: dict[str, None] = {}
        start = len(self._prefix)
        for k in list(self._summary._data):
            if k.startswith(self._prefix):
                names[k[start:].split("/", 1)[0]] = None
        return iter(names)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr({k: self[k] for k in self})
