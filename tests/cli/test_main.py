"""The ``wbtool`` entry point: how usage errors and bare groups end."""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Cli, make_tree


@pytest.mark.parametrize(("argv", "expected"), [
    (["artifact", "log"],
     "wbtool: error: missing argument 'name' (see 'wbtool artifact log -h')"),
    (["artifact", "log", "ds", "--bogus"],
     "wbtool: error: no such option: --bogus (see 'wbtool artifact log -h')"),
    (["artifact", "log", "ds", "x", "--policy", "sometimes"],
     "wbtool: error: invalid value for '--policy': 'sometimes' is not one of 'mutable', "
     "'immutable' (see 'wbtool artifact log -h')"),
    (["artifact", "lg"],
     "wbtool: error: no such command 'lg'. Did you mean 'log'? (see 'wbtool artifact -h')"),
    (["runs", "delete", "--bogus"],
     "wbtool: error: no such option: --bogus (see 'wbtool runs delete -h')"),
    (["nosuch"], "wbtool: error: no such command 'nosuch' (see 'wbtool -h')"),
    # an unknown option of 'wbtool run' is not taken for the command
    (["run", "--bogus", "--", "echo", "hi"],
     "wbtool: error: no such option: --bogus (see 'wbtool run -h')"),
])
def test_usage_error_is_one_line(cli: Cli, argv: list[str], expected: str) -> None:
    res = cli(*argv)
    assert res.code == 2
    assert res.err == expected + "\n"
    assert res.out == ""


def test_bad_value_of_a_fast_path_command_is_one_line(cli: Cli) -> None:
    # 'wbtool log' parses plain calls itself and hands bad ones to the full parser
    res = cli("log", "loss=1", "--step", "x")
    assert res.code == 2
    assert res.err.count("\n") == 1 and res.err.startswith("wbtool: error: ")
    assert "--step" in res.err and "'x'" in res.err


@pytest.mark.parametrize("argv", [[], ["artifact"], ["artifact", "alias"]])
def test_group_without_command_shows_its_help(cli: Cli, argv: list[str]) -> None:
    res = cli(*argv)
    assert res.code == 2
    assert res.err.startswith(f"Usage: wbtool {' '.join(argv)}".rstrip() + " [OPTIONS] COMMAND")
    assert "Commands:" in res.err


def test_help_and_version_exit_0(cli: Cli) -> None:
    res = cli("artifact", "log", "-h")
    assert res.code == 0 and res.out.startswith("Usage: wbtool artifact log") and res.err == ""
    res = cli("--version")
    assert res.code == 0 and res.out.startswith("wbtool ")


@pytest.mark.parametrize("command", ["add", "log"])  # the full command line, the fast path
def test_ctrl_c_in_a_command_is_one_line(cli: Cli, store_dir: Path, command: str) -> None:
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    cli("artifact", "log", "first", "data", "--type", "dataset", check=True)
    with open(store_dir / "lock", "w") as held:  # the command waits for the store's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [sys.executable, "-m", "wbtool", "artifact", command, "ds", "data", "--type",
             "dataset"], cwd=cli.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while f"-> FLOCK  ADVISORY  READ {proc.pid} " not in Path("/proc/locks").read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (130, "", "wbtool: error: interrupted\n")
