"""What ``wbtool run`` does once its options are parsed (no Typer here: the
fast entry point calls it directly, see :mod:`wbtool.cli.fast`)."""

from __future__ import annotations

import math
import os
import sys
from typing import Any


def _config(items: list[str]) -> dict[str, Any]:
    """``--config`` values: YAML files, or KEY=VALUE pairs, merged in order."""
    from wbtool.errors import UsageError
    from wbtool.runs.config import read_yaml_file
    from wbtool.runs.shell import parse_value

    config: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if eq and key and not os.path.exists(item):
            config[key.strip()] = parse_value(raw, key.strip())
        elif os.path.isfile(item):
            config.update(read_yaml_file(item))
        else:
            raise UsageError(f"--config {item!r} is neither KEY=VALUE nor a YAML file")
    return config


def execute(command: list[str], *, project: str | None = None, name: str | None = None,
            run_id: str | None = None, group: str | None = None,
            job_type: str | None = None, tags: list[str] | None = None,
            notes: str | None = None, config: list[str] | None = None,
            directory: str | None = None, interval: float | None = None,
            no_stats: bool = False, no_console: bool = False, no_git: bool = False,
            resume: str | None = None, capture_metrics: list[str] | None = None,
            quiet: bool = False, sync: bool = False, live: float | None = None) -> int:
    """Run ``command`` as a run; the exit status wbtool exits with."""
    from wbtool.context import project_settings
    from wbtool.errors import UsageError
    from wbtool.runs.launch import run_command
    from wbtool.settings import MIN_SAMPLING_INTERVAL

    project_settings(project)  # an empty or invalid --project is refused, not dropped
    if interval is not None and not MIN_SAMPLING_INTERVAL <= interval < math.inf:
        raise UsageError(f"--interval takes a finite number of seconds of at least "
                         f"{MIN_SAMPLING_INTERVAL:g}, not {interval:g}")
    settings: dict[str, Any] = {}
    for key, value in (("project", project), ("run_name", name), ("run_id", run_id),
                       ("run_group", group), ("run_job_type", job_type),
                       ("run_notes", notes), ("root_dir", directory),
                       ("x_stats_sampling_interval", interval)):
        if value is not None:
            settings[key] = value
    if tags:
        settings["run_tags"] = tags
    if no_stats:
        settings["x_disable_stats"] = True
    if no_git:
        settings["disable_git"] = True
    if quiet:
        settings["quiet"] = True
    if resume is not None:
        if resume not in ("allow", "must", "never"):
            raise UsageError("--resume must be allow, must or never")
        settings["resume"] = resume
    return run_command(settings, _config(config or []), list(command),
                       console=not no_console, capture=capture_metrics or [],
                       report=None if quiet else _report, sync=sync, live=live)


def _report(run: Any) -> None:
    """The end-of-run summary, on stderr (stdout belongs to the command).

    Best effort: neither a failure to build it nor a stderr that is closed or
    full may change the exit status, which is the command's. The ``quiet``
    and ``silent`` settings (``WBTOOL_QUIET``, ``WBTOOL_SILENT``) leave it
    out, as ``--quiet`` does."""
    if run.settings.quiet or run.settings.silent:
        return
    try:
        text = _summary(run)
    except Exception as e:  # a bug here must not cost the command its status
        text = f"wbtool: the end-of-run summary failed: {type(e).__name__}: {e}"
    if text is None:
        return
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # closed, full, or gone (ValueError: closed file)
        pass


def _summary(run: Any) -> str | None:
    """The summary's lines; None for a run whose record is gone (deleted
    while it ran, which the run has said)."""
    from wbtool.runs.charts import chart_history, sparkline
    from wbtool.runs.folder import RunFolder

    folder: RunFolder = run._folder
    doc = folder.read_run()
    if doc is None:
        return None
    summary = folder.read_json(folder.summary, {}) or {}
    settings = run.settings
    state = doc.get("state")
    runtime = float(doc.get("runtime") or 0.0)
    lines = [f"wbtool: run {doc.get('name')} ({run.id}) {state} after {runtime:.1f}s, "
             f"exit status {doc.get('exit_code')}",
             f"wbtool: {folder.path}"]
    shown = [(k, v) for k, v in summary.items() if not k.startswith("_")]
    shown = shown[: int(settings.max_end_of_run_summary_metrics)]
    if shown:
        width = max(len(k) for k, _ in shown)
        lines.append("wbtool: summary")
        lines += [f"wbtool:   {k:<{width}}  {_value(v)}" for k, v in shown]
    charts = chart_history(folder.history)
    items = sorted(charts.items())[: int(settings.max_end_of_run_history_metrics)]
    if items:
        width = max(len(k) for k, _ in items)
        lines.append("wbtool: history")
        for key, series in items:
            lines.append(f"wbtool:   {key:<{width}}  {sparkline(series.points())}  "
                         f"min {_value(series.lo)}  max {_value(series.hi)}  "
                         f"last {_value(series.last)}")
    from wbtool.text import printable

    return "\n".join(map(printable, lines))  # a name or key's escape sequences shown, not run


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, dict) and isinstance(v.get("_type"), str):
        from wbtool.cli.runs import media_text  # as `runs show` tells logged media

        text = media_text(v)
        if text is not None:
            return text
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items())
    return str(v)
