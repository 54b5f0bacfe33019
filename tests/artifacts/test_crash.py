"""A wbtool process killed (SIGKILL) at a chosen point leaves a store that the
next command works with: real child processes, killed by a hook at the exact
moment."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree, read_tree

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


# Runs ``wbtool ARGS...`` (after argv[2]) and kills itself (SIGKILL) halfway
# through the first file it writes under the folder argv[1]: half of that
# first write (or kernel-side copy) is done, and nothing after it. With
# argv[2] "named", files are written as on a system without unnamed
# temporary files (O_TMPFILE).
_KILL_HALFWAY_THROUGH_A_FILE_UNDER = """
import os, signal, sys
root = os.path.realpath(sys.argv[1]) + os.sep
if sys.argv[2] == "named":
    import wbtool.fsutil
    wbtool.fsutil._proc_fds = False
def under(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(root)
    except OSError:
        return False
real_write, real_copy = os.write, getattr(os, "copy_file_range", None)
def write(fd, data):
    if under(fd) and len(data) > 1:
        real_write(fd, memoryview(data)[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(fd, data)
def copy_file_range(src, dst, count, *a, **k):
    if under(dst):
        real_copy(src, dst, os.fstat(src).st_size // 2, *a, **k)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_copy(src, dst, count, *a, **k)
os.write = write
if real_copy is not None:
    os.copy_file_range = copy_file_range
from wbtool.cli.fast import main
sys.argv = ["wbtool", *sys.argv[3:]]
main()
"""

# Runs ``wbtool ARGS...`` (after argv[1]) and kills itself (SIGKILL) just
# before it renames a complete temporary file over a file under argv[1].
_KILL_BEFORE_REPLACING_UNDER = """
import os, signal, sys
root = os.path.realpath(sys.argv[1]) + os.sep
real = os.replace
def replace(src, dst, *a, **k):
    if os.path.realpath(os.fspath(dst)).startswith(root):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from wbtool.cli.fast import main
sys.argv = ["wbtool", *sys.argv[2:]]
main()
"""


def _killed(cli: Cli, hook: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", hook, *args], cwd=cli.cwd,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _no_part_of_a_file(root: Path, files: dict[str, bytes]) -> list[str]:
    """The temporary files under ``root``, after checking that every other
    file there is one of ``files``, whole."""
    leftovers = []
    for rel, data in read_tree(root).items():
        if re.fullmatch(r"\..+\.[0-9a-f]{12}\.tmp", rel.rpartition("/")[2]):  # tmp_name's
            leftovers.append(rel)
        else:
            assert data == files[rel], f"{rel}: {len(data)} bytes of {len(files[rel])}"
    return leftovers


_BIG = {"big.bin": os.urandom(3 << 20), "sub/big.bin": os.urandom(2 << 20)}
_PACKED = {f"d/f{i:02d}.txt": os.urandom(3000 + i) for i in range(20)}


@pytest.mark.parametrize(("command", "link", "files"), [
    ("download", "copy", _BIG),  # a kernel-side copy of a loose object
    ("checkout", "copy", _PACKED),  # bytes out of a pack
    ("checkout", "hardlink", _PACKED),  # a pack's object, written out for later links
])
@pytest.mark.parametrize("naming", ["unnamed", "named"])
def test_a_download_killed_halfway_through_a_file_leaves_no_part_of_it_under_its_name(
    cli: Cli, tmp_path: Path, command: str, link: str, files: dict[str, bytes], naming: str,
) -> None:
    tree = make_tree(tmp_path / "tree", files)
    cli("artifact", "log", "ds", str(tree), "-t", "dataset", check=True)
    out = tmp_path / "out"
    args = (["download", "ds", "--root", str(out)] if command == "download"
            else ["checkout", "ds", str(out)])
    _killed(cli, _KILL_HALFWAY_THROUGH_A_FILE_UNDER, str(out), naming,
            "artifact", *args, "--link", link)
    leftovers = _no_part_of_a_file(out, files)
    assert len(leftovers) == (naming == "named"), leftovers  # at most the half-written one
    if leftovers:
        res = cli("artifact", "verify", "ds", "--root", str(out), "--json")
        assert res.code == 4, res.err
        assert f"left by an interrupted write: {leftovers[0]}" in res.json()["result"]["problems"]
    cli("artifact", *args, "--link", link, check=True)  # the same command again
    assert read_tree(out) == files  # whole, and nothing left over
    cli("artifact", "verify", "ds", "--root", str(out), check=True)


@pytest.mark.parametrize("command", ["download", "checkout"])
def test_the_temp_file_of_a_killed_rewrite_goes_at_the_next_one_and_is_never_the_users(
    cli: Cli, tmp_path: Path, command: str,
) -> None:
    old = {"a.bin": os.urandom(200_000), "sub/b.txt": b"b"}
    new = {"a.bin": os.urandom(200_000), "sub/b.txt": b"b"}
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "v0", old)), "-t", "dataset",
        check=True)
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "v1", new)), "-t", "dataset",
        check=True)
    out = tmp_path / "out"
    args = (["download", "ds:v1", "--root", str(out)] if command == "download"
            else ["checkout", "ds:v1", str(out)])
    cli("artifact", *args[:1], "ds:v0", *args[2:], check=True)
    _killed(cli, _KILL_BEFORE_REPLACING_UNDER, str(out), "artifact", *args)
    assert _no_part_of_a_file(out, old) != []  # the new a.bin, whole, under a temp name
    res = cli("artifact", "verify", "ds:v0", "--root", str(out))
    assert res.code == 4 and "left by an interrupted write: .a.bin." in res.err, res.err
    res = cli("artifact", *args)  # a checkout without --force: not a file of the user's
    assert res.code == 0, res.err
    assert read_tree(out) == new
    cli("artifact", "verify", "ds:v1", "--root", str(out), check=True)
