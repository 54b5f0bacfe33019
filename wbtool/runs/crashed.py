"""Index rows of runs whose process is gone, caught up with their folders.

A run writes its row of ``index.db`` when it starts, at each heartbeat
(every ``heartbeat_seconds``) and when it ends; a run whose process was
killed (SIGKILL, the machine going down) never writes the last one, while
its folder holds more: history rows flushed every second, a summary every
few seconds. Readers of the index (``runs list``, ``runs show``, the public
API) catch such a row up from the folder when they find its process gone,
and record it as ``crashed``, so that later readers need not look again.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from wbtool.runs import catalog
from wbtool.runs.catalog import RunRow
from wbtool.runs.folder import LIVE_STATES, RunFolder, effective_state

if TYPE_CHECKING:
    from wbtool.context import Context

# How long a listing waits to record the rows it caught up.
WAIT_SECONDS = 0.5


def caught_up(ctx: Context, rows: list[RunRow]) -> list[RunRow]:
    """``rows``, those of runs recorded as running whose process is gone
    replaced by what their folders hold (and so stored, where the store can
    be written)."""
    fresh: dict[str, tuple[RunRow, RunRow]] = {}
    for row in rows:
        if row.doc.get("state") == "running" and effective_state(row.doc) == "crashed":
            new = _from_folder(ctx, row)
            if new is not None:
                fresh[row.id] = (row, new)
    if not fresh:
        return rows
    try:
        # Another process writing the index (a long commit) does not hold up
        # a listing: what it would record is shown, and recorded next time.
        with ctx.store.index.waiting_at_most(WAIT_SECONDS):
            catalog.refresh(ctx.store.index, list(fresh.values()))
    except (sqlite3.Error, OSError):  # a store this user cannot write: shown, not kept
        pass
    return [fresh[r.id][1] if r.id in fresh else r for r in rows]


def _from_folder(ctx: Context, row: RunRow) -> RunRow | None:
    """The row of a run whose process is gone as its folder has it: ``crashed``,
    with the summary of every row its history holds and the runtime it reached;
    None where the folder says otherwise (the run was resumed) or holds no run."""
    from wbtool.runs.init import _caught_up_summary, _runtime_so_far

    folder = RunFolder(ctx.store.path / "runs" / row.id)
    doc = folder.read_run()
    if doc is None or doc.get("id") != row.id or doc.get("project") != row.doc.get("project"):
        return None
    summary = _dict(folder.read_json(folder.summary, {}))
    if doc.get("state") in LIVE_STATES:
        if doc.get("state") != "running" or effective_state(doc) != "crashed":
            return None
        metrics = doc.get("metrics")
        user_keys = doc.get("summary_user_keys")
        summary, _counts = _caught_up_summary(
            folder, summary, metrics if isinstance(metrics, list) else [],
            [k for k in user_keys if isinstance(k, str)] if isinstance(user_keys, list) else [],
            _dict(doc.get("summary_counts")))
        doc = {**doc, "state": "crashed", "runtime": _runtime_so_far(folder, doc, summary)}
    return RunRow.of(doc, summary, folder.read_config())


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
