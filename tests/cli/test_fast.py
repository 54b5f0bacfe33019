"""The entry point's fast paths answer as the full command line does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli, Result

FULL = "import sys; from wbtool.cli.main import main; main()"


def full(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Result:
    """``args`` through the full (Typer) command line, whatever the fast path would do."""
    proc = subprocess.run([sys.executable, "-c", FULL, *args], capture_output=True, text=True,
                          cwd=cli.cwd, env={**os.environ, **(env or {})}, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("step", ["--3", "³", "9" * 5000])
def test_log_step_that_is_no_int_is_a_usage_error(cli: Cli, step: str) -> None:
    res = cli("log", "loss=1", "--step", step)
    assert "Traceback" not in res.err
    assert (res.code, res.out, res.err) == (2, "", full(cli, "log", "loss=1", "--step", step).err)
    assert res.err.count("\n") == 1 and "is not a valid int" in res.err


def test_log_checks_its_pairs_before_it_opens_the_store(cli: Cli, store_dir: Path) -> None:
    res = cli("log", "=1")
    assert (res.code, res.err) == (2, "wbtool: error: expected KEY=VALUE, not '=1'\n")
    assert not store_dir.exists()  # a call that is refused leaves no store behind
    unusable = {"WBTOOL_DIR": os.devnull + "/store"}
    res = cli("log", "=1", env=unusable)
    assert (res.code, res.err) == (2, full(cli, "log", "=1", env=unusable).err)


@pytest.mark.parametrize(("command", "table"), [
    ("log", "ARTIFACT_LOG_OPTIONS"), ("checkout", "ARTIFACT_CHECKOUT_OPTIONS"),
    ("download", "ARTIFACT_DOWNLOAD_OPTIONS"), ("verify", "ARTIFACT_VERIFY_OPTIONS"),
])
def test_artifact_fast_paths_take_every_option_of_the_full_command(
    command: str, table: str
) -> None:
    # An option the fast path lacks still works (the full command line takes
    # the call), but costs every script that passes it the slow start.
    import typer.main

    from wbtool.cli import fast
    from wbtool.cli.main import app

    full_command = typer.main.get_command(app).commands["artifact"].commands[command]  # type: ignore[attr-defined]
    names = {opt for p in full_command.params if p.param_type_name == "option" for opt in p.opts}
    assert names - {"--help", "-h"} == set(getattr(fast, table))
