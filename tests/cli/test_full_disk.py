"""A full disk under the store: a real small filesystem (tmpfs), filled up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli


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
