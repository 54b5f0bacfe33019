"""Collections, versions, aliases, tags, links and lineage in ``index.db``.

Write order: objects (already in place), then the manifest object, then the
version row in one IMMEDIATE transaction. Version numbers are claimed inside
that transaction, so concurrent writers get distinct numbers, and content
identical to the latest version maps onto it instead of making a new one.
The alias ``latest`` is never stored: it always names the highest version.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from wbtool.bulk import gc_paused
from wbtool.errors import (
    AliasedVersionError,
    ConflictError,
    LatestMovedError,
    MissingObjectsError,
    NotFoundError,
    StoreError,
    UsageError,
)
from wbtool.manifest import Manifest
from wbtool.names import MAX_VERSION, parse_version, validate_alias, validate_name, validate_tag
from wbtool.store.layout import Store

_COLUMNS = (
    "v.id, v.collection_id, c.project, c.name, c.kind, v.type, v.idx, v.digest, v.manifest,"
    " v.size, v.file_count, v.description, v.metadata, v.ttl, v.state, v.created_at,"
    " v.updated_at, v.run_id, v.history_step, v.source_id"
)


@dataclass
class VersionRecord:
    id: int
    collection_id: int
    project: str
    name: str
    kind: str
    type: str
    idx: int
    digest: str
    manifest: str
    size: int
    file_count: int
    description: str | None
    metadata: dict[str, Any]
    ttl: float | None
    state: str
    created_at: float
    updated_at: float
    run_id: str | None
    history_step: int | None
    source_id: int | None
    aliases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    noop: bool = False

    @property
    def version(self) -> str:
        return f"v{self.idx}"

    @property
    def is_link(self) -> bool:
        return self.source_id is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project, "name": self.name, "version": self.version,
            "type": self.type, "digest": self.digest, "manifest": self.manifest,
            "size": self.size, "file_count": self.file_count,
            "description": self.description, "metadata": self.metadata, "ttl": self.ttl,
            "state": self.state, "aliases": self.aliases, "tags": self.tags,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "run_id": self.run_id, "history_step": self.history_step,
            "is_link": self.is_link, "collection_kind": self.kind,
        }


def _latest(db: sqlite3.Connection, coll_id: int) -> tuple[int, str] | None:
    """(id, digest) of a collection's newest version."""
    row = db.execute(
        "SELECT id, digest FROM versions WHERE collection_id=? ORDER BY idx DESC LIMIT 1",
        (coll_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


@dataclass(frozen=True)
class Based:
    """The version an incremental version is made from: ``idx`` (None: the
    collection had no version yet)."""

    idx: int | None

    @property
    def version(self) -> str | None:
        return None if self.idx is None else f"v{self.idx}"


# How long an incremental version goes on trying while others' versions
# keep overtaking it (each of those is another writer's finished work).
INCREMENTAL_WAIT_SECONDS = 60.0


def _label(idx: int | None) -> str:
    return "none" if idx is None else f"v{idx}"


def _check_labels(aliases: Any, tags: Any) -> None:
    for a in aliases:
        if a != "latest":
            validate_alias(a)
    for t in tags:
        validate_tag(t)


def _record(db: sqlite3.Connection, row: tuple[Any, ...]) -> VersionRecord:
    values = list(row)
    values[12] = json.loads(values[12] or "{}")
    rec = VersionRecord(*values)
    rec.aliases = [
        a for (a,) in db.execute(
            "SELECT alias FROM aliases WHERE version_id=? ORDER BY alias", (rec.id,)
        )
    ]
    latest = db.execute(
        "SELECT MAX(idx) FROM versions WHERE collection_id=?", (rec.collection_id,)
    ).fetchone()[0]
    if latest == rec.idx:
        rec.aliases.append("latest")
    rec.tags = [t for (t,) in db.execute(
        "SELECT tag FROM tags WHERE version_id=? ORDER BY tag", (rec.id,))]
    return rec


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def db(self) -> sqlite3.Connection:
        return self.store.index.db

    # -- reading --------------------------------------------------------------
    def get(self, version_id: int) -> VersionRecord:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM versions v JOIN collections c ON c.id=v.collection_id"
            " WHERE v.id=?", (version_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(what="artifact version", name=f"#{version_id}")
        return _record(self.db, row)

    def resolve(self, project: str, name: str, version: str | None = None) -> VersionRecord:
        """``name`` + ``latest`` / ``vN`` / alias → its version record."""
        validate_name(name)
        label = f"{project}/{name}:{version or 'latest'}"
        coll = self.db.execute(
            "SELECT id FROM collections WHERE project=? AND name=?", (project, name)
        ).fetchone()
        if coll is None:
            raise NotFoundError(what="artifact", name=f"{project}/{name}")
        base = (
            f"SELECT {_COLUMNS} FROM versions v JOIN collections c ON c.id=v.collection_id"
            " WHERE v.collection_id=?"
        )
        if version in (None, "latest"):
            row = self.db.execute(base + " ORDER BY v.idx DESC LIMIT 1", (coll[0],)).fetchone()
        elif (n := parse_version(version)) is not None:
            row = None if n > MAX_VERSION else self.db.execute(
                base + " AND v.idx=?", (coll[0], n)).fetchone()
        else:
            row = self.db.execute(
                base + " AND v.id=(SELECT version_id FROM aliases WHERE collection_id=?"
                " AND alias=?)", (coll[0], coll[0], version),
            ).fetchone()
        if row is None:
            raise NotFoundError(what="artifact version", name=label)
        return _record(self.db, row)

    def versions(self, project: str | None = None, name: str | None = None, *,
                 links_only: bool = False) -> list[VersionRecord]:
        """Versions (of ``project``, of collection ``name``; only links, in
        portfolio collections, with ``links_only``), by project, name, version."""
        sql = (f"SELECT {_COLUMNS} FROM versions v JOIN collections c ON c.id=v.collection_id"
               + (" WHERE v.source_id IS NOT NULL" if links_only else " WHERE 1=1"))
        args: list[Any] = []
        if project is not None:
            sql += " AND c.project=?"
            args.append(project)
        if name is not None:
            sql += " AND c.name=?"
            args.append(name)
        sql += " ORDER BY c.project, c.name, v.idx"
        return [_record(self.db, row) for row in self.db.execute(sql, args).fetchall()]

    def collections(self, project: str | None = None,
                    name: str | None = None) -> list[dict[str, Any]]:
        """The collections (of ``project``; named ``name``), with their
        version count: one whose versions were all deleted keeps its type,
        its kind and its numbering, so it is listed with none."""
        sql = ("SELECT c.project, c.name, c.type, c.kind, COUNT(v.id), MAX(v.idx),"
               " COALESCE(SUM(v.size), 0) FROM collections c LEFT JOIN versions v"
               " ON v.collection_id=c.id WHERE 1=1")
        args: list[Any] = []
        if project is not None:
            sql += " AND c.project=?"
            args.append(project)
        if name is not None:
            sql += " AND c.name=?"
            args.append(name)
        sql += " GROUP BY c.id ORDER BY c.project, c.name"
        return [
            {"project": p, "name": n, "type": t, "kind": k, "versions": cnt,
             "latest": None if last is None else f"v{last}", "size": size}
            for p, n, t, k, cnt, last, size in self.db.execute(sql, args)
        ]

    def load_manifest(self, rec: VersionRecord) -> Manifest:
        data = self.store.objects.read_bytes(rec.manifest)
        return Manifest.from_bytes(data, f"manifest of {rec.name}:{rec.version}")

    def latest_files(self, project: str, name: str) -> tuple[Manifest, Based]:
        """The files of the newest version of ``project/name``, to make an
        incremental version from (none, before its first version)."""
        try:
            rec = self.resolve(project, name)
        except NotFoundError:
            return Manifest(), Based(None)
        return self.load_manifest(rec), Based(rec.idx)

    # -- writing --------------------------------------------------------------
    @gc_paused
    def commit(
        self,
        project: str,
        name: str,
        type: str,
        manifest: Manifest,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        aliases: list[str] | tuple[str, ...] = (),
        tags: list[str] | tuple[str, ...] = (),
        ttl: float | None = None,
        run_id: str | None = None,
        history_step: int | None = None,
        created_at: float | None = None,
        check_only: Collection[str] | None = None,
        on_top_of: Based | None = None,
        number: int | None = None,
    ) -> VersionRecord:
        """Record ``manifest`` as the next version of ``project/name`` (created
        now, or at ``created_at`` for a version made elsewhere and pulled).

        ``number``: the version number to take where the collection has no
        version of that number (a pulled version keeps the remote's, so that
        one deleted here and pulled again is itself again, not the latest).

        Every object is checked to be in the store first, or, with
        ``check_only``, only those digests: the caller placed the others
        itself while holding the store's shared lock, which it still holds
        (garbage collection cannot have run since).
        ``on_top_of``: the manifest was made from that version (an
        incremental version); LatestMovedError if the latest is another one
        now, since recording it would undo what that one changed.
        """
        _check_labels(aliases, tags)
        clash = manifest.path_clash()
        if clash is not None:
            raise UsageError(f"{clash[0]!r} would be both a file and a folder (it holds "
                             f"{clash[1]!r}); rename or remove one of them")
        digest, manifest_bytes = manifest.serialize()
        now = time.time()
        rec = self._same_as_latest(project, name, type, digest, aliases, tags, run_id, now)
        if rec is not None:
            return rec
        # The objects are on disk already (whatever placed them flushed
        # them, in a durable store): only the manifest is new here. Garbage
        # collection stays out from the check to the version's row.
        with self.store.lock(exclusive=False):
            manifest_digest, _ = self.store.objects.put_bytes(manifest_bytes,
                                                              flush=self.store.durable)
            self._check_objects(manifest, check_only)
            return self._insert(
                project, name, type, digest, manifest_digest, manifest.size, len(manifest),
                description=description, metadata=metadata, aliases=aliases, tags=tags,
                ttl=ttl, run_id=run_id, history_step=history_step,
                now=now if created_at is None else min(created_at, now), on_top_of=on_top_of,
                number=number,
            )

    def commit_known(
        self, project: str, name: str, type: str, digest: str, manifest_digest: str,
        size: int, file_count: int, *, description: str | None = None,
        metadata: dict[str, Any] | None = None, aliases: list[str] | tuple[str, ...] = (),
        tags: list[str] | tuple[str, ...] = (), run_id: str | None = None,
        history_step: int | None = None,
    ) -> VersionRecord | None:
        """Commit a manifest already in the store (its objects known present);
        None (and the cached walks naming it forgotten) when it is gone."""
        _check_labels(aliases, tags)
        now = time.time()
        rec = self._same_as_latest(project, name, type, digest, aliases, tags, run_id, now)
        if rec is not None:
            return rec
        with self.store.lock(exclusive=False):
            # Garbage collection forgets every cached walk: one still there
            # vouches for its objects until the version's row is in.
            cached = self.store.index.db.execute(
                "SELECT 1 FROM tree_cache WHERE digest=? LIMIT 1", (digest,)).fetchone()
            if cached is None:
                raise ConflictError("the store was cleaned up ('cache gc') while this was "
                                    "logged; log again")
            if not self.store.objects.has(manifest_digest):  # deleted by hand, or damaged
                with self.store.index.transaction() as db:
                    db.execute("DELETE FROM tree_cache WHERE digest=?", (digest,))
                return None
            return self._insert(
                project, name, type, digest, manifest_digest, size, file_count,
                description=description, metadata=metadata, aliases=aliases, tags=tags,
                ttl=None, run_id=run_id, history_step=history_step, now=now,
            )

    def _insert(
        self, project: str, name: str, type: str, digest: str, manifest_digest: str,
        size: int, file_count: int, *, description: str | None,
        metadata: dict[str, Any] | None, aliases: Any, tags: Any, ttl: float | None,
        run_id: str | None, history_step: int | None, now: float,
        on_top_of: Based | None = None, number: int | None = None,
    ) -> VersionRecord:
        with self.store.index.transaction() as db:
            coll_id = self._collection(db, project, name, type, now)
            latest = _latest(db, coll_id)
            if latest is not None and latest[1] == digest:  # another process won the race
                return self._attach(db, coll_id, latest[0], aliases, tags, run_id)
            if on_top_of is not None:
                newest = db.execute("SELECT MAX(idx) FROM versions WHERE collection_id=?",
                                    (coll_id,)).fetchone()[0]
                if newest != on_top_of.idx:
                    raise LatestMovedError(project=project, name=name,
                                           newest=_label(newest), base=_label(on_top_of.idx))
            idx = next_idx = db.execute(
                "SELECT next_idx FROM collections WHERE id=?", (coll_id,)).fetchone()[0]
            if number is not None and number >= 0 and db.execute(
                    "SELECT 1 FROM versions WHERE collection_id=? AND idx=?",
                    (coll_id, number)).fetchone() is None:
                idx = number
            db.execute("UPDATE collections SET next_idx=? WHERE id=?",
                       (max(next_idx, idx + 1), coll_id))
            cur = db.execute(
                "INSERT INTO versions (collection_id, idx, digest, manifest, size, file_count,"
                " type, description, metadata, ttl, created_at, updated_at, run_id, history_step)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (coll_id, idx, digest, manifest_digest, size, file_count, type,
                 description, json.dumps(metadata or {}, sort_keys=True), ttl, now, now,
                 run_id, history_step),
            )
            vid = int(cur.lastrowid or 0)
            self._set_aliases(db, coll_id, vid, aliases)
            self._add_tags(db, vid, tags)
            if run_id is not None:
                self._lineage(db, run_id, vid, "output")
        return self.get(vid)

    def _same_as_latest(
        self, project: str, name: str, type: str, digest: str, aliases: Any, tags: Any,
        run_id: str | None, now: float,
    ) -> VersionRecord | None:
        """If ``digest`` is the latest version's, attach aliases/tags to it."""
        row = self.db.execute(
            "SELECT v.id FROM versions v JOIN collections c ON c.id=v.collection_id"
            " WHERE c.project=? AND c.name=? ORDER BY v.idx DESC LIMIT 1", (project, name)
        ).fetchone()
        if row is None:
            return None
        with self.store.index.transaction() as db:
            coll_id = self._collection(db, project, name, type, now)
            latest = _latest(db, coll_id)
            if latest is None or latest[1] != digest:
                return None
            return self._attach(db, coll_id, latest[0], aliases, tags, run_id)

    def _attach(
        self, db: sqlite3.Connection, coll_id: int, vid: int, aliases: Any, tags: Any,
        run_id: str | None,
    ) -> VersionRecord:
        self._set_aliases(db, coll_id, vid, aliases)
        self._add_tags(db, vid, tags)
        if run_id is not None:
            self._lineage(db, run_id, vid, "output")
        rec = self.get(vid)
        rec.noop = True
        return rec

    def _still(self, db: sqlite3.Connection, rec: VersionRecord) -> None:
        """NotFoundError unless ``rec``'s row is still that version: a row id
        is reused once the newest version is deleted, and a stale handle must
        never edit or delete the version that took its place."""
        row = db.execute("SELECT collection_id, idx, created_at FROM versions WHERE id=?",
                         (rec.id,)).fetchone()
        if row is None or tuple(row) != (rec.collection_id, rec.idx, rec.created_at):
            raise NotFoundError(f"{rec.project}/{rec.name}:v{rec.idx} was deleted")

    def _check_objects(self, manifest: Manifest, only: Collection[str] | None = None) -> None:
        digests = {e.digest: e.path for e in manifest
                   if e.ref is None and (only is None or e.digest in only)}
        if not digests:
            return
        gone = list(self.store.objects.missing(digests))
        if gone:
            # Whatever removed them (a gc killed before it forgot them), the
            # stat cache must not name them any more: adding the files again
            # then reads and stores them, instead of trusting the cache.
            self.store.index.stat_cache_forget(gone)
            raise MissingObjectsError(
                f"{len(gone)} object(s) of this artifact are missing from the store "
                f"(first: {digests[gone[0]]}); was 'wbtool artifact cache gc' run meanwhile? "
                "Add the files again.", digests=gone)

    def _collection(
        self, db: sqlite3.Connection, project: str, name: str, type: str, now: float,
        kind: str = "sequence",
    ) -> int:
        row = db.execute(
            "SELECT id, type, kind FROM collections WHERE project=? AND name=?", (project, name)
        ).fetchone()
        if row is None:
            cur = db.execute(
                "INSERT INTO collections (project, name, type, kind, created_at)"
                " VALUES (?,?,?,?,?)", (project, name, type, kind, now),
            )
            return int(cur.lastrowid or 0)
        if row[2] != kind:
            raise ConflictError(f"{project}/{name} is a {row[2]} collection, not a {kind}")
        if row[1] != type and kind == "sequence":
            raise ConflictError(
                f"artifact {name!r} has type {row[1]!r}; cannot log a version of type {type!r}"
            )
        return int(row[0])

    def _set_aliases(
        self, db: sqlite3.Connection, coll_id: int, vid: int, aliases: Any
    ) -> None:
        for a in aliases:
            if a == "latest":
                continue
            db.execute(
                "INSERT OR REPLACE INTO aliases (collection_id, alias, version_id)"
                " VALUES (?,?,?)", (coll_id, a, vid),
            )

    def _add_tags(self, db: sqlite3.Connection, vid: int, tags: Any) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO tags (version_id, tag) VALUES (?,?)", [(vid, t) for t in tags]
        )

    def _lineage(self, db: sqlite3.Connection, run_id: str, vid: int, direction: str) -> None:
        db.execute(
            "INSERT OR IGNORE INTO lineage (run_id, version_id, direction) VALUES (?,?,?)",
            (run_id, vid, direction),
        )

    def record_use(self, run_id: str, rec: VersionRecord) -> None:
        with self.store.index.transaction() as db:
            self._lineage(db, run_id, rec.id, "input")

    def lineage_rows(self) -> list[tuple[str, int, str]]:
        """Every (run id, version id, direction) of the index, a link's counted
        as its source's."""
        return [(r, int(v), d) for r, v, d in self.db.execute(
            "SELECT l.run_id, COALESCE(v.source_id, v.id), l.direction FROM lineage l"
            " JOIN versions v ON v.id=l.version_id ORDER BY l.run_id, v.id, l.direction")]

    def add_lineage(self, rows: list[tuple[str, int, str]]) -> None:
        """Record (run id, version id, direction) rows (made elsewhere, pulled)."""
        with self.store.index.transaction() as db:
            for run_id, vid, direction in rows:
                self._lineage(db, run_id, vid, direction)

    def runs_of(self, rec: VersionRecord, direction: str) -> list[str]:
        """Runs that logged or used (``direction``) this version or a link to it."""
        return [r for (r,) in self.db.execute(
            "SELECT DISTINCT run_id FROM lineage WHERE direction=? AND (version_id=? OR"
            " version_id IN (SELECT id FROM versions WHERE source_id=?)) ORDER BY run_id",
            (direction, rec.id, rec.id))]

    def update(
        self, rec: VersionRecord, *, aliases: list[str] | None = None,
        tags: list[str] | None = None, description: str | None = None,
        metadata: dict[str, Any] | None = None, ttl: float | bool | None = False,
    ) -> VersionRecord:
        """Replace the mutable fields that are given (``ttl=False``: unchanged)."""
        _check_labels(aliases or (), tags or ())
        with self.store.index.transaction() as db:
            self._still(db, rec)
            if aliases is not None:
                db.execute("DELETE FROM aliases WHERE version_id=?", (rec.id,))
                self._set_aliases(db, rec.collection_id, rec.id, aliases)
            if tags is not None:
                db.execute("DELETE FROM tags WHERE version_id=?", (rec.id,))
                self._add_tags(db, rec.id, tags)
            if description is not None:  # "" clears it
                db.execute("UPDATE versions SET description=? WHERE id=?",
                           (description or None, rec.id))
            if metadata is not None:
                db.execute("UPDATE versions SET metadata=? WHERE id=?",
                           (json.dumps(metadata, sort_keys=True), rec.id))
            if ttl is not False:
                db.execute("UPDATE versions SET ttl=? WHERE id=?", (ttl, rec.id))
            db.execute("UPDATE versions SET updated_at=? WHERE id=?", (time.time(), rec.id))
        return self.get(rec.id)

    def add_alias(self, rec: VersionRecord, alias: str) -> VersionRecord:
        validate_alias(alias)
        with self.store.index.transaction() as db:
            self._still(db, rec)
            self._set_aliases(db, rec.collection_id, rec.id, [alias])
        return self.get(rec.id)

    def remove_alias(self, rec: VersionRecord, alias: str) -> VersionRecord:
        if alias == "latest":
            raise UsageError("'latest' always names the newest version; it cannot be removed")
        with self.store.index.transaction() as db:
            self._still(db, rec)
            cur = db.execute(
                "DELETE FROM aliases WHERE version_id=? AND alias=?", (rec.id, alias)
            )
            if cur.rowcount == 0:
                raise NotFoundError(what="alias", name=f"{rec.name}:{alias}")
        return self.get(rec.id)

    def add_tag(self, rec: VersionRecord, tag: str) -> VersionRecord:
        validate_tag(tag)
        with self.store.index.transaction() as db:
            self._still(db, rec)
            self._add_tags(db, rec.id, [tag])
        return self.get(rec.id)

    def remove_tag(self, rec: VersionRecord, tag: str) -> VersionRecord:
        with self.store.index.transaction() as db:
            self._still(db, rec)
            cur = db.execute("DELETE FROM tags WHERE version_id=? AND tag=?", (rec.id, tag))
            if cur.rowcount == 0:
                raise NotFoundError(what="tag", name=f"{rec.name}:{rec.version} {tag}")
        return self.get(rec.id)

    def delete(self, rec: VersionRecord, *, delete_aliases: bool = False) -> None:
        """Delete a version (a link: only the link). Objects go at the next gc."""
        with self.store.index.transaction() as db:
            self._still(db, rec)
            if not rec.is_link:
                user_aliases = [a for a in rec.aliases if a != "latest"]
                if user_aliases and not delete_aliases:
                    raise AliasedVersionError(ref=f"{rec.name}:{rec.version}",
                                              aliases=", ".join(user_aliases),
                                              option="delete_aliases=True")
                links = [i for (i,) in db.execute(
                    "SELECT id FROM versions WHERE source_id=?", (rec.id,))]
            else:
                links = []
            for vid in (*links, rec.id):
                db.execute("DELETE FROM aliases WHERE version_id=?", (vid,))
                db.execute("DELETE FROM tags WHERE version_id=?", (vid,))
                db.execute("DELETE FROM lineage WHERE version_id=?", (vid,))
                db.execute("DELETE FROM versions WHERE id=?", (vid,))

    def link(
        self, rec: VersionRecord, project: str, portfolio: str, aliases: list[str] | None = None
    ) -> VersionRecord:
        """Link ``rec`` into a portfolio collection (created on first use)."""
        validate_name(project, "project name")
        validate_name(portfolio, "portfolio name")
        source = self.get(rec.source_id) if rec.source_id is not None else rec
        _check_labels(aliases or (), ())
        now = time.time()
        with self.store.index.transaction() as db:
            coll_id = self._collection(db, project, portfolio, source.type, now, "portfolio")
            row = db.execute(
                "SELECT id FROM versions WHERE collection_id=? AND source_id=?",
                (coll_id, source.id),
            ).fetchone()
            if row is None:
                idx = db.execute(
                    "SELECT next_idx FROM collections WHERE id=?", (coll_id,)).fetchone()[0]
                db.execute("UPDATE collections SET next_idx=? WHERE id=?", (idx + 1, coll_id))
                cur = db.execute(
                    "INSERT INTO versions (collection_id, idx, digest, manifest, size,"
                    " file_count, type, description, metadata, ttl, created_at, updated_at,"
                    " run_id, history_step, source_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (coll_id, idx, source.digest, source.manifest, source.size,
                     source.file_count, source.type, source.description,
                     json.dumps(source.metadata, sort_keys=True), source.ttl, now, now,
                     source.run_id, source.history_step, source.id),
                )
                vid = int(cur.lastrowid or 0)
            else:
                vid = int(row[0])
            self._set_aliases(db, coll_id, vid, aliases or ())
        return self.get(vid)

    def linked(self, project: str | None = None) -> list[VersionRecord]:
        """Every link (in every portfolio collection, or those of ``project``)."""
        return self.versions(project, links_only=True)

    def link_in(self, source_id: int, project: str, portfolio: str) -> VersionRecord | None:
        """The link to version ``source_id`` in ``project/portfolio``, if there is one."""
        row = self.db.execute(
            "SELECT v.id FROM versions v JOIN collections c ON c.id=v.collection_id"
            " WHERE c.project=? AND c.name=? AND v.source_id=?",
            (project, portfolio, source_id)).fetchone()
        return None if row is None else self.get(int(row[0]))

    def links_of(self, rec: VersionRecord) -> list[VersionRecord]:
        return [self.get(i) for (i,) in self.db.execute(
            "SELECT id FROM versions WHERE source_id=? ORDER BY id", (rec.id,))]

    def referenced_digests(self) -> set[str]:
        """Every object digest that a version or a draft still needs.

        StoreError when a manifest cannot be read (gone, corrupt, or an I/O
        error): what it names is unknown, and deleting on a guess could take
        the objects of a version that a pull or a retry would bring back.
        """
        keep: set[str] = set()
        for (mdigest,) in self.db.execute("SELECT DISTINCT manifest FROM versions").fetchall():
            keep.add(mdigest)
            try:
                m = Manifest.from_bytes(self.store.objects.read_bytes(mdigest))
            except Exception as e:  # whatever it is, nothing may be deleted
                project, name, idx = self.db.execute(
                    "SELECT c.project, c.name, v.idx FROM versions v JOIN collections c"
                    " ON c.id = v.collection_id WHERE v.manifest=? ORDER BY v.id LIMIT 1",
                    (mdigest,)).fetchone()
                raise StoreError(
                    f"cannot read the manifest of {project}/{name}:v{idx} ({e}), so what it "
                    f"holds is unknown and nothing was deleted; restore it ('wbtool pull') or "
                    f"delete that version ('wbtool artifact rm {name}:v{idx}'), then try again"
                ) from None
            keep.update(e.digest for e in m if e.ref is None)
        for project, name, doc in self.db.execute(
                "SELECT project, name, manifest FROM drafts UNION ALL"
                " SELECT project, name, manifest FROM distributed_drafts").fetchall():
            try:
                m = Manifest.from_bytes(doc.encode())
            except Exception as e:
                raise StoreError(
                    f"cannot read the staged files of {project}/{name} ({e}), so nothing was "
                    f"deleted; drop them ('wbtool artifact reset {name}') and try again"
                ) from None
            keep.update(e.digest for e in m if e.ref is None)
        return keep
