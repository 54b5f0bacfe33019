"""Module-level ``wbtool.log``, ``wbtool.finish`` … : each delegates to the
current run (the one the last ``wbtool.init`` returned)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from wbtool.errors import UsageError
from wbtool.runs import current
from wbtool.runs.run import Run


class NoRunError(UsageError):
    """wbtool.{name}() needs a run: call wbtool.init() first"""


def _run(name: str) -> Run:
    run = current.current()
    if run is None:
        raise NoRunError(name=name)
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    _run("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    run = current.current()
    if run is not None:
        run.finish(exit_code, quiet)


def define_metric(name: str, step_metric: str | None = None, step_sync: bool | None = None,
                  hidden: bool | None = None, summary: str | None = None,
                  goal: str | None = None, overwrite: bool | None = None) -> Any:
    return _run("define_metric").define_metric(name, step_metric, step_sync, hidden, summary,
                                               goal, overwrite)


def save(glob_str: str | os.PathLike, base_path: str | os.PathLike | None = None,
         policy: str = "live") -> list[str]:
    return _run("save").save(glob_str, base_path, policy)


def restore(name: str, run_path: str | None = None, replace: bool = False,
            root: str | None = None) -> Any:
    from wbtool.runs import files

    return files.restore(current.current(), name, run_path, replace, root)


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
    _run("alert").alert(title, text, level, wait_duration)


def log_artifact(artifact_or_path: Any, name: str | None = None, type: str | None = None,
                 aliases: list[str] | None = None, tags: list[str] | None = None) -> Any:
    return _run("log_artifact").log_artifact(artifact_or_path, name, type, aliases, tags)


def use_artifact(artifact_or_name: Any, type: str | None = None,
                 aliases: list[str] | None = None, use_as: str | None = None) -> Any:
    return _run("use_artifact").use_artifact(artifact_or_name, type, aliases)


def log_model(path: Any, name: str | None = None, aliases: list[str] | None = None) -> None:
    _run("log_model").log_model(path, name, aliases)


def use_model(name: str) -> str:
    return _run("use_model").use_model(name)


def link_model(path: Any, registered_model_name: str, name: str | None = None,
               aliases: list[str] | None = None) -> Any:
    return _run("link_model").link_model(path, registered_model_name, name, aliases)


def mark_preempting() -> None:
    _run("mark_preempting").mark_preempting()


def watch(models: Any, criterion: Any = None, log: str | None = "gradients",
          log_freq: int = 1000, idx: int | None = None, log_graph: bool = False) -> None:
    _run("watch").watch(models, criterion, log, log_freq, idx, log_graph)


def unwatch(models: Any = None) -> None:
    _run("unwatch").unwatch(models)


def _no_run(name: str) -> Any:
    def refuse() -> None:  # a change with no run to keep it
        raise NoRunError(f"wbtool.{name} needs a run to change: call wbtool.init() first")

    return refuse


def current_config() -> Any:
    run = current.current()
    if run is not None:
        return run.config
    from wbtool.runs.config import Config

    return Config(on_change=_no_run("config"))


def current_summary() -> Any:
    run = current.current()
    if run is not None:
        return run.summary
    from wbtool.runs.summary import Summary

    refuse = _no_run("summary")  # a reserved key, which a run would drop, too
    return Summary(on_change=refuse, warn=lambda kind, message: refuse())
