"""``wbtool.init``: start, resume, rewind or fork a run."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from wbtool._version import __version__
from wbtool.errors import ConflictError, InvalidNameError, NotFoundError, UsageError
from wbtool.runs import catalog, current
from wbtool.runs.config import (
    Config,
    key_list,
    load_config_source,
    read_yaml_file,
    select_keys,
)
from wbtool.runs.folder import (
    LIVE_STATES,
    OWNER_FIELDS,
    RUN_FORMAT,
    RunFolder,
    effective_state,
    hostname,
    is_record,
    process_start,
    record_damaged,
    runtime_at,
)
from wbtool.runs.history import copy_media, iter_rows, rewrite
from wbtool.runs.ids import new_id, parse_moment, random_name, validate_id
from wbtool.runs.run import Run
from wbtool.runs.summary import MetricTable, Summary
from wbtool.settings import Settings

# init argument → setting
_ARG_SETTINGS = {
    "project": "project", "entity": "entity", "name": "run_name", "id": "run_id",
    "notes": "run_notes", "tags": "run_tags", "group": "run_group", "job_type": "run_job_type",
    "dir": "root_dir", "mode": "mode", "resume_from": "resume_from", "fork_from": "fork_from",
    "reinit": "reinit", "save_code": "save_code", "allow_val_change": "allow_val_change",
}
RESUMABLE = ("crashed", "failed", "killed", "preempting")
_UNSET = object()


def _explicit_settings(settings: Settings | dict[str, Any] | None,
                       args: dict[str, Any]) -> dict[str, Any]:
    if isinstance(settings, Settings):
        values = settings.explicit()
    elif settings is None:
        values = {}
    elif isinstance(settings, dict):
        values = dict(settings)
    else:
        raise UsageError(f"settings must be a wbtool.Settings or a dict, not "
                         f"{type(settings).__name__}")
    for arg, value in args.items():
        if value is None:
            continue
        if arg == "dir" and isinstance(value, os.PathLike):
            value = os.fspath(value)  # any other type is refused by the setting, by name
        values[_ARG_SETTINGS[arg]] = value
    return values


def init(
    entity: str | None = None, project: str | None = None, dir: str | os.PathLike | None = None,
    id: str | None = None, name: str | None = None, notes: str | None = None,
    tags: Sequence[str] | None = None, config: Any = None,
    config_exclude_keys: list[str] | None = None, config_include_keys: list[str] | None = None,
    allow_val_change: bool | None = None, group: str | None = None,
    job_type: str | None = None, mode: str | None = None, force: bool | None = None,
    anonymous: str | None = None, reinit: str | bool | None = None,
    resume: bool | str | None = None, resume_from: str | None = None,
    fork_from: str | None = None, save_code: bool | None = None,
    tensorboard: bool | None = None, sync_tensorboard: bool | None = None,
    monitor_gym: bool | None = None, settings: Settings | dict[str, Any] | None = None,
) -> Run:
    """Start a run (or join the active one, as ``reinit`` says) and return it."""
    from wbtool.flags import optional_flag
    from wbtool.settings import load

    unsupported = {"sync_tensorboard": sync_tensorboard, "tensorboard": tensorboard,
                   "monitor_gym": monitor_gym}
    for arg, value in unsupported.items():
        optional_flag(value, arg)
    if resume is True:
        resume = "auto"
    elif resume is False:
        resume = None
    explicit = _explicit_settings(settings, {
        "project": project, "entity": entity, "name": name, "id": id, "notes": notes,
        "tags": tags, "group": group, "job_type": job_type, "dir": dir, "mode": mode,
        "resume_from": resume_from, "fork_from": fork_from, "reinit": reinit,
        "save_code": save_code, "allow_val_change": allow_val_change,
    })
    if resume is not None:
        explicit["resume"] = resume
    resolved = load({**current.defaults(), **explicit})
    _warn_unsupported(resolved, unsupported)

    previous = current.active()
    if previous:
        how = resolved.reinit
        if how == "default":
            how = "finish_previous" if _in_notebook() else "return_previous"
        if how == "return_previous":
            return previous[-1]
        if how == "finish_previous":
            for run in reversed(previous):
                run.finish()
    make_current = resolved.reinit != "create_new" or not previous

    frozen = resolved.frozen_copy()
    config_items = _initial_config(resolved, config, config_include_keys, config_exclude_keys)
    if resolved.mode == "disabled":
        run = _disabled_run(frozen, config_items)
        current.add(run, make_current=make_current)
        return run
    return _start(resolved, frozen, config_items, make_current)


# init arguments of the reference that patch other libraries to log through
# the run; wbtool does not, so a script that asks for one is told.
_UNSUPPORTED = {
    "sync_tensorboard": "TensorBoard event files are not copied into the run",
    "tensorboard": "TensorBoard event files are not copied into the run",
    "monitor_gym": "gym environment videos are not logged",
}


def _warn_unsupported(settings: Settings, args: dict[str, Any]) -> None:
    from wbtool.term import shown

    if settings.mode == "disabled" or not shown(settings, "WARNING"):
        return
    for arg, value in args.items():
        if value:
            print(f"wbtool: WARNING init({arg}={value!r}) is not supported: "
                  f"{_UNSUPPORTED[arg]}; log the values with run.log", file=sys.stderr)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _initial_config(settings: Settings, config: Any, include: list[str] | None,
                    exclude: list[str] | None) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for path in settings.config_paths or ():
        items.update(read_yaml_file(os.fspath(path)))
    items.update(load_config_source(config))
    # Checked here, before the store is touched: a value a run cannot keep
    # must not leave a folder behind, or rewind the run it resumes.
    checked = Config()
    keys = key_list("config_include_keys", include), key_list("config_exclude_keys", exclude)
    checked.update(select_keys(items, *keys), allow_val_change=True)
    return checked.as_dict()


def _disabled_run(settings: Settings, config: dict[str, Any]) -> Run:
    now = time.time()
    doc = {"id": settings.run_id or new_id(), "name": settings.run_name or random_name(),
           "project": settings.project or "uncategorized", "entity": settings.entity or "local",
           "state": "running", "started_at": now, "created_at": now,
           "tags": list(settings.run_tags or ()), "notes": settings.run_notes,
           "group": settings.run_group, "job_type": settings.run_job_type}
    return Run(None, settings, None, doc, config=config)


def _program() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if not path or path in ("-c", "-m"):
        return None
    return os.path.abspath(path)


def _tail_rows(folder: RunFolder, span: int = 65536) -> tuple[list[dict[str, Any]], bool]:
    """The whole rows in the last ``span`` bytes of the history, and whether
    there is more before them."""
    try:
        with open(folder.history, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - span))
            tail = f.read()
    except OSError:
        return [], False
    import json

    lines = tail.split(b"\n")
    if size > span:
        del lines[0]  # a row's end
    rows = []
    for line in lines[:-1] if not tail.endswith(b"\n") else lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, size > span


def _rows_after(folder: RunFolder, step: int) -> list[dict[str, Any]]:
    """The history's rows past ``step``, read back from its end only as far
    as needed."""
    def stepped(row: dict[str, Any]) -> bool:
        return type(row.get("_step")) is int

    span = 65536
    while True:
        rows, more = _tail_rows(folder, span)
        if not more or any(stepped(r) and r["_step"] <= step for r in rows):
            return [r for r in rows if stepped(r) and r["_step"] > step]
        span *= 4


def _caught_up_summary(folder: RunFolder, summary: dict[str, Any],
                       metrics: list[dict[str, Any]], user_keys: list[str],
                       counts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary of a run whose process died, and the counts of its means,
    with the history rows it had not folded in yet: a run writes its summary
    only every few seconds, its history every second. A ``_step`` set by
    hand (as wbtool once kept it) says nothing of the rows folded in: the
    summary is then made again from the whole history, with the keys set
    by hand kept."""
    if "_step" in user_keys:
        from wbtool.runs.values import RESERVED_KEYS

        rows = list(iter_rows(folder.history))
        if not rows:
            return summary, counts
        replayed, replayed_counts = _replay_summary(rows, metrics)
        kept = {k: summary[k] for k in user_keys if k in summary and k not in RESERVED_KEYS}
        return {**replayed, **kept}, replayed_counts
    last = summary.get("_step")
    rows = _rows_after(folder, last if type(last) is int else -1)
    if not rows:
        return summary, counts
    table = MetricTable()
    table.load(metrics)
    caught_up = Summary(table)
    caught_up.load(summary, user_keys, counts)
    for row in rows:
        caught_up.observe({k: v for k, v in row.items() if k != "_label"})
    return caught_up.as_dict(), caught_up.mean_counts


def _last_step(folder: RunFolder) -> int:
    """The step after the highest of the last committed rows (0 for an empty
    history): the processes of a shared run count their steps apart, so the
    last row written need not hold the highest."""
    rows, more = _tail_rows(folder)
    highest = max((r["_step"] for r in rows if isinstance(r.get("_step"), int)), default=-1)
    if highest >= 0:
        return highest + 1
    if more:  # a very long last line: scan the whole file
        for row in iter_rows(folder.history):
            if isinstance(row.get("_step"), int):
                highest = max(highest, row["_step"])
        return highest + 1
    return 0


def _runtime_so_far(folder: RunFolder, prior: dict[str, Any],
                    summary: dict[str, Any]) -> float:
    """The runtime a resumed run goes on from, so that ``_runtime`` never
    goes back: what its record says it ran, or, where it ran on after that
    without recording its end (its process was killed, perhaps after an
    earlier resume), the latest time it is known to have been alive: its
    last heartbeat, or the ``_runtime`` of its summary or last history rows."""
    def number(value: Any) -> float | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        try:
            value = float(value)
        except OverflowError:  # an integer of more digits than a float holds
            return None
        return value if math.isfinite(value) else None

    beat = number(prior.get("heartbeat_at"))
    rows, _ = _tail_rows(folder)
    user = prior.get("summary_user_keys")
    if isinstance(user, list) and "_runtime" in user:  # set by hand, as wbtool once kept it
        summary = {}
    seen = [number(prior.get("runtime")), None if beat is None else runtime_at(prior, beat),
            *(number(doc.get("_runtime")) for doc in (summary, *rows))]
    return max([0.0, *(v for v in seen if v is not None)])


def _replay_summary(rows: list[dict[str, Any]],
                    metrics: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    """The summary of the rows kept, and how many values each of its means averages."""
    table = MetricTable()
    table.load(metrics)
    summary = Summary(table)
    for row in rows:
        if "_label" in row:  # the process of a shared run that logged it: not a metric
            row = {k: v for k, v in row.items() if k != "_label"}
        summary.observe(row)
    return summary.as_dict(), summary.mean_counts


# Set by ``wbtool run`` for its program: the id of the run to join.
ATTACH_ENV = "WBTOOL_RUN_ATTACH"


def _attach_target(settings: Settings) -> str | None:
    """The launched run that ``init`` in this process joins, if any.

    Another id given to ``init`` does not start a second run beside the
    launched one (which holds the program's console, exit status and system
    metrics): as under the reference's sweep agent, the launcher's run wins
    and the id is ignored, with a warning that says how to name the run."""
    if os.environ.get(ATTACH_ENV) != "1" or settings.resume_from or settings.fork_from:
        return None
    run_id = os.environ.get("WBTOOL_RUN_ID")
    if not run_id:
        return None
    if settings.run_id not in (None, run_id):
        from wbtool.term import shown

        if settings.mode != "disabled" and shown(settings, "WARNING"):
            print(f"wbtool: WARNING init(id={settings.run_id!r}) ignored: this program runs "
                  f"under `wbtool run`, whose run {run_id} it joins (`wbtool run --id "
                  f"{settings.run_id} -- …` names that run)", file=sys.stderr)
    return run_id


# How long a secondary process of a shared run waits for its primary to start
# (or, for a job run again with the same id, to resume) the run.
SHARED_WAIT_SECONDS = 120.0


def _await_primary(runs_dir: Any, run_id: str | None) -> str:
    """The id of the shared run that this secondary process (``x_primary=False``)
    joins, once its primary process has started it."""
    if run_id is None:
        raise UsageError("mode='shared' with x_primary=False needs the id of the run to join: "
                         "pass the same id= in every process")
    folder = RunFolder(runs_dir / run_id)
    deadline = time.monotonic() + SHARED_WAIT_SECONDS
    while True:
        doc = folder.read_run()
        state = None if doc is None else effective_state(doc)
        if state in ("running", "preempting"):
            return run_id
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if state is not None:  # a job run again: its primary may load a checkpoint first
        raise ConflictError(f"shared run {run_id} has ended ({state}) and no primary process "
                            f"started it again within {SHARED_WAIT_SECONDS:g} s: start the "
                            "primary with resume='allow' to go on with it, or use a new id")
    raise NotFoundError(what=f"shared run (its primary process did not start it within "
                             f"{SHARED_WAIT_SECONDS:g} s)", name=run_id)


def launch(settings: dict[str, Any], config: Any, command: list[str]) -> Run:
    """The run that ``wbtool run`` owns for ``command`` (not the current run of
    this process, and without in-process console capture)."""
    from wbtool.settings import load

    environ = None
    if os.environ.get(ATTACH_ENV) == "1":
        # Inside another ``wbtool run``: its id names the run around this
        # one, not this one's.
        environ = {k: v for k, v in os.environ.items() if k != "WBTOOL_RUN_ID"}
    resolved = load({**settings, "console": "off"}, environ=environ)
    items = _initial_config(resolved, config, None, None)
    return _start(resolved, resolved.frozen_copy(), items, False, command=command)


def _start(settings: Settings, frozen: Settings, config: dict[str, Any],
           make_current: bool, *, command: list[str] | None = None) -> Run:
    from wbtool.context import Context, checked_project

    checked_project(settings)  # refused before the store is touched
    run_id = validate_id(settings.run_id) if settings.run_id else None
    if run_id is not None and run_id.startswith("-"):
        raise InvalidNameError(what="run id", value=run_id,
                               reason="must not start with '-' (commands would take it for "
                                      "an option)")
    ctx = Context.from_settings(settings)
    runs_dir = ctx.store.path / "runs"
    project = ctx.project  # also an artifact's project
    if settings.resume_from and settings.fork_from:
        raise UsageError("resume_from and fork_from cannot be used together: resume_from "
                         "rewinds a run, fork_from starts a new run from one")
    resume = settings.resume
    now = time.time()
    prior: dict[str, Any] | None = None
    rows_kept: list[dict[str, Any]] | None = None
    resumed_config: dict[str, Any] | None = None  # a resumed run's, with this start's over it
    allow_change = ("set WBTOOL_ALLOW_VAL_CHANGE=true" if command is not None
                    else "pass allow_val_change=True")
    forked_from: dict[str, Any] | None = None
    metrics_parent: list[dict[str, Any]] = []
    step = 0
    attach = None if command is not None else _attach_target(settings)
    if attach is not None and not RunFolder(runs_dir / attach).exists():
        attach = None
    secondary = attach is None and command is None and settings.mode == "shared" \
        and not settings.x_primary
    if secondary:
        attach = _await_primary(runs_dir, run_id)

    if attach is not None:
        folder = RunFolder(runs_dir / attach)
        prior = folder.read_run()
        step = _last_step(folder)
        if settings.mode == "shared" and prior is not None:  # the primary's project
            project = _resumed_project(settings, project, prior, attach)
    elif settings.resume_from:
        rid, at = parse_moment(settings.resume_from)
        if run_id is not None and run_id != rid:
            raise UsageError(f"resume_from names run {rid}, but id={run_id} was given")
        run_id = rid
        folder = RunFolder(runs_dir / rid)
        prior = _existing(ctx, folder, "resume_from")
        project = _resumed_project(settings, project, prior, rid)
        resumed_config = _resumed_config(folder, config, settings, allow_change)
        rows_kept = rewrite(folder.history, lambda r: _step_of(r) <= at)
        step = at + 1
    elif settings.fork_from:
        parent_id, at = parse_moment(settings.fork_from)
        parent = RunFolder(runs_dir / parent_id)
        parent_doc = parent.read_run()
        if parent_doc is None:
            raise NotFoundError(what="run to fork from", name=parent_id)
        if run_id == parent_id:
            raise UsageError("a fork needs a new run id, not the id of the run it forks")
        run_id = run_id or new_id()
        folder = RunFolder(runs_dir / run_id)
        if folder.exists():
            raise ConflictError(f"run {run_id} already exists")
        try:
            folder.create()
            rows_kept = rewrite(parent.history, lambda r: _step_of(r) <= at,
                                target=folder.history)
            copy_media(rows_kept, parent.path, folder.path)
        except BaseException:
            _discard_unborn(folder)
            raise
        step = at + 1
        forked_from = {"run_id": parent_id, "step": at}
        config = {**_stored_config(parent), **config}
        prior = None
        metrics_parent = parent_doc.get("metrics") or []
    else:
        def asked(mode: str) -> str:  # as the caller wrote it: wbtool run's option, or init's
            return f"--resume {mode}" if command is not None else f"resume={mode!r}"

        if resume == "auto" and run_id is None:
            run_id = _auto_resume_candidate(ctx, project)
        if run_id is not None:
            folder = RunFolder(runs_dir / run_id)
            exists = folder.exists()
            if resume == "must" and not exists:
                raise NotFoundError(what=f"run to resume ({asked('must')})", name=run_id)
            if resume == "never" and exists:
                raise ConflictError(f"run {run_id} already exists and {asked('never')}")
            if exists:
                if resume is None:
                    raise ConflictError(f"run {run_id} already exists: pass {asked('allow')} "
                                        "to continue it, or choose another id")
                prior = _existing(ctx, folder, "resume")
                project = _resumed_project(settings, project, prior, run_id)
                resumed_config = _resumed_config(folder, config, settings, allow_change)
                step = _last_step(folder)
        else:
            if resume == "must":
                needs = "--id ID, the run" if command is not None else "the id of the run"
                raise UsageError(f"{asked('must')} needs {needs} to resume")
            run_id = new_id()
            folder = RunFolder(runs_dir / run_id)
            while folder.exists():
                run_id = new_id()
                folder = RunFolder(runs_dir / run_id)

    try:
        folder.create()
    except BaseException:
        if prior is None and attach is None:
            _discard_unborn(folder)  # its files/ could not be made after it
        raise
    pid = os.getpid()
    doc: dict[str, Any] = dict(prior or {})
    resumed = prior is not None and attach is None
    if attach is None:
        doc.update({
        "format": RUN_FORMAT, "id": run_id, "project": project, "entity": ctx.entity,
        "state": "running", "exit_code": None, "started_at": now, "updated_at": now,
        "heartbeat_at": now, "heartbeat_seconds": settings.heartbeat_seconds,
        "host": settings.host or hostname(), "pid": pid, "pid_start": process_start(pid),
        "program": settings.program or _program(), "resumed": resumed,
        "wbtool_version": __version__,
        })
        doc.pop("finished_at", None)
    else:
        doc.update({"project": project, "entity": ctx.entity})
    if command is not None:
        from wbtool.runs.redact import redact_argv

        doc["program"] = command[0]
        doc["command"] = redact_argv(list(command))
        doc["launcher"] = "wbtool run"
    doc.setdefault("created_at", now)
    doc["name"] = settings.run_name or doc.get("name") or random_name()
    for key, setting in (("notes", "run_notes"), ("group", "run_group"),
                         ("job_type", "run_job_type")):
        value = getattr(settings, setting)
        if value is not None or key not in doc:
            doc[key] = value
    if attach is not None and settings.run_tags is not None:  # joined: tags add up
        doc["tags"] = list(dict.fromkeys([*(doc.get("tags") or ()), *settings.run_tags]))
    elif settings.run_tags is not None or "tags" not in doc:
        doc["tags"] = list(settings.run_tags or ())
    if forked_from is not None:
        doc["forked_from"] = forked_from
    if resumed and attach is None:
        doc["resume_count"] = int(doc.get("resume_count") or 0) + 1

    metrics = list((prior or {}).get("metrics") or [])
    if forked_from is not None:
        metrics = list(metrics_parent)
    summary: dict[str, Any] = {}
    user_keys: list[str] = []
    counts: dict[str, Any] = {}
    runtime_offset = 0.0
    if attach is not None and prior is not None:
        runtime_offset = runtime_at(prior, now)
        # What the run's earlier programs logged (a launched run resumed, a
        # second program of the command): a metric's min, max or mean goes on
        # from it. Only what this process changes is written back.
        loaded = folder.read_json(folder.summary, {})
        summary = loaded if isinstance(loaded, dict) else {}
        user_keys = list(prior.get("summary_user_keys") or [])
        stored_counts = prior.get("summary_counts")
        counts = stored_counts if isinstance(stored_counts, dict) else {}
    elif prior is not None:
        user_keys = list(prior.get("summary_user_keys") or [])
        stored_counts = prior.get("summary_counts")
        counts = stored_counts if isinstance(stored_counts, dict) else {}
        if rows_kept is None:
            loaded = folder.read_json(folder.summary, {})
            summary = loaded if isinstance(loaded, dict) else {}
            if prior.get("state") in LIVE_STATES and settings.mode != "shared":
                caught_up, counts = _caught_up_summary(folder, summary, metrics, user_keys,
                                                       counts)
                if caught_up is not summary:  # on disk, for a launcher writes back only changes
                    folder.write_json(folder.summary, caught_up)
                    summary = caught_up
        runtime_offset = _runtime_so_far(folder, prior, summary)
    if rows_kept is not None:
        summary, counts = _replay_summary(rows_kept, metrics)
        user_keys = []
        if rows_kept:
            runtime_offset = float(rows_kept[-1].get("_runtime") or 0.0)
    own_config = list(config)  # the keys this process sets (a sharer writes only these)
    if resumed_config is not None:
        config = resumed_config
    elif prior is not None:
        config = {**_stored_config(folder), **config}
    if attach is None:  # wbtool log and attached programs count runtime from here on
        doc["resumed_runtime"] = runtime_offset

    frozen._bind_run(str(ctx.store.path), str(folder.path), folder.id,
                     float(doc.get("started_at") or now))
    try:
        run = Run(ctx, frozen, folder, doc, config=config, summary=summary,
                  summary_user=user_keys, summary_counts=counts, metrics=metrics, step=step,
                  runtime_offset=runtime_offset, row_step=_row_step(step, rows_kept))
        run._config_dirty = False
        if command is not None:
            run._shared = "owner"
            run._command = list(command)
            from wbtool.runs.attach import start_launched

            start_launched(folder)  # a resumed run's earlier programs are gone
        elif attach is not None:
            run._shared = "attached"
            if not secondary:  # a program of ``wbtool run``: others may write beside it
                from wbtool.runs.attach import join_launched, leave_launched

                if join_launched(folder) or settings.x_label:
                    run._row_label = settings.x_label or f"{hostname()}:{pid}"
                run._on_finish.append(lambda _run: leave_launched(folder))
        elif settings.mode == "shared":
            run._shared = "primary"
        if run._shared is not None:  # what this process sets, the others may too
            before = prior or {}
            run._doc_changed = {k for k, v in doc.items()
                                if k not in OWNER_FIELDS and before.get(k, _UNSET) != v}
            if attach is not None and settings.run_tags:
                run._doc_changed.discard("tags")
                run._join_tags = tuple(settings.run_tags)
            run._config.touch(own_config)
        if attach is None:
            folder.write_config(run._config_on_disk())
        run._write_record(summary=True, config=True)
    except BaseException:
        if prior is None and attach is None:
            _discard_unborn(folder)
        raise
    if attach is None:
        run._event({"type": "state", "state": "running", "resumed": resumed})
    _start_services(run, settings, secondary=secondary)
    if command is not None:
        return run
    current.add(run, make_current=make_current)
    if attach is not None:
        return run
    if not settings.quiet:
        how = "resumed" if resumed else "forked" if forked_from else "started"
        run._info(f"run {doc['name']} ({run_id}) {how} in {folder.path}")
    return run


def _discard_unborn(folder: RunFolder) -> None:
    """Remove the folder of a new run that could not be started (a full disk):
    a folder without its run.json, or whose run the index never listed, is
    one that no command shows or deletes."""
    import shutil

    shutil.rmtree(folder.path, ignore_errors=True)


def _stored_config(folder: RunFolder) -> dict[str, Any]:
    """A run's saved config without the values that were redacted when saved
    (the program passes them again)."""
    from wbtool.runs.redact import REDACTED

    return {k: v for k, v in folder.read_config().items() if v != REDACTED}


def _resumed_config(folder: RunFolder, config: dict[str, Any], settings: Settings,
                    how: str) -> dict[str, Any]:
    """The config of a run being resumed: its saved one, with ``config`` (what
    this start passes) over it. A value that differs from the saved one is
    taken, as before, but, unless the allow_val_change setting is on, with a
    warning naming both: a job restarted after a kill must not stop over its
    config, and the record must not change without a word. ``how`` says how
    to allow the change."""
    import json
    import re

    from wbtool.term import shown
    from wbtool.text import printable  # a key may hold escape sequences

    merged = Config(allow_val_change=True)
    merged.update(_stored_config(folder))
    saved = merged.as_dict()
    merged.update(config)
    if settings.allow_val_change or not shown(settings, "WARNING"):
        return merged.as_dict()
    address = re.compile(r" at 0x[0-9a-fA-F]+")

    def text(value: Any) -> str:
        # NaN equals NaN at any depth here, and the text of an object (kept
        # as such) is the same whatever address it had in its process.
        try:
            dumped = json.dumps(value, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):
            dumped = repr(value)
        return address.sub(" at 0x", dumped)

    for key, value in merged.items():
        old = saved.get(key, value)
        if old is value or old == value or text(old) == text(value):
            continue
        print(printable(f"wbtool: WARNING resuming run {folder.id} with config {key}={value!r} "
                        f"over its saved {old!r} ({how} to change it without this warning)"),
              file=sys.stderr)
    return merged.as_dict()


def _row_step(step: int, rows_kept: list[dict[str, Any]] | None) -> int | None:
    """The step of the last row in a run's history as it starts: the one
    before ``step``, or the highest a rewind or fork kept."""
    if rows_kept is not None:
        step = max((_step_of(r) for r in rows_kept), default=-1) + 1
    return step - 1 if step > 0 else None


def _step_of(row: dict[str, Any]) -> int:
    step = row.get("_step")
    return step if isinstance(step, int) else -1


def _existing(ctx: Any, folder: RunFolder, why: str) -> dict[str, Any]:
    doc = folder.read_run()
    if not is_record(doc):
        if os.path.lexists(folder.run_json):  # written whole or not at all: damaged
            raise record_damaged(folder)
        raise NotFoundError(what=f"run to {why.replace('_', ' ')}", name=folder.id)
    for run in current.active():  # reinit="create_new" with the id of an active run
        if run._folder is not None and run._folder.path.resolve() == folder.path.resolve():
            raise ConflictError(f"run {folder.id} is active in this process; finish it "
                                "before resuming")
    state = effective_state(doc)
    if state in ("running", "preempting") and doc.get("pid") != os.getpid():
        raise ConflictError(f"run {folder.id} is still running (pid {doc.get('pid')} on "
                            f"{doc.get('host')}); finish it before resuming")
    return doc


def _resumed_project(settings: Settings, project: str, prior: dict[str, Any],
                     run_id: str) -> str:
    """The project of a run being resumed: its own. Naming another one is
    refused rather than moving the run there."""
    theirs = prior.get("project")
    if not isinstance(theirs, str) or not theirs:
        return project
    if settings.project is None:
        return theirs
    if theirs != project:
        raise ConflictError(f"run {run_id} is in project {theirs!r}, not {project!r}: "
                            f"resume it with project {theirs!r}, or with none set")
    return project


def _auto_resume_candidate(ctx: Any, project: str) -> str | None:
    """The most recent run of this program on this host, if it did not finish."""
    program = _program()
    host = hostname()
    for row in catalog.select(ctx.store.index, project=project, limit=200):
        doc = row.doc
        if doc.get("host") != host or doc.get("program") != program:
            continue
        return str(doc["id"]) if effective_state(doc) in RESUMABLE else None
    return None


def _start_services(run: Run, settings: Settings, *, secondary: bool = False) -> None:
    folder = run._folder
    assert folder is not None
    if not settings.x_disable_meta and run._shared != "attached":
        run._metadata_thread = threading.Thread(
            target=_gather_metadata, args=(run, settings), name="wbtool-metadata", daemon=True)
        run._metadata_thread.start()
    console = settings.console
    if console != "off" and os.environ.get("WBTOOL_CONSOLE_CAPTURED") != "1":
        try:
            from wbtool.runs.console import ConsoleCapture

            mode = "redirect" if console == "redirect" else "wrap"
            run._console = ConsoleCapture(folder.output, mode, label=settings.x_label)
            run._console.start()
        except Exception as e:
            run._console = None
            run._warn("console", f"console capture is off: {e}")
    if run._shared in (None, "primary"):  # a launcher samples its command
        run._start_stats(label=settings.x_label)
    elif secondary:  # of a shared run: its rows and samples say they are its own
        run._row_label = settings.x_label or f"{hostname()}:{os.getpid()}"
        run._start_stats(label=run._row_label)
    if settings.save_code and not settings.disable_code:
        from wbtool.runs import files

        files.save_program(run)
    run._start_writer()


def _gather_metadata(run: Run, settings: Settings) -> None:
    try:
        from wbtool.runs import metadata

        command = run._command
        program = run._doc.get("program")
        if command is not None:
            import shutil

            program = shutil.which(command[0]) or command[0]
        run._metadata_result = metadata.collect(
            program=program, args=list(command[1:] if command is not None else sys.argv[1:]),
            cwd=os.getcwd(),
            root=settings.git_root, disable_git=bool(settings.disable_git),
            save_requirements=bool(settings.x_save_requirements),
            disable_machine_info=bool(settings.x_disable_machine_info),
        )
    except Exception as e:
        run._metadata_result = e
