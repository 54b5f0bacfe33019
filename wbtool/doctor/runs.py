"""``wbtool doctor``'s look at runs: folders against index rows, and runs
whose process is gone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbtool.doctor.check import FAIL, LISTED, OK, WARN, Check, names, plural

if TYPE_CHECKING:
    from wbtool.context import Context


def checks(ctx: Context) -> Iterator[Check]:
    from wbtool.errors import InvalidNameError
    from wbtool.runs import catalog
    from wbtool.runs.folder import LIVE_STATES, RunFolder, effective_state, is_record
    from wbtool.runs.ids import validate_id

    rows = {r.id: r for r in catalog.select(ctx.store.index)}
    runs_dir = ctx.store.path / "runs"
    try:
        folders = {e.name: Path(e.path) for e in os.scandir(runs_dir)
                   if e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        folders = {}
    records = {}
    stray, damaged, not_runs = [], [], []
    for run_id, path in sorted(folders.items()):
        try:
            validate_id(run_id)
        except InvalidNameError:  # no run's folder, which no command can name
            not_runs.append(run_id)
            continue
        doc = RunFolder(path).read_run()
        if not is_record(doc):  # `wbtool runs delete ID` removes it, listed or not
            damaged.append(run_id)
            continue
        records[run_id] = doc
        if run_id in rows:
            continue
        if effective_state(doc) not in LIVE_STATES:  # a live one is being created
            stray.append(run_id)
    orphans = sorted(set(rows) - set(folders))
    yield _run_folders(ctx, rows, stray, damaged, not_runs, orphans)
    crashed = []
    for run_id, row in rows.items():
        if run_id not in folders:
            continue
        # run.json, which still reads "running" where the index row has been
        # caught up as crashed (wbtool.runs.crashed)
        doc = records.get(run_id) or row.doc
        if doc.get("state") in LIVE_STATES and effective_state(doc) == "crashed":
            crashed.append(run_id)
    if not crashed:
        yield Check("runs", "crashed", OK, "no run left running by a process that is gone")
        return
    crashed.sort()
    # A run whose process died is history, not damage: the store is whole,
    # and a CI check of a store where jobs are sometimes killed must not fail.
    yield Check("runs", "crashed", WARN,
                f"{plural(len(crashed), 'run')} recorded as running whose process is gone: "
                f"{names(crashed)}",
                "`wbtool runs list --state crashed` lists them; `wbtool runs delete ID --yes` "
                "removes one", data={"runs": crashed[:LISTED]})


def _run_folders(ctx: Context, rows: dict[str, Any], stray: list[str], damaged: list[str],
                 not_runs: list[str], orphans: list[str]) -> Check:
    data = {"runs": len(rows), "unindexed": stray[:LISTED], "damaged": damaged[:LISTED],
            "not_runs": not_runs[:LISTED], "without_folder": orphans[:LISTED]}
    if not (stray or damaged or not_runs or orphans):
        return Check("runs", "runs", OK, f"{plural(len(rows), 'run')}, each with its folder",
                     data=data)
    parts, hints = [], []
    if stray:
        parts.append(f"{plural(len(stray), 'run folder')} the index does not list: "
                     f"{names(stray)}")
    if orphans:
        parts.append(f"{plural(len(orphans), 'index row')} without a folder: "
                     f"{names(orphans)}")
    if damaged:
        parts.append(f"{plural(len(damaged), 'run folder')} whose run.json is missing or "
                     f"damaged: {names(damaged)}")
    if stray or orphans or damaged:
        hints.append("`wbtool runs delete ID --yes` removes "
                     + ("any of them" if bool(stray) + bool(orphans) + bool(damaged) > 1
                        else "one"))
    if not_runs:
        parts.append(f"{plural(len(not_runs), 'folder')} whose name is no run id: "
                     f"{names(not_runs)}")
        hints.append(f"remove those folders from {ctx.store.path / 'runs'} by hand")
    return Check("runs", "runs", FAIL, "; ".join(parts), "; ".join(hints), data=data)
