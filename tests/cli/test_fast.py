"""The entry point's fast paths answer as the full command line does."""

from __future__ import annotations

import os
import subprocess
import sys

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
