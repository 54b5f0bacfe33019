"""``wbtool doctor`` through the real entry point: a healthy store passes, each
kind of damage is found and named, and nothing is ever written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Result, make_tree, unprivileged, write_protected
from wbtool.hashing import hash_bytes

# 20 small files are packed together; the large one gets an object of its own.
SMALL = {f"small/{i:02d}.txt": f"row {i}\n".encode() for i in range(20)}
LARGE = {"weights.bin": bytes(range(256)) * 1024}
FILES = {**SMALL, **LARGE}


def healthy(cli: Cli, tmp_path: Path) -> None:
    """A store with one packed and one loose artifact version and a finished run."""
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "data", FILES)), "--type", "dataset",
        check=True)
    cli("run", "--no-stats", "--", sys.executable, "-c", "pass", check=True)


def report(res: Result) -> dict[str, Any]:
    """``--json``'s checks by name."""
    doc = res.json()
    assert isinstance(doc, dict) and doc["schema"] == 1 and doc["command"] == "doctor"
    return {c["name"]: c for c in doc["result"]["checks"]}


def failed_with(res: Result, code: int, *words: str) -> None:
    """Exit ``code``, one error line on stderr, and ``words`` in a FAIL line."""
    assert res.code == code, (res.code, res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wbtool: error: "), res.err
    fails = [line for line in res.out.splitlines() if line.startswith("FAIL")]
    assert fails, res.out
    for w in words:
        assert any(w in line for line in fails), (w, res.out)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and modification time."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def object_file(store: Path, digest: str) -> Path:
    return store / "objects" / digest[:2] / digest[2:]


def test_a_healthy_store_passes_and_nothing_is_written(
    cli: Cli, tmp_path: Path, store_dir: Path
) -> None:
    healthy(cli, tmp_path)
    db = sqlite3.connect(store_dir / "index.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()  # the last connection: SQLite removes -wal and -shm
    before = snapshot(store_dir)
    res = cli("doctor")
    assert res.code == 0, res.out + res.err
    assert res.err == ""
    lines, low = _without_disk(res.out)
    assert all(line.startswith(("ok ", "      ")) for line in lines[:-1]), res.out
    assert lines[-1].endswith(f"{int(low)} warning{'' if low else 's'}, 0 failed")
    assert "WBTOOL_DIR" in res.out and "format 1" in res.out
    assert "all 21 objects present (20 packed, 1 loose)" in res.out
    assert snapshot(store_dir) == before  # no lock file, no -wal or -shm, nothing touched
    checks = report(cli("doctor", "--json"))
    assert {"wbtool", "python", "backends", "nvml", "store", "access", "disk", "index",
            "manifests", "objects", "tmp", "drafts", "garbage", "runs", "crashed",
            "remotes"} <= set(checks)


def test_json_shape(cli: Cli, tmp_path: Path) -> None:
    healthy(cli, tmp_path)
    res = cli("doctor", "--json", "--verify")
    assert res.code == 0, res.err
    doc = res.json()
    assert set(doc) == {"schema", "command", "result"} and doc["command"] == "doctor"
    result = doc["result"]
    assert result["ok"] is True
    assert sum(result["summary"].values()) == len(result["checks"])
    for check in result["checks"]:
        assert set(check) == {"area", "name", "status", "detail", "hint", "data"}
        assert check["status"] in ("ok", "warn", "fail")
        assert isinstance(check["detail"], str) and check["detail"]
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["verify"]["data"] == {"objects": 21}
    assert checks["store"]["data"]["found"] == "WBTOOL_DIR"
    assert checks["nvml"]["data"]["usable"] in (True, False)


def test_a_deleted_object_names_the_version(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    healthy(cli, tmp_path)
    cli("artifact", "log", "other", str(make_tree(tmp_path / "o", {"x": b"x"})), "--type", "t",
        check=True)
    object_file(store_dir, hash_bytes(LARGE["weights.bin"])).unlink()
    res = cli("doctor")
    failed_with(res, 4, "objects: 1 object of 22 missing, needed by uncategorized/ds:v0")
    assert "other" not in res.out
    assert "wbtool pull" in res.out and "wbtool artifact rm" in res.out
    assert res.err == "wbtool: error: 1 check(s) failed: objects\n"
    checks = report(cli("doctor", "--json"))
    assert checks["objects"]["status"] == "fail"
    assert checks["objects"]["data"]["missing"] == [hash_bytes(LARGE["weights.bin"])]
    assert checks["objects"]["data"]["needed_by"] == ["uncategorized/ds:v0"]


def test_a_lost_pack_is_a_missing_object(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    healthy(cli, tmp_path)
    (pack,) = (store_dir / "objects" / "pack").iterdir()
    pack.unlink()
    failed_with(cli("doctor"), 4, "20 objects of 21 missing", "uncategorized/ds:v0")
    # The repair it names: gc forgets the lost pack's objects, a new log stores them.
    cli("gc", "--grace", "0", check=True)
    failed_with(cli("doctor"), 4, "20 objects of 21 missing")
    cli("artifact", "log", "ds", str(tmp_path / "data"), "--type", "dataset", check=True)
    assert cli("doctor").code == 0


@pytest.mark.parametrize("where", ["loose", "packed"])
def test_a_corrupt_object_is_found_only_by_verify(
    cli: Cli, tmp_path: Path, store_dir: Path, where: str
) -> None:
    healthy(cli, tmp_path)
    if where == "loose":
        path, offset = object_file(store_dir, hash_bytes(LARGE["weights.bin"])), 1000
    else:
        (path,) = (store_dir / "objects" / "pack").iterdir()
        offset = path.stat().st_size - 2  # inside the last object's bytes
    mode = path.stat().st_mode
    path.chmod(0o644)
    with open(path, "r+b") as f:  # same size, one byte changed
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    path.chmod(mode)
    assert cli("doctor").code == 0  # existence checks only
    res = cli("doctor", "--verify")
    failed_with(res, 4, "verify: 1 object corrupt, needed by uncategorized/ds:v0")
    checks = report(cli("doctor", "--verify", "--json"))
    assert checks["verify"]["status"] == "fail"
    if where == "loose":
        assert checks["verify"]["data"]["files"] == [str(path)]


def test_a_corrupt_manifest_names_the_version(cli: Cli, tmp_path: Path,
                                              store_dir: Path) -> None:
    healthy(cli, tmp_path)
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "v1", {"a": b"a"})), check=True)
    info = cli("artifact", "info", "ds:v0", "--json", check=True).json()
    assert isinstance(info, dict)
    path = object_file(store_dir, info["result"]["manifest"])
    path.chmod(0o644)
    path.write_bytes(b'{"version": 1, "entries": {"../../etc/passwd": ')
    res = cli("doctor")
    failed_with(res, 4, "manifests: 1 version cannot be read: uncategorized/ds:v0 (corrupt)")
    assert "ds:v1" not in [w for line in res.out.splitlines() if line.startswith("FAIL")
                           for w in line.split()]
    checks = report(cli("doctor", "--json"))
    assert checks["garbage"]["status"] == "warn"  # what is garbage is unknown now
    assert checks["objects"]["status"] == "ok"  # the other version's objects are there


def test_a_manifest_that_escapes_its_root_is_refused(cli: Cli, tmp_path: Path,
                                                     store_dir: Path) -> None:
    """A manifest whose bytes match its name, but which names a path outside
    the download root, is invalid: the store's own validation tells."""
    healthy(cli, tmp_path)
    evil = json.dumps({"version": 1, "hash": "xxh3-128", "entries": {
        "../outside": {"digest": "0" * 32, "size": 1}}}).encode()
    digest = hash_bytes(evil)
    object_file(store_dir, digest).parent.mkdir(exist_ok=True)
    object_file(store_dir, digest).write_bytes(evil)
    db = sqlite3.connect(store_dir / "index.db")
    with db:
        db.execute("UPDATE versions SET manifest = ?", (digest,))
    db.close()
    failed_with(cli("doctor"), 4, "uncategorized/ds:v0 (invalid:", "../outside")


def test_stray_run_folders_and_rows_without_folders(cli: Cli, tmp_path: Path,
                                                    store_dir: Path) -> None:
    healthy(cli, tmp_path)
    for _ in range(2):
        cli("run", "--no-stats", "--", sys.executable, "-c", "pass", check=True)
    first, second, third = sorted(p.name for p in (store_dir / "runs").iterdir())
    db = sqlite3.connect(store_dir / "index.db")  # as an index put back from a backup
    with db:
        db.execute("DELETE FROM runs WHERE id = ?", (first,))
    db.close()
    shutil.copytree(store_dir / "runs" / third, store_dir / "runs" / "copy1")
    shutil.rmtree(store_dir / "runs" / second)
    (store_dir / "runs" / "junk").mkdir()
    (store_dir / "runs" / "not a run").mkdir()
    res = cli("doctor")
    strays = ", ".join(sorted(["copy1", first]))
    failed_with(res, 4, f"2 run folders the index does not list: {strays}",
                f"1 index row without a folder: {second}",
                "1 run folder whose run.json is missing or damaged: junk",
                "1 folder whose name is no run id: not a run")
    assert "wbtool runs delete ID --yes" in res.out and "by hand" in res.out
    # The repairs the hints name repair it, and take nothing else.
    cli("runs", "delete", "copy1", first, second, "junk", "--yes", check=True)
    (store_dir / "runs" / "not a run").rmdir()
    assert cli("doctor").code == 0
    assert [p.name for p in (store_dir / "runs").iterdir()] == [third]


def test_a_run_folder_whose_run_json_is_damaged(cli: Cli, tmp_path: Path,
                                                store_dir: Path) -> None:
    """A run folder with a damaged run.json, listed in the index or not, is
    named as such, with the command that removes it (not a removal by hand)."""
    healthy(cli, tmp_path)
    cli("run", "--no-stats", "--", sys.executable, "-c", "pass", check=True)
    listed, kept = sorted(p.name for p in (store_dir / "runs").iterdir())
    (store_dir / "runs" / listed / "run.json").write_text("{")
    shutil.copytree(store_dir / "runs" / kept, store_dir / "runs" / "copy1")
    (store_dir / "runs" / "copy1" / "run.json").write_text("[]")
    res = cli("doctor")
    failed_with(res, 4, "2 run folders whose run.json is missing or damaged: "
                + ", ".join(sorted(["copy1", listed])))
    assert "`wbtool runs delete ID --yes` removes one" in res.out and "by hand" not in res.out
    assert report(cli("doctor", "--json"))["runs"]["data"]["damaged"] == sorted(
        ["copy1", listed])
    cli("runs", "delete", "copy1", listed, "--yes", check=True)
    assert cli("doctor").code == 0
    assert [p.name for p in (store_dir / "runs").iterdir()] == [kept]


CHILD = """
import time, wbtool
run = wbtool.init(project="p", settings={"quiet": True, "console": "off",
                                         "x_disable_stats": True})
run.log({"loss": 1.0})
print(run.id, flush=True)
time.sleep(120)
"""


def test_a_run_left_running_by_a_killed_process(cli: Cli, tmp_path: Path) -> None:
    healthy(cli, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        alive = cli("doctor")
        assert alive.code == 0, alive.out  # a live run is no problem
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    res = cli("doctor")
    assert res.code == 0, (res.out, res.err)  # the store is whole: a warning, not a failure
    assert f"warn  crashed: 1 run recorded as running whose process is gone: {run_id}" in res.out
    found = report(cli("doctor", "--json"))["crashed"]
    assert found["status"] == "warn" and found["data"] == {"runs": [run_id]}
    cli("runs", "delete", run_id, "--yes", check=True)
    assert report(cli("doctor", "--json"))["crashed"]["status"] == "ok"


def test_leftover_temp_files_only_warn(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    healthy(cli, tmp_path)
    old = store_dir / "tmp" / "tmp-abc123.partial"
    old.write_bytes(b"x" * 2048)
    hours_ago = time.time() - 3 * 3600
    os.utime(old, (hours_ago, hours_ago))
    (store_dir / "tmp" / "tmp-now.partial").write_bytes(b"in use")
    res = cli("doctor")
    assert res.code == 0 and res.err == "", res.out + res.err
    lines, low = _without_disk(res.out)
    warn = [line for line in lines if line.startswith("warn")]
    assert warn == ["warn  tmp: 1 temp file (2.0 KiB) older than an hour left in tmp/; "
                    "1 recent (in use)"]
    assert "repair: `wbtool gc` removes temp files older than an hour" in res.out
    assert lines[-1].endswith(f"{1 + low} warning{'s' if low else ''}, 0 failed")
    assert old.exists()  # doctor never repairs
    cli("gc", check=True)
    assert not old.exists()
    assert not [line for line in _without_disk(cli("doctor").out)[0] if line.startswith("warn")]


def _without_disk(out: str) -> tuple[list[str], bool]:
    """doctor's lines less the disk check's (this machine's own disk may be
    low on space, whatever the store holds), and whether it warned."""
    lines, low, skipping = [], False, False
    for line in out.splitlines():
        if line.startswith(("ok    disk:", "warn  disk:")):
            low, skipping = line.startswith("warn"), True
            continue
        if skipping and line.startswith("      "):
            continue
        skipping = False
        lines.append(line)
    return lines, low


def test_staged_files_are_listed(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    healthy(cli, tmp_path)
    cli("artifact", "add", "draft", str(make_tree(tmp_path / "d", {"new": b"new"})), "--type",
        "t", check=True)
    checks = report(cli("doctor", "--json"))
    assert checks["drafts"]["status"] == "ok"
    assert checks["drafts"]["detail"] == "staged: uncategorized/draft (1 file)"
    # The staged files' objects are needed too.
    object_file(store_dir, hash_bytes(b"new")).unlink()
    failed_with(cli("doctor"), 4, "the staged files of uncategorized/draft")


def test_the_garbage_estimate_agrees_with_gc(cli: Cli, tmp_path: Path,
                                             store_dir: Path) -> None:
    """doctor counts garbage from the manifests its object check read; a
    draft whose staged files do not read makes what is garbage unknown."""
    healthy(cli, tmp_path)
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "v1", {"a.txt": b"changed"})),
        check=True)
    cli("artifact", "rm", "ds:v0", check=True)
    cli("artifact", "add", "draft", str(make_tree(tmp_path / "d", {"new": b"new"})), "--type",
        "t", check=True)
    dry = cli("gc", "--dry-run", "--json", check=True).json()
    assert isinstance(dry, dict)
    garbage = report(cli("doctor", "--json"))["garbage"]
    assert garbage["status"] == "ok"
    want = dry["result"]
    assert garbage["data"] == {"objects": want["removed"], "bytes": want["freed"],
                               "recent": want["recent"], "referenced": want["kept"]}
    assert want["recent"] > 0 and want["kept"] > 0

    db = sqlite3.connect(store_dir / "index.db")
    with db:
        db.execute("INSERT INTO distributed_drafts VALUES ('p', 'n', 'g', 't', '{', 0)")
    db.close()
    assert report(cli("doctor", "--json"))["garbage"]["status"] == "warn"


@pytest.mark.parametrize("index_state", ["closed", "in use"])
def test_a_store_this_user_cannot_write_is_checked(
    cli: Cli, tmp_path: Path, store_dir: Path, index_state: str
) -> None:
    prefix = unprivileged()
    healthy(cli, tmp_path)
    object_file(store_dir, hash_bytes(LARGE["weights.bin"])).unlink()
    db = sqlite3.connect(store_dir / "index.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    holder = None
    if index_state == "in use":  # another process has the index open: -wal and -shm exist
        holder = sqlite3.connect(store_dir / "index.db")
        holder.execute("SELECT count(*) FROM versions").fetchone()
    try:
        with write_protected(store_dir):
            before = snapshot(store_dir)
            proc = subprocess.run([*prefix, sys.executable, "-m", "wbtool", "doctor"],
                                  capture_output=True, text=True, cwd=cli.cwd, timeout=120)
            after = snapshot(store_dir)
    finally:
        if holder is not None:
            holder.close()
    res = Result(proc.returncode, proc.stdout, proc.stderr)
    failed_with(res, 4, "1 object of 21 missing")
    assert "ok    access: read-only here" in res.out
    assert "ok    index: quick_check ok" in res.out
    assert after == before


def test_no_store(cli: Cli, store_dir: Path) -> None:
    res = cli("doctor")
    assert res.code == 7, res.err
    assert res.err == f"wbtool: error: no wbtool store at {store_dir} (named by WBTOOL_DIR)\n"
    assert "FAIL  store: no wbtool store" in res.out
    assert "ok    python:" in res.out  # the environment is still told
    assert not store_dir.exists()
    checks = report(cli("doctor", "--json"))
    assert checks["store"]["status"] == "fail" and "manifests" not in checks


def test_an_invalid_setting_fails_its_check(cli: Cli, tmp_path: Path) -> None:
    healthy(cli, tmp_path)
    res = cli("doctor", env={"WBTOOL_QUIET": "maybe"})
    failed_with(res, 4, "settings: invalid setting 'quiet'")
    assert "ok    objects: all 21 objects present" in res.out  # the store is still checked


def test_a_store_found_walking_up(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    healthy(cli, tmp_path)
    sub = tmp_path / "work" / "deep" / "er"
    sub.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "WBTOOL_DIR"}
    proc = subprocess.run([sys.executable, "-m", "wbtool", "doctor"], capture_output=True,
                          text=True, cwd=sub, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"store: {store_dir} (found walking up from the current folder)" in proc.stdout


def test_an_unusable_index_is_a_store_error(cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    healthy(cli, tmp_path)
    (store_dir / "index.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{store_dir / 'index.db'}{suffix}").unlink(missing_ok=True)
    res = cli("doctor")
    assert res.code == 7, res.out + res.err
    assert res.err.count("\n") == 1 and "index.db cannot be opened" in res.err
    assert "manifests" not in res.out  # nothing that needs the index was tried


@pytest.mark.parametrize("table", ["runs_by_project", "versions"])
def test_a_damaged_index_page_fails_quick_check(
    cli: Cli, tmp_path: Path, store_dir: Path, table: str
) -> None:
    healthy(cli, tmp_path)
    db = sqlite3.connect(store_dir / "index.db")
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    with open(store_dir / "index.db", "r+b") as f:  # the page's header and cell pointers
        f.seek((root - 1) * page_size)
        f.write(b"\x07" * 100)
    res = cli("doctor")
    failed_with(res, 4, "index: quick_check: ")
    assert res.out.count("restore .wbtool/index.db from a backup") >= 1
    assert "Traceback" not in res.err


def test_remotes_are_listed_and_contacted_only_when_asked(
    cli: Cli, tmp_path: Path
) -> None:
    healthy(cli, tmp_path)
    shared = tmp_path / "shared"
    cli("remote", "add", "team", str(shared), "--default", check=True)
    cli("remote", "add", "gone", str(tmp_path / "nowhere"), check=True)
    cli("sync", check=True)
    res = cli("doctor")
    assert res.code == 0, res.out + res.err
    assert f"ok    remote team: {shared} (default) (not contacted" in res.out
    res = cli("doctor", "--remote", "team")
    assert res.code == 0, res.out + res.err
    assert f"ok    remote team: {shared} (default): reachable" in res.out
    res = cli("doctor", "--remote", "all")
    assert res.code == 6, res.out + res.err
    assert "FAIL  remote gone:" in res.out and "the folder does not exist" in res.out
    assert res.err == "wbtool: error: 1 remote(s) did not answer: gone\n"
    res = cli("doctor", "--remote", "nosuch")
    assert res.code == 3 and res.err.count("\n") == 1 and "nosuch" in res.err
