"""Persistent drafts for the command line: ``add`` stages, ``log`` commits.

A draft is a manifest (plus the artifact type) kept in ``index.db``.
Files are hashed and stored when staged, so what ``log`` commits is what
was there at ``add`` time. Concurrent ``add`` calls merge under the
database lock; nothing is lost.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wbtool.artifacts import ingest
from wbtool.artifacts.artifact import Artifact
from wbtool.artifacts.metadata import check_description, check_metadata
from wbtool.artifacts.registry import Based, VersionRecord
from wbtool.bulk import gc_paused
from wbtool.context import Context
from wbtool.errors import (
    ConflictError,
    LatestMovedError,
    MissingObjectsError,
    NotFoundError,
    UsageError,
)
from wbtool.hashing import new_hasher
from wbtool.manifest import Manifest, ManifestEntry, thawed
from wbtool.names import validate_entry_path, validate_name, validate_type

if TYPE_CHECKING:
    import sqlite3


@dataclass
class Draft:
    project: str
    name: str
    type: str | None
    manifest: Manifest
    updated_at: float
    #: None: the draft started empty; else (incremental) it started as the
    #: files of this version (``Based(None)``: the collection had none yet).
    based: Based | None = None


# The drafts table's ``base`` column: NULL for a draft that started empty,
# else the version number an incremental draft started from, or this.
_BASED_ON_NOTHING = -1


def load_draft(ctx: Context, project: str, name: str) -> Draft | None:
    # SELECT *: a read-only store made by an older wbtool has no base column
    cur = ctx.store.index.db.execute(
        "SELECT * FROM drafts WHERE project=? AND name=?", (project, name))
    row = cur.fetchone()
    if row is None:
        return None
    doc = dict(zip((c[0] for c in cur.description), row, strict=True))
    manifest = Manifest.from_bytes(doc["manifest"].encode(), f"draft of {name}")
    base = doc.get("base")
    based = None if base is None else Based(None if base == _BASED_ON_NOTHING else int(base))
    return Draft(project, name, doc["type"], manifest, doc["updated_at"], based)


def _made_incremental(ctx: Context, draft: Draft) -> Based:
    """What a draft that started empty is based on once ``--incremental``:
    nothing, which holds only while the collection has no version
    (ConflictError after: committing it would drop their files)."""
    if _has_versions(ctx, draft.project, draft.name):
        raise ConflictError(
            f"the draft of {draft.name!r} started empty, so it cannot be incremental: "
            f"'wbtool artifact reset {draft.name}' drops it, then stage with --incremental")
    return Based(None)


def _has_versions(ctx: Context, project: str, name: str) -> bool:
    row = ctx.store.index.db.execute(
        "SELECT 1 FROM versions v JOIN collections c ON c.id=v.collection_id"
        " WHERE c.project=? AND c.name=? LIMIT 1", (project, name)).fetchone()
    return row is not None


def list_drafts(ctx: Context, project: str | None = None) -> list[Draft]:
    sql = "SELECT project, name FROM drafts"
    args: tuple[str, ...] = ()
    if project is not None:
        sql += " WHERE project=?"
        args = (project,)
    out = []
    for p, n in ctx.store.index.db.execute(sql + " ORDER BY project, name", args).fetchall():
        d = load_draft(ctx, p, n)
        if d is not None:
            out.append(d)
    return out


def walk_paths(
    paths: Sequence[str], name_in_artifact: str | None = None,
    store: str | os.PathLike | None = None,
) -> ingest.WalkResult:
    """Files and folders named on the command line, as one walk (never into
    the ``store`` folder)."""
    if name_in_artifact is not None and len(paths) != 1:
        raise UsageError("--name-in-artifact needs exactly one PATH")
    out = ingest.WalkResult()
    prefix = validate_entry_path(name_in_artifact) if name_in_artifact is not None else ""
    for p in paths:
        if not p:  # os.stat would read it as the current folder's name, not found
            raise UsageError("a PATH is empty: name a file or folder")
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            raise NotFoundError(what="file or folder", name=p) from None
        if stat_mod.S_ISDIR(st.st_mode):
            walked = ingest.walk_dir(p, prefix, store=store, warn=False)  # noted by the caller
            out.files.extend(walked.files)
            out.stats.extend(walked.stats)
            out.skipped.extend(walked.skipped)
        elif stat_mod.S_ISREG(st.st_mode):
            out.files.append((p, prefix or validate_entry_path(os.path.basename(p))))
            out.stats.extend((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        else:  # a FIFO, socket or device: reading it could block or never end
            raise UsageError(f"{p} is not a regular file ({_kind(st.st_mode)})")
    return out


def _kind(mode: int) -> str:
    for test, kind in ((stat_mod.S_ISFIFO, "a named pipe"), (stat_mod.S_ISSOCK, "a socket"),
                       (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "a special file"


@gc_paused
def collect(
    ctx: Context,
    paths: Sequence[str],
    *,
    name_in_artifact: str | None = None,
    immutable: bool = False,
    progress: ingest.Progress = ingest._no_progress,
    walked: ingest.WalkResult | None = None,
    cache_hits: set[str] | None = None,
) -> tuple[list[ManifestEntry], list[tuple[str, str]]]:
    """Hash and store ``paths`` (files or folders); return their entries and
    what was skipped.
    ``cache_hits`` gets the digests taken from the stat cache (see ingest)."""
    walked = walked or walk_paths(paths, name_in_artifact, ctx.store.path)
    entries, _ = ingest.ingest(ctx.store, walked.files, immutable=immutable, progress=progress,
                               validated=True, stats=walked.stats, cache_hits=cache_hits)
    return entries, walked.skipped


def tree_fingerprint(walked: ingest.WalkResult) -> str | None:
    """A digest of every (path, device, inode, size, mtime) of a walk, or None
    when a file changed too recently for its mtime to be trusted."""
    # In walk order: an unchanged folder lists the same way again; if the
    # order changed, so did the folder, and a miss is merely slower.
    mtimes = walked.stats[3::4]
    if mtimes and time.time_ns() - max(mtimes) <= ingest.RACY_WINDOW_NS:
        return None
    h = new_hasher()
    h.update("\0".join(rel for _, rel in walked.files).encode("utf-8", "surrogateescape"))
    h.update(walked.stats.tobytes())
    return h.hexdigest()


def _tree_key(paths: Sequence[str], name_in_artifact: str | None) -> str:
    return "\0".join([name_in_artifact or "", *(os.path.realpath(p) for p in paths)])


@gc_paused
def log_paths(
    ctx: Context,
    project: str,
    name: str,
    paths: Sequence[str],
    *,
    name_in_artifact: str | None = None,
    immutable: bool = False,
    type: str | None = None,
    description: str | None = None,
    metadata: dict[str, object] | None = None,
    aliases: Sequence[str] = (),
    tags: Sequence[str] = (),
    run_id: str | None = None,
    history_step: int | None = None,
    progress: ingest.Progress = ingest._no_progress,
    incremental: bool = False,
) -> tuple[VersionRecord, list[tuple[str, str]]]:
    """The one-step ``log NAME PATH...``: commit the draft (if any) plus PATHs
    (``incremental``: on top of the files of the latest version).

    Without a draft, a walk whose fingerprint matches the last one logged
    from the same paths reuses that manifest without reading or even
    listing the files' digests (a re-log of unchanged data costs a walk).
    """
    if type is not None:
        validate_type(type)  # before a long walk, not after it
    check_description(description, "--description")
    draft = load_draft(ctx, project, name)
    check_loggable(ctx, project, name, type, draft)
    walked = walk_paths(paths, name_in_artifact, ctx.store.path)
    key = _tree_key(paths, name_in_artifact)
    plain = draft is None and not incremental
    fingerprint = tree_fingerprint(walked) if plain else None
    if fingerprint is not None:
        row = ctx.store.index.db.execute(
            "SELECT digest, manifest, size, file_count FROM tree_cache"
            " WHERE key=? AND fingerprint=?", (key, fingerprint),
        ).fetchone()
        if row is not None and type is not None:
            rec = ctx.registry.commit_known(
                project, name, type, row[0], row[1], row[2], row[3],
                description=description, metadata=check_metadata(metadata),
                aliases=list(aliases), tags=list(tags), run_id=run_id,
                history_step=history_step,
            )
            if rec is not None:
                return rec, walked.skipped
    # The shared lock, held from placing the objects to recording the
    # version, keeps garbage collection out: what was placed is still there.
    # Objects known only from the stat cache, or a draft's, placed earlier,
    # are checked.
    walk: ingest.WalkResult | None = walked
    del walked
    with ctx.store.lock(exclusive=False):
        for again in (False, True):
            hits: set[str] = set()
            entries, skipped = collect(ctx, paths, name_in_artifact=name_in_artifact,
                                       immutable=immutable, progress=progress, walked=walk,
                                       cache_hits=hits)
            walk = None  # its lists are large; a second pass walks again
            for e in entries:
                e.local_path = None
            try:
                art = commit(ctx, project, name, extra_entries=entries, type=type,
                             description=description, metadata=metadata, aliases=aliases,
                             tags=tags, run_id=run_id, history_step=history_step,
                             check_only=hits, incremental=incremental)
                break
            except MissingObjectsError as e:
                # Objects the stat cache named were gone (a gc killed before
                # it forgot them): the check forgot them, so a second pass
                # reads and stores those files.
                if again or not set(e.fields["digests"]) <= hits:
                    raise
    if fingerprint is not None:
        rec = art._rec
        with ctx.store.index.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tree_cache (key, fingerprint, digest, manifest, size,"
                " file_count) VALUES (?,?,?,?,?,?)",
                (key, fingerprint, rec.digest, rec.manifest, rec.size, rec.file_count),
            )
    return art._rec, skipped


def _collection(
    ctx: Context, project: str, name: str, db: sqlite3.Connection | None = None
) -> tuple[str, str] | None:
    """(type, kind) of the collection ``project/name``, or None before its first version."""
    row = (db or ctx.store.index.db).execute(
        "SELECT type, kind FROM collections WHERE project=? AND name=?", (project, name)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def check_stageable(
    ctx: Context, project: str, name: str, type: str | None, db: sqlite3.Connection | None = None
) -> None:
    """ConflictError when a draft of ``project/name`` (of ``type``, or of the
    draft's type) could never be logged: a portfolio, or a type other than
    the collection's. Checked before any file is read."""
    draft = load_draft(ctx, project, name)
    want = type or (draft.type if draft else None)
    row = _collection(ctx, project, name, db)
    if row is None:
        return
    _refuse_portfolio(project, name, row)
    if want is not None and row[0] != want:
        raise ConflictError(f"artifact {name!r} has type {row[0]!r}; cannot stage files of "
                            f"type {want!r}")


def check_loggable(ctx: Context, project: str, name: str, type: str | None,
                   draft: Draft | None) -> str:
    """The type the next version of ``project/name`` is logged with: ``type``,
    else the draft's, else the collection's. Refused (before any file is
    read, and again by :func:`commit`): a portfolio, no type for a new
    artifact, or a type other than the draft's (``draft``) or the collection's."""
    row = _collection(ctx, project, name)
    _refuse_portfolio(project, name, row)
    staged = draft.type if draft is not None else None
    if staged and type and staged != type:
        raise ConflictError(f"the draft of {name!r} has type {staged!r}, not {type!r}")
    want = type or staged
    if row is None:
        if want is None:
            raise UsageError(f"--type is needed: {name!r} has no type yet")
        return want
    if want is not None and row[0] != want:
        raise ConflictError(
            f"artifact {name!r} has type {row[0]!r}; cannot log a version of type {want!r}")
    return row[0]


def _refuse_portfolio(project: str, name: str, row: tuple[str, str] | None) -> None:
    """ConflictError when the collection (``row``: its type and kind) only holds links."""
    if row is not None and row[1] != "sequence":
        raise ConflictError(f"{project}/{name} is a {row[1]} collection: versions are linked "
                            "into it ('wbtool artifact link'), not logged")


def stage(
    ctx: Context,
    project: str,
    name: str,
    entries: Sequence[ManifestEntry],
    *,
    type: str | None = None,
    incremental: bool = False,
) -> Draft:
    """Merge ``entries`` into the draft of ``project/name`` (created if needed:
    empty, or ``incremental``, holding the files of the latest version)."""
    validate_name(name)
    if type is not None:
        validate_type(type)
    with ctx.store.index.transaction() as db:
        check_stageable(ctx, project, name, type, db)
        draft = load_draft(ctx, project, name)
        if draft is None:
            manifest, based = (ctx.registry.latest_files(project, name) if incremental
                               else (Manifest(), None))
        else:
            manifest, based = draft.manifest, draft.based
            if incremental and based is None:
                based = _made_incremental(ctx, draft)
        if draft and draft.type and type and draft.type != type:
            raise ConflictError(
                f"the draft of {name!r} has type {draft.type!r}, not {type!r}; "
                f"'wbtool artifact reset {name}' drops it"
            )
        for e in entries:
            manifest.add(ManifestEntry(e.path, e.digest, e.size, e.ref, thawed(e.extra)))
        new_type = type or (draft.type if draft else None)
        if new_type is None and based is not None:
            new_type = (_collection(ctx, project, name, db) or (None, None))[0]
        now = time.time()
        db.execute(
            "INSERT OR REPLACE INTO drafts (project, name, type, manifest, updated_at, base)"
            " VALUES (?,?,?,?,?,?)",
            (project, name, new_type, manifest.to_bytes().decode(), now, _base_column(based)),
        )
    return Draft(project, name, new_type, manifest, now, based)


def _base_column(based: Based | None) -> int | None:
    if based is None:
        return None
    return _BASED_ON_NOTHING if based.idx is None else based.idx


def unstage(ctx: Context, project: str, name: str, paths: Sequence[str]) -> Draft:
    with ctx.store.index.transaction() as db:
        draft = load_draft(ctx, project, name)
        if draft is None:
            raise NotFoundError(what="draft", name=name)
        for p in paths:
            clean = validate_entry_path(p)
            under = [k for k in draft.manifest.entries if k == clean or k.startswith(clean + "/")]
            if not under:
                raise NotFoundError(what="staged path", name=p)
            for k in under:
                draft.manifest.remove(k)
        db.execute(
            "UPDATE drafts SET manifest=?, updated_at=? WHERE project=? AND name=?",
            (draft.manifest.to_bytes().decode(), time.time(), project, name),
        )
    return draft


def reset(ctx: Context, project: str, name: str) -> bool:
    with ctx.store.index.transaction() as db:
        cur = db.execute("DELETE FROM drafts WHERE project=? AND name=?", (project, name))
    return cur.rowcount > 0


@gc_paused
def commit(
    ctx: Context,
    project: str,
    name: str,
    *,
    extra_entries: Sequence[ManifestEntry] = (),
    type: str | None = None,
    description: str | None = None,
    metadata: dict[str, object] | None = None,
    aliases: Sequence[str] = (),
    tags: Sequence[str] = (),
    run_id: str | None = None,
    history_step: int | None = None,
    check_only: Collection[str] | None = None,
    incremental: bool = False,
) -> Artifact:
    """Commit the draft (plus ``extra_entries``) as the next version; drop the draft.
    ``check_only``: of ``extra_entries``, only these digests need checking
    for presence, the others were stored under the store's shared lock,
    still held (see :meth:`Registry.commit`); a draft's are all checked.
    ``incremental``: the version starts as the files of the latest one
    (a draft staged with ``incremental`` did already)."""
    check_description(description, "--description")
    draft = load_draft(ctx, project, name)
    if draft is None and not extra_entries:
        raise NotFoundError(f"no files to log for {name!r}: none are staged, and no PATH "
                            "given held any (stage some with 'wbtool artifact add')")
    if draft is not None and incremental and draft.based is None:
        draft.based = _made_incremental(ctx, draft)
    art_type = check_loggable(ctx, project, name, type, draft)
    # Nothing staged and ``incremental``: the PATHs go on top of whatever is
    # latest when the version is recorded (see Artifact._commit_incremental).
    art = Artifact(name, art_type, description=description, metadata=metadata,
                   incremental=draft is None and incremental)
    art._ctx = ctx
    if draft:
        art._manifest = draft.manifest
    for e in extra_entries:
        art._manifest.add(e)
    art.tags = list(tags)
    try:
        art._commit(ctx, project=project, aliases=list(aliases), run_id=run_id,
                    history_step=history_step, check_only=check_only if draft is None else None,
                    on_top_of=draft.based if draft else None)
    except LatestMovedError as e:
        if draft is None:
            raise
        raise LatestMovedError(
            f"the latest version of {project}/{name} changed from {e.fields['base']} to "
            f"{e.fields['newest']} since its draft was staged on top of it: 'wbtool artifact "
            f"reset {name}' drops the draft, then stage again", **e.fields) from None
    if draft is not None:
        with ctx.store.index.transaction() as db:
            db.execute(
                "DELETE FROM drafts WHERE project=? AND name=? AND updated_at=?",
                (project, name, draft.updated_at),
            )
    return art
