"""Which local version is which version on a remote (the ``remote_versions`` table).

A row remembers, per remote URL, the remote version number of a local
version and the aliases both sides agreed on at the last push or pull. The
artifact digest is kept too: a row whose local version was deleted (and its
id reused) no longer matches and is ignored.

Lineage records and links are remembered by what names them on the remote
(``remote_lineage``: project, name, remote version number, direction, run;
``remote_links``: portfolio, source version on the remote, and the aliases
both sides agreed on), so a sync with nothing new compares two tables and
sends nothing, and an unlink is told by a link remembered here that is gone.
The last link event this store sent for each link is remembered too
(``remote_link_events``: its sequence number, aliases and time), so that a
checking push can tell that event lost from a change made elsewhere.
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


LineageKey = tuple[str, str, int, str, str]  # project, name, remote idx, direction, run id
LinkKey = tuple[str, str, str, str, int]  # project, portfolio, source project, name, idx


def load_lineage(index: Index, url: str) -> set[LineageKey]:
    return {(p, n, int(i), d, r) for p, n, i, d, r in index.db.execute(
        "SELECT project, name, remote_idx, direction, run_id FROM remote_lineage"
        " WHERE remote_url=?", (url,))}


def remember_lineage(index: Index, url: str, keys: Iterable[LineageKey]) -> None:
    with index.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO remote_lineage (remote_url, project, name, remote_idx,"
            " direction, run_id) VALUES (?,?,?,?,?,?)", [(url, *key) for key in keys])


def forget_lineage(index: Index, url: str, keys: Iterable[LineageKey]) -> None:
    """Forget lineage records remembered as sent (the remote lost them)."""
    with index.transaction() as db:
        db.executemany(
            "DELETE FROM remote_lineage WHERE remote_url=? AND project=? AND name=? AND"
            " remote_idx=? AND direction=? AND run_id=?", [(url, *key) for key in keys])


def load_links(index: Index, url: str) -> dict[LinkKey, tuple[str, ...]]:
    """Each link both sides agreed on, with its aliases."""
    return {(p, f, sp, sn, int(si)): tuple(json.loads(a)) for p, f, sp, sn, si, a in
            index.db.execute(
                "SELECT project, portfolio, source_project, source_name, source_idx, aliases"
                " FROM remote_links WHERE remote_url=?", (url,))}


def set_links(index: Index, url: str,
              rows: Iterable[tuple[LinkKey, tuple[str, ...] | None]]) -> None:
    """Remember each link's aliases (None: the link is gone on both sides)."""
    with index.transaction() as db:
        for key, aliases in rows:
            if aliases is None:
                db.execute("DELETE FROM remote_links WHERE remote_url=? AND project=? AND"
                           " portfolio=? AND source_project=? AND source_name=? AND"
                           " source_idx=?", (url, *key))
            else:
                db.execute("INSERT OR REPLACE INTO remote_links (remote_url, project,"
                           " portfolio, source_project, source_name, source_idx, aliases)"
                           " VALUES (?,?,?,?,?,?,?)", (url, *key, json.dumps(sorted(aliases))))


@dataclass(frozen=True)
class SentLinkEvent:
    """The last link event this store sent for a link: its sequence number,
    the aliases it gave (None: the link was removed) and its time."""

    seq: int
    aliases: tuple[str, ...] | None
    time: float


def load_link_events(index: Index, url: str) -> dict[LinkKey, SentLinkEvent]:
    """The last event this store sent for each link, as remembered."""
    return {(p, f, sp, sn, int(si)): SentLinkEvent(
                int(seq), None if a is None else tuple(json.loads(a)), float(t))
            for p, f, sp, sn, si, seq, a, t in index.db.execute(
                "SELECT project, portfolio, source_project, source_name, source_idx, seq,"
                " aliases, time FROM remote_link_events WHERE remote_url=?", (url,))}


def remember_link_events(index: Index, url: str,
                         rows: Iterable[tuple[LinkKey, SentLinkEvent]]) -> None:
    with index.transaction() as db:
        db.executemany(
            "INSERT OR REPLACE INTO remote_link_events (remote_url, project, portfolio,"
            " source_project, source_name, source_idx, seq, aliases, time)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [(url, *key, ev.seq, None if ev.aliases is None else json.dumps(list(ev.aliases)),
              ev.time) for key, ev in rows])


def forget_link_events(index: Index, url: str, keys: Iterable[LinkKey]) -> None:
    """Forget the events sent for these links (their state is another store's now)."""
    with index.transaction() as db:
        db.executemany(
            "DELETE FROM remote_link_events WHERE remote_url=? AND project=? AND portfolio=?"
            " AND source_project=? AND source_name=? AND source_idx=?",
            [(url, *key) for key in keys])


def forget_remote_versions(index: Index, url: str,
                           versions: Iterable[tuple[str, str, int]]) -> None:
    """Forget the lineage and links remembered of these remote versions
    (project, name, number), which the remote lost: they are sent again."""
    with index.transaction() as db:
        for project, name, idx in versions:
            db.execute("DELETE FROM remote_lineage WHERE remote_url=? AND project=? AND"
                       " name=? AND remote_idx=?", (url, project, name, idx))
            db.execute("DELETE FROM remote_links WHERE remote_url=? AND source_project=?"
                       " AND source_name=? AND source_idx=?", (url, project, name, idx))
            db.execute("DELETE FROM remote_link_events WHERE remote_url=? AND"
                       " source_project=? AND source_name=? AND source_idx=?",
                       (url, project, name, idx))
