"""Logging to a run from outside it: ``wbtool log`` and ``wbtool alert``.

Shell scripts in CI log rows into the run that ``wbtool run`` created for
them (``WBTOOL_RUN_ID``) or any named run. Each call takes the run's lock,
so concurrent calls from many shell processes never interleave partial
lines or reuse a step.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from wbtool.errors import NotFoundError, UsageError
from wbtool.fsutil import append_to
from wbtool.runs import catalog
from wbtool.runs.folder import (
    RunFolder,
    is_record,
    record_damaged,
    runtime_at,
    unreadable,
)
from wbtool.runs.ids import validate_id
from wbtool.runs.values import JSON_SAFE, MAX_STEP, RESERVED_KEYS, encode, normalise

PENDING = "history.pending.json"


# Lists and objects nested deeper than this are refused: reading them, and
# writing them into a run's files, recurses once or more per level.
MAX_NESTING = 100


def parse_value(text: str, key: str = "") -> Any:
    """``3`` → 3, ``0.5`` → 0.5, ``true`` → True, ``[1,2]`` → [1, 2], else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(lowered.replace("infinity", "inf"))
    try:
        value = json.loads(text)
        deep = _nesting(value) > MAX_NESTING
    except RecursionError:  # deeper than the JSON reader goes
        deep = True
    except ValueError:
        return _shell_number(text)
    if deep:
        raise UsageError(f"the value of {key!r} nests lists or objects more than "
                         f"{MAX_NESTING} levels deep")
    return value


# Numbers as shell tools write them and JSON does not read them: ``.25`` and
# ``-.5`` (bc), ``+3``, ``5.``. Leading zeros (``007``, an id) stay text.
_SHELL_NUMBER = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(\.[0-9]*)?|(\.)[0-9]+)([eE][+-]?[0-9]+)?")


def _shell_number(text: str) -> Any:
    """``text`` as a number where it is one written as shell tools write them, else as it is."""
    found = _SHELL_NUMBER.fullmatch(text.strip())
    if found is None:
        return text
    try:
        if found.group(1) is None and found.group(2) is None and found.group(3) is None:
            return int(text)
        return float(text)
    except ValueError:  # more digits than Python converts: as JSON's reader, text
        return text


def _nesting(value: Any) -> int:
    """How many levels of lists and objects ``value`` has (0 for a plain value)."""
    depth, level = 0, [value]
    while True:
        containers = [v for v in level if isinstance(v, (list, dict))]
        if not containers:
            return depth
        depth += 1
        level = [item for v in containers for item in (v.values() if isinstance(v, dict) else v)]


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"expected KEY=VALUE, not {pair!r}")
        values[key] = parse_value(raw, key)
    if not values:
        raise UsageError("nothing to log: give KEY=VALUE pairs")
    return values


def run_folder(ctx: Any, run_id: str | None) -> RunFolder:
    """The folder of the run to log to; ``ctx`` is None where there is no
    store (so no run either: looking for one creates no store)."""
    run_id = run_id or os.environ.get("WBTOOL_RUN_ID")
    if not run_id:
        raise UsageError("no run to log to: pass --run ID, or call this under "
                         "'wbtool run', which sets WBTOOL_RUN_ID")
    validate_id(run_id)
    if ctx is None:
        raise NotFoundError(what="run", name=run_id)
    folder = RunFolder(ctx.store.path / "runs" / run_id)
    if not folder.exists():
        indexed = not folder.path.is_dir() and catalog.get(ctx.store.index, run_id) is not None
        raise unreadable(folder, indexed=indexed)
    return folder


def _current_step(folder: RunFolder) -> tuple[int, dict[str, Any] | None]:
    """The run's current step, where a row logged without a step goes: one
    past the highest committed row, raised to the step of the row being
    built (``wbtool log --no-commit``); and that row, or None."""
    from wbtool.runs.init import _last_step as next_step

    current = next_step(folder)
    pending = folder.read_json(folder.path / PENDING, None)
    if isinstance(pending, dict) and isinstance(pending.get("_step"), int):
        return max(current, pending["_step"]), pending
    return current, None


def history_step(ctx: Any, run_id: str) -> int | None:
    """The step of the run's latest history row, as ``run.log_artifact``
    records it with a version the run logs: the row being built (``wbtool log
    --no-commit``), else the highest committed; None before any, and for a
    run this store does not hold."""
    folder = RunFolder(ctx.store.path / "runs" / run_id)
    if not folder.path.is_dir():
        return None
    current, pending = _current_step(folder)
    if pending is not None:
        return current
    return current - 1 if current > 0 else None


def in_store(ctx: Any, run_id: str) -> bool:
    """Whether this store holds run ``run_id``: its folder, or its row in the
    index (a folder deleted by hand, which doctor names)."""
    if (ctx.store.path / "runs" / run_id).is_dir():
        return True
    return catalog.get(ctx.store.index, run_id) is not None


def log_values(ctx: Any, run_id: str | None, values: dict[str, Any], *,
               step: int | None = None, commit: bool | None = None,
               summary_only: bool = False) -> dict[str, Any]:
    """Append ``values`` to the run's history (or only its summary)."""
    if summary_only and (step is not None or commit is not None):
        raise UsageError("--step and --commit/--no-commit place history rows; "
                         "--summary sets summary values, which have no step")
    if step is not None and not 0 <= step <= MAX_STEP:
        raise UsageError(f"--step must be between 0 and {MAX_STEP}, not {step}")
    for key in RESERVED_KEYS:
        if key in values:  # a value under it would be written over, or misread
            how = ("wbtool sets it in every row" if key != "_step" or summary_only
                   else "pass --step N to log to a given step")
            raise UsageError(f"cannot log {key!r}: the key is reserved ({how})")
    folder = run_folder(ctx, run_id)
    row: dict[str, Any] = {}
    for key, value in values.items():
        row[key] = normalise(value, key)
    with folder.lock():
        doc = _record(folder)
        if summary_only:
            summary = folder.merge_json(folder.summary, row)
            doc["summary_user_keys"] = sorted(set(doc.get("summary_user_keys") or ()) | set(row))
            folder.write_json(folder.run_json, doc)
            catalog.put(ctx.store.index, doc, summary)
            return {"run": folder.id, "summary": sorted(row)}
        if commit is None:
            commit = step is None
        pending_path = folder.path / PENDING
        current, pending = _current_step(folder)
        if current > MAX_STEP:
            raise UsageError(f"the run has a row at step {MAX_STEP}, the highest a step can "
                             "be: there is no next step to log to")
        if step is not None:
            if step < current:
                raise UsageError(f"step {step} is lower than the run's current step "
                                 f"{current}; steps must increase")
            if step > current and pending is not None:
                _commit(ctx, folder, doc, pending)
                pending = None
            current = step
        merged = {**(pending or {}), **row, "_step": current}
        if commit:
            _commit(ctx, folder, doc, merged)
            if os.path.exists(pending_path):
                os.unlink(pending_path)
        else:
            folder.write_json(pending_path, merged)
    return {"run": folder.id, "step": current, "committed": bool(commit)}


def _record(folder: RunFolder) -> dict[str, Any]:
    """The run's record, which a log writes back to the index: refused before
    anything is appended when run.json is not a record wbtool can read."""
    doc = folder.read_run()
    if not is_record(doc):
        raise record_damaged(folder)
    return doc


def _commit(ctx: Any, folder: RunFolder, doc: dict[str, Any], row: dict[str, Any]) -> None:
    now = time.time()
    row = dict(row)
    row["_runtime"] = runtime_at(doc, now)
    row["_timestamp"] = now
    append_to(folder.history, (encode(row) + "\n").encode("utf-8", JSON_SAFE))
    catalog.put(ctx.store.index, doc, _summarize(folder, doc, row))


def _summarize(folder: RunFolder, doc: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Fold ``row`` into the run's summary as its ``define_metric`` calls ask
    (a min or mean over the whole run, not this row's value), keeping the
    keys the user set; write it back and return it. The caller holds the lock."""
    from wbtool.runs.summary import MetricTable, Summary

    metrics = MetricTable()
    defined = doc.get("metrics")
    metrics.load(defined if isinstance(defined, list) else [])
    summary = Summary(metrics)
    current = folder.read_json(folder.summary, {})
    user = doc.get("summary_user_keys")
    counts = doc.get("summary_counts")
    summary.load(current if isinstance(current, dict) else {},
                 [k for k in user if isinstance(k, str)] if isinstance(user, list) else None,
                 counts if isinstance(counts, dict) else None)
    summary.observe(row)
    folder.write_json(folder.summary, summary.as_dict())
    if summary.mean_counts != (counts or {}):
        doc["summary_counts"] = summary.mean_counts
        folder.write_json(folder.run_json, doc)
    return summary.as_dict()


def alert(ctx: Any, run_id: str | None, title: str, text: str, level: str) -> dict[str, Any]:
    from wbtool.runs.run import ALERT_LEVELS

    # The values given are checked before the run is looked for, as the
    # command line checks its options before it runs the command.
    level = level.upper()
    if level not in ALERT_LEVELS:
        raise UsageError(f"--level must be one of {', '.join(ALERT_LEVELS)}")
    if not title or len(title) > 64:
        raise UsageError("the alert title must be 1 to 64 characters")
    folder = run_folder(ctx, run_id)
    event = {"type": "alert", "title": title, "text": text, "level": level,
             "time": time.time()}
    folder.append_event(event)
    return {"run": folder.id, **event}
