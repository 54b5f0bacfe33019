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
    """Names are text, not rich markup: "[/b]x" once crashed ``runs list``.
    An escape sequence in one is shown escaped, not sent to the terminal."""
    for name in ("[/b]x", "[red]y", "z\x1b[31m"):
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
    assert b"z\\x1b[31m" in shown and b"z\x1b" not in shown



# A tab, a newline and an escape sequence: each would split or colour a plain line.
ODD = "a\tb\nc\x1b[31m"
ODD_SHOWN = "a\\tb\\nc\\x1b[31m"


def test_the_end_of_a_run_shows_its_name_escaped(cli: Cli) -> None:
    """The lines ``wbtool run`` and ``run.finish()`` print at the end of a
    run name it with its control characters escaped, not sent to the terminal."""
    res = cli("run", "--name", ODD, "--", sys.executable, "-c",
              "import wbtool; wbtool.init().log({'loss': 0.5})", check=True)
    assert "\x1b" not in res.err and f"run {ODD_SHOWN} (" in res.err
    script = ("import wbtool; r = wbtool.init(project='p', name=" + repr(ODD)
              + ", settings={'console': 'off'}); r.finish()")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=cli.cwd, timeout=60)
    assert res.returncode == 0 and "\x1b" not in res.stderr
    assert f"run {ODD_SHOWN} (" in res.stderr


def test_runs_list_keeps_each_run_on_one_line(cli: Cli) -> None:
    """A run's name holding control characters (``wbtool run --name`` or
    ``wbtool.init(name=)``) is shown escaped in the plain listing, one line a
    run with the same columns in each, and exactly as it is with ``--json``."""
    import wbtool

    cli("run", "--name", ODD, "--group", ODD, "--job-type", ODD, "--notes", ODD, "--",
        sys.executable, "-c", "", check=True)
    run = wbtool.init(project="uncategorized", name=ODD, group=ODD, job_type=ODD, notes=ODD,
                      settings=wbtool.Settings(quiet=True, console="off"))
    run.finish()
    cli("run", "--name", "plain", "--", sys.executable, "-c", "", check=True)
    lines = cli("runs", "list", check=True).out.splitlines()
    assert len(lines) == 3
    assert {len(line.split("\t")) for line in lines} == {6}
    assert sorted(line.split("\t")[1] for line in lines) == sorted([ODD_SHOWN] * 2 + ["plain"])
    listed = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
    assert sorted(r["name"] for r in listed) == sorted([ODD, ODD, "plain"])
    assert [r["group"] for r in listed if r["name"] == ODD] == [ODD, ODD]


def test_runs_show_escapes_names_and_indents_the_lines_of_notes(cli: Cli) -> None:
    import wbtool

    run = wbtool.init(project="uncategorized", name=ODD, group=ODD, notes="first\nsecond\x1b",
                      config={ODD: 1}, settings=wbtool.Settings(quiet=True, console="off"))
    run.log({ODD: 0.5})
    run.finish()
    out = cli("runs", "show", run.id, check=True).out
    assert "\x1b[" not in out and "\t" not in out
    lines = out.splitlines()
    assert lines[0].startswith(f"{run.id}  {ODD_SHOWN}  (uncategorized, finished)")
    assert f"  group: {ODD_SHOWN}" in lines
    at = lines.index("  notes: first")
    assert lines[at + 1] == "    second\\x1b"
    assert f"  {ODD_SHOWN}: 1" in lines and f"  {ODD_SHOWN}: 0.5" in lines
    assert any(line.startswith(f"  {ODD_SHOWN}  ") for line in lines)  # its chart


def test_artifact_listings_keep_each_path_on_one_line(cli: Cli, tmp_path: Path) -> None:
    """A file whose name holds control characters is one escaped line in
    ``artifact status``, ``diff`` and ``info --files``; exact in ``--json``."""
    data = tmp_path / "data"
    data.mkdir()
    (data / ODD).write_bytes(b"1")
    (data / "plain").write_bytes(b"2")
    cli("artifact", "log", "ds", str(data), "--type", "dataset", check=True)
    (data / ODD).write_bytes(b"3")
    cli("artifact", "add", "ds", str(data), check=True)
    assert cli("artifact", "status", check=True).out.splitlines()[1:] == [
        f"  {ODD_SHOWN}", "  plain"]
    cli("artifact", "log", "ds", check=True)
    assert cli("artifact", "diff", "ds:v0", "ds:v1", check=True).out == f"M {ODD_SHOWN}\n"
    files = cli("artifact", "info", "ds:v1", "--files", check=True).out.splitlines()
    assert files[-2:] == [f"  {ODD_SHOWN}\t1 B", "  plain\t1 B"]
    doc = cli("artifact", "info", "ds:v1", "--files", "--json", check=True).json()
    assert sorted(f["path"] for f in doc["result"]["files"]) == [ODD, "plain"]  # type: ignore[index]


def test_remote_listings_keep_each_remote_on_one_line(cli: Cli, tmp_path: Path) -> None:
    url = str(tmp_path / "remote") + ODD
    shown = url.replace(ODD, ODD_SHOWN)
    added = cli("remote", "add", "team", url, "--default", check=True).out
    assert added == f"added remote team at {shown} (default)\n"
    assert cli("remote", "list", check=True).out == f"team\t{shown}\t*\t\n"
    assert cli("remote", "default", check=True).out == f"team\t{shown}\n"
    listed = cli("remote", "list", "--json", check=True).json()["result"]  # type: ignore[index]
    assert [r["url"] for r in listed] == [url]


WRITERS = [("runs", "list"), ("runs", "list", "--json"), ("runs", "show", "out"),
           ("runs", "history", "out"), ("runs", "history", "out", "--format", "csv"),
           ("artifact", "ls"), ("artifact", "ls", "--json"), ("settings", "show"),
           ("log", "--run", "out", "--json", "b=2"), ("--help",), ("runs", "list", "-h"),
           ("--version",)]


def _into(cli: Cli, args: tuple[str, ...], stdout: int, unbuffered: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    proc = subprocess.run([sys.executable, "-m", "wbtool", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, cwd=cli.cwd, env=env, timeout=60)
    return proc.returncode, proc.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_output_into_a_full_device_is_a_failure_not_a_store_error(
    cli: Cli, tmp_path: Path, unbuffered: str
) -> None:
    """``wbtool runs list > /dev/full`` exited 7, which says the store is
    damaged or its disk full; the store is whole, the output went nowhere."""
    cli("run", "-q", "--id", "out", "--", sys.executable, "-m", "wbtool", "log", "a=1",
        check=True)
    (tmp_path / "data.txt").write_text("x")
    cli("artifact", "log", "data", str(tmp_path / "data.txt"), "--type", "dataset", check=True)
    with open("/dev/full", "w") as full:
        for args in WRITERS:
            code, err = _into(cli, args, full.fileno(), unbuffered)
            assert (code, err) == (1, "wbtool: error: cannot write to standard output: "
                                      "No space left on device\n"), args


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_every_output_into_a_closed_pipe_exits_quietly(cli: Cli, tmp_path: Path,
                                                       unbuffered: str) -> None:
    """``| head -0``, as git takes it: no message, no failure (help text
    exited 1)."""
    cli("run", "-q", "--id", "out", "--", sys.executable, "-m", "wbtool", "log", "a=1",
        check=True)
    (tmp_path / "data.txt").write_text("x")
    cli("artifact", "log", "data", str(tmp_path / "data.txt"), "--type", "dataset", check=True)
    for args in WRITERS:
        read, write = os.pipe()
        os.close(read)
        try:
            assert _into(cli, args, write, unbuffered) == (0, ""), args
        finally:
            os.close(write)


def test_text_that_no_encoding_holds_is_shown_as_its_escape(cli: Cli) -> None:
    """A lone surrogate logged from Python (``"\\ud800"``, not one that stands
    for a byte of a file name) is shown as its escape where standard output
    escapes bytes (``surrogateescape``, the default under ``LANG=C.UTF-8``)."""
    import wbtool

    run = wbtool.init(project="uncategorized", settings=wbtool.Settings(quiet=True, console="off"))
    run.log({"k\ud800": 1, "v": "x\ud800"})
    run.finish()
    for args in (("runs", "show", run.id), ("runs", "export"),
                 ("runs", "history", run.id, "--format", "csv")):
        for errors in ("surrogateescape", "strict"):
            res = cli(*args, env={"PYTHONIOENCODING": f"utf-8:{errors}"})
            assert res.code == 0 and res.err == "", (args, errors, res.err)
            assert "k\\ud800" in res.out, (args, errors)
