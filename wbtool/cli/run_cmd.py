"""``wbtool run -- CMD``, ``wbtool log KEY=VALUE…`` and ``wbtool alert``."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import typer

from wbtool.cli import output

JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of text.")
RunOpt = typer.Option(None, "--run", help="Run ID (default: $WBTOOL_RUN_ID, set by "
                      "'wbtool run' for its command).")
ProjectOpt = typer.Option(None, "--project", "-p", help="Project of the run.")


def _config(items: list[str]) -> dict[str, Any]:
    """``--config`` values: YAML files, or KEY=VALUE pairs, merged in order."""
    from wbtool.errors import UsageError
    from wbtool.runs.config import read_yaml_file
    from wbtool.runs.shell import parse_value

    config: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if eq and key and not os.path.exists(item):
            config[key.strip()] = parse_value(raw)
        elif os.path.isfile(item):
            config.update(read_yaml_file(item))
        else:
            raise UsageError(f"--config {item!r} is neither KEY=VALUE nor a YAML file")
    return config


def run(
    command: list[str] = typer.Argument(..., metavar="CMD [ARGS]...",
                                        help="The command to run (after --)."),
    project: str | None = ProjectOpt,
    name: str | None = typer.Option(None, "--name", help="Display name of the run."),
    run_id: str | None = typer.Option(None, "--id", help="Run ID (default: a new one)."),
    group: str | None = typer.Option(None, "--group", help="Group of related runs."),
    job_type: str | None = typer.Option(None, "--job-type", help="Job type (train, eval…)."),
    tags: list[str] = typer.Option([], "--tag", help="A tag; repeat for more."),
    notes: str | None = typer.Option(None, "--notes", help="Notes about the run."),
    config: list[str] = typer.Option([], "--config", metavar="FILE|KEY=VALUE",
                                     help="Config: a YAML file or KEY=VALUE; repeatable."),
    directory: str | None = typer.Option(None, "--dir", help="Folder that holds .wbtool/."),
    interval: float | None = typer.Option(None, "--interval", metavar="SEC",
                                          help="System metrics sampling interval."),
    no_stats: bool = typer.Option(False, "--no-stats", help="Do not sample system metrics."),
    no_console: bool = typer.Option(False, "--no-console",
                                    help="Do not record the console (output still shows)."),
    no_git: bool = typer.Option(False, "--no-git", help="Do not record git state."),
    resume: str | None = typer.Option(None, "--resume", metavar="allow|must|never",
                                      help="Continue the run given by --id."),
    capture_metrics: list[str] = typer.Option(
        [], "--capture-metrics", metavar="REGEX",
        help="A regular expression with named groups that turns printed numbers into "
             "history rows, e.g. 'loss=(?P<loss>[0-9.e-]+)'; repeatable."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No end-of-run summary."),
) -> None:
    """Run CMD as a tracked run: console, exit state and metadata are recorded.

    wbtool exits with CMD's exit status (128+N when it died of signal N). A
    program that calls wbtool.init() joins this run.
    """
    from wbtool.errors import UsageError
    from wbtool.runs.launch import run_command

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
    code = run_command(settings, _config(config), list(command), console=not no_console,
                       capture=capture_metrics, report=None if quiet else _report)
    raise typer.Exit(code)


def _report(run: Any) -> None:
    """The end-of-run summary, on stderr (stdout belongs to the command)."""
    from wbtool.runs.charts import chart_history, sparkline
    from wbtool.runs.folder import RunFolder

    folder: RunFolder = run._folder
    doc = folder.read_run() or {}
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
    sys.stderr.write("\n".join(lines) + "\n")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items())
    return str(v)


def _context(project: str | None) -> Any:
    from wbtool.context import Context
    from wbtool.settings import Settings

    return Context.from_settings(Settings(project=project) if project else None)


def log(
    pairs: list[str] = typer.Argument(..., metavar="KEY=VALUE...",
                                      help="Values: numbers, true/false, JSON, else text."),
    step: int | None = typer.Option(None, "--step", help="Log to this step (it must not be "
                                    "lower than the run's current step)."),
    commit: bool | None = typer.Option(None, "--commit/--no-commit",
                                       help="Finish the step now (default: yes without "
                                            "--step, no with it)."),
    summary: bool = typer.Option(False, "--summary", help="Set summary values instead."),
    run_id: str | None = RunOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Log KEY=VALUE pairs to a run's history, from a shell script."""
    from wbtool.runs.shell import log_values, parse_pairs

    values = parse_pairs(pairs)
    result = log_values(_context(None), run_id, values, step=step, commit=commit,
                        summary_only=summary)
    if as_json:
        output.emit_json("log", result)


def alert(
    title: str = typer.Argument(..., help="Title (at most 64 characters)."),
    text: str = typer.Argument(..., help="Text of the alert."),
    level: str = typer.Option("INFO", "--level", help="INFO, WARN or ERROR."),
    run_id: str | None = RunOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record an alert in a run's events and print it."""
    from wbtool.runs.shell import alert as record

    result = record(_context(None), run_id, title, text, level)
    if as_json:
        output.emit_json("alert", result)
    else:
        output.note(f"wbtool: ALERT [{result['level']}] {title}: {text}")
