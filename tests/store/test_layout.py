from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli
from wbtool.errors import StoreError, StoreFormatError
from wbtool.store.index import Index
from wbtool.store.layout import Store, discover


def test_discovery_walks_up(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    Store.open(root / ".wbtool")
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert discover(cwd=str(deep), environ={}) == root / ".wbtool"
    # nothing above: ./.wbtool of the current folder
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert discover(cwd=str(other), environ={}) == other / ".wbtool"


def test_env_and_root_dir(tmp_path: Path) -> None:
    assert discover(environ={"WBTOOL_DIR": str(tmp_path / "s")}) == tmp_path / "s"
    assert discover(root_dir=str(tmp_path), environ={}) == tmp_path / ".wbtool"
    # WBTOOL_DIR (set by 'wbtool run' for its command) wins over root_dir
    both = discover(root_dir=str(tmp_path), environ={"WBTOOL_DIR": str(tmp_path / "s")})
    assert both == tmp_path / "s"


def test_store_layout_and_wal(store_dir: Path) -> None:
    store = Store.open(store_dir)
    for sub in ("objects", "tmp", "runs"):
        assert (store_dir / sub).is_dir()
    digest, _ = store.objects.put_bytes(b"x")  # shard folders are made on first use
    assert (store_dir / "objects" / digest[:2] / digest[2:]).is_file()
    assert store.config["format"] == 1
    mode = store.index.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_new_store_holds_no_temp_files(store_dir: Path) -> None:
    Store.open(store_dir)
    Store.open(store_dir)  # and opening it again leaves none either
    names = {p.name for p in store_dir.iterdir()}
    assert {"config.yaml", "index.db", "objects", "runs", "tmp"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert (store_dir / "config.yaml").stat().st_nlink == 1


@pytest.mark.parametrize("holding", ["an object", "a run"])
@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_store_that_lost_its_index_is_refused_not_started_afresh(
    store_dir: Path, how: str, holding: str
) -> None:
    """A new, empty index over stored objects would make every object look
    unreferenced, and ``cache gc`` would delete them all; over runs, it
    would hide every run."""
    store = Store.open(store_dir)
    if holding == "an object":
        store.objects.put_bytes(b"a stored object")
    else:
        (store_dir / "runs" / "abc123").mkdir()
        (store_dir / "runs" / "abc123" / "run.json").write_text("{}")
    store.close()
    index = store_dir / "index.db"
    for extra in ("-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    if how == "deleted":
        index.unlink()
    else:
        index.write_bytes(b"")
    with pytest.raises(StoreError, match="missing or empty"):
        Store.open(store_dir).index  # noqa: B018
    assert index.exists() == (how == "emptied")  # nothing was created


def test_an_empty_store_without_its_index_gets_a_new_one(store_dir: Path) -> None:
    Store.open(store_dir).close()
    (store_dir / "index.db").unlink()
    db = Store.open(store_dir).index.db
    assert db.execute("SELECT count(*) FROM versions").fetchone() == (0,)


@pytest.mark.parametrize("found", ["99", "true", "1.0", "'1'"])
def test_unknown_format_refused(store_dir: Path, found: str) -> None:
    Store.open(store_dir)
    (store_dir / "config.yaml").write_text(f"format: {found}\nremotes: {{}}\n")
    with pytest.raises(StoreFormatError, match="format"):
        Store.open(store_dir)


def test_unknown_index_schema_refused(store_dir: Path) -> None:
    store = Store.open(store_dir)
    store.index.db.execute("UPDATE meta SET value='42' WHERE key='schema'")
    store.close()
    with pytest.raises(StoreFormatError):
        Index(store_dir / "index.db")


def test_an_up_to_date_index_opens_while_another_process_writes(store_dir: Path) -> None:
    """Opening the index took its write lock, so every command, reading
    ones too, waited for a long write of another process to end (a minute
    at most, then failed as busy)."""
    import sqlite3
    import time

    Store.open(store_dir).close()
    other = sqlite3.connect(store_dir / "index.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        index = Index(store_dir / "index.db")
        assert index.db.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert time.monotonic() - began < 5
        index.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    # one that lacks a table is still brought up to date
    db = sqlite3.connect(store_dir / "index.db")
    db.execute("DROP TABLE remote_links")
    db.commit()
    db.close()
    index = Index(store_dir / "index.db")
    assert index.db.execute("SELECT count(*) FROM remote_links").fetchone() == (0,)
    index.close()


def test_a_store_made_before_incremental_drafts_is_upgraded(store_dir: Path) -> None:
    store = Store.open(store_dir)
    db = store.index.db
    db.execute("INSERT INTO drafts (project, name, type, manifest, updated_at)"
               " VALUES ('p', 'd', NULL, '{}', 0)")
    db.execute("ALTER TABLE drafts DROP COLUMN base")  # as older versions made it
    store.close()
    columns = [r[1] for r in Index(store_dir / "index.db").db.execute(
        "PRAGMA table_info(drafts)")]
    assert columns[-1] == "base"
    row = Index(store_dir / "index.db").db.execute("SELECT name, base FROM drafts").fetchall()
    assert row == [("d", None)]


def test_config_is_written_as_json_and_hand_written_yaml_is_read(store_dir: Path) -> None:
    import json

    Store.open(store_dir)
    doc = json.loads((store_dir / "config.yaml").read_text())  # JSON is valid YAML
    assert doc == {"default_remote": None, "format": 1, "remotes": {}}
    (store_dir / "config.yaml").write_text(
        "# edited by hand\nformat: 1\ndefault_remote: team\nremotes:\n  team: s3://b/p\n")
    store = Store.open(store_dir)
    assert store.config["remotes"] == {"team": "s3://b/p"}
    (store_dir / "config.yaml").write_text("format: [1\n")
    with pytest.raises(StoreError, match="not valid YAML"):
        Store.open(store_dir)


@pytest.mark.parametrize(("text", "where"), [
    ("format: [1\n", "line 2, column 1"),
    ("format: 1\nremotes: {a: [\n", "line 3, column 1"),
    ("format: 1\n\tremotes: {}\n", "line 2, column 1"),
    ("format: 1\nremotes: \"\x01\"\n", "#x0001: special characters are not allowed"
                                      " (line 2, column 11)"),
])
def test_config_that_is_not_yaml_is_one_line(cli: Cli, store_dir: Path, text: str,
                                             where: str) -> None:
    """The YAML error's message and where it is, with no lines of context."""
    Store.open(store_dir)  # an empty store
    (store_dir / "config.yaml").write_text(text)
    res = cli("artifact", "ls")
    assert res.code == 7 and "Traceback" not in res.err
    assert res.err.startswith(f"wbtool: error: {store_dir / 'config.yaml'} is not valid YAML: ")
    assert res.err.count("\n") == 1 and where in res.err, res.err
