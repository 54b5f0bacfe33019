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


def test_a_table_on_a_terminal_shows_brackets_as_they_are(cli: Cli) -> None:
    """Names are text, not rich markup: "[/b]x" once crashed ``runs list``."""
    for name in ("[/b]x", "[red]y"):
        cli("run", "--name", name, "--", sys.executable, "-c", "", check=True)
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "wbtool", "runs", "list"],
                                stdout=follower, stderr=subprocess.PIPE, cwd=cli.cwd,
                                env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(leader)
    assert b"[/b]x" in shown and b"[red]y" in shown
