"""A store whose making was cut short (a kill between its folder and its
config.yaml): found where it is, finished by the next command that writes,
named by doctor, and never passed by for a store further up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, is_error, make_tree
from wbtool.errors import EXIT_STORE
from wbtool.store.index import Index
from wbtool.store.layout import Store, discover

# Each state a kill can leave, in the order a store is made: its folder,
# the folders in it, index.db (SQLite makes the file empty, then writes the
# schema), and config.yaml's temp file before the link that publishes it
# (where earlier versions staged it: beside config.yaml).
STATES = ["folder", "subfolders", "empty index", "index", "config temp file"]


def cut_short(path: Path, state: str) -> None:
    """Leave ``path`` as a kill at ``state`` leaves a store being made."""
    path.mkdir(parents=True)
    if state == "folder":
        return
    for sub in ("tmp", "runs", "objects"):
        (path / sub).mkdir()
    if state == "empty index":
        (path / "index.db").write_bytes(b"")
    elif state in ("index", "config temp file"):
        Index(path / "index.db").close()
    if state == "config temp file":
        (path / ".config.yaml.0123456789ab.tmp").write_bytes(b'{\n  "default_rem')


@pytest.fixture
def above(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a complete store with an artifact in it, with the
    project folder ``proj`` (and ``proj/sub``) inside it; commands find
    their store by walking up."""
    monkeypatch.delenv("WBTOOL_DIR")
    top = tmp_path / "top"
    (top / "proj" / "sub").mkdir(parents=True)
    make_tree(top, {"up.txt": b"up\n"})
    cli("artifact", "log", "upper", str(top / "up.txt"), "--type", "dataset",
        env={"WBTOOL_DIR": str(top / ".wbtool")}, check=True)
    return top


@pytest.mark.parametrize("state", STATES)
def test_walking_up_stops_at_a_store_cut_short(above: Path, state: str) -> None:
    cut_short(above / "proj" / ".wbtool", state)
    assert discover(cwd=str(above / "proj" / "sub"), environ={}) == above / "proj" / ".wbtool"


@pytest.mark.parametrize("state", STATES)
def test_a_store_cut_short_is_finished_by_the_next_write_and_named_by_doctor(
        above: Path, state: str) -> None:
    store = above / "proj" / ".wbtool"
    cut_short(store, state)
    cli = Cli(above / "proj" / "sub")
    # Reading finds the store cut short, which holds nothing: not the one above.
    res = cli("artifact", "ls", check=True)
    assert "upper" not in res.out
    res = cli("doctor")
    is_error(res, EXIT_STORE, str(store), "cut short", "no config.yaml",
             "the next `wbtool run` or `wbtool artifact log` finishes it")
    assert "Traceback" not in res.out + res.err
    assert not (store / "config.yaml").exists()  # doctor only looks

    res = cli("run", "--", sys.executable, "-c", "pass", check=True)
    assert str(store / "runs") in res.err
    assert (store / "config.yaml").is_file()
    assert cli("doctor", "--json").code == 0
    cli("artifact", "log", "lower", str(above / "up.txt"), "--type", "dataset", check=True)
    listed = cli("artifact", "ls", check=True).out
    assert "lower" in listed and "upper" not in listed
    assert len(cli("runs", "list", "--json").json()["result"]) == 1  # type: ignore[index]
    # The store above was left as it was.
    above_cli = Cli(above)
    assert "lower" not in above_cli("artifact", "ls", check=True).out


def test_doctor_tells_a_store_that_lost_its_config_from_one_cut_short(tmp_path: Path,
                                                                      cli: Cli) -> None:
    store = Store.open(tmp_path / "work" / ".wbtool")
    store.objects.put_bytes(b"a stored object")
    store.close()
    (tmp_path / "work" / ".wbtool" / "config.yaml").unlink()
    res = cli("doctor")
    is_error(res, EXIT_STORE, "has no config.yaml, though it holds objects or runs")
    assert "restore config.yaml from a backup" in res.out



def test_a_store_that_lost_its_config_is_not_given_a_new_one(tmp_path: Path, cli: Cli) -> None:
    """A new config.yaml over stored data would forget the remotes the lost
    one named, and hide that anything was lost: every command refuses."""
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "data", {"a.txt": b"a\n"})),
        "--type", "dataset", check=True)
    cli("remote", "add", "team", str(tmp_path / "remote"), check=True)
    config = tmp_path / "work" / ".wbtool" / "config.yaml"
    config.unlink()
    for argv in (["artifact", "ls"], ["artifact", "log", "ds", str(tmp_path / "data"),
                                      "--type", "dataset"], ["run", "--", "true"]):
        is_error(cli(*argv), EXIT_STORE, f"{config} is missing, but the store holds objects "
                 "or runs; restore it from a backup")
        assert not config.exists()


# Run the command line in a child that kills itself with SIGKILL at one
# point of making the store: just before it opens index.db, or just before
# it publishes config.yaml.
_KILLED_AT = """
import os, runpy, signal, sqlite3, sys

point = sys.argv.pop(1)
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if point == "index":
    connect = sqlite3.connect
    def connecting(*args, **kwargs):
        die()
    sqlite3.connect = connecting
else:
    if point == "config.yaml":  # written under a name in tmp/, as without O_TMPFILE
        from wbtool import fsutil
        fsutil._proc_fds = False
    link = os.link
    def linking(src, dst, *args, **kwargs):
        if os.fspath(dst).endswith("config.yaml"):
            die()
        return link(src, dst, *args, **kwargs)
    os.link = linking
sys.argv[0] = "wbtool"
runpy.run_module("wbtool", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("point", ["index", "config.yaml"])
def test_a_store_whose_making_was_killed_is_finished_by_the_next_write(
        above: Path, point: str) -> None:
    store = above / "proj" / ".wbtool"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT, point, "artifact", "log", "lower",
         str(above / "up.txt"), "--type", "dataset"],
        cwd=above / "proj", capture_output=True, text=True, timeout=120,
        env={**os.environ, "WBTOOL_DIR": str(store)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert store.is_dir() and not (store / "config.yaml").exists()
    assert (store / "index.db").exists() == (point == "config.yaml")

    cli = Cli(above / "proj" / "sub")
    assert "upper" not in cli("artifact", "ls", check=True).out
    is_error(cli("doctor"), EXIT_STORE, str(store), "cut short")
    cli("artifact", "log", "lower", str(above / "up.txt"), "--type", "dataset", check=True)
    assert "lower" in cli("artifact", "ls", check=True).out
    # What the kill left is in tmp/, where gc clears it; none beside config.yaml.
    assert not [p.name for p in store.iterdir() if p.name.endswith(".tmp")]
    if point == "config.yaml":
        assert [p.name for p in (store / "tmp").iterdir() if p.name.startswith(".config")]
    cli("gc", "--grace", "0", check=True)
    assert not [p.name for p in (store / "tmp").iterdir() if p.name.startswith(".config")]


def test_a_store_killed_as_its_unnamed_config_was_named_leaves_nothing_of_it(
        above: Path) -> None:
    from wbtool import fsutil

    fd = fsutil._open_unnamed(str(above), 0o644)
    if fd is None:
        pytest.skip("no unnamed temporary files here")
    os.close(fd)
    store = above / "proj" / ".wbtool"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT, "config.yaml-unnamed", "artifact", "log", "lower",
         str(above / "up.txt"), "--type", "dataset"],
        cwd=above / "proj", capture_output=True, text=True, timeout=120,
        env={**os.environ, "WBTOOL_DIR": str(store)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (store / "index.db").exists() and not (store / "config.yaml").exists()
    assert not [p.name for p in store.iterdir() if p.name.endswith(".tmp")]
    assert not list((store / "tmp").iterdir())
    cli = Cli(above / "proj" / "sub")
    cli("artifact", "log", "lower", str(above / "up.txt"), "--type", "dataset", check=True)
    assert "lower" in cli("artifact", "ls", check=True).out
