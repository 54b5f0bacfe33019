"""``wbtool artifact …``: stage, log, list, materialise and manage versions."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import typer

from wbtool.cli import artifact_ops as ops
from wbtool.cli import output

app = typer.Typer(
    help="Versioned, deduplicated datasets and models (add stages, log commits).",
    no_args_is_help=True,
)
alias_app = typer.Typer(help="Move or remove aliases of a version.", no_args_is_help=True)
tag_app = typer.Typer(help="Add or remove tags of a version.", no_args_is_help=True)
cache_app = typer.Typer(help="The store's object cache.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")
app.add_typer(tag_app, name="tag")
app.add_typer(cache_app, name="cache")



class Policy(str, Enum):
    mutable = "mutable"
    immutable = "immutable"


class Link(str, Enum):
    auto = "auto"
    copy = "copy"
    reflink = "reflink"
    hardlink = "hardlink"
    symlink = "symlink"


ProjectOpt = typer.Option(None, "--project", "-p", help="Project (default: settings, then "
                          "'uncategorized').")
JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of text.")
IncrementalOpt = typer.Option(
    False, "--incremental", "-i", help="Start from the files of the latest version: the next "
    "version keeps them, with these added or replaced.")


def _policy(policy: Policy) -> bool:
    return policy is Policy.immutable


@app.command()
def add(
    name: str = typer.Argument(..., help="Artifact name ([project/]name)."),
    paths: list[str] = typer.Argument(None, help="Files or folders to stage."),
    type: str | None = typer.Option(None, "--type", "-t", help="Artifact type."),
    name_in_artifact: str | None = typer.Option(
        None, "--name-in-artifact", help="Path inside the artifact (one PATH only)."),
    policy: Policy = typer.Option(
        Policy.mutable, help="mutable: copy; immutable: your promise never to change the files "
        "(hard-linked into the store and made read-only)."),
    reference: list[str] = typer.Option(
        None, "--reference", help="Track a URI without copying it (repeatable)."),
    incremental: bool = IncrementalOpt,
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Stage files into the draft of NAME (like git add).

    With --incremental and no PATH: start a draft holding the latest version's files,
    for 'reset NAME PATH' to take some out."""
    from wbtool.artifacts import staging
    from wbtool.artifacts.artifact import Artifact
    from wbtool.errors import UsageError

    if not paths and not reference and not incremental:
        raise UsageError("give at least one PATH or --reference (or --incremental alone, to "
                         "start from the latest version's files)")
    ctx = ops.context(project)
    proj, bare = ops.split_project(ctx, name)
    staging.check_stageable(ctx, proj, bare, type)  # before any file is read
    entries: list[Any] = []
    skipped: list[tuple[str, str]] = []
    if paths:
        with output.progress(f"hashing {bare}") as cb:
            entries, skipped = staging.collect(
                ctx, paths, name_in_artifact=name_in_artifact, immutable=_policy(policy),
                progress=cb)
    for uri in reference or []:
        holder = Artifact(bare, type or "dataset")
        holder._ctx = ctx
        found, passed_over = holder._reference_entries(uri, name_in_artifact, warn=False)
        holder._put(found, overwrite=False)
        entries.extend(found)
        skipped.extend(passed_over)
    draft = staging.stage(ctx, proj, bare, entries, type=type, incremental=incremental)
    if as_json:
        output.emit_json("artifact add", {
            "project": proj, "name": bare, "staged": len(entries),
            "draft_files": len(draft.manifest), "type": draft.type,
            "incremental": draft.based is not None,
            "based_on": draft.based and draft.based.version,
            "skipped": [{"path": p, "reason": r} for p, r in skipped]})
        return
    for p, r in skipped:
        output.note(f"skipped {p}: {r}")
    on_top = f", on top of {draft.based.version}" if draft.based and draft.based.version else ""
    output.line(f"staged {len(entries)} file(s) into {proj}/{bare} "
                f"({len(draft.manifest)} in the draft{on_top})")


@app.command()
def status(
    name: str | None = typer.Argument(
        None, help="Artifact name (default: every draft; with --project, that project's)."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show what is staged."""
    from wbtool.artifacts import staging

    ctx = ops.existing(project)
    if ctx is None:  # no store: nothing staged (looking makes none)
        drafts = []
    elif name is not None:
        proj, bare = ops.split_project(ctx, name)
        d = staging.load_draft(ctx, proj, bare)
        drafts = [d] if d else []
    else:
        drafts = staging.list_drafts(ctx)
        if project is not None:  # only that project's, as ls lists
            drafts = [d for d in drafts if d.project == ctx.project]
    if as_json:
        output.emit_json("artifact status", [_draft_json(ctx, d) for d in drafts])
        return
    if not drafts:
        output.line("nothing staged")
        return
    for d in drafts:
        head = (f"{d.project}/{d.name} ({d.type or 'no type yet'}): "
                f"{len(d.manifest)} file(s), {output.human_size(d.manifest.size)}")
        changes = _draft_changes(ctx, d)
        if changes is None:
            lines = [f"  {output.cell(p)}" for p in sorted(d.manifest.entries)]
        else:
            added, removed, changed = changes
            base = (d.based.version if d.based else None) or "no version"
            head += (f", on top of {base}: {len(added)} added, "
                     f"{len(changed)} changed, {len(removed)} removed")
            lines = [f"  {mark} {output.cell(p)}"
                     for mark, paths in (("+", added), ("-", removed), ("M", changed))
                     for p in paths]
        output.line(head)
        if d.based is not None and (newest := _latest_label(ctx, d)) != d.based.version:
            output.line(f"  the latest version is now {newest or 'none'}: 'wbtool artifact log' "
                        f"refuses this draft, 'wbtool artifact reset {d.name}' drops it")
        for line in lines[:STATUS_LINES]:
            output.line(line)
        if len(lines) > STATUS_LINES:
            output.line(f"  … and {len(lines) - STATUS_LINES} more")


STATUS_LINES = 50  # paths listed per draft; --json lists them all


def _draft_changes(ctx: Any, draft: Any) -> tuple[list[str], list[str], list[str]] | None:
    """(added, removed, changed) from the version an incremental draft
    started from (every file added, before the first version); None for a
    draft that started empty."""
    from wbtool.errors import NotFoundError

    if draft.based is None:
        return None
    if draft.based.version is None:
        return sorted(draft.manifest.entries), [], []
    try:
        rec = ctx.registry.resolve(draft.project, draft.name, draft.based.version)
    except NotFoundError:  # deleted since: every file counts as added
        return sorted(draft.manifest.entries), [], []
    result: tuple[list[str], list[str], list[str]] = (
        ctx.registry.load_manifest(rec).changes_to(draft.manifest))
    return result


def _draft_json(ctx: Any, d: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "project": d.project, "name": d.name, "type": d.type, "files": len(d.manifest),
        "size": d.manifest.size, "incremental": d.based is not None,
        "based_on": d.based and d.based.version,
        "entries": [{"path": e.path, "size": e.size} for e in d.manifest]}
    changes = _draft_changes(ctx, d)
    if changes is not None:
        doc["changes"] = dict(zip(("added", "removed", "changed"), changes, strict=True))
        doc["latest"] = _latest_label(ctx, d)  # not based_on: log refuses the draft
    return doc


def _latest_label(ctx: Any, draft: Any) -> str | None:
    """The newest version of the draft's artifact (None before its first)."""
    from wbtool.errors import NotFoundError

    try:
        return str(ctx.registry.resolve(draft.project, draft.name).version)
    except NotFoundError:
        return None


@app.command()
def reset(
    name: str = typer.Argument(..., help="Artifact name."),
    paths: list[str] = typer.Argument(None, help="Only unstage these paths."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Drop the draft of NAME (or only some staged paths)."""
    from wbtool.artifacts import staging
    from wbtool.errors import NotFoundError

    ctx = ops.context(project, create=False, refs=[name])
    proj, bare = ops.split_project(ctx, name)
    if paths:
        d = staging.unstage(ctx, proj, bare, paths)
        result: dict[str, Any] = {"name": bare, "remaining": len(d.manifest)}
    else:
        if not staging.reset(ctx, proj, bare):
            raise NotFoundError(what="draft", name=f"{proj}/{bare}")
        result = {"name": bare, "remaining": 0}
    if as_json:
        output.emit_json("artifact reset", result)
    else:
        output.line(f"reset {proj}/{bare} ({result['remaining']} file(s) still staged)")


@app.command()
def log(
    name: str = typer.Argument(..., help="Artifact name ([project/]name)."),
    paths: list[str] = typer.Argument(None, help="Files or folders to add before committing."),
    type: str | None = typer.Option(None, "--type", "-t", help="Artifact type."),
    description: str | None = typer.Option(None, "--description", "-d",
                                           help="Description (markdown) of the version."),
    metadata: str | None = typer.Option(None, "--metadata", help="JSON object."),
    alias: list[str] = typer.Option(None, "--alias", "-a", help="Alias (repeatable)."),
    tag: list[str] = typer.Option(None, "--tag", help="Tag (repeatable)."),
    policy: Policy = typer.Option(
        Policy.mutable, help="mutable: copy; immutable: your promise never to change the files "
        "(hard-linked into the store and made read-only)."),
    name_in_artifact: str | None = typer.Option(
        None, "--name-in-artifact", help="Path inside the artifact (one PATH only)."),
    run: str | None = typer.Option(
        None, "--run", help="Record the version as this run's output (default: "
        "$WBTOOL_RUN_ID)."),
    incremental: bool = IncrementalOpt,
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Commit the draft plus PATHs as the next version (like git commit)."""
    ops.log_version(
        name, paths or [], type=type, description=description, metadata=metadata,
        aliases=alias or [], tags=tag or [], immutable=_policy(policy),
        name_in_artifact=name_in_artifact, run=run, project=project,
        incremental=incremental, as_json=as_json)


@app.command("ls")
def ls(
    name: str | None = typer.Argument(None, help="List this artifact's versions."),
    project: str | None = typer.Option(
        None, "--project", "-p", help="Project (default: settings; listing artifacts with none "
        "set, every project; a NAME's versions, 'uncategorized')."),
    all_projects: bool = typer.Option(False, "--all-projects", help="Every project."),
    as_json: bool = JsonOpt,
) -> None:
    """List artifacts (of the project given or set in the settings; with none
    set, of every project), or the versions of one."""
    ctx = ops.existing(project)
    if ctx is None and name is not None:
        ctx = ops.context(project, create=False, refs=[name])  # no store: not found
    if name is None:
        rows: list[dict[str, Any]] = []
        if ctx is not None:  # no store lists nothing (looking makes none)
            everywhere = all_projects or (project is None and ctx.settings.project is None)
            rows = ctx.registry.collections(None if everywhere else ctx.project)
        if as_json:
            output.emit_json("artifact ls", rows)
            return
        output.table(
            ["project", "name", "type", "versions", "latest", "size"],
            [[r["project"], r["name"], r["type"], r["versions"], r["latest"],
              output.human_size(r["size"])] for r in rows])
        return
    proj, bare = ops.split_project(ctx, name)
    recs = ctx.registry.versions(proj, bare)
    if not recs:
        found = ctx.registry.collections(proj, bare)
        if not found:
            from wbtool.errors import NotFoundError

            raise NotFoundError(what="artifact", name=f"{proj}/{bare}")
        # Listed by `artifact ls` with none: its type and numbering stay.
        output.note(f"wbtool: note: {proj}/{bare} (type {found[0]['type']}) has no versions "
                    "left")
    if as_json:
        output.emit_json("artifact ls", [r.to_json() for r in recs])
        return
    output.table(
        ["version", "aliases", "tags", "files", "size", "digest", "created"],
        [[r.version, ",".join(r.aliases), ",".join(r.tags), r.file_count,
          output.human_size(r.size), r.digest[:12], _time(r.created_at)] for r in recs])


def _time(ts: float) -> str:
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # not a time a date can show
        return str(ts)


@app.command()
def info(
    ref: str = typer.Argument(..., help="NAME[:VERSION|ALIAS]"),
    files: bool = typer.Option(False, "--files", help="List the files too."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show one version: digest, size, aliases, tags, metadata."""
    ctx = ops.context(project, create=False, refs=[ref])
    rec = ops.fetch(ctx, ref)
    doc = rec.to_json()
    manifest = ctx.registry.load_manifest(rec) if files or as_json else None
    if manifest is not None and files:
        doc["files"] = [{"path": e.path, "size": e.size, "digest": e.digest,
                         **({"ref": e.ref} if e.ref else {})} for e in manifest]
    doc["used_by"] = ctx.registry.runs_of(rec, "input")
    if as_json:
        output.emit_json("artifact info", doc)
        return
    output.line(ops.version_line(rec))
    for key in ("digest", "description", "tags", "run_id", "ttl"):
        if doc.get(key):
            output.line(f"  {key}: {doc[key]}")
    output.line(f"  created: {_time(rec.created_at)}")
    if rec.metadata:
        output.line(f"  metadata: {json.dumps(rec.metadata, sort_keys=True)}")
    if files and manifest is not None:
        for e in manifest:
            output.line(f"  {output.cell(e.path)}\t{output.human_size(e.size)}")


@app.command()
def download(
    ref: str = typer.Argument(..., help="NAME[:VERSION|ALIAS]"),
    root: str | None = typer.Option(None, "--root", help="Target folder (default "
                                    "./artifacts/NAME:VERSION)."),
    path_prefix: str | None = typer.Option(
        None, "--path-prefix", help="Only entries whose path starts with this."),
    link: Link = typer.Option(
        Link.auto, "--link", help="auto: reflink where possible, else copy; hardlink and "
        "symlink give read-only files shared with the store (a small file stored in a pack is "
        "written out once, by the first such checkout)."),
    run: str | None = typer.Option(
        None, "--run", help="Record the version as an input of this run (default: "
        "$WBTOOL_RUN_ID, set by 'wbtool run')."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write a version's files into a folder (existing other files are kept)."""
    ops.download_version(ref, root=root, path_prefix=path_prefix, link=link.value,
                         project=project, run=run, as_json=as_json)


@app.command()
def checkout(
    ref: str = typer.Argument(..., help="NAME[:VERSION|ALIAS]"),
    directory: str = typer.Argument(..., help="Folder to make identical to the version."),
    link: Link = typer.Option(
        Link.auto, "--link", help="auto: reflink where possible, else copy; hardlink and "
        "symlink give read-only files shared with the store (a small file stored in a pack is "
        "written out once, by the first such checkout)."),
    force: bool = typer.Option(
        False, "--force", help="Also delete files that no version of NAME has (without it, "
        "a folder holding any is refused and nothing is deleted)."),
    run: str | None = typer.Option(
        None, "--run", help="Record the version as an input of this run (default: "
        "$WBTOOL_RUN_ID, set by 'wbtool run')."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make DIRECTORY hold exactly this version: files there that the version lacks are
    deleted, when they come from other versions of NAME (or with --force)."""
    ops.checkout_version(ref, directory, link=link.value, project=project, force=force,
                         run=run, as_json=as_json)


@app.command()
def verify(
    ref: str = typer.Argument(..., help="NAME[:VERSION|ALIAS]"),
    root: str | None = typer.Option(
        None, "--root", help="Check this folder against the version (default: check the "
        "stored objects)."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check content against the manifest; exit 4 on any mismatch."""
    ops.verify_version(ref, root=root, project=project, as_json=as_json)


@app.command("rm")
def rm(
    ref: str = typer.Argument(..., help="NAME:VERSION to delete."),
    delete_aliases: bool = typer.Option(False, "--delete-aliases",
                                        help="Delete even if aliases point at it."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a version (its objects are freed by 'cache gc')."""
    from wbtool.errors import AliasedVersionError, UsageError

    if ":" not in ref:
        raise UsageError("name the version to delete: NAME:VERSION (e.g. mnist:v3)")
    ctx = ops.context(project, create=False, refs=[ref])
    rec = ops.resolve(ctx, ref)
    try:
        ctx.registry.delete(rec, delete_aliases=delete_aliases)
    except AliasedVersionError as e:  # told in the command line's words
        raise AliasedVersionError(**{**e.fields, "option": "--delete-aliases"}) from None
    if as_json:
        output.emit_json("artifact rm", {"deleted": f"{rec.project}/{rec.name}:{rec.version}"})
    else:
        output.line(f"deleted {rec.project}/{rec.name}:{rec.version}")


@app.command()
def link(
    ref: str = typer.Argument(..., help="NAME[:VERSION|ALIAS] to link."),
    target: str = typer.Argument(..., help="[project/]portfolio, or model-registry/NAME."),
    alias: list[str] = typer.Option(None, "--alias", "-a", help="Alias in the portfolio."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Link a version into a portfolio collection (e.g. a model registry)."""
    from wbtool.artifacts.artifact import Artifact

    ctx = ops.context(project, create=False, refs=[ref])
    art = Artifact._from_record(ctx, ops.resolve(ctx, ref))
    linked = art.link(target, alias or None)
    if as_json:
        output.emit_json("artifact link", linked._rec.to_json())
    else:
        output.line(f"linked {art.name} as {linked._rec.project}/{linked.name}")


@app.command()
def diff(
    a: str = typer.Argument(..., help="NAME[:VERSION]"),
    b: str = typer.Argument(..., help="NAME[:VERSION]"),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Paths added, removed and changed from A to B."""
    ctx = ops.context(project, create=False, refs=[a, b])
    ma = ctx.registry.load_manifest(ops.resolve(ctx, a))
    mb = ctx.registry.load_manifest(ops.resolve(ctx, b))
    added, removed, changed = ma.changes_to(mb)
    if as_json:
        output.emit_json("artifact diff", {"added": added, "removed": removed,
                                           "changed": changed})
        return
    for mark, paths in (("+", added), ("-", removed), ("M", changed)):
        for p in paths:
            output.line(f"{mark} {output.cell(p)}")
    if not (added or removed or changed):
        output.line("no differences")


@alias_app.command("add")
def alias_add(
    ref: str = typer.Argument(..., help="NAME[:VERSION]"),
    aliases: list[str] = typer.Argument(..., help="Aliases to point at it (moved if taken)."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Point aliases at a version (moving them from any other version)."""
    from wbtool.errors import UsageError

    if "latest" in aliases:  # as ``alias rm`` says: no alias moves it
        raise UsageError("'latest' always names the newest version; it cannot be added")
    ctx = ops.context(project, create=False, refs=[ref])
    rec = ops.resolve(ctx, ref)
    for a in aliases:
        rec = ctx.registry.add_alias(rec, a)
    _show(rec, "artifact alias add", as_json)


@alias_app.command("rm")
def alias_rm(
    name: str = typer.Argument(..., help="Artifact name ([project/]name)."),
    aliases: list[str] = typer.Argument(..., help="Aliases to remove."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Remove aliases from whichever version holds them."""
    from wbtool.names import validate_lookup

    for a in aliases:
        validate_lookup(a)  # a version number is looked up, and not found
    ctx = ops.context(project, create=False, refs=[name])
    proj, bare = ops.split_project(ctx, name)
    rec = None
    for a in aliases:
        rec = ctx.registry.remove_alias(ctx.registry.resolve(proj, bare, a), a)
    if rec is not None:
        _show(rec, "artifact alias rm", as_json)


@tag_app.command("add")
def tag_add(
    ref: str = typer.Argument(..., help="NAME[:VERSION]"),
    tags: list[str] = typer.Argument(..., help="Tags to add (1-64 characters)."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Tag a version."""
    ctx = ops.context(project, create=False, refs=[ref])
    rec = ops.resolve(ctx, ref)
    for t in tags:
        rec = ctx.registry.add_tag(rec, t)
    _show(rec, "artifact tag add", as_json)


@tag_app.command("rm")
def tag_rm(
    ref: str = typer.Argument(..., help="NAME[:VERSION]"),
    tags: list[str] = typer.Argument(..., help="Tags to remove."),
    project: str | None = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Remove tags from a version."""
    ctx = ops.context(project, create=False, refs=[ref])
    rec = ops.resolve(ctx, ref)
    for t in tags:
        rec = ctx.registry.remove_tag(rec, t)
    _show(rec, "artifact tag rm", as_json)


def _show(rec: Any, command: str, as_json: bool) -> None:
    if as_json:
        output.emit_json(command, rec.to_json())
    else:
        output.line(ops.version_line(rec) + (f"  tags: {', '.join(rec.tags)}" if rec.tags else ""))


@cache_app.command("gc")
def cache_gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would go."),
    grace: float = typer.Option(3600.0, "--grace", help="Keep objects newer than this many "
                                "seconds (they may belong to an artifact being built)."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete objects that no version or draft references.

    Objects are shared by every project of the store, so this always
    collects the whole store.
    """
    local_gc(ops.existing_store(), grace, dry_run, as_json, "artifact cache gc")


def local_gc(ctx: Any, grace: float, dry_run: bool, as_json: bool, command: str) -> None:
    """Collect the local store's garbage and report it (``artifact cache gc``, ``gc``)."""
    from wbtool.artifacts.gc import GcResult, collect_garbage

    res = (GcResult(dry_run=dry_run) if ctx is None  # no store: nothing to collect
           else collect_garbage(ctx, grace_seconds=grace, dry_run=dry_run))
    if as_json:
        output.emit_json(command, res.__dict__)
        return
    verb = "would remove" if dry_run else "removed"
    output.line(f"{verb} {res.removed} object(s), {output.human_size(res.freed)}; "
                f"kept {res.kept} referenced and {res.recent} recent")
