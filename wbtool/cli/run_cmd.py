"""``wbtool run -- CMD``, ``wbtool log KEY=VALUE…`` and ``wbtool alert``."""

from __future__ import annotations

from typing import Any

import typer

from wbtool.cli import output

JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of text.")
RunOpt = typer.Option(None, "--run", help="Run ID (default: $WBTOOL_RUN_ID, set by "
                      "'wbtool run' for its command).")
ProjectOpt = typer.Option(None, "--project", "-p", help="Project of the run.")


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
    directory: str | None = typer.Option(
        None, "--dir", help="Folder that holds .wbtool/ (WBTOOL_DIR, when set, wins)."),
    interval: float | None = typer.Option(
        None, "--interval", metavar="SEC",
        help="System metrics sampling interval, in seconds: at least 0.1 (default 2)."),
    no_stats: bool = typer.Option(False, "--no-stats", help="Do not sample system metrics."),
    no_console: bool = typer.Option(False, "--no-console",
                                    help="Do not record the console (output still shows)."),
    no_git: bool = typer.Option(False, "--no-git", help="Do not record git state."),
    resume: str | None = typer.Option(None, "--resume", metavar="allow|must|never",
                                      help="Continue the run given by --id."),
    capture_metrics: list[str] = typer.Option(
        [], "--capture-metrics", metavar="REGEX",
        help="A regular expression with named groups that turns printed numbers into "
             "history rows, e.g. 'loss=(?P<loss>[0-9.e-]+)'; a group named _step "
             "gives the row's step; repeatable."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No end-of-run summary."),
    sync: bool = typer.Option(False, "--sync", help="Push the run and its project's "
                              "artifacts to the default remote when it finishes."),
    live: float | None = typer.Option(None, "--live", metavar="SEC", help="Also push what is "
                                      "new every SEC seconds while it runs (implies --sync)."),
) -> None:
    """Run CMD as a tracked run: console, exit state and metadata are recorded.

    wbtool exits with CMD's exit status (128+N when it died of signal N). A
    program that calls wbtool.init() joins this run; an id it passes to init
    is ignored, with a warning (name the run with --id instead).
    """
    from wbtool.cli.launching import execute

    raise typer.Exit(execute(
        list(command), project=project, name=name, run_id=run_id, group=group,
        job_type=job_type, tags=tags, notes=notes, config=config, directory=directory,
        interval=interval, no_stats=no_stats, no_console=no_console, no_git=no_git,
        resume=resume, capture_metrics=capture_metrics, quiet=quiet, sync=sync, live=live))


def _context() -> Any:
    """The store's context, or None where there is none yet (a run to log to
    cannot exist then, and no store is created to say so)."""
    from wbtool.context import Context

    return Context.existing()


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
    result = log_values(_context(), run_id, values, step=step, commit=commit,
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
    from wbtool.runs.run import alert_line
    from wbtool.runs.shell import alert as record

    result = record(_context(), run_id, title, text, level)
    if as_json:
        output.emit_json("alert", result)
    else:
        output.note(alert_line(result["level"], title, text), as_is=True)
