"""A wbtool process killed (SIGKILL) at a chosen point leaves a store that the
next command works with: real child processes, killed by a hook at the exact
moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli, make_tree

# Runs ``wbtool ARGS...`` (after argv[1]) and kills itself (SIGKILL) the
# first time it deletes a file under the store's objects/ folder whose name
# ends with argv[1]: objects are going, and nothing after that point runs.
_KILL_AT_FIRST_OBJECT_DELETED = """
import os, signal, sys
real, suffix = os.unlink, sys.argv[1]
def unlink(path, *a, **k):
    real(path, *a, **k)
    path = os.fspath(path)
    if os.sep + "objects" + os.sep in path and path.endswith(suffix):
        os.kill(os.getpid(), signal.SIGKILL)
os.unlink = unlink
from wbtool.cli.fast import main
sys.argv = ["wbtool", *sys.argv[2:]]
main()
"""


def _settled_tree(root: Path, count: int) -> Path:
    """``count`` files old enough for the stat cache to remember them."""
    make_tree(root, {f"f{i}.bin": os.urandom(2000 + i) for i in range(count)})
    old = 1_600_000_000
    for p in root.iterdir():
        os.utime(p, (old, old))
    return root


def _gc_killed_midway(cli: Cli, suffix: str = "") -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AT_FIRST_OBJECT_DELETED, suffix,
         "artifact", "cache", "gc", "--grace", "0"],
        cwd=cli.cwd, capture_output=True, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_logging_again_after_a_gc_killed_while_deleting_objects_works(
    cli: Cli, tmp_path: Path,
) -> None:
    tree = _settled_tree(tmp_path / "tree", 3)  # loose objects
    cli("artifact", "log", "ds", str(tree), "-t", "dataset", check=True)
    cli("artifact", "rm", "ds:v0", check=True)
    _gc_killed_midway(cli)
    for _ in range(2):  # the first log, and every one after it
        res = cli("artifact", "log", "ds", str(tree), "-t", "dataset")
        assert res.code == 0, res.err
    cli("artifact", "verify", "ds:latest", "--root", str(tree), check=True)
    cli("doctor", "--verify", check=True)


def test_files_staged_after_a_gc_killed_while_deleting_packs_are_stored(
    cli: Cli, tmp_path: Path,
) -> None:
    tree = _settled_tree(tmp_path / "tree", 40)  # packed
    cli("artifact", "log", "ds", str(tree), "-t", "dataset", check=True)
    cli("artifact", "rm", "ds:v0", check=True)
    _gc_killed_midway(cli, ".pack")
    cli("artifact", "add", "ds", str(tree), check=True)
    res = cli("artifact", "log", "ds")
    assert res.code == 0, res.err
    cli("artifact", "verify", "ds:latest", "--root", str(tree), check=True)


def test_a_log_whose_stat_cache_names_objects_gone_from_the_store_stores_them_again(
    cli: Cli, tmp_path: Path, store_dir: Path,
) -> None:
    """A store left so by an older wbtool (or objects deleted by hand): the
    log reads the files again instead of failing every time."""
    tree = _settled_tree(tmp_path / "tree", 3)
    cli("artifact", "log", "ds", str(tree), "-t", "dataset", check=True)
    cli("artifact", "rm", "ds:v0", check=True)
    for dirpath, _, files in os.walk(store_dir / "objects"):
        for f in files:
            os.unlink(os.path.join(dirpath, f))
    res = cli("artifact", "log", "ds", str(tree), "-t", "dataset")
    assert res.code == 0, res.err
    cli("artifact", "verify", "ds:latest", "--root", str(tree), check=True)


# Runs ``wbtool ARGS...`` and kills itself (SIGKILL) just before its first
# temp file under the folder argv[1] would be renamed or linked to its name.
_KILL_BEFORE_PUBLISHING_UNDER = """
import os, signal, sys
root = os.path.realpath(sys.argv[1]) + os.sep
def publish(real):
    def wrapped(src, dst, *a, **k):
        if os.path.realpath(os.fspath(dst)).startswith(root):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    return wrapped
os.replace, os.rename, os.link = publish(os.replace), publish(os.rename), publish(os.link)
from wbtool.cli.fast import main
sys.argv = ["wbtool", *sys.argv[2:]]
main()
"""


def test_remote_gc_deletes_the_temp_files_a_killed_sync_left_in_a_folder_remote(
    cli: Cli, tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "tree", {"big.bin": os.urandom(300_000), "a.txt": b"a"})
    remote = tmp_path / "remote"
    remote.mkdir()
    cli("artifact", "log", "ds", str(tree), "-t", "dataset", check=True)
    cli("remote", "add", "team", str(remote), "--default", check=True)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_BEFORE_PUBLISHING_UNDER, str(remote), "sync", "-j", "1"],
        cwd=cli.cwd, capture_output=True, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [p for p in remote.rglob("*") if p.name.endswith(".tmp")]  # the kill left one
    cli("sync", check=True)
    res = cli("gc", "--remote", "team", "--grace", "0", "--yes", "--json")
    assert res.code == 0, res.err
    assert [p for p in remote.rglob("*") if p.name.endswith(".tmp")] == []
    cli("artifact", "verify", "ds", check=True)
    other = tmp_path / "other"
    other.mkdir()
    env = {"WBTOOL_DIR": str(other / ".wbtool")}
    cli("pull", "--remote", str(remote), "ds", env=env, check=True)
    cli("artifact", "verify", "ds", "--root", str(tree), env=env, check=True)
