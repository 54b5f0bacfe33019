"""The work behind ``wbtool artifact log``, ``checkout``, ``download`` and
``verify``, and what every ``wbtool artifact`` command shares, without Typer:
scripts call these commands in loops, so the entry point's fast path runs
them directly."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from wbtool.cli import output


def context(project: str | None, need_project: bool = True, *, create: bool = True,
            refs: Sequence[str] = ()) -> Any:
    """The context of the store the settings find; made where ``create``,
    else (a command that only reads or changes what is there) NotFoundError
    where there is none: looking never makes a store. ``refs``, the
    artifacts the command names, are checked first: a malformed one is a
    usage error, store or none."""
    from wbtool.context import Context, project_settings

    settings = project_settings(project)
    if create:
        return Context.from_settings(settings, need_project=need_project)
    from wbtool.names import split_ref

    for ref in refs:
        split_ref(ref)
    ctx = existing(project, settings)
    if ctx is None:
        from wbtool.errors import NotFoundError
        from wbtool.settings import load
        from wbtool.store.layout import discover

        raise NotFoundError(what="wbtool store",
                            name=str(discover(root_dir=load(settings).root_dir)))
    return ctx


def existing_store() -> Any:
    """The context of the store the settings find, or None where there is
    none yet, for a command of the whole store (its project plays no part)."""
    from wbtool.context import Context, project_settings

    return Context.existing(project_settings(None))


def existing(project: str | None, settings: Any = None) -> Any:
    """The context of the store the settings find, or None where there is none
    yet; an invalid project is refused either way."""
    from wbtool.context import Context, project_settings

    return Context.existing(settings or project_settings(project), need_project=True)


def resolve(ctx: Any, ref: str) -> Any:
    from wbtool.names import split_ref

    project, name, version = split_ref(ref, ctx.named_entity)
    return ctx.registry.resolve(project or ctx.project, name, version)


def fetch(ctx: Any, ref: str) -> Any:
    """Like resolve, but a version only on the default remote is pulled first."""
    from wbtool.names import split_ref
    from wbtool.remote import fallback

    project, name, version = split_ref(ref, ctx.named_entity)
    return fallback.resolve(ctx.registry, project or ctx.project, name, version)


def split_project(ctx: Any, name: str) -> tuple[str, str]:
    from wbtool.names import split_ref

    project, bare, version = split_ref(name, ctx.named_entity)
    if version:
        from wbtool.errors import UsageError

        raise UsageError(f"give a name without a version here, not {name!r}")
    return project or ctx.project, bare


def _folder_option(option: str, value: str | None) -> None:
    """Refuse an empty folder option: given, it would be read as no option (the
    default folder) or as the current folder, never as what was meant."""
    if value is not None and not value.strip():
        from wbtool.errors import UsageError

        raise UsageError(f"{option} is empty: name a folder")


def version_line(rec: Any) -> str:
    aliases = ", ".join(rec.aliases)
    return (f"{rec.project}/{rec.name}:{rec.version}  {rec.type}  {_files(rec.file_count)}  "
            f"{output.human_size(rec.size)}" + (f"  [{aliases}]" if aliases else ""))


def report_written(command: str, res: Any, as_json: bool) -> None:
    if as_json:
        output.emit_json(command, {"root": res.root, "written": res.written,
                                   "unchanged": res.unchanged, "removed": res.removed,
                                   "bytes": res.bytes, "skipped_references": res.skipped_refs})
        return
    output.line(f"{res.root}: {res.written} written, {res.unchanged} unchanged"
                + (f", {res.removed} removed" if res.removed else ""))


def _run_id(run: str | None) -> str | None:
    """The run a command works for: ``--run``, else ``$WBTOOL_RUN_ID`` (set
    by ``wbtool run`` for its command), else none."""
    run_id = run if run is not None else (os.environ.get("WBTOOL_RUN_ID") or None)
    if run_id is not None:
        from wbtool.runs.ids import validate_id

        validate_id(run_id)
    return run_id


def _warn_elsewhere(ctx: Any, run_id: str, rec: Any, direction: str) -> None:
    """A warning where the version was recorded for a run this store does not
    hold: a run made on another machine, pulled later, shows it then; a
    mistyped id would show it nowhere."""
    from wbtool.runs.shell import in_store

    if not in_store(ctx, run_id):
        output.note(f"wbtool: warning: run {run_id} is not in this store; "
                    f"{rec.name}:{rec.version} is recorded as its {direction} all the same "
                    "(the run shows it once it is pulled here)")


def log_version(
    name: str,
    paths: list[str],
    *,
    type: str | None = None,
    description: str | None = None,
    metadata: str | None = None,
    aliases: list[str] | None = None,
    tags: list[str] | None = None,
    immutable: bool = False,
    name_in_artifact: str | None = None,
    run: str | None = None,
    project: str | None = None,
    incremental: bool = False,
    as_json: bool = False,
) -> None:
    """``wbtool artifact log``: commit the draft plus ``paths`` as the next version."""
    from wbtool.artifacts import staging
    from wbtool.artifacts.metadata import parse_metadata

    meta = None if metadata is None else parse_metadata(metadata, "--metadata")
    ctx = context(project)
    proj, bare = split_project(ctx, name)
    run_id = _run_id(run)
    step = None
    if run_id is not None:
        from wbtool.runs.shell import history_step

        step = history_step(ctx, run_id)
    if paths:
        with output.progress(f"hashing {bare}") as cb:
            rec, skipped = staging.log_paths(
                ctx, proj, bare, paths, name_in_artifact=name_in_artifact,
                immutable=immutable, type=type, description=description, metadata=meta,
                aliases=aliases or [], tags=tags or [], run_id=run_id, history_step=step,
                progress=cb, incremental=incremental)
        for p, r in skipped:
            output.note(f"skipped {p}: {r}")
    else:
        rec = staging.commit(
            ctx, proj, bare, type=type, description=description, metadata=meta,
            aliases=aliases or [], tags=tags or [], run_id=run_id, history_step=step,
            incremental=incremental)._rec
    if rec.noop:
        ignored = [opt for opt, given, kept in (
            ("--description", description, rec.description), ("--metadata", meta, rec.metadata))
            if given is not None and given != kept]
        if ignored:
            output.note(f"wbtool: note: the content is unchanged, so {rec.name}:{rec.version} "
                        f"keeps its own {' and '.join(o[2:] for o in ignored)} "
                        f"({' and '.join(ignored)} not applied)")
    if run_id is not None:
        _warn_elsewhere(ctx, run_id, rec, "output")
    if as_json:
        output.emit_json("artifact log", {**rec.to_json(), "created": not rec.noop})
        return
    verb = "unchanged, still" if rec.noop else "logged"
    output.line(f"{verb} {version_line(rec)}")


def checkout_version(
    ref: str, directory: str, *, link: str = "auto", project: str | None = None,
    force: bool = False, run: str | None = None, as_json: bool = False,
) -> None:
    """``wbtool artifact checkout``: make ``directory`` hold exactly this version
    (recorded as an input of the run it works for)."""
    from wbtool.artifacts import materialize
    from wbtool.remote import fallback

    materialize.refuse_dangerous_root(directory)
    run_id = _run_id(run)
    ctx = context(project, create=False, refs=[ref])
    rec = fetch(ctx, ref)
    manifest = ctx.registry.load_manifest(rec)
    materialize.store_under(ctx.store, directory)  # refused before anything is made
    os.makedirs(directory, exist_ok=True)
    check = None if force else materialize.only_versions_files(
        ctx.registry, rec, directory, "pass --force to delete them")
    removed = materialize.remove_extras(ctx.store, directory, manifest, check=check)

    def write() -> Any:
        with output.progress(f"checking out {rec.name}:{rec.version}", len(manifest)) as cb:
            return materialize.materialize(ctx.store, manifest, directory, link=link,
                                           replace=True, progress=cb)

    res = fallback.with_objects(ctx.registry, manifest, write)
    res.removed = removed
    if run_id is not None:
        ctx.registry.record_use(run_id, rec)
        _warn_elsewhere(ctx, run_id, rec, "input")
    report_written("artifact checkout", res, as_json)


def download_version(
    ref: str, *, root: str | None = None, path_prefix: str | None = None,
    link: str = "auto", project: str | None = None, run: str | None = None,
    as_json: bool = False,
) -> None:
    """``wbtool artifact download``: write a version's files into a folder
    (recorded as an input of the run it works for)."""
    from wbtool.artifacts import materialize
    from wbtool.remote import fallback

    _folder_option("--root", root)
    run_id = _run_id(run)
    ctx = context(project, create=False, refs=[ref])
    rec = fetch(ctx, ref)
    manifest = ctx.registry.load_manifest(rec)
    target = root or os.path.join("artifacts", f"{rec.name}:{rec.version}")

    def write() -> Any:
        with output.progress(f"writing {rec.name}:{rec.version}", len(manifest)) as cb:
            return materialize.materialize(ctx.store, manifest, target,
                                           path_prefix=path_prefix, link=link, progress=cb)

    res = fallback.with_objects(ctx.registry, manifest, write)
    if run_id is not None:
        ctx.registry.record_use(run_id, rec)
        _warn_elsewhere(ctx, run_id, rec, "input")
    if path_prefix and not (res.written or res.unchanged or res.skipped_refs) and len(manifest):
        output.note(f"wbtool: note: no file of {rec.name}:{rec.version} starts with "
                    f"{path_prefix!r}; nothing was written")
    report_written("artifact download", res, as_json)


def verify_version(
    ref: str, *, root: str | None = None, project: str | None = None, as_json: bool = False,
) -> None:
    """``wbtool artifact verify``: check a folder, or the stored objects, against
    a version's manifest; VerificationError on any mismatch."""
    from wbtool.artifacts import materialize
    from wbtool.errors import VerificationError

    _folder_option("--root", root)
    ctx = context(project, create=False, refs=[ref])
    rec = resolve(ctx, ref)
    manifest = ctx.registry.load_manifest(rec)
    label = f"{rec.project}/{rec.name}:{rec.version}"
    if root is not None:
        try:
            materialize.verify_tree(manifest, root, ctx.store)
        except VerificationError as e:
            if as_json:
                output.emit_json("artifact verify", {"artifact": label, "ok": False,
                                                     "problems": e.fields.get("problems", [])})
            raise
        target = root
    else:
        with output.progress(f"verifying {rec.name}:{rec.version}", len(manifest)) as cb:
            bad = materialize.verify_objects(ctx.store, manifest, progress=cb)
        if bad:
            if as_json:
                output.emit_json("artifact verify", {"artifact": label, "ok": False,
                                                     "problems": [f"corrupt: {p}" for p in bad]})
            raise VerificationError(
                message=f"{label}: {len(bad)} stored object(s) missing or corrupt "
                f"(first: {bad[0]})")
        target = str(ctx.store.path / "objects")
    if as_json:
        output.emit_json("artifact verify", {"artifact": label, "ok": True, "files": len(manifest),
                                             "checked": target})
    else:
        output.line(f"ok: {label} ({_files(len(manifest))}) matches {target}")


def _files(n: int) -> str:
    return "1 file" if n == 1 else f"{n} files"
