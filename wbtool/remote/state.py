"""Which local version is which version on a remote (the ``remote_versions`` table).

A row remembers, per remote URL, the remote version number of a local
version and the aliases both sides agreed on at the last push or pull. The
artifact digest is kept too: a row whose local version was deleted (and its
id reused) no longer matches and is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from wbtool.store.index import Index


@dataclass(frozen=True)
class Mapped:
    version_id: int
    project: str
    name: str
    remote_idx: int
    aliases: tuple[str, ...]


def load(index: Index, url: str, project: str | None = None,
         name: str | None = None) -> dict[int, Mapped]:
    """version id → its remote version, for the versions still present locally."""
    sql = ("SELECT rv.version_id, c.project, c.name, rv.remote_idx, rv.aliases"
           " FROM remote_versions rv JOIN versions v ON v.id=rv.version_id"
           " AND v.digest=rv.digest JOIN collections c ON c.id=v.collection_id"
           " WHERE rv.remote_url=?")
    args: list[object] = [url]
    if project is not None:
        sql += " AND c.project=?"
        args.append(project)
    if name is not None:
        sql += " AND c.name=?"
        args.append(name)
    out: dict[int, Mapped] = {}
    for vid, proj, coll, idx, aliases in index.db.execute(sql, args):
        out[int(vid)] = Mapped(int(vid), proj, coll, int(idx), tuple(json.loads(aliases)))
    return out


def remember(index: Index, url: str, rows: Iterable[tuple[int, str, int, Iterable[str]]]) -> None:
    """Record ``(version_id, digest, remote_idx, aliases)`` rows."""
    with index.transaction() as db:
        db.executemany(
            "INSERT OR REPLACE INTO remote_versions (remote_url, version_id, digest,"
            " remote_idx, aliases) VALUES (?,?,?,?,?)",
            [(url, vid, digest, idx, json.dumps(sorted(aliases))) for vid, digest, idx, aliases
             in rows])


def set_aliases(index: Index, url: str, rows: Iterable[tuple[int, Iterable[str]]]) -> None:
    with index.transaction() as db:
        db.executemany(
            "UPDATE remote_versions SET aliases=? WHERE remote_url=? AND version_id=?",
            [(json.dumps(sorted(aliases)), url, vid) for vid, aliases in rows])


def forget(index: Index, url: str, version_ids: Iterable[int]) -> None:
    with index.transaction() as db:
        db.executemany("DELETE FROM remote_versions WHERE remote_url=? AND version_id=?",
                       [(url, vid) for vid in version_ids])
