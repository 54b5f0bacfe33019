"""The ``runs`` table of ``index.db``: a listing cache of every run folder.

The run folder is the record (it is what sync copies); the table lets
``wbtool runs list`` answer for thousands of runs without opening each.
"""

from __future__ import annotations

import json
from typing import Any

from wbtool.runs.values import JSON_SAFE
from wbtool.store.index import Index

# The largest integer SQLite holds (a LIMIT beyond it cannot even be bound).
SQLITE_MAX_INT = 2**63 - 1


def _dumps(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, allow_nan=True, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # SQLite takes only UTF-8: keep the escapes
        text = text.encode("utf-8", JSON_SAFE).decode("utf-8")
    return text


class RunRow:
    __slots__ = ("config_text", "doc", "doc_text", "summary_text")

    def __init__(self, doc: dict[str, Any], summary_text: str, config_text: str,
                 doc_text: str = "") -> None:
        self.doc = doc
        self.summary_text = summary_text
        self.config_text = config_text
        self.doc_text = doc_text  # the row's doc as stored, which refresh compares

    @classmethod
    def of(cls, doc: dict[str, Any], summary: dict[str, Any],
           config: dict[str, Any]) -> RunRow:
        return cls(doc, _dumps(summary), _dumps(config), _dumps(doc))

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def summary(self) -> dict[str, Any]:
        return _loads(self.summary_text)

    @property
    def config(self) -> dict[str, Any]:
        return _loads(self.config_text)


def _loads(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def put(index: Index, doc: dict[str, Any], summary: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None) -> None:
    """Insert or refresh a run's row (summary/config kept when not given)."""
    with index.transaction() as db:
        db.execute(
            "INSERT INTO runs (id, project, state, created_at, doc, summary, config)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET project=excluded.project, state=excluded.state,"
            " created_at=excluded.created_at, doc=excluded.doc,"
            " summary=CASE WHEN ? THEN excluded.summary ELSE runs.summary END,"
            " config=CASE WHEN ? THEN excluded.config ELSE runs.config END",
            (doc["id"], doc["project"], doc["state"], float(doc["created_at"]), _dumps(doc),
             _dumps(summary or {}), _dumps(config or {}), summary is not None,
             config is not None),
        )


def get(index: Index, run_id: str) -> RunRow | None:
    row = index.db.execute(
        "SELECT doc, summary, config FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    return None if row is None else RunRow(json.loads(row[0]), row[1], row[2], row[0])


def ids(index: Index) -> set[str]:
    return {r[0] for r in index.db.execute("SELECT id FROM runs")}


def select(index: Index, project: str | None = None, state: str | None = None,
           limit: int | None = None) -> list[RunRow]:
    """Rows, newest first. ``state`` filters on the recorded state (callers
    apply :func:`effective_state` for live runs)."""
    sql = "SELECT doc, summary, config FROM runs"
    where: list[str] = []
    args: list[Any] = []
    if project is not None:
        where.append("project = ?")
        args.append(project)
    if state is not None:
        where.append("state = ?")
        args.append(state)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id"
    if limit is not None and limit <= SQLITE_MAX_INT:  # a larger limit is no limit
        sql += " LIMIT ?"
        args.append(int(limit))
    return [RunRow(json.loads(d), s, c, d) for d, s, c in index.db.execute(sql, args)]


def refresh(index: Index, rows: list[tuple[RunRow, RunRow]]) -> None:
    """Replace each (old, new) row's stored doc, summary and config with the
    new ones, where the row still holds the old doc: a run resumed meanwhile
    wrote a row of its own, which stays."""
    with index.transaction() as db:
        for old, new in rows:
            db.execute(
                "UPDATE runs SET state = ?, doc = ?, summary = ?, config = ?"
                " WHERE id = ? AND doc = ?",
                (new.doc["state"], new.doc_text, new.summary_text, new.config_text,
                 old.id, old.doc_text))


def delete(index: Index, run_id: str) -> bool:
    with index.transaction() as db:
        cur = db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        db.execute("DELETE FROM lineage WHERE run_id = ?", (run_id,))
        return cur.rowcount > 0
