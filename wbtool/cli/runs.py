"""``wbtool runs …``: list, inspect, stream, export and delete tracked runs."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import typer

from wbtool.cli import output
from wbtool.runs.charts import LABEL_MARK, NUMBERS, chart_history, parse_block, sparkline

app = typer.Typer(help="Tracked runs: list, show, diff, history, logs, system, export, delete.",
                  no_args_is_help=True)

ProjectOpt = typer.Option(None, "--project", "-p", help="Project (default: the settings' "
                          "project; with none set, every project).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of text.")
RunArg = typer.Argument(..., metavar="ID", help="Run ID (or project/ID).")

FORMATS = ("csv", "jsonl")
TABLE_METRICS = 3
RICH_MAX_ROWS = 500
EXPORT_FIELDS = ("id", "name", "state", "project", "group", "tags", "created_at", "runtime")
SYSTEM_COLUMNS = ("_runtime", "_timestamp")


# -- helpers ------------------------------------------------------------------------------

def _ctx(project: str | None) -> Any:
    """The context, or None when no store exists yet (reading never creates one)."""
    from wbtool.context import Context, project_settings

    return Context.existing(project_settings(project))


def _project(ctx: Any, project: str | None) -> str | None:
    """The project to list: ``--project``, else the one the settings name
    (checked wherever it was set), else None for every project."""
    from wbtool.context import checked_project
    from wbtool.settings import load

    if project is not None:
        return project
    return checked_project(ctx.settings if ctx is not None else load())


def _get_run(ctx: Any, path: str, *, need_folder: bool = True) -> Any:
    from wbtool.errors import NotFoundError
    from wbtool.runs.ids import split_run_path
    from wbtool.runs.public import get_run

    if ctx is None:
        split_run_path(path)  # a malformed id is a usage error even without a store
        raise NotFoundError(what="run", name=path)
    return get_run(ctx, path, need_folder=need_folder)


def _shown_ids(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _warn_folders(ctx: Any, run_ids: list[str]) -> None:
    """One warning line naming the listed runs whose folders are gone (the
    listing itself comes from the index and stays right), and one naming the
    run folders left out because their run.json is missing or damaged."""
    from wbtool.runs.public import unlisted_damaged

    try:
        present = {e.name for e in os.scandir(ctx.store.path / "runs")
                   if e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        present = set()
    except OSError:
        return
    missing = [i for i in run_ids if i not in present]
    if missing:
        output.note(f"wbtool: warning: {len(missing)} run(s) listed have no folder (deleted "
                    f"by hand?): {_shown_ids(missing)}; `wbtool runs delete ID --yes` removes "
                    "what is left")
    damaged = unlisted_damaged(ctx, present)
    if damaged:
        output.note(f"wbtool: warning: {len(damaged)} run folder(s) not listed: their run.json "
                    f"is missing or damaged: {_shown_ids(damaged)}; `wbtool runs delete ID "
                    "--yes` removes one")


def _history_path(run: Any) -> Any:
    from pathlib import Path

    from wbtool.runs.folder import RunFolder

    return RunFolder(Path(run.dir)).history


def _choice(option: str, value: str, choices: Iterable[str]) -> str:
    from wbtool.errors import UsageError

    allowed = tuple(choices)
    if value not in allowed:
        raise UsageError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
    return value


@contextlib.contextmanager
def _stdout_guard() -> Iterator[None]:
    """A reader that went away (``| head``) ends the command quietly, exit 0;
    output that cannot be written (``> /dev/full``) is told by the error
    handler as such, exit 1."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        output.discard_stdout()  # later flushes go nowhere, silently


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _minute(ts: Any) -> Any:
    return int(ts // 60 * 60) if isinstance(ts, (int, float)) else None


def _local(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def human_duration(seconds: Any) -> str:
    """``0.4s``, ``42s``, ``1m05s``, ``3h02m``, ``2d04h``."""
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"




def _is_number(v: Any) -> bool:
    return type(v) in NUMBERS


def _num(v: Any) -> str:
    return f"{v:.4g}" if type(v) is float else str(v)


def _flatten(doc: dict[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted keys; logged media (dicts with ``_type``) stay whole."""
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and "_type" not in value:
            _flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


def _cell(v: Any) -> Any:
    from wbtool.runs.values import encode

    return encode(v) if isinstance(v, (dict, list)) else v


def _shown(v: Any) -> Any:
    """:func:`_cell`, with logged media told in a few words."""
    if isinstance(v, dict) and isinstance(v.get("_type"), str):
        text = media_text(v)
        if text is not None:
            return text
    return _cell(v)


def media_text(v: dict[str, Any]) -> str | None:
    """A line for logged media (whose JSON runs long): what it is and where its file is."""
    kind = v["_type"]
    where = f": {v['path']}" if isinstance(v.get("path"), str) else ""
    if kind == "histogram" and isinstance(v.get("values"), list):
        counts = [c for c in v["values"] if type(c) in NUMBERS]
        return f"histogram of {_num(sum(counts))} values in {len(v['values'])} bins"
    if kind == "image-file":
        return f"image {v.get('width')}x{v.get('height')} {v.get('format')}{where}"
    if kind == "images/separated":
        if "width" in v and "height" in v:
            size = f" {v['width']}x{v['height']}"
        else:
            size = " of different sizes" if "widths" in v or "heights" in v else ""
        formats = v.get("formats")
        form = "/".join(dict.fromkeys(map(str, formats))) if isinstance(formats, list) \
            else v.get("format")
        return f"{v.get('count')} images{size} {form}"
    if kind == "table-file":
        return f"table of {v.get('nrows')} rows x {v.get('ncols')} columns{where}"
    if kind == "custom-chart":
        from wbtool.plot.series import describe

        return describe(v)
    if kind == "audio-file":
        seconds = f" {_num(v['duration'])}s" if type(v.get("duration")) in NUMBERS else ""
        rate = f" at {v['sample_rate']} Hz" if type(v.get("sample_rate")) is int else ""
        return f"audio {v.get('format')}{seconds}{rate}{where}"
    if kind == "video-file":
        size = f" {v['width']}x{v['height']}" if "width" in v and "height" in v else ""
        frames = f" {v['frames']} frames at {_num(v.get('fps'))} fps" if "frames" in v else ""
        return f"video {v.get('format')}{size}{frames}{where}"
    if kind == "html-file":
        return f"html page of {v.get('size')} bytes{where}"
    if kind == "object3D-file":
        points = f" of {v['points']} points" if "points" in v else ""
        return f"3D object {v.get('format')}{points}{where}"
    if kind in _SEQUENCES:
        return f"{v.get('count')} {_SEQUENCES[kind]}"
    return None


# What a list of media logged under one key is told as: "3 audio clips".
_SEQUENCES = {"audio": "audio clips", "videos": "videos", "html": "html pages",
              "object3D": "3D objects"}


# -- list ---------------------------------------------------------------------------------

@app.command("list")
def list_(
    project: str | None = ProjectOpt,
    state: str | None = typer.Option(
        None, "--state", metavar="STATE", help="Only runs in this state: running, finished, "
        "failed, killed, crashed or preempting."),
    limit: int | None = typer.Option(None, "--limit", "-n", metavar="N",
                                      help="At most N runs (the first, in the order shown)."),
    tags: list[str] = typer.Option([], "--tag", metavar="TAG",
                                   help="Only runs with this tag (repeatable: all of them)."),
    group: str | None = typer.Option(None, "--group", metavar="GROUP",
                                     help="Only runs of this group."),
    where: list[str] = typer.Option(
        [], "--where", "-w", metavar="KEY OP VALUE", help="Only runs where this holds "
        "(repeatable: all of them): KEY is config.KEY, summary.KEY or a field (name, state, "
        "tags, host…), its dots stepping into nested values or, where there are none, naming "
        "a flat key with those dots or with slashes for them (summary.train.loss finds "
        "'train/loss'); OP is = != < <= > >= or ~ (a regular expression); VALUE is read as "
        "JSON where it is JSON, else as text. E.g. 'config.lr<0.01', 'summary.acc>=0.9'."),
    sort: str | None = typer.Option(
        None, "--sort", metavar="[-]KEY", help="Order by KEY (as in --where) instead of "
        "newest first; -KEY for the largest first. Runs without KEY come last."),
    as_json: bool = JsonOpt,
) -> None:
    """List runs, newest first, from the store's index (run folders are not opened).

    A run whose process died without finishing is shown as crashed; runs whose
    folders were deleted by hand, and run folders left out because their run.json
    is missing or damaged, are named in a warning on stderr. The best run by a
    metric: --sort -summary.acc -n 1.
    """
    from wbtool.errors import UsageError
    from wbtool.runs import catalog, query
    from wbtool.runs.crashed import caught_up
    from wbtool.runs.folder import STATES, effective_state

    if state is not None:
        _choice("--state", state, STATES)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    filters = [query.parse_where(w) for w in where]
    filters += [{"tags": t} for t in tags]
    if group is not None:
        filters.append({"group": group})
    if sort is not None and not query.sort_key(sort)[0]:
        raise UsageError(f"--sort needs a KEY, not {sort!r}")
    ctx = _ctx(project)
    proj = _project(ctx, project)
    whole = bool(filters) or sort is not None or state is not None
    rows = [] if ctx is None else caught_up(ctx, catalog.select(
        ctx.store.index, project=proj, limit=None if whole else limit))
    # (row, state as shown, the row as --where and --sort see it, built once)
    found: list[tuple[Any, str, dict[str, Any]]] = []
    for row in rows:
        run_state = effective_state(row.doc)
        if state is not None and run_state != state:
            continue
        doc = (query.filter_doc(row.doc, run_state, row.config, row.summary)
               if filters or sort is not None else {})
        if filters and not query.matches(doc, {"$and": filters}):
            continue
        found.append((row, run_state, doc))
    if sort is not None:
        query.sort_runs(found, lambda f: f[2], sort)
    found = found[:limit]
    kept = [f[0] for f in found]
    states = [f[1] for f in found]
    runs = list(zip([r.doc for r in kept], states, _summaries(kept), strict=True))
    if ctx is not None:
        _warn_folders(ctx, [r.id for r in kept])
    if as_json:
        with _stdout_guard():
            output.emit_json("runs list", [{
                "id": d["id"], "name": d.get("name"), "project": d.get("project"),
                "state": s, "group": d.get("group"), "tags": d.get("tags") or [],
                "created_at": _iso(d.get("created_at")), "runtime": _runtime(d, s),
                "summary": summ} for d, s, summ in runs])
        return
    if not runs:
        output.note("no runs")
        return
    # The metrics asked about (--sort, --where summary.KEY) are shown, first.
    summaries = [summ for _d, _s, summ in runs]
    asked = list(dict.fromkeys(_summary_key(summaries, k.partition(".")[2]) for k in dict.fromkeys(
        [*([query.sort_key(sort)[0]] if sort else []), *(next(iter(f)) for f in filters)])
        if k.startswith(("summary.", "summary_metrics."))))
    common = _common_metrics(summaries, TABLE_METRICS)
    metrics = [*asked, *(m for m in common if m not in asked)][:max(TABLE_METRICS, len(asked))]
    columns = ["id", "name", *(["project"] if proj is None else []), "state", "started",
               "runtime", *metrics]
    local = functools.lru_cache(maxsize=4096)(_local)  # runs started in the same minute
    table = [[d["id"], d.get("name") or "", *([d.get("project")] if proj is None else []), s,
              local(_minute(d.get("created_at"))), human_duration(_runtime(d, s)),
              *[_num(summ[m]) if type(summ.get(m)) in NUMBERS else "" for m in metrics]]
             for d, s, summ in runs]
    with _stdout_guard():
        if len(table) > RICH_MAX_ROWS and output.is_tty():
            _aligned(columns, table)  # rich takes seconds to lay out thousands of rows
        else:
            output.table(columns, table)


def _runtime(doc: dict[str, Any], state: str) -> Any:
    """The runtime a listing shows: so far, of a run still running; else its record's."""
    from wbtool.runs.folder import runtime_at

    return runtime_at(doc, time.time()) if state == "running" else doc.get("runtime")


def _aligned(columns: list[str], rows: list[list[Any]]) -> None:
    rows = [[output.cell(v) for v in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in [columns, *rows]]
    sys.stdout.write("\n".join(lines) + "\n")


def _summary_key(summaries: list[dict[str, Any]], path: str) -> str:
    """The summary key that ``path`` (of ``summary.PATH``) finds in the first
    summary that has it (``train/loss`` for ``train.loss``), else ``path``."""
    from wbtool.runs import query

    for summ in summaries:
        key = query.resolve_key(summ, path)
        if key is not None and len(key) == 1:
            return key[0]
    return path


def _common_metrics(summaries: list[dict[str, Any]], n: int) -> list[str]:
    """The ``n`` non-underscore keys holding a number in the most summaries."""
    from collections import Counter
    from itertools import chain

    present = Counter(chain.from_iterable(summaries))  # an upper bound of each key's count
    best: list[tuple[int, str]] = []
    for key, upper in present.most_common():
        if len(best) >= n and upper <= best[-1][0]:
            break
        if key[:1] == "_":
            continue
        numeric = sum(1 for s in summaries if type(s.get(key)) in NUMBERS)
        if numeric:
            best.append((numeric, key))
            best.sort(key=lambda b: -b[0])  # stable: ties keep the more common key first
            del best[n:]
    return [key for _count, key in best]


def _summaries(rows: list[Any]) -> list[dict[str, Any]]:
    """The summaries of catalog rows, parsed in one go (row by row if that fails)."""
    import json

    if not rows:
        return []
    try:
        docs = json.loads("[" + ",".join([r.summary_text for r in rows]) + "]")
    except ValueError:
        docs = []
    if len(docs) != len(rows):
        return [r.summary for r in rows]
    return [d if isinstance(d, dict) else {} for d in docs]


# -- show ---------------------------------------------------------------------------------

def _show_doc(run: Any) -> dict[str, Any]:
    rec = run.record
    meta = run.metadata
    git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
    charts = chart_history(_history_path(run))
    system = chart_history(_history_path(run).with_name("system.jsonl"))
    return {
        "id": run.id, "name": run.name, "project": run.project, "state": run.state,
        "group": run.group, "job_type": run.job_type, "tags": run.tags, "notes": run.notes,
        "created_at": run.created_at, "runtime": run.runtime, "exit_code": run.exit_code,
        "host": rec.get("host") or meta.get("host"),
        "program": rec.get("program") or meta.get("program"),
        "config": run.config, "summary": run.summary,
        "metadata": {"python": meta.get("python"), "os": meta.get("os"),
                     "host": meta.get("host"), "git_commit": git.get("commit"),
                     "git_branch": git.get("branch"), "git_dirty": git.get("dirty")},
        "files": [f.name for f in run.files()],
        "artifacts_used": [{"name": a.name, "type": a.type} for a in run.used_artifacts()],
        "artifacts_logged": [{"name": a.name, "type": a.type}
                             for a in run.logged_artifacts()],
        "charts": {k: {"count": s.count, "min": s.lo, "max": s.hi, "last": s.last,
                       "points": s.points()} for k, s in sorted(charts.items())},
        "system_charts": {k: {"count": s.count, "min": s.lo, "max": s.hi, "last": s.last,
                              "points": s.points()} for k, s in sorted(system.items())},
        "custom_charts": _custom_charts(run),
    }


def _custom_charts(run: Any) -> dict[str, Any]:
    """The lines of the line, scatter, line-series and curve charts the summary
    holds (each chart's last logged value), read from their tables' files."""
    flat = _flatten(run.summary, "", {})
    if not any(isinstance(v, dict) and v.get("_type") == "custom-chart"
               for v in flat.values()):
        return {}
    from wbtool.plot.series import chart_series, is_chart

    out: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        lines = chart_series(value, run.dir) if is_chart(value) else {}
        if lines:
            out[key] = {name: {"count": s.count, "min": s.lo, "max": s.hi, "last": s.last,
                               "points": s.points()} for name, s in lines.items()}
    return out


@app.command()
def show(run_id: str = RunArg, as_json: bool = JsonOpt) -> None:
    """Identity, config, summary, metadata, files, artifacts and a chart per metric.

    Charts are sparklines of up to 60 points spread evenly over the history (each the
    mean of its stretch of steps), with the minimum, maximum and last value. Line,
    scatter, line-series and curve charts the summary holds (wbtool.plot) are drawn the
    same way, a sparkline per line, in x order.
    """
    doc = _show_doc(_get_run(_ctx(None), run_id))
    with _stdout_guard():
        _print_show(doc, as_json)


def _print_show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json("runs show", doc)
        return
    out = output.line
    cell = output.cell  # names, notes, keys and paths: control characters escaped
    out(f"{cell(doc['id'])}  {cell(doc['name'])}  ({cell(doc['project'])}, {doc['state']})")
    for key in ("group", "job_type", "tags", "notes", "created_at", "runtime", "exit_code",
                "host", "program"):
        value = doc[key]
        if key == "runtime":
            value = human_duration(value) + (" so far" if doc["state"] == "running" else "")
        elif key == "tags":
            value = ", ".join(value)
        if value in (None, "", []):
            continue
        if key == "notes":  # its lines, each indented under the first
            value = "\n    ".join(cell(ln) for ln in str(value).splitlines())
        else:
            value = cell(value)
        out(f"  {key.replace('_', ' ')}: {value}")
    for title, section in (("config", doc["config"]), ("summary", doc["summary"])):
        flat = _flatten(section, "", {})
        if title == "summary":
            flat = {k: v for k, v in flat.items() if not k.startswith("_")}
        if flat:
            out(f"{title}:")
            for k in sorted(flat):
                v = flat[k]
                out(f"  {cell(k)}: {_num(v) if _is_number(v) else cell(_shown(v))}")
    meta = {k: v for k, v in doc["metadata"].items() if v is not None}
    if meta:
        out("metadata:")
        for k, v in meta.items():
            out(f"  {k.replace('_', ' ')}: {cell(v)}")
    for title, key in (("files", "files"), ("artifacts used", "artifacts_used"),
                       ("artifacts logged", "artifacts_logged")):
        if doc[key]:
            out(f"{title}:")
            for item in doc[key]:
                out(f"  {cell(item)}" if isinstance(item, str)
                    else f"  {cell(item['name'])} ({cell(item['type'])})")
    for title, key in (("history", "charts"), ("system metrics", "system_charts"),
                       ("logged charts", "custom_charts")):
        charts = doc[key]
        if key == "custom_charts":  # a line per line of each chart, named chart: line
            charts = {f"{k}: {name}" if name else k: c
                      for k, lines in charts.items() for name, c in lines.items()}
        if not charts:
            continue
        out(f"{title}:")
        names = {k: cell(k) for k in charts}
        width = max(map(len, names.values()))
        lines = {k: sparkline(c["points"]) for k, c in charts.items()}
        spark_width = max(len(v) for v in lines.values())
        for k, c in charts.items():
            out(f"  {names[k]:<{width}}  {lines[k]:<{spark_width}}  min {_num(c['min'])}"
                f"  max {_num(c['max'])}  last {_num(c['last'])}  ({c['count']} points)")


# -- history ------------------------------------------------------------------------------

def _known_keys(run: Any, keys: list[str]) -> None:
    """Refuse keys the run never logged (checked against its summary and history)."""
    import json

    from wbtool.errors import UsageError
    from wbtool.runs.history import iter_chunks

    missing = [k for k in keys if k not in run.summary and not k.startswith("_")]
    if missing:
        needles = {k: json.dumps(k, ensure_ascii=False).encode() + b":" for k in missing}
        for block in iter_chunks(_history_path(run)):  # a byte search, no parsing
            missing = [k for k in missing if needles[k] not in block]
            if not missing:
                return
        logged = sorted(k for k in run.summary if not k.startswith("_"))
        raise UsageError(f"run {run.id} has no metric {missing[0]!r}"
                         + (f" (it has: {', '.join(logged)})" if logged else ""))


def _header(run: Any, first: list[Any], labelled: bool = False) -> list[str]:
    """CSV columns without --keys: ``_step``, the keys of the first block in the order
    they appear, the summary's other keys, then ``_runtime`` and ``_timestamp``, and
    ``_label`` where rows have one (those of the processes of a shared run)."""
    seen: dict[str, None] = {"_step": None}
    for row in first:
        if type(row) is dict:
            seen.update(dict.fromkeys(k for k in row if k not in SYSTEM_COLUMNS
                                      and k != "_label"))
    seen.update(dict.fromkeys(sorted(k for k in run.summary
                                     if not k.startswith("_") and k not in seen)))
    return [*seen, *SYSTEM_COLUMNS, *(["_label"] if labelled else [])]


@app.command()
def history(
    run_id: str = RunArg,
    keys: str | None = typer.Option(
        None, "--keys", "-k", metavar="KEY,...", help="Comma-separated metrics: only rows "
        "holding at least one of them, reduced to _step and these keys (CSV columns in this "
        "order)."),
    fmt: str = typer.Option("jsonl", "--format", "-f", metavar="[csv|jsonl]",
                            help="jsonl: the stored lines, as written; csv: a header row, "
                            "then one line per step. Without --keys the CSV columns are _step, "
                            "the keys of the first 1 MiB of history, the summary's other keys, "
                            "_runtime and _timestamp (then _label, in a shared run whose other "
                            "processes name their rows with it); keys first seen later are "
                            "named on stderr."),
    min_step: int | None = typer.Option(None, "--min-step", metavar="N", help="Only steps >= N."),
    max_step: int | None = typer.Option(None, "--max-step", metavar="N", help="Only steps < N."),
) -> None:
    """Stream a run's history (one row per step) to stdout.

    Rows are read and written block by block, so memory stays flat however long the
    history is; a torn last line (a killed writer) is skipped.
    """
    from wbtool.errors import UsageError
    from wbtool.runs.history import iter_chunks

    _choice("--format", fmt, FORMATS)
    wanted: list[str] | None = None
    if keys is not None:
        wanted = [k.strip() for k in keys.split(",")]
        if not all(wanted):
            raise UsageError(f"--keys needs comma-separated metric names, not {keys!r}")
        wanted = list(dict.fromkeys(wanted))
    if min_step is not None and max_step is not None and min_step >= max_step:
        raise UsageError(f"--min-step ({min_step}) must be below --max-step ({max_step})")
    run = _get_run(_ctx(None), run_id)
    if wanted:
        _known_keys(run, wanted)
    path = _history_path(run)
    with _stdout_guard():
        if fmt == "jsonl" and wanted is None and min_step is None and max_step is None:
            sys.stdout.flush()
            write = sys.stdout.buffer.write
            for block in iter_chunks(path):
                write(block)
            return
        rows = _filtered(iter_chunks(path), wanted, min_step, max_step, fmt == "csv")
        if fmt == "jsonl":
            _write_jsonl(rows)
        else:
            _write_csv(run, rows, wanted, wanted is None and _labelled(path))


def _filtered(blocks: Iterable[bytes], wanted: list[str] | None, lo: int | None,
              hi: int | None, float_text: bool) -> Iterator[tuple[bytes, list[dict[str, Any]]]]:
    """(block, rows) pairs: the rows of each block, reduced to the wanted steps and keys."""
    cols = None if wanted is None else ["_step", *(k for k in wanted if k != "_step")]
    for block in blocks:
        # numbers inside nested values must stay numbers: they are written back as JSON
        parsed = parse_block(block, float_text and not _nested(block))
        if lo is None and hi is None and cols is None:
            yield block, [r for r in parsed if type(r) is dict]
            continue
        kept = []
        for r in parsed:
            if type(r) is not dict:
                continue
            if lo is not None or hi is not None:
                step = r.get("_step")
                if not isinstance(step, int) or (lo is not None and step < lo) or (
                        hi is not None and step >= hi):
                    continue
            if cols is not None:
                if not any(k in r for k in cols[1:]):
                    continue
                r = {k: r[k] for k in cols if k in r}
            kept.append(r)
        yield block, kept


def _nested(block: bytes) -> bool:
    """Whether a block may hold dicts or lists as values (strings can give false alarms)."""
    return b":{" in block or b":[" in block


def _write_jsonl(rows: Iterable[tuple[bytes, list[dict[str, Any]]]]) -> None:
    from wbtool.runs.values import JSON_SAFE, encode

    sys.stdout.flush()
    write = sys.stdout.buffer.write
    for _block, kept in rows:  # rows as the writer encodes them: same bytes when unchanged
        if kept:
            write(("\n".join(map(encode, kept)) + "\n").encode("utf-8", JSON_SAFE))


def _write_csv(run: Any, rows: Iterable[tuple[bytes, list[dict[str, Any]]]],
               wanted: list[str] | None, labelled: bool = False) -> None:
    import csv
    import io
    import operator

    from wbtool.runs.values import JSON_SAFE

    buf = io.StringIO()  # one write per block: a write per row is slow on unbuffered stdout
    writer = csv.writer(buf, lineterminator="\n")
    columns: list[str] | None = None
    if wanted is not None:
        columns = ["_step", *(k for k in wanted if k != "_step")]
        writer.writerow(columns)
    known: set[str] = set()
    extra: dict[str, None] = {}
    sys.stdout.flush()
    out = sys.stdout.buffer
    for block, kept in rows:
        if columns is None:
            columns = _header(run, kept, labelled)
            writer.writerow(columns)
            known = set(columns)
        elif wanted is None:
            extra.update(dict.fromkeys(set().union(*kept) - known))
        if _nested(block):  # nested values are written as JSON
            writer.writerows([[_cell(r.get(c)) for c in columns] for r in kept])
        elif len(columns) > 1 and all(len(r) == len(columns) for r in kept):
            start = buf.tell()
            try:  # every row has exactly these keys (the usual case): done in C
                writer.writerows(map(operator.itemgetter(*columns), kept))
            except KeyError:
                buf.seek(start)
                buf.truncate()
                writer.writerows([[r.get(c) for c in columns] for r in kept])
        else:
            writer.writerows([[r.get(c) for c in columns] for r in kept])
        out.write(buf.getvalue().encode("utf-8", JSON_SAFE))
        buf.seek(0)
        buf.truncate()
    if columns is None:
        writer.writerow(_header(run, [], labelled))
    out.write(buf.getvalue().encode("utf-8", JSON_SAFE))
    if extra:
        output.note(f"wbtool: note: keys first logged later are not in the CSV: "
                    f"{', '.join(sorted(extra))} (choose columns with --keys)")


# -- export -------------------------------------------------------------------------------

@app.command()
def export(
    project: str | None = ProjectOpt,
    fmt: str = typer.Option("csv", "--format", "-f", metavar="[csv|jsonl]",
                            help="csv or jsonl (one JSON object per run)."),
    output_file: str | None = typer.Option(None, "--output", "-o", metavar="FILE",
                                           help="Write here (atomically) instead of stdout "
                                                "('-': stdout)."),
) -> None:
    """One row per run for spreadsheets and pandas: id, name, state, project, group,
    tags, created_at, runtime, then config.KEY and summary.KEY columns.

    Nested values are flattened to dotted keys; summary keys starting with _ are left
    out; in CSV, lists (the tags too) are JSON.
    """
    from wbtool.errors import UsageError
    from wbtool.runs import catalog
    from wbtool.runs.crashed import caught_up
    from wbtool.runs.folder import effective_state

    _choice("--format", fmt, FORMATS)
    if output_file == "-":
        output_file = None
    elif output_file is not None and not output_file.strip():
        raise UsageError("--output needs a file name ('-' for stdout)")
    ctx = _ctx(project)
    proj = _project(ctx, project)
    records = []
    config_keys: dict[str, None] = {}
    summary_keys: dict[str, None] = {}
    for row in [] if ctx is None else caught_up(ctx, catalog.select(ctx.store.index,
                                                                     project=proj)):
        d = row.doc
        rec: dict[str, Any] = {
            "id": d["id"], "name": d.get("name"), "state": effective_state(d),
            "project": d.get("project"), "group": d.get("group"), "tags": d.get("tags") or [],
            "created_at": _iso(d.get("created_at")), "runtime": d.get("runtime")}
        config = _flatten(row.config, "config.", {})
        summary = {k: v for k, v in _flatten(row.summary, "summary.", {}).items()
                   if not k.startswith("summary._")}
        config_keys.update(dict.fromkeys(config))
        summary_keys.update(dict.fromkeys(summary))
        records.append({**rec, **config, **summary})
    if ctx is not None:
        _warn_folders(ctx, [r["id"] for r in records])
    columns = [*EXPORT_FIELDS, *sorted(config_keys), *sorted(summary_keys)]
    if output_file is None:
        with _stdout_guard():
            _write_export(sys.stdout, fmt, columns, records)
        return
    from wbtool.errors import WbtoolError
    from wbtool.fsutil import as_atomic
    from wbtool.runs.values import JSON_SAFE

    if ctx is not None:
        _outside_store(ctx.store.path, output_file)
    try:
        if _is_special(output_file):  # a pipe or a device (/dev/stdout): written through
            with open(output_file, "w", encoding="utf-8", newline="", errors=JSON_SAFE) as f:
                _write_export(f, fmt, columns, records)
        else:  # a file replaced whole; a link's target, not the link
            with as_atomic(os.path.realpath(output_file)) as tmp, \
                    open(tmp, "w", encoding="utf-8", newline="", errors=JSON_SAFE) as f:
                _write_export(f, fmt, columns, records)
    except OSError as e:  # not the name of the temporary file beside it
        raise WbtoolError(f"cannot write {output_file}: {e.strerror or e}") from None
    output.note(f"wrote {len(records)} run(s) to {output_file}")


def _is_special(path: str) -> bool:
    """Whether ``path`` (its link's target) is there and no regular file or
    folder: a pipe, a socket or a device, which a rename would replace."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _outside_store(store: Any, target: str) -> None:
    """Refuse an output file in the store: it would replace one of the store's
    own files (the index, a run's record), or lie among them."""
    from wbtool.errors import UsageError
    from wbtool.fsutil import is_within

    if is_within(target, store):
        raise UsageError(f"{target} is inside the wbtool store {store}; choose a file "
                         "outside it")


def _write_export(stream: Any, fmt: str, columns: list[str],
                  records: list[dict[str, Any]]) -> None:
    if fmt == "jsonl":
        from wbtool.runs.values import encode

        for r in records:
            stream.write(encode({c: r.get(c) for c in columns}) + "\n")
        return
    import csv

    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for r in records:  # tags too are a JSON list: a tag may hold a comma
        writer.writerow([_cell(r.get(c)) for c in columns])


# -- delete -------------------------------------------------------------------------------

@app.command()
def delete(
    run_ids: list[str] = typer.Argument(..., metavar="ID...",
                                        help="Runs to delete (or project/ID)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation "
                             "(required when stdin is not a terminal)."),
    force: bool = typer.Option(False, "--force", help="Delete runs that are still live too."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete runs: their folders and index rows (artifacts they logged are kept).

    Every ID is checked before anything is deleted. A run folder whose run.json
    is missing or damaged is deleted too (wbtool doctor names such folders).
    """
    from wbtool.errors import ConflictError, RunRecordDamagedError, UsageError
    from wbtool.runs.folder import LIVE_STATES
    from wbtool.runs.public import delete_run

    ctx = _ctx(None)
    chosen: dict[str, Any] = {}  # id → the run, or None for a folder whose record is damaged
    for p in run_ids:
        try:
            r = _get_run(ctx, p, need_folder=False)
        except RunRecordDamagedError as e:  # its folder, which nothing else can remove
            chosen[e.fields["run_id"]] = None
            continue
        chosen[r.id] = r
    runs = [r for r in chosen.values() if r is not None]
    damaged = [i for i, r in chosen.items() if r is None]
    live = [r for r in runs if r.state in LIVE_STATES]
    if live and not force:
        raise ConflictError(f"run {live[0].id} is still {live[0].state}; stop it first, "
                            "or pass --force")
    if not yes:
        if not output.is_tty(sys.stdin):
            raise UsageError("refusing to delete without confirmation: stdin is not a "
                             "terminal; pass --yes")
        names = ", ".join(i if r is None else f"{i} ({r.name})" if r.name else i
                          for i, r in chosen.items())
        if not typer.confirm(f"Delete {len(chosen)} run(s): {names}?", default=False, err=True):
            output.note("nothing deleted")
            raise typer.Exit(1)
    for run_id in chosen:
        delete_run(ctx, run_id)
    if as_json:
        result: dict[str, Any] = {"deleted": list(chosen)}
        if damaged:
            result["damaged"] = damaged
        output.emit_json("runs delete", result)
        return
    for run_id, r in chosen.items():
        output.line(f"deleted run {run_id}" + (
            " (its folder: its run.json was missing or damaged)" if r is None
            else f" ({r.name})" if r.name else ""))


@app.command()
def logs(
    run_id: str = RunArg,
    raw: bool = typer.Option(False, "--raw", help="The output as it came (colours, progress "
                             "frames), from output.raw, instead of output.log."),
    follow: bool = typer.Option(False, "--follow", "-f",
                                help="Keep printing new output while the run is live."),
) -> None:
    """Print a run's console output (what a terminal showed, or --raw)."""
    from wbtool.runs import rawlog
    from wbtool.runs.folder import RunFolder, effective_state

    ctx = _ctx(None)
    run = _get_run(ctx, run_id)
    folder = RunFolder(ctx.store.path / "runs" / run.id)
    out = sys.stdout.buffer
    with _stdout_guard():
        pos = 0
        while True:
            if raw:
                frames = list(rawlog.read_frames(folder.path / rawlog.NAME))
                data = b"".join(chunk for _t, _s, chunk in frames[pos:])
                pos = len(frames)
            else:
                try:
                    with open(folder.output, "rb") as f:
                        f.seek(pos)
                        data = f.read()
                except FileNotFoundError:
                    data = b""
                pos += len(data)
            out.write(data)
            out.flush()
            if not follow or effective_state(folder.read_run() or {}) not in (
                    "running", "preempting"):
                if follow and data:
                    continue  # read what the run wrote while it finished
                break
            time.sleep(0.25)


def _metric_keys(text: str) -> list[str]:
    """The keys of a comma-separated ``--keys``, where a comma between a series'
    braces (``name{a="x",b="y"}``, whose quoted values may hold commas and
    braces too) is part of its key."""
    keys: list[str] = []
    start = depth = 0
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            escaped = ch == "\\"
            quoted = ch != '"'
        elif ch == '"' and depth:
            quoted = True
        elif ch in "{}":
            depth = depth + 1 if ch == "{" else max(0, depth - 1)
        elif ch == "," and not depth:
            keys.append(text[start:i])
            start = i + 1
    keys.append(text[start:])
    return [k.strip() for k in keys if k.strip()]


@app.command()
def system(
    run_id: str = RunArg,
    keys: str | None = typer.Option(None, "--keys", "-k", help="Comma-separated metrics "
                                    "(default: every one the run recorded)."),
    fmt: str = typer.Option("csv", "--format", "-f", metavar="[csv|jsonl]",
                            help="csv: a header row, then one line per sample; jsonl: one "
                            "JSON object per sample (with --keys, only samples holding one "
                            "of them, reduced to _timestamp, _runtime and these keys)."),
) -> None:
    """Print a run's system metrics (system.jsonl), one row per sample."""
    import csv

    from wbtool.errors import UsageError
    from wbtool.runs.history import iter_rows

    _choice("--format", fmt, FORMATS)
    wanted = None if keys is None else _metric_keys(keys)
    if wanted == []:
        raise UsageError(f"--keys needs comma-separated metric names, not {keys!r}")
    ctx = _ctx(None)
    run = _get_run(ctx, run_id)
    path = _history_path(run).with_name("system.jsonl")
    if wanted is None and fmt == "jsonl":
        cols = []
    elif wanted is None:  # the columns: every key, in first-seen order (one pass to find them)
        seen: dict[str, None] = {}
        for row in iter_rows(path):
            seen.update(dict.fromkeys(row))
        cols = ["_timestamp", "_runtime", *(["_label"] if "_label" in seen else []),
                *sorted(k for k in seen if not k.startswith("_"))]
    else:
        cols = ["_timestamp", "_runtime", *(["_label"] if _labelled(path) else []), *wanted]
        present: set[str] = set()
        for row in iter_rows(path):
            present.update(row)
            if present.issuperset(wanted):
                break
        missing = [k for k in wanted if k not in present]
        if missing:
            raise UsageError(f"run {run.id} recorded no system metric {', '.join(missing)}")
    with _stdout_guard():
        if fmt == "jsonl":
            _write_jsonl(_system_rows(iter_rows(path), cols if wanted else None,
                                      len(cols) - len(wanted or ())))
            return
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(cols)
        for row in iter_rows(path):
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in cols])


def _labelled(path: os.PathLike[str]) -> bool:
    """Whether a system.jsonl or history.jsonl holds rows with a ``_label``
    (those of the processes of a shared run), without parsing it."""
    import mmap

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(LABEL_MARK) >= 0
    except (OSError, ValueError):  # missing or empty
        return False


def _system_rows(rows: Iterable[dict[str, Any]], cols: list[str] | None, fixed: int = 2
                 ) -> Iterator[tuple[bytes, list[dict[str, Any]]]]:
    """Samples in batches for :func:`_write_jsonl`; with ``cols`` (the first
    ``fixed`` are the times and the label), only those holding a metric of
    them, reduced to them."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        if cols is not None:
            if not any(k in row for k in cols[fixed:]):
                continue
            row = {k: row[k] for k in cols if k in row}
        batch.append(row)
        if len(batch) == 1000:
            yield b"", batch
            batch = []
    if batch:
        yield b"", batch


# -- diff ---------------------------------------------------------------------------------

# What ``runs diff`` compares besides config and summary: the run record's
# fields, then the metadata that says what ran where.
DIFF_FIELDS = ("state", "exit_code", "group", "job_type", "tags", "host", "program")
DIFF_METADATA = ("python", "git_commit", "git_branch", "git_dirty")


def _diff_values(run: Any) -> dict[str, Any]:
    """A run as one flat mapping: its record's fields and metadata by name,
    ``config.KEY`` and ``summary.KEY`` (nested keys dotted; no ``_`` summary keys)."""
    rec = run.record
    meta = run.metadata
    git = meta.get("git") if isinstance(meta.get("git"), dict) else {}
    out: dict[str, Any] = {}
    for key in DIFF_FIELDS:
        value = rec.get(key)
        if key == "program":
            value = value or meta.get("program")
        elif key == "host":
            value = value or meta.get("host")
        if value is not None:
            out[key] = value
    for key in DIFF_METADATA:
        value = git.get(key[4:]) if key.startswith("git_") else meta.get(key)
        if value is not None:
            out[key] = value
    out.update(_flatten(run.config, "config.", {}))
    out.update((k, v) for k, v in _flatten(run.summary, "summary.", {}).items()
               if not k.startswith("summary._"))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as values: NaN equals NaN, 1 equals 1.0, and True is not 1."""
    if type(a) is float and type(b) is float and a != a and b != b:
        return True
    if type(a) is bool or type(b) is bool:
        return a is b
    return bool(a == b)


@app.command()
def diff(
    run_a: str = typer.Argument(..., metavar="A", help="Run ID (or project/ID)."),
    run_b: str = typer.Argument(..., metavar="B", help="Run ID (or project/ID)."),
    show_all: bool = typer.Option(False, "--all", "-a", help="Also list what is the same."),
    as_json: bool = JsonOpt,
) -> None:
    """What differs between two runs: config, summary, state, program, host and git.

    One row per key (config.KEY, summary.KEY, or a field of the run), with each
    run's value; a blank cell is a key the run does not have.
    """
    ctx = _ctx(None)
    a, b = _get_run(ctx, run_a), _get_run(ctx, run_b)
    va, vb = _diff_values(a), _diff_values(b)
    order = {k: i for i, k in enumerate((*DIFF_FIELDS, *DIFF_METADATA))}
    section = {"config": 1, "summary": 2}
    keys = sorted({*va, *vb}, key=lambda k: (section.get(k.partition(".")[0], 0),
                                           order.get(k, 0), k))
    rows = [(k, k in va, k in vb) for k in keys]
    if not show_all:
        rows = [(k, ia, ib) for k, ia, ib in rows if not (ia and ib and _same(va[k], vb[k]))]
    if as_json:
        output.emit_json("runs diff", {
            "a": a.id, "b": b.id,
            "keys": [{"key": k, **({"a": va[k]} if ia else {}), **({"b": vb[k]} if ib else {}),
                      "same": ia and ib and _same(va[k], vb[k])} for k, ia, ib in rows]})
        return
    if not rows:
        output.line("no differences")
        return

    def shown(value: Any) -> str:
        if isinstance(value, float):
            return repr(value)  # every digit: two values a diff tells apart look apart
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ", ".join(value)
        return str(_cell(value))

    output.table(["key", a.id, b.id], [[k, shown(va[k]) if ia else None,
                                        shown(vb[k]) if ib else None] for k, ia, ib in rows])
