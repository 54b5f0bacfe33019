"""How commands write to stdout, through the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_output_into_a_closed_pipe_exits_quietly(cli: Cli, tmp_path: Path,
                                                 unbuffered: str) -> None:
    """``wbtool remote list | head -0``: a reader that went away is no error."""
    cli("remote", "add", "team", str(tmp_path / "shared"), check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    for args in (("remote", "list"), ("remote", "list", "--json"), ("settings", "show"),
                 ("settings", "show", "project", "--json")):
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run([sys.executable, "-m", "wbtool", *args], stdout=write,
                                  stderr=subprocess.PIPE, text=True, cwd=cli.cwd, env=env,
                                  timeout=60)
        finally:
            os.close(write)
        assert (proc.returncode, proc.stderr) == (0, ""), args
