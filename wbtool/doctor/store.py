"""``wbtool doctor``'s look at the store folder and its index, opened read-only."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from wbtool.doctor.check import FAIL, LISTED, OK, WARN, Check, names
from wbtool.errors import StoreError

if TYPE_CHECKING:
    from wbtool.context import Context
    from wbtool.settings import Settings

LOW_SPACE_BYTES = 1 << 30  # warn below this much free space ...
LOW_SPACE_RATIO = 0.05  # ... or below this share of the filesystem

_HOW = {"WBTOOL_DIR": "named by WBTOOL_DIR", "root_dir": "under the root_dir setting",
        "walking up": "found walking up from the current folder",
        "default": "none found walking up from the current folder"}


def open_store(settings: Settings, cwd: str | None) -> tuple[Context | None, list[Check]]:
    from wbtool.context import Context
    from wbtool.store.layout import Store, locate, unfinished

    path, how = locate(root_dir=settings.root_dir, cwd=cwd)
    where = f"{path} ({_HOW[how]})"
    if unfinished(path):
        data = {"path": str(path), "found": how, "unfinished": True}
        if Store(path).holds_data():  # not what a kill leaves: config.yaml was lost
            return None, [Check("store", "store", FAIL,
                                f"the wbtool store {where} has no config.yaml, though it "
                                "holds objects or runs", "restore config.yaml from a backup",
                                data=data, fatal=True)]
        return None, [Check("store", "store", FAIL,
                            f"the making of the wbtool store {where} was cut short (it has "
                            "no config.yaml yet); the next `wbtool run` or `wbtool artifact "
                            "log` finishes it",
                            "run a command that writes to the store; nothing is stored in "
                            "it yet", data=data, fatal=True)]
    if not (path / "config.yaml").is_file():
        return None, [Check("store", "store", FAIL, f"no wbtool store at {where}",
                            "run wbtool where the store is, or name it with WBTOOL_DIR; the "
                            "first `wbtool run` or `wbtool artifact log` creates one",
                            data={"path": str(path), "found": how}, fatal=True)]
    try:
        store = Store.open(path, create=False, read_only=True)
    except StoreError as e:
        return None, [Check("store", "store", FAIL, str(e), "restore config.yaml from a backup",
                            data={"path": str(path), "found": how}, fatal=True)]
    checks = [Check("store", "store", OK, f"{where}, format {store.config['format']}",
                    data={"path": str(path), "found": how, "format": store.config["format"]}),
              _access(path), _disk(path)]
    return Context(settings, store), checks


def _access(path: Path) -> Check:
    parts = [path, path / "index.db", path / "objects", path / "runs", path / "tmp"]
    denied = [p.name for p in parts if p.exists() and not os.access(p, os.W_OK)]
    if not denied:
        return Check("store", "access", OK, "writable", data={"writable": True})
    return Check("store", "access", OK,
                 f"read-only here ({', '.join(denied)}): reading works; logging, runs and gc "
                 "need write access", data={"writable": False, "read_only": denied})


def _disk(path: Path) -> Check:
    from wbtool.units import human_size

    st = os.statvfs(path)
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    data = {"free": free, "total": total}
    detail = f"{human_size(free)} free of {human_size(total)}"
    if free < LOW_SPACE_BYTES or (total and free < LOW_SPACE_RATIO * total):
        return Check("store", "disk", WARN, f"low on space: {detail}",
                     "`wbtool gc` frees objects no version needs; `wbtool runs delete` and "
                     "`wbtool artifact rm` free more", data=data)
    return Check("store", "disk", OK, detail, data=data)


def index(ctx: Context) -> Generator[Check, None, bool]:
    """index.db's own consistency (SQLite's quick_check); False if unusable."""
    import sqlite3

    path = ctx.store.path / "index.db"
    if not path.exists() and not ctx.store.holds_data():
        yield Check("index", "index", WARN, f"{path} does not exist; the store holds nothing "
                    "yet, and the next command that writes to it creates the index")
        return False
    try:
        ctx.store.index  # noqa: B018 - opens it
    except (StoreError, sqlite3.Error) as e:
        yield Check("index", "index", FAIL, f"{path} cannot be opened: {e}",
                    "restore .wbtool/index.db from a backup", fatal=True)
        return False
    try:
        rows = _quick_check(ctx)
        if rows != ["ok"] and os.path.exists(f"{path}-wal"):
            # Read as it stood on disk while another process began writing
            # to it: look again, through that process's log.
            ctx.store.close()
            rows = _quick_check(ctx)
    except sqlite3.DatabaseError as e:  # damaged beyond what the check can walk
        rows = [str(e)]
    size = os.stat(path).st_size
    if rows == ["ok"]:
        from wbtool.units import human_size

        yield Check("index", "index", OK, f"quick_check ok ({human_size(size)})",
                    data={"size": size})
    else:
        yield Check("index", "index", FAIL, f"quick_check: {names(rows)}",
                    "restore .wbtool/index.db from a backup (wbtool cannot rebuild it)",
                    data={"problems": rows[:LISTED]})
    return True


def _quick_check(ctx: Context) -> list[str]:
    """SQLite's findings, one per line (``["ok"]`` when there are none)."""
    found: list[str] = []
    for (text,) in ctx.store.index.db.execute("PRAGMA quick_check"):
        found.extend(line for line in str(text).splitlines()
                     if line.strip() and not line.startswith("*** in database"))
    return found
