"""The ``wbtool`` entry point: how usage errors and bare groups end."""

from __future__ import annotations

import pytest

from tests.conftest import Cli


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
