"""Shared fixtures: every test gets its own store folder and home."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A script's background job (`./.ci/run &`) starts with SIGINT ignored, and
# every process started from it inherits that: the tests that interrupt
# wbtool need the usual disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private HOME, no inherited WBTOOL_* variables, and a store folder."""
    for key in list(os.environ):
        if key.startswith("WBTOOL_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    store = tmp_path / "work" / ".wbtool"
    monkeypatch.setenv("WBTOOL_DIR", str(store))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    yield store


@pytest.fixture
def finish_runs() -> Iterator[None]:
    """Finish the runs that a test left active in this process."""
    yield
    from wbtool.runs import current

    for run in current.active():
        run.finish()


def quiet_run(project: str, **kw: Any) -> Any:
    """``wbtool.init`` of a run in ``project`` that prints nothing."""
    import wbtool

    return wbtool.init(project=project, settings={"quiet": True, "console": "off"}, **kw)


def history_rows(run: Any) -> list[dict[str, Any]]:
    """The rows of the run's history.jsonl."""
    from wbtool.runs.history import iter_rows

    return list(iter_rows(Path(run._folder.history)))


@pytest.fixture
def store_dir(isolated_env: Path) -> Path:
    return isolated_env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        import json

        return json.loads(self.out)


class Cli:
    """Runs the real ``wbtool`` entry point in a child process."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 check: bool | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "wbtool", *args], capture_output=True, text=True,
            cwd=self.cwd, env={**os.environ, **(env or {})}, input=input, timeout=120,
        )
        res = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and res.code != 0:
            raise AssertionError(f"wbtool {' '.join(args)} exited {res.code}: {res.err}")
        return res


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "work")


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def linked_tree(root: Path) -> Path:
    """A folder whose symbolic links go to a file and a folder inside it, a
    file and a folder outside it, nowhere, and round in loops."""
    folder = make_tree(root / "tree", {"a.txt": b"a", "sub/b.txt": b"bb"})
    make_tree(root / "outside", {"o.txt": b"secret", "od/x.txt": b"x"})
    os.symlink("a.txt", folder / "to-file-in")
    os.symlink("sub", folder / "to-folder-in")
    os.symlink("../outside/o.txt", folder / "to-file-out")
    os.symlink("../outside", folder / "to-folder-out")
    os.symlink("nowhere", folder / "dangling")
    os.symlink("..", folder / "sub" / "up")  # a loop: sub/up/sub/up/...
    os.symlink(".", folder / "sub" / "here")
    return folder


SKIPPED_LINKS = {"to-folder-in": "symlink to a folder", "to-file-out": "outside",
                 "to-folder-out": "outside", "dangling": "dangling symlink",
                 "sub/up": "symlink to a folder", "sub/here": "symlink to a folder"}


def read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def is_error(res: Result, code: int, *words: str) -> None:
    """``res`` failed with ``code`` and one ``wbtool: error:`` line holding ``words``."""
    assert res.code == code, (res.code, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wbtool: error: "), res.err
    for w in words:
        assert w in lines[0], res.err


def unprivileged() -> list[str]:
    """What to put before a child's argv so that file permissions hold for it:
    nothing for an ordinary user; as root, ``setpriv`` without the power to
    write (and read) anywhere. Skips the test where that cannot be done."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}"]


@contextlib.contextmanager
def write_protected(root: Path) -> Iterator[None]:
    """``root`` and everything in it without write permission, until the block ends."""
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    try:
        for p, mode in modes.items():
            p.chmod(mode & ~0o222)
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
