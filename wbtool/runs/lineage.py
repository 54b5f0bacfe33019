"""A run's artifacts: what it logged (outputs) and what it used (inputs)."""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

from wbtool.errors import NotFoundError, UsageError
from wbtool.manifest import Manifest
from wbtool.names import name_list, split_ref, validate_name

if TYPE_CHECKING:
    from wbtool.artifacts.artifact import Artifact
    from wbtool.runs.run import Run

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _from_path(run: Run, path: str | os.PathLike, name: str | None,
               type: str | None) -> Artifact:
    from wbtool.artifacts.artifact import Artifact

    text = os.fspath(path)
    base = os.path.basename(text.rstrip("/")) or "files"
    if name is None:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"run-{run.id}-{base}")
    _, coll, _ = split_ref(name)
    artifact = Artifact(coll, type or "unspecified")
    if run._ctx is None:  # a disabled run: nothing is hashed into a store
        if not (_URL.match(text) or os.path.exists(text)):
            raise UsageError(f"nothing to log at {text}: no such file or folder")
        return artifact
    if _URL.match(text):
        artifact.add_reference(text)
    elif os.path.isdir(text):
        artifact.add_dir(text)
    elif os.path.isfile(text):
        artifact.add_file(text)
    else:
        raise UsageError(f"nothing to log at {text}: no such file or folder")
    return artifact


def log_artifact(run: Run, artifact_or_path: Artifact | str | os.PathLike, name: str | None,
                 type: str | None, aliases: list[str] | None,
                 tags: list[str] | None) -> Artifact:
    from wbtool.artifacts.artifact import Artifact

    if isinstance(artifact_or_path, Artifact):
        artifact = artifact_or_path
    else:
        artifact = _from_path(run, artifact_or_path, name, type)
    aliases, tags = name_list(aliases), name_list(tags)
    if run._ctx is None:  # a disabled run writes nothing
        return artifact
    ctx = run._ctx
    if artifact._ctx is None:
        artifact._ctx = ctx
    if tags:
        artifact.tags = [*artifact._tags, *tags]
    if artifact._rec is not None:  # already logged: this run outputs it too
        rec = artifact._rec
        for alias in aliases or ():
            rec = ctx.registry.add_alias(rec, alias)
        with ctx.store.index.transaction() as db:
            ctx.registry._lineage(db, run.id, rec.id, "output")
        artifact._load_record(ctx.registry.get(rec.id))
        return artifact
    project = artifact._project or run.project
    artifact._commit(ctx, project=project, aliases=list(aliases or []), run_id=run.id,
                     history_step=run._history_step())
    return artifact


def use_artifact(run: Run, artifact_or_name: str | Artifact, type: str | None,
                 aliases: list[str] | None) -> Artifact:
    from wbtool.artifacts.artifact import Artifact
    from wbtool.context import Context

    ctx = run._ctx or Context.existing(run.settings)  # a disabled run creates no store
    if isinstance(artifact_or_name, Artifact):
        artifact = artifact_or_name
        if artifact._rec is None:
            if run._ctx is None:
                return artifact
            artifact._ctx = artifact._ctx or run._ctx
            artifact._commit(run._ctx, project=artifact._project or run.project)
    elif isinstance(artifact_or_name, str):
        project, name, version = split_ref(artifact_or_name,
                                           None if ctx is None else ctx.named_entity)
        ref = f"{project or run.project}/{name}" + (f":{version}" if version else "")
        if ctx is None:
            raise NotFoundError(what="artifact", name=ref)
        artifact = Artifact._load(ref, ctx, type=type)
    else:
        raise UsageError("use_artifact takes an artifact name or an Artifact")
    if type is not None and artifact.type != type:
        raise UsageError(f"{artifact.name} has type {artifact.type!r}, not {type!r}")
    aliases = name_list(aliases)
    if run._ctx is None:
        return artifact
    ctx = run._ctx
    rec = artifact._rec
    for alias in aliases or ():
        rec = ctx.registry.add_alias(rec, alias)
    ctx.registry.record_use(run.id, rec)
    artifact._load_record(ctx.registry.get(rec.id))
    run._event({"type": "use_artifact", "artifact": artifact.qualified_name})
    return artifact


def use_model(run: Run, name: str) -> str:
    artifact = use_artifact(run, name, None, None)
    if "model" not in artifact.type:
        raise AssertionError(f"{artifact.name} has type {artifact.type!r}: use_model needs a "
                             "model artifact")
    return artifact.download()


def link_model(run: Run, path: str | os.PathLike, registered_model_name: str,
               name: str | None, aliases: list[str] | None) -> Artifact:
    validate_name(registered_model_name, "registered model name")
    artifact = log_artifact(run, path, name, "model", None, None)
    if run._ctx is None:
        return artifact
    return artifact.link(f"model-registry/{registered_model_name}", aliases)


def _distributed(run: Run, artifact_or_path: Artifact | str, name: str | None,
                 type: str | None, distributed_id: str | None) -> tuple[Artifact, str]:
    from wbtool.artifacts.artifact import Artifact

    did = distributed_id or run.group
    if not did:
        raise UsageError("upsert_artifact needs a distributed_id (or a run group) shared by "
                         "every process that contributes")
    if isinstance(artifact_or_path, Artifact):
        artifact = artifact_or_path
        if artifact._rec is not None:
            raise UsageError(f"{artifact.name} is already logged; upsert a new Artifact")
    else:
        artifact = _from_path(run, artifact_or_path, name, type)
    return artifact, did


def upsert_artifact(run: Run, artifact_or_path: Artifact | str, name: str | None,
                    type: str | None, aliases: list[str] | None,
                    distributed_id: str | None) -> Artifact:
    """Add this process's files to the version that every process with the
    same distributed id builds together (finished by finish_artifact)."""
    artifact, did = _distributed(run, artifact_or_path, name, type, distributed_id)
    if run._ctx is None:
        return artifact
    _merge(run, artifact, did)
    return artifact


def _merge(run: Run, artifact: Artifact, did: str) -> Manifest:
    assert run._ctx is not None
    project = artifact._project or run.project
    index = run._ctx.store.index
    with index.transaction() as db:
        row = db.execute(
            "SELECT type, manifest FROM distributed_drafts WHERE project=? AND name=?"
            " AND distributed_id=?", (project, artifact._collection_name, did)).fetchone()
        merged = Manifest() if row is None else Manifest.from_bytes(
            row[1].encode(), f"shared draft of {artifact._collection_name}")
        if row is not None and row[0] != artifact.type:
            raise UsageError(f"{artifact._collection_name} is being built as type {row[0]!r}, "
                             f"not {artifact.type!r}")
        for entry in artifact.manifest:
            merged.add(entry)
        db.execute(
            "INSERT OR REPLACE INTO distributed_drafts"
            " (project, name, distributed_id, type, manifest, updated_at) VALUES (?,?,?,?,?,?)",
            (project, artifact._collection_name, did, artifact.type,
             merged.to_bytes().decode(), time.time()))
    return merged


def finish_artifact(run: Run, artifact_or_path: Artifact | str, name: str | None,
                    type: str | None, aliases: list[str] | None,
                    distributed_id: str | None) -> Artifact:
    """Commit the shared version: every upserted file, plus this call's."""
    artifact, did = _distributed(run, artifact_or_path, name, type, distributed_id)
    aliases = name_list(aliases)
    if run._ctx is None:
        return artifact
    ctx = run._ctx
    project = artifact._project or run.project
    with ctx.store.index.transaction() as db:
        merged = _merge(run, artifact, did)
        db.execute("DELETE FROM distributed_drafts WHERE project=? AND name=?"
                   " AND distributed_id=?", (project, artifact._collection_name, did))
        artifact._manifest = merged
        artifact._ctx = artifact._ctx or ctx
        artifact._commit(ctx, project=project, aliases=list(aliases or []), run_id=run.id,
                         history_step=run._history_step())
    return artifact
