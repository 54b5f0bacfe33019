"""``index.db``: the SQLite (WAL) index of collections, versions, aliases,
tags, lineage, runs, drafts, the file-stat cache, which local version is
which version on each remote, and which lineage records and links each
remote holds.

Writers take ``BEGIN IMMEDIATE`` so that concurrent processes serialise on
the database lock (with a generous busy timeout) instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator

from wbtool.errors import StoreFormatError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'sequence',
    description TEXT,
    next_idx INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    UNIQUE (project, name)
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    idx INTEGER NOT NULL,
    digest TEXT NOT NULL,
    manifest TEXT NOT NULL,
    size INTEGER NOT NULL,
    file_count INTEGER NOT NULL,
    type TEXT NOT NULL,
    description TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    ttl REAL,
    state TEXT NOT NULL DEFAULT 'COMMITTED',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    run_id TEXT,
    history_step INTEGER,
    source_id INTEGER REFERENCES versions(id),
    UNIQUE (collection_id, idx)
);
CREATE INDEX IF NOT EXISTS versions_by_digest ON versions (collection_id, digest);
CREATE INDEX IF NOT EXISTS versions_by_source ON versions (source_id);
CREATE TABLE IF NOT EXISTS aliases (
    collection_id INTEGER NOT NULL,
    alias TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    PRIMARY KEY (collection_id, alias)
);
CREATE TABLE IF NOT EXISTS tags (
    version_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (version_id, tag)
);
CREATE TABLE IF NOT EXISTS lineage (
    run_id TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    PRIMARY KEY (run_id, version_id, direction)
);
CREATE TABLE IF NOT EXISTS stat_cache (
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID;
DROP INDEX IF EXISTS stat_cache_by_digest;  -- gc scans instead: adds stay cheap
CREATE TABLE IF NOT EXISTS packed (
    digest TEXT PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
DROP INDEX IF EXISTS packed_by_pack;  -- gc and verify scan instead: adds stay cheap
CREATE TABLE IF NOT EXISTS tree_cache (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL,
    manifest TEXT NOT NULL,
    size INTEGER NOT NULL,
    file_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    doc TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}',
    config TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project, created_at);
CREATE TABLE IF NOT EXISTS distributed_drafts (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    distributed_id TEXT NOT NULL,
    type TEXT NOT NULL,
    manifest TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (project, name, distributed_id)
);
CREATE TABLE IF NOT EXISTS drafts (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT,
    manifest TEXT NOT NULL,
    updated_at REAL NOT NULL,
    base INTEGER,
    PRIMARY KEY (project, name)
);
CREATE TABLE IF NOT EXISTS remote_versions (
    remote_url TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    remote_idx INTEGER NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (remote_url, version_id)
);
CREATE TABLE IF NOT EXISTS remote_lineage (
    remote_url TEXT NOT NULL,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    remote_idx INTEGER NOT NULL,
    direction TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (remote_url, project, name, remote_idx, direction, run_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS remote_links (
    remote_url TEXT NOT NULL,
    project TEXT NOT NULL,
    portfolio TEXT NOT NULL,
    source_project TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_idx INTEGER NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (remote_url, project, portfolio, source_project, source_name, source_idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS remote_link_events (
    remote_url TEXT NOT NULL,
    project TEXT NOT NULL,
    portfolio TEXT NOT NULL,
    source_project TEXT NOT NULL,
    source_name TEXT NOT NULL,
    source_idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    aliases TEXT,
    time REAL NOT NULL,
    PRIMARY KEY (remote_url, project, portfolio, source_project, source_name, source_idx)
) WITHOUT ROWID;
"""

# (table, column, declaration) of each column added to a table after stores
# with that table existed: _migrate adds what an older store lacks.
_ADDED_COLUMNS = (("drafts", "base", "INTEGER"),)
# The tables and indexes _SCHEMA makes.
_SCHEMA_NAMES = frozenset(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA))

StatKey = tuple[int, int, int, int]  # dev, ino, size, mtime_ns
LOCK_WAIT_SECONDS = 60.0


def _retry_locked(fn: Callable[[], None]) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.005
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as e:
            text = str(e).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


# How long a write waits for another process's write to end.
BUSY_SECONDS = 60


class Index:
    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = os.fspath(path)
        self.db = sqlite3.connect(
            self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        self.db.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        # Switching to WAL needs an exclusive lock, and SQLite may answer
        # "locked" at once (without waiting) while other processes open the
        # same new store; the mode is persistent, so retry only until it is set.
        try:
            _retry_locked(self._setup)
        except sqlite3.OperationalError as e:
            if "readonly" not in str(e) or self._writable():
                raise
            self.db.close()
            self._open_read_only()
            return
        if create:
            _retry_locked(self._migrate)

    @classmethod
    def open_read_only(cls, path: str | os.PathLike) -> Index:
        """The index at ``path``, opened for reading only (see :meth:`_open_read_only`)."""
        index = cls.__new__(cls)
        index.path = os.fspath(path)
        index._open_read_only()
        return index

    def _writable(self) -> bool:
        return all(os.access(p, os.W_OK) for p in (self.path, os.path.dirname(self.path)))

    def _open_read_only(self) -> None:
        """Open the index of a store this process cannot write (a read-only
        mount, another user's folder) for reading.

        Reading a WAL database needs its shared-memory file (``-shm``). While
        the store is in use, SQLite has made it and it can be read beside the
        log (``-wal``); when no log is left, no process has the index open
        and its file alone holds every row, so it is read as it is
        (``immutable``), without the shared-memory file this process could not
        create.
        """
        from urllib.parse import quote

        in_use = os.path.exists(self.path + "-wal")
        uri = f"file:{quote(self.path)}?mode=ro" + ("" if in_use else "&immutable=1")
        self.db = sqlite3.connect(uri, uri=True, timeout=BUSY_SECONDS, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise StoreFormatError(path=self.path, found=f"index schema {row and row[0]}",
                                   supported=SCHEMA_VERSION)

    def _setup(self) -> None:
        if self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA cache_size=-4096")  # 4 MiB: inserts arrive in key order
        self.db.execute("PRAGMA temp_store=MEMORY")

    def _migrate(self) -> None:
        if self._up_to_date():  # no write lock taken: another writer holds nobody up
            return
        self.db.executescript(_SCHEMA)  # idempotent; executescript commits by itself
        with self.transaction():
            # Columns added since a table was first made. Older wbtool
            # versions name their columns, so they read and write the
            # table as before (and leave the new ones NULL).
            for table, column, decl in _ADDED_COLUMNS:
                have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreFormatError(
                    path=self.path, found=f"index schema {row[0]}", supported=SCHEMA_VERSION
                )

    def _up_to_date(self) -> bool:
        """Whether the index has this version's schema, every table, index and
        added column: found by reading alone, as most commands only read."""
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        if not names >= _SCHEMA_NAMES:
            return False
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            return False  # told (or written) under the write lock
        for table, column, _decl in _ADDED_COLUMNS:
            if column not in {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}:
                return False
        return True

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """Writes here wait at most ``seconds`` for another process's (then
        raise "database is locked"): for writes that can as well be left
        to a later command, such as what a listing records in passing."""
        self.db.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE (write-locking) transaction; rolled back on any error."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- garbage collection ---------------------------------------------------
    def gc_generation(self) -> int:
        """How many garbage collections have removed objects from this store:
        what a process remembers of the store's objects is stale once it grows."""
        row = self.db.execute("SELECT value FROM meta WHERE key='gc_generation'").fetchone()
        return int(row[0]) if row else 0

    def bump_gc_generation(self) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES ('gc_generation', '1')"
                       " ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    # -- stat cache -----------------------------------------------------------
    def stat_cache_load(self) -> dict[tuple[int, int], tuple[int, int, str]]:
        """All cached (dev, ino) → (size, mtime_ns, digest)."""
        return {
            (dev, ino): (size, mtime, digest)
            for dev, ino, size, mtime, digest in self.db.execute(
                "SELECT dev, ino, size, mtime_ns, digest FROM stat_cache"
            )
        }

    def stat_cache_put(
        self, rows: Iterable[tuple[int, int, int, int, str]], *, in_key_order: bool = False
    ) -> None:
        """Cache (dev, ino, size, mtime_ns, digest) rows. Inserts in key order
        are much faster: rows are sorted first unless ``in_key_order`` says
        they come sorted by (dev, ino), in which case they are streamed to
        SQLite as they come, never all held at once."""
        ordered = rows if in_key_order else sorted(rows)
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO stat_cache (dev, ino, size, mtime_ns, digest)"
                " VALUES (?, ?, ?, ?, ?)",
                ordered,
            )

    def stat_cache_forget(self, digests: Iterable[str]) -> None:
        """Drop the cached stats of files with these digests (a scan: only gc
        calls this, and an index on digests would slow down every add)."""
        gone = set(digests)
        if not gone:
            return
        with self.transaction():
            keys = [(dev, ino) for dev, ino, digest in self.db.execute(
                "SELECT dev, ino, digest FROM stat_cache") if digest in gone]
            self.db.executemany("DELETE FROM stat_cache WHERE dev = ? AND ino = ?", keys)
