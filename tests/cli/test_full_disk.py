"""A full disk under the store: a real small filesystem (tmpfs), filled up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, read_tree


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB filesystem of its own; skips where none can be mounted here."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Write ``disk/filler`` until there is no room left."""
    with open(disk / "filler", "wb", buffering=0) as filler:  # nothing left to flush
        try:
            while filler.write(b"\0" * (1 << 16)):
                pass
        except OSError:
            pass


def test_an_index_that_fails_on_a_full_disk_says_the_disk_is_full(
    small_disk: Path, tmp_path: Path
) -> None:
    """Once a writer has hit the full disk, SQLite fails even to read the
    index ("disk I/O error"), which says nothing of the cause."""
    env = {"WBTOOL_DIR": str(small_disk / ".wbtool")}
    cli = Cli(tmp_path)
    for _ in range(3):
        cli("run", "-q", "--no-stats", "--", sys.executable, "-c", "pass", env=env, check=True)
    fill(small_disk)
    cli("run", "-q", "--no-stats", "--", sys.executable, "-c", "pass", env=env)
    res = cli("runs", "list", env=env)
    if res.code == 0:
        pytest.skip("this SQLite reads the index on a full disk: nothing to tell")
    assert res.code == 7 and res.err.count("\n") == 1, res.err
    assert f"the disk holding {small_disk / '.wbtool'} is full" in res.err
    assert "free some space and try again" in res.err
    (small_disk / "filler").unlink()
    assert cli("runs", "list", env=env).out.count("\n") == 3  # nothing was lost


def test_a_disk_that_fills_up_under_the_output_never_stops_the_command(
    small_disk: Path, tmp_path: Path
) -> None:
    """The command was killed, its output cut short, and wbtool exited 1
    with the run left running when output.log filled the disk."""
    env = {"WBTOOL_DIR": str(small_disk / ".wbtool")}
    child = ("import sys\n"
             "for i in range(80):\n"
             "    print(i, 'y' * 100_000, flush=True)\n"
             "print('the end')\n"
             "sys.exit(4)\n")
    res = Cli(tmp_path)("run", "--no-stats", "--", sys.executable, "-c", child, env=env)
    assert res.code == 4, res.err
    assert res.out.endswith("79 " + "y" * 100_000 + "\nthe end\n")
    assert res.out.count("\n") == 81
    assert "the command's output is no longer recorded" in res.err
    assert "the command goes on" in res.err and "error" not in res.err.lower()


def test_a_run_started_on_a_full_disk_says_which_disk(small_disk: Path, tmp_path: Path) -> None:
    """It said only "No space left on device", exit 1."""
    env = {"WBTOOL_DIR": str(small_disk / ".wbtool")}
    cli = Cli(tmp_path)
    cli("run", "-q", "--no-stats", "--", sys.executable, "-c", "pass", env=env, check=True)
    fill(small_disk)
    res = cli("run", "-q", "--no-stats", "--", sys.executable, "-c", "pass", env=env)
    assert res.code == 7 and res.err.count("\n") == 1, res.err
    assert f"the disk holding {small_disk / '.wbtool'} is full" in res.err


# -- artifacts ----------------------------------------------------------------


def block(disk: Path, size: int) -> Path:
    """Take ``size`` bytes of ``disk`` with a file of its own; return it."""
    (disk / "block").write_bytes(b"\0" * size)
    return disk / "block"


def tmp_left(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "tmp").iterdir())


def random_tree(root: Path, count: int, size: int) -> Path:
    import os

    root.mkdir()
    for i in range(count):
        (root / f"f{i:03}").write_bytes(os.urandom(size))
    return root


@pytest.fixture
def on_small_disk(small_disk: Path, tmp_path: Path) -> tuple[Cli, dict[str, str], Path]:
    """A CLI whose store is on the small disk, with a first version ``ds:v0``."""
    store = small_disk / ".wbtool"
    env = {"WBTOOL_DIR": str(store)}
    cli = Cli(tmp_path)
    (tmp_path / "first.bin").write_bytes(b"first" * 1000)
    cli("artifact", "log", "ds", "first.bin", "-t", "dataset", env=env, check=True)
    return cli, env, store


def the_store_is_whole(cli: Cli, env: dict[str, str], store: Path) -> None:
    """Nothing half-written is left in the store and the first version is intact."""
    assert tmp_left(store) == []
    cli("artifact", "verify", "ds:v0", env=env, check=True)


@pytest.mark.parametrize("what", ["one large file", "small files (packs)",
                                  "files of their own"])
def test_a_log_that_fills_the_disk_names_the_store_and_keeps_what_was_stored(
    on_small_disk: tuple[Cli, dict[str, str], Path], small_disk: Path, tmp_path: Path,
    what: str,
) -> None:
    """It said only "No space left on device", exit 7: the failed write was
    removed by then, so the disk no longer looked full, and nothing named it."""
    cli, env, store = on_small_disk
    if what == "one large file":
        data = tmp_path / "big.bin"
        data.write_bytes(b"b" * (3 << 20))
    else:
        count, size = (300, 10_000) if "packs" in what else (20, 150_000)
        data = random_tree(tmp_path / "data", count, size)
    blocked = block(small_disk, 4 << 20)
    res = cli("artifact", "log", "ds", str(data), env=env)
    assert res.code == 7 and res.err.count("\n") == 1, res.err
    assert "No space left on device" in res.err and f"; the disk holding {store} " in res.err
    assert "free some space and try again" in res.err
    the_store_is_whole(cli, env, store)
    assert cli("artifact", "info", "ds:v1", env=env).code == 3
    blocked.unlink()
    cli("artifact", "log", "ds", str(data), env=env, check=True)  # the same command now works
    cli("artifact", "verify", "ds:v1", env=env, check=True)
    the_store_is_whole(cli, env, store)


def test_an_add_that_fills_the_disk_stages_nothing(
    on_small_disk: tuple[Cli, dict[str, str], Path], small_disk: Path, tmp_path: Path
) -> None:
    cli, env, store = on_small_disk
    data = random_tree(tmp_path / "data", 20, 150_000)
    blocked = block(small_disk, 4 << 20)
    res = cli("artifact", "add", "ds", str(data), env=env)
    assert res.code == 7 and res.err.count("\n") == 1, res.err
    assert f"the disk holding {store} " in res.err
    assert cli("artifact", "status", "ds", env=env, check=True).out == "nothing staged\n"
    the_store_is_whole(cli, env, store)
    blocked.unlink()
    cli("artifact", "add", "ds", str(data), env=env, check=True)
    cli("artifact", "log", "ds", env=env, check=True)
    assert cli("artifact", "verify", "ds:v1", env=env, check=True).out.startswith("ok")


@pytest.mark.parametrize("command", ["checkout", "download"])
def test_a_full_disk_under_the_target_folder_is_named_and_exits_1(
    small_disk: Path, tmp_path: Path, command: str
) -> None:
    """It exited 7 ("store error") with only "No space left on device", when
    the store, on another disk, was fine."""
    env = {"WBTOOL_DIR": str(tmp_path / "store")}
    cli = Cli(tmp_path)
    data = random_tree(tmp_path / "data", 20, 150_000)
    cli("artifact", "log", "ds", str(data), "-t", "dataset", env=env, check=True)
    target = small_disk / "target"
    blocked = block(small_disk, 4 << 20)
    args = ["checkout", "ds:v0", str(target)] if command == "checkout" else [
        "download", "ds:v0", "--root", str(target)]
    res = cli("artifact", *args, env=env)
    assert res.code == 1 and res.err.count("\n") == 1, res.err
    assert f"; the disk holding {target}" in res.err and "is full" in res.err
    assert "free some space and try again" in res.err
    assert not [p for p in target.rglob("*") if p.name.startswith(".")]  # no temp file
    assert tmp_left(tmp_path / "store") == []
    blocked.unlink()
    cli("artifact", *args, env=env, check=True)
    assert read_tree(target) == read_tree(data)


def test_gc_on_a_full_disk_says_so_and_works_once_there_is_room(
    on_small_disk: tuple[Cli, dict[str, str], Path], small_disk: Path
) -> None:
    cli, env, store = on_small_disk
    fill(small_disk)
    res = cli("artifact", "cache", "gc", "--grace", "0", env=env)
    if res.code == 0:
        pytest.skip("this SQLite works on a full disk: nothing to tell")
    assert res.code == 7 and res.err.count("\n") == 1, res.err
    assert f"the disk holding {store} is full" in res.err
    (small_disk / "filler").unlink()
    cli("artifact", "cache", "gc", "--grace", "0", env=env, check=True)
    the_store_is_whole(cli, env, store)


def test_the_api_on_a_full_disk_raises_an_oserror_naming_the_store(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finish_runs: None
) -> None:
    """add_file raised an OSError with no file name: nothing said whose disk."""
    import errno

    import wbtool
    from tests.conftest import quiet_run

    store = small_disk / ".wbtool"
    monkeypatch.setenv("WBTOOL_DIR", str(store))
    run = quiet_run("p")
    first = wbtool.Artifact("ds", type="dataset")
    (tmp_path / "first.bin").write_bytes(b"first" * 1000)
    first.add_file(str(tmp_path / "first.bin"))
    run.log_artifact(first)
    (tmp_path / "big.bin").write_bytes(b"b" * (3 << 20))
    blocked = block(small_disk, 4 << 20)
    second = wbtool.Artifact("ds", type="dataset")
    with pytest.raises(OSError) as failed:
        second.add_file(str(tmp_path / "big.bin"))
    assert failed.value.errno == errno.ENOSPC
    assert failed.value.filename is not None and str(store) in failed.value.filename
    assert tmp_left(store) == []
    blocked.unlink()
    second.add_file(str(tmp_path / "big.bin"))
    run.log_artifact(second)
    run.finish()
    cli = Cli(tmp_path)
    env = {"WBTOOL_DIR": str(store)}
    for version in ("p/ds:v0", "p/ds:v1"):
        cli("artifact", "verify", version, env=env, check=True)


# -- runs ---------------------------------------------------------------------


def test_a_log_on_a_full_disk_says_which_disk_and_tears_no_line(
    small_disk: Path, tmp_path: Path
) -> None:
    """The row was written as far as the disk had room, and nothing was said
    (exit 0); the next row was glued onto the torn one, and both were lost."""
    import json

    store = small_disk / ".wbtool"
    env = {"WBTOOL_DIR": str(store)}
    cli = Cli(tmp_path)
    cli("run", "-q", "--no-stats", "--id", "r1", "--", sys.executable, "-c", "pass", env=env,
        check=True)
    for i in range(3):
        cli("log", "--run", "r1", f"i={i}", env=env, check=True)
    fill(small_disk)  # the history's last page still has room for part of a row
    res = cli("log", "--run", "r1", "i=3", "pad=" + "x" * 8000, env=env)
    assert res.code == 7 and res.err.count("\n") == 1, res.err
    assert "No space left on device" in res.err
    assert f"the disk holding {store} is full" in res.err
    (small_disk / "filler").unlink()
    cli("log", "--run", "r1", "i=4", env=env, check=True)
    history = (store / "runs" / "r1" / "history.jsonl").read_bytes()
    assert [json.loads(line)["i"] for line in history.splitlines()] == [0, 1, 2, 4]
