"""Bad values of the options and arguments shared by many commands, through
the real entry point: one line on stderr, a documented exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, is_error, make_tree


@pytest.mark.parametrize("argv", [
    ["artifact", "log", "ds", "data"],  # the entry point's fast path
    ["artifact", "add", "ds", "data"],
    ["artifact", "ls"],
    ["artifact", "verify", "ds"],
    ["artifact", "checkout", "ds", "out"],
    ["runs", "list"],
    ["runs", "export"],
    ["sync"],
])
@pytest.mark.parametrize("project", ["", "a b", "p\x1b"])
def test_an_empty_or_invalid_project_is_a_usage_error(
    cli: Cli, store_dir: Path, argv: list[str], project: str
) -> None:
    make_tree(cli.cwd / "data", {"a.txt": b"a"})
    is_error(cli(*argv, "--project", project), 2, "invalid project name")
    assert not (cli.cwd / "out").exists()


# the entry point's fast path reads "--project"; "-qp" (grouped) is left to click
@pytest.mark.parametrize("option", ["--project", "-qp"])
@pytest.mark.parametrize("project", ["", "a b"])
def test_run_refuses_an_empty_or_invalid_project(
    cli: Cli, store_dir: Path, option: str, project: str
) -> None:
    marker = cli.cwd / "ran"
    res = cli("run", option, project, "--", sys.executable, "-c",
              f"open({str(marker)!r}, 'w')")
    is_error(res, 2, "invalid project name")
    assert not marker.exists()
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())

