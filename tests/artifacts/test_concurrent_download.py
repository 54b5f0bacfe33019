"""Several processes writing the same version into one folder at once (every
rank of a distributed training job calling ``artifact.download()``): all of
them succeed and leave the whole, verified tree. Real child processes; where
a race must be certain, one of them waits at a chosen point while another
runs to its end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Cli, make_tree, read_tree

# Runs ``wbtool ARGS...`` (after argv[3]); the first time it is about to
# write the file named argv[1] (a new file, or its temporary file over an
# old one), it creates the file argv[2] + ".waiting" and waits until
# argv[2] + ".go" exists: meanwhile, another process can do its work.
_WAIT_AT_WRITE = """
import contextlib, os, sys, time
from wbtool import fsutil
name, flag = sys.argv[1], sys.argv[2]
held = []

def wait(path):
    if held or os.path.basename(path) != name:
        return
    held.append(path)
    open(flag + ".waiting", "w").close()
    while not os.path.exists(flag + ".go"):
        time.sleep(0.01)

real_new, real_atomic = fsutil.new_file, fsutil.as_atomic

@contextlib.contextmanager
def new_file(path, *a, **k):
    with real_new(path, *a, **k) as fd:
        yield fd
        wait(os.fspath(path))  # written, not yet named

@contextlib.contextmanager
def as_atomic(target, *a, **k):
    with real_atomic(target, *a, **k) as tmp:
        yield tmp
        wait(os.fspath(target))  # the temporary file written, not yet renamed

fsutil.new_file, fsutil.as_atomic = new_file, as_atomic
from wbtool.cli.fast import main
sys.argv = ["wbtool", *sys.argv[3:]]
main()
"""


def _files() -> dict[str, bytes]:
    files = {f"f{i:03}.txt": os.urandom(50 + i) for i in range(120)}
    files.update({f"sub/g{i:03}.txt": os.urandom(70 + i) for i in range(120)})
    files.update({f"big{i}.bin": os.urandom((2 << 20) + i) for i in range(3)})  # thread pool
    return files


def _logged(cli: Cli, tmp_path: Path) -> dict[str, bytes]:
    files = _files()
    cli.cwd.mkdir(exist_ok=True)
    cli("artifact", "log", "ds", str(make_tree(tmp_path / "tree", files)), "-t", "dataset",
        check=True)
    return files


def _held_download(cli: Cli, tmp_path: Path, name: str, out: Path) -> subprocess.Popen[str]:
    """``wbtool artifact download ds:v0 --root OUT`` in a child that waits
    just before writing ``name``."""
    flag = str(tmp_path / "flag")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WAIT_AT_WRITE, name, flag, "artifact", "download", "ds:v0",
         "--root", str(out)], cwd=cli.cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not os.path.exists(flag + ".waiting"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the child never reached the write"
        time.sleep(0.01)
    return proc


def _release(tmp_path: Path, proc: subprocess.Popen[str]) -> tuple[int, str]:
    (tmp_path / "flag.go").touch()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _ends_whole(cli: Cli, tmp_path: Path, held: subprocess.Popen[str], out: Path,
                files: dict[str, bytes]) -> None:
    """Let the held download go on: it succeeds, and ``out`` holds the version whole."""
    code, err = _release(tmp_path, held)
    assert code == 0, err
    assert read_tree(out) == files
    cli("artifact", "verify", "ds:v0", "--root", str(out), check=True)


def test_a_file_written_by_another_download_meanwhile_is_accepted(
    cli: Cli, tmp_path: Path,
) -> None:
    files = _logged(cli, tmp_path)
    out = tmp_path / "out"
    # The first download waits with f005.txt written but not yet named; the
    # second writes the whole tree, f005.txt included, and ends.
    first = _held_download(cli, tmp_path, "f005.txt", out)
    cli("artifact", "download", "ds:v0", "--root", str(out), check=True)
    _ends_whole(cli, tmp_path, first, out, files)


def test_another_download_leaves_a_running_ones_temporary_file_alone(
    cli: Cli, tmp_path: Path,
) -> None:
    files = _logged(cli, tmp_path)
    out = tmp_path / "out"
    make_tree(out, {"sub/g003.txt": b"an older file"})  # replaced through a temporary file
    first = _held_download(cli, tmp_path, "g003.txt", out)
    assert [p.name for p in (out / "sub").iterdir() if p.name.endswith(".tmp")]
    # A second download into the folder, while the first writes there, must
    # not take the first one's temporary file for a killed run's leftover.
    cli("artifact", "download", "ds:v0", "--root", str(out), check=True)
    _ends_whole(cli, tmp_path, first, out, files)


def test_a_different_file_that_appears_meanwhile_is_replaced_as_one_found_there(
    cli: Cli, tmp_path: Path,
) -> None:
    files = _logged(cli, tmp_path)
    out = tmp_path / "out"
    first = _held_download(cli, tmp_path, "f007.txt", out)
    (out / "f007.txt").write_bytes(b"someone else's")
    _ends_whole(cli, tmp_path, first, out, files)  # as with a file there before it


def test_a_folder_that_appears_meanwhile_is_still_refused(cli: Cli, tmp_path: Path) -> None:
    _logged(cli, tmp_path)
    out = tmp_path / "out"
    first = _held_download(cli, tmp_path, "f007.txt", out)
    (out / "f007.txt").mkdir()
    code, err = _release(tmp_path, first)
    assert code == 2, err
    assert "is a folder where the artifact has a file" in err


def _at_once(cli: Cli, args: list[list[str]]) -> list[tuple[int, str]]:
    procs = [subprocess.Popen([sys.executable, "-m", "wbtool", *a], cwd=cli.cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in args]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        results.append((p.returncode, err))
    return results


def test_downloads_into_one_new_folder_at_once_all_succeed(cli: Cli, tmp_path: Path) -> None:
    files = _logged(cli, tmp_path)
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        results = _at_once(cli, [["artifact", "download", "ds:v0", "--root", str(out)]] * 4)
        assert all(code == 0 for code, _ in results), results
        assert read_tree(out) == files
        cli("artifact", "verify", "ds:v0", "--root", str(out), check=True)


def test_checkouts_and_a_download_into_one_folder_at_once_all_succeed(
    cli: Cli, tmp_path: Path,
) -> None:
    files = _logged(cli, tmp_path)
    for attempt in range(2):
        out = str(tmp_path / f"out{attempt}")
        results = _at_once(cli, [["artifact", "checkout", "ds:v0", out]] * 2
                           + [["artifact", "download", "ds:v0", "--root", out]])
        assert all(code == 0 for code, _ in results), results
        assert read_tree(Path(out)) == files
