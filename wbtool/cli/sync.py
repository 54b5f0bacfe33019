"""``wbtool sync`` and ``wbtool pull``: share artifacts and runs through a remote."""

from __future__ import annotations

from typing import Any

import typer

from wbtool.cli import output

RemoteOpt = typer.Option(None, "--remote", "-r", metavar="NAME|URL",
                         help="Remote name or URL (default: the default remote).")
JobsOpt = typer.Option(8, "--jobs", "-j", min=1, max=256,
                       help="Transfers at once.")
JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of text.")


def _open(ctx: Any, remote: str | None, *, create: bool = False) -> Any:
    """The remote named or given; ``create`` for a push, which may make a
    local folder that does not exist yet (reading one is an error)."""
    from wbtool.remote import config
    from wbtool.remote.fs import open_remote

    url, options = config.resolve(ctx.store, remote)
    return open_remote(url, options, create=create)


def _ctx(project: str | None, need_project: bool = False) -> Any:
    from wbtool.context import Context, project_settings

    return Context.from_settings(project_settings(project), need_project=need_project)


def sync(
    run_ids: list[str] = typer.Argument(None, metavar="[RUN_ID]...",
                                        help="Only these runs (default: every run)."),
    remote: str | None = RemoteOpt,
    project: str | None = typer.Option(None, "--project", "-p",
                                       help="Only this project (default: every project)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be sent; send "
                                 "nothing."),
    jobs: int = JobsOpt,
    runs: bool = typer.Option(True, "--runs/--no-runs", help="Also send run folders (what is "
                              "new since the last sync, and what the remote lost)."),
    artifacts: bool = typer.Option(True, "--artifacts/--no-artifacts",
                                   help="Send artifact versions."),
    check: bool = typer.Option(False, "--check", help="Also list every run file, manifest, "
                               "object, lineage record and link event on the remote and send "
                               "again those it lost of runs and versions already there "
                               "(slower: listings of them all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Push artifact versions and runs to a remote: only what it lacks, run.json last."""
    from wbtool.remote import push, runsync
    from wbtool.runs.ids import validate_id

    for run_id in run_ids or []:
        validate_id(run_id)  # bad input: refused before the remote is contacted
    # An invalid project in the settings is refused as pull refuses it, though
    # sync sends every project by default: whoever set it meant to work in it.
    ctx = _ctx(project, need_project=True)
    target = _open(ctx, remote, create=True)
    registry = ctx.registry
    if not artifacts:
        res = push.PushResult(remote=target.url, dry_run=dry_run)
    elif dry_run:
        res = push.push(registry, target, project, jobs=jobs, dry_run=True, check=check)
    else:
        plan = push.plan(registry, target, project, jobs, check=check)
        with output.progress(f"pushing to {target.url}", len(plan.objects)) as cb:
            res = push.execute(registry, plan, jobs, progress=cb)
    sent = runsync.RunPushResult()
    if runs:
        sent = runsync.push_runs(ctx.store.path, target, project, run_ids or None,
                                 dry_run=dry_run, check=check)
    res.warnings.extend(sent.warnings)
    for w in res.warnings:
        output.note(f"wbtool: warning: {w}")
    if as_json:
        output.emit_json("sync", {**res.to_json(), "runs_sent": sent.runs_sent,
                                  "run_bytes_sent": sent.bytes_sent, "runs": sent.runs,
                                  "run_conflicts": sent.conflicts})
        _run_conflicts(sent.conflicts)
        return
    verb = "would send" if dry_run else "sent"
    output.line(f"{verb} {res.objects_sent} object(s) ({output.human_size(res.bytes_sent)}), "
                f"{res.versions_sent} version(s), {res.aliases_sent} alias change(s), "
                f"{res.links_sent} link change(s), {res.lineage_sent} lineage record(s), "
                f"{sent.runs_sent} run(s) ({output.human_size(sent.bytes_sent)}) "
                f"to {res.remote}")
    _run_conflicts(sent.conflicts)


def _run_conflicts(conflicts: list[dict[str, Any]]) -> None:
    """Exit 5 naming the first run that was not sent, after a line for each other one."""
    from wbtool.errors import ConflictError

    if conflicts:
        for c in conflicts[1:]:
            output.note(f"wbtool: {c['reason']}")
        raise ConflictError(conflicts[0]["reason"]
                            + (f" (and {len(conflicts) - 1} more run(s))"
                               if len(conflicts) > 1 else ""))


def pull(
    refs: list[str] = typer.Argument(None, metavar="[NAME[:VERSION|ALIAS]]...",
                                     help="Artifacts to pull (default: every artifact of the "
                                     "project); NAME alone pulls every version."),
    remote: str | None = RemoteOpt,
    project: str | None = typer.Option(None, "--project", "-p", help="Project (default: "
                                       "settings, then 'uncategorized')."),
    jobs: int = JobsOpt,
    run_ids: list[str] = typer.Option([], "--run", "-R", metavar="[PROJECT/]RUN_ID",
                                      help="Pull this run (of the project, unless named; "
                                      "repeatable); with --run or --all-runs only runs are "
                                      "pulled, plus any NAME given."),
    all_runs: bool = typer.Option(False, "--all-runs", help="Pull every run of the "
                                  "project."),
    all_projects: bool = typer.Option(False, "--all-projects", help="Pull every project on "
                                      "the remote: all its artifacts (with --all-runs, only "
                                      "and all its runs), as sync pushes every project."),
    as_json: bool = JsonOpt,
) -> None:
    """Fetch artifact versions (or runs) from a remote, checking every path and byte."""
    from wbtool.errors import ConflictError, UsageError, VerificationError
    from wbtool.names import check_entity, split_ref, validate_name
    from wbtool.remote import pull as pull_service
    from wbtool.remote import runsync
    from wbtool.runs.ids import split_run_path

    if all_projects and (refs or run_ids or project is not None):
        raise UsageError("--all-projects pulls whole projects: it takes no NAME, --run or "
                         "--project")
    named: dict[str | None, list[str]] = {}  # the runs asked for, by project (None: --project's)
    entities: list[tuple[str, str]] = []  # (entity, path) of the run paths that name one
    for path in run_ids:  # bad input: refused before the remote is contacted
        run_entity, run_project, run_id = split_run_path(path)
        if run_project is not None:
            validate_name(run_project, "project name")
        if run_entity is not None:
            entities.append((run_entity, path))
        named.setdefault(run_project, []).append(run_id)
    ctx = _ctx(project, need_project=not all_projects)
    for run_entity, path in entities:  # another entity's run is not found, as in runs show
        check_entity(run_entity, ctx.named_entity, path)
    target = _open(ctx, remote)
    targets: list[tuple[str, str | None, str | None]] = []
    for ref in refs or []:
        proj, name, version = split_ref(ref, ctx.named_entity)
        targets.append((proj or ctx.project, name, version))
    want_runs = bool(run_ids) or all_runs
    projects = [ctx.project]
    warnings: list[str] = []
    if all_projects:
        projects, warnings = _remote_projects(target)
    if not targets and not want_runs:
        targets += [(proj, None, None) for proj in projects]
    with output.progress(f"pulling from {target.url}") as cb:
        res = pull_service.pull(ctx.registry, target, targets, jobs=jobs, progress=cb)
    res.warnings[:0] = warnings
    got = runsync.RunPullResult()
    if want_runs:
        batches: list[tuple[str, list[str] | None]] = (
            [(proj, None) for proj in projects] if all_runs
            else [(proj or ctx.project, ids) for proj, ids in named.items()])
        for proj, ids in batches:
            got.add(runsync.pull_runs(ctx.store.path, ctx.store.index, target, proj, ids))
    res.refused.extend(got.refused)
    res.warnings.extend(got.warnings)
    if (not all_projects and not refs and not run_ids and not res.versions and not got.runs
            and not got.conflicts and not res.refused):
        # Nothing found of the whole project asked for: say so if the remote lacks it.
        others, _ = _remote_projects(target)
        if ctx.project not in others:
            res.warnings.append(
                f"{target.url} holds nothing of project {ctx.project!r}"
                + (f" (its projects: {', '.join(others)}); pass --project or --all-projects"
                   if others else ""))
    for w in res.warnings:
        output.note(f"wbtool: warning: {w}")
    if as_json:
        output.emit_json("pull", {**res.to_json(), "runs_pulled": got.runs_pulled,
                                  "run_bytes_received": got.bytes_received, "runs": got.runs,
                                  "run_conflicts": got.conflicts})
    else:
        # Links and lineage are named when there are any (as sync names them).
        extra = "".join(f"{n} {what}, " for n, what in (
            (res.links_changed, "link change(s)"), (res.lineage_added, "lineage record(s)"))
            if n)
        output.line(f"pulled {res.versions_pulled} version(s), {res.objects_received} "
                    f"object(s) ({output.human_size(res.bytes_received)}), {extra}"
                    f"{got.runs_pulled} run(s) ({output.human_size(got.bytes_received)}) "
                    f"from {res.remote}")
    if res.refused:
        for r in res.refused[1:]:
            output.note(f"wbtool: refused {r['path']}: {r['reason']}")
        first = res.refused[0]
        for c in got.conflicts:
            output.note(f"wbtool: {c['reason']}")
        raise VerificationError(f"refused {first['path']}: {first['reason']}"
                                + (f" (and {len(res.refused) - 1} more)"
                                   if len(res.refused) > 1 else ""))
    if got.conflicts:
        for c in got.conflicts[1:]:
            output.note(f"wbtool: {c['reason']}")
        raise ConflictError(got.conflicts[0]["reason"]
                            + (f" (and {len(got.conflicts) - 1} more run(s))"
                               if len(got.conflicts) > 1 else ""))


def _remote_projects(remote: Any) -> tuple[list[str], list[str]]:
    """The projects on ``remote`` (folders under ``projects/``), and a warning
    for each folder there whose name is no project name."""
    from wbtool.remote.records import ignored_warning, is_valid_name

    names = remote.list_folders("projects")
    stray = [n for n in names if not is_valid_name(n)]
    return ([n for n in names if is_valid_name(n)],
            [ignored_warning(remote.display(f"projects/{n}/")) for n in stray])


def gc(
    remote: str | None = typer.Option(
        None, "--remote", "-r", metavar="NAME|URL", help="Collect garbage on this remote "
        "instead of the local store."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --remote: delete what the "
                             "listing shows (without it, only list)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would go."),
    grace: float | None = typer.Option(
        None, "--grace", metavar="SEC", help="Keep unreferenced files newer than this "
        "(default: 1 hour locally, 24 hours on a remote, where a push may be under way)."),
    jobs: int = JobsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete objects that no version references: in the local store, or on a remote."""
    if remote is None:
        from wbtool.artifacts.gc import DEFAULT_GRACE_SECONDS
        from wbtool.cli.artifact import local_gc
        from wbtool.cli.artifact_ops import existing_store

        local_gc(existing_store(), DEFAULT_GRACE_SECONDS if grace is None else grace, dry_run,
                 as_json, "gc")
        return
    ctx = _ctx(None)  # every project's: the settings' project plays no part, so is not checked
    from wbtool.remote import gc as remote_gc

    target = _open(ctx, remote)
    wait = remote_gc.DEFAULT_GRACE_SECONDS if grace is None else grace
    listing = remote_gc.collect(target, dry_run=True, grace=wait, jobs=jobs)
    for w in listing.warnings:
        output.note(f"wbtool: warning: {w}")
    sweep = yes and not dry_run
    if not as_json or not sweep:
        _show_gc(listing, as_json)
    if not sweep:
        if not as_json and (listing.objects or listing.manifests):
            output.note("wbtool: nothing was deleted; run again with --yes to delete these")
        return
    res = remote_gc.collect(target, dry_run=False, grace=wait, jobs=jobs)
    for line in res.locks_removed:
        output.note(f"wbtool: warning: {line}")
    if as_json:
        output.emit_json("gc", res.to_json())
    else:
        output.line(f"removed {len(res.objects)} object(s) "
                    f"({output.human_size(res.bytes)}) and {len(res.manifests)} manifest(s) "
                    f"from {res.remote}")


def _show_gc(res: Any, as_json: bool) -> None:
    from wbtool.remote import records

    if as_json:
        output.emit_json("gc", res.to_json())
        return
    for digest in res.manifests:
        output.line(f"  {records.manifest_path(digest)}")
    for digest, size in res.objects:
        output.line(f"  {records.object_path(digest)}\t{output.human_size(size)}")
    output.line(f"{len(res.objects)} object(s) ({output.human_size(res.bytes)}) and "
                f"{len(res.manifests)} manifest(s) on {res.remote} are referenced by no "
                f"version; kept {res.kept} referenced and {res.kept_recent} recent "
                f"(from {res.versions} version record(s))")
