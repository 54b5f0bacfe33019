"""``wbtool run``, ``wbtool log`` and ``wbtool alert`` with real child processes,
real signals and a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, is_error, unprivileged, write_protected
from wbtool.runs import rawlog
from wbtool.runs.folder import effective_state
from wbtool.runs.history import iter_rows

PY = sys.executable


def only_run(store: Path) -> Path:
    (folder,) = (store / "runs").iterdir()
    return folder


def record(store: Path) -> dict:
    return json.loads((only_run(store) / "run.json").read_text())


def script(tmp_path: Path, body: str, name: str = "child.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def wbtool_cmd(*args: str) -> list[str]:
    return [PY, "-m", "wbtool", *args]


@pytest.mark.parametrize(("code", "state"), [(0, "finished"), (3, "failed")])
def test_exit_status_and_state(cli: Cli, store_dir: Path, code: int, state: str) -> None:
    res = cli("run", "--", PY, "-c", f"import sys; print('hi'); sys.exit({code})")
    assert res.code == code
    assert res.out == "hi\n"
    doc = record(store_dir)
    assert doc["state"] == state and doc["exit_code"] == code
    assert doc["command"][0] == PY
    assert (only_run(store_dir) / "output.log").read_text() == "hi\n"
    assert "wbtool: run" in res.err and state in res.err


@pytest.mark.parametrize("how", [["-q"], ["WBTOOL_QUIET=true"], ["WBTOOL_SILENT=true"],
                                 ["settings: quiet: true"]])
def test_quiet_leaves_out_the_end_of_run_summary(
    cli: Cli, store_dir: Path, how: list[str]
) -> None:
    """``--quiet`` and the ``quiet`` or ``silent`` setting it stands for, from
    the environment or a settings file, print no end-of-run summary."""
    args, env = [], {}
    for item in how:
        if item.startswith("settings: "):
            store_dir.mkdir(parents=True)
            (store_dir / "settings.yaml").write_text("quiet: true\n")
        elif "=" in item:
            key, _, value = item.partition("=")
            env[key] = value
        else:
            args.append(item)
    res = cli("run", *args, "--", PY, "-c", "print('hi')", env=env)
    assert (res.code, res.out, res.err) == (0, "hi\n", "")
    assert record(store_dir)["state"] == "finished"


def test_arguments_whose_bytes_are_not_utf8(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    bad = os.fsdecode(b"\xff")
    res = cli("run", "--name", bad, "--", "true")
    assert res.code == 2 and res.err.count("\n") == 1 and "run_name" in res.err
    assert not list((store_dir / "runs").glob("*"))  # no run folder left behind
    # values and a command's arguments are kept, as the escapes JSON has for them
    res = cli("run", "--config", f"a={bad}", "--", PY, "-m", "wbtool", "log", f"k{bad}=1")
    assert res.code == 0, res.err
    assert json.loads((only_run(store_dir) / "config.yaml").read_text()) == {"a": bad}
    assert [r[f"k{bad}"] for r in iter_rows(only_run(store_dir) / "history.jsonl")] == [1]
    assert record(store_dir)["command"][-1] == f"k{bad}=1"
    res = cli("runs", "history", only_run(store_dir).name, "--min-step", "0")  # rows re-encoded
    assert res.code == 0 and [json.loads(line)[f"k{bad}"] for line in res.out.splitlines()] == [1]
    # and shown as their escapes wherever text is printed or written
    run_id = only_run(store_dir).name
    for args in (("runs", "history", run_id, "--format", "csv"), ("runs", "show", run_id),
                 ("runs", "export", "-o", str(tmp_path / "runs.csv"))):
        res = cli(*args, env={"PYTHONIOENCODING": "utf-8:strict"})
        assert res.code == 0, (args, res.err)
    assert "\\udcff" in (tmp_path / "runs.csv").read_text()
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("x")
    res = cli("artifact", "log", "ds", str(data), "--type", "d", "--description", bad)
    assert res.code == 2 and res.err.count("\n") == 1 and "not valid UTF-8" in res.err
    assert "Traceback" not in res.err


def test_a_huge_integer_in_the_history_keeps_the_exit_status(cli: Cli, store_dir: Path) -> None:
    huge = "1" + "0" * 400
    res = cli("run", "--", "sh", "-c", f"{PY} -m wbtool log x={huge} y=2; exit 3")
    assert res.code == 3 and "Traceback" not in res.err
    assert f"x  {huge}" in res.err  # the summary shows it; the chart skips it
    assert "wbtool:   y  ▁  min 2  max 2  last 2" in res.err


def test_the_end_of_run_summary_tells_logged_media_as_runs_show_does(
        cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    """A histogram's summary printed its bins and counts, every one of them."""
    body = ("import wbtool\n"
            "run = wbtool.init()\n"
            "run.log({'h': wbtool.Histogram(list(range(100)), num_bins=64),\n"
            "         'img': wbtool.Image([[0, 255], [255, 0]]), 'loss': 0.5})\n")
    res = cli("run", "--", sys.executable, script(tmp_path, body))
    assert res.code == 0, res.err
    assert "wbtool:   h     histogram of 100 values in 64 bins\n" in res.err
    assert "wbtool:   img   image 2x2 png: media/images/img_0_" in res.err
    assert "wbtool:   loss  0.5\n" in res.err and "bins [" not in res.err


def redirected(redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``wbtool ARGS`` with a shell redirection (``2>&-`` closes stderr)."""
    return subprocess.run(["sh", "-c", f'"$@" {redirect}', "sh", *wbtool_cmd(*args)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"])
def test_a_closed_or_full_stderr_keeps_the_exit_status(store_dir: Path, redirect: str) -> None:
    assert redirected(redirect, "run", "--", "sh", "-c", "exit 3").returncode == 3
    assert record(store_dir)["exit_code"] == 3
    assert redirected(redirect, "runs", "show", "nope").returncode == 3


def test_a_closed_stdout_is_is_error(store_dir: Path) -> None:
    assert redirected("", "run", "-q", "--", "true").returncode == 0
    for args in (["runs", "list"], ["runs", "list", "--json"], ["--version"]):
        res = redirected(">&-", *args)
        assert (res.returncode, res.stderr) == (1, "wbtool: error: cannot write to standard "
                                                   "output: Bad file descriptor\n"), args
    assert redirected(">&- 2>&-", "runs", "list").returncode == 1


@pytest.mark.parametrize("redirect", [">&-", "2>&-"])
def test_closed_standard_streams_take_none_of_the_run_s_files(store_dir: Path,
                                                              redirect: str) -> None:
    """Started with descriptor 1 or 2 closed, wbtool's own files took that
    number (in a store that already exists; SQLite guards a new one's): the
    command's output, copied to it, went into the run's history.jsonl."""
    assert redirected("", "run", "-q", "--", "true").returncode == 0
    log = " ".join(wbtool_cmd("log", "a=1"))
    res = redirected(redirect, "run", "-q", "--id", "closed", "--", "sh", "-c",
                     f"echo out; echo err >&2; {log}")
    assert res.returncode == 0
    folder = store_dir / "runs" / "closed"
    lines = (folder / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["a"] for line in lines] == [1]
    assert (folder / "output.log").read_text() == "out\nerr\n"
    assert json.loads((folder / "run.json").read_text())["state"] == "finished"


def test_death_by_signal_is_128_plus_n(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "--", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert res.code == 128 + signal.SIGTERM
    doc = record(store_dir)
    assert doc["state"] == "killed" and doc["exit_code"] == 128 + signal.SIGTERM


def test_a_config_file_that_is_not_yaml_is_one_line(cli: Cli, tmp_path: Path,
                                                   store_dir: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("lr: 0.1\nlayers: [1, 2\n")
    res = cli("run", "--config", str(bad), "--", PY, "-c", "pass")
    assert res.code == 2 and "Traceback" not in res.err
    assert res.err == (f"wbtool: error: config file {bad} is not valid YAML: while parsing a"
                       " flow sequence: expected ',' or ']', but got '<stream end>'"
                       " (line 3, column 1)\n")


@pytest.mark.parametrize("project", ["../../x", "a/b", "two words", ".."])
def test_an_invalid_project_is_a_usage_error(cli: Cli, store_dir: Path, project: str) -> None:
    """Checked as an artifact's project is: sync later skipped such a run."""
    res = cli("run", "-q", "-p", project, "--", PY, "-c", "print('ran')")
    assert res.code == 2 and res.out == "", res
    assert res.err == (f"wbtool: error: invalid project name {project!r}: use only letters, "
                       "digits, '_', '-' and '.'\n")
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())


@pytest.mark.parametrize(("content", "problem"), [
    (b"\xff\xfe", "is not UTF-8 text: byte 0xff (line 1, column 1)"),
    (b"a: &x [*x]\n", "is not plain data: 'a/0' contains itself"),
    (b"lr: 0.1\nc: 2001-12-14\n", "is not plain data: 'c' is a date (2001-12-14)"),
    (b"b: !!binary aGVsbG8=\n", "is not plain data: 'b' is binary data"),
    (b"[" * 5000, "is not valid YAML: nested too deeply"),
], ids=["not-utf8", "self-alias", "date", "binary", "deep"])
def test_a_config_file_wbtool_cannot_store_is_one_line(cli: Cli, tmp_path: Path,
                                                       store_dir: Path, content: bytes,
                                                       problem: str) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_bytes(content)
    res = cli("run", "--config", str(bad), "--", PY, "-c", "pass")
    assert res.code == 2 and res.err.count("\n") == 1 and "Traceback" not in res.err
    assert res.err.startswith(f"wbtool: error: config file {bad} {problem}")


def test_missing_command_is_not_found(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "--", "no-such-command-xyz")
    assert res.code == 3 and "no-such-command-xyz" in res.err
    assert "Traceback" not in res.err
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())


def test_a_file_that_is_not_executable_is_named_as_such(
        cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    (tmp_path / "work" / "train.sh").write_text("echo hi\n")
    res = cli("run", "--", "./train.sh")
    assert res.code == 2 and res.err.count("\n") == 1
    assert res.err.startswith("wbtool: error: cannot run ./train.sh: it is not executable")
    (tmp_path / "work" / "data").mkdir()
    res = cli("run", "--", "./data")
    assert res.code == 2 and res.err == "wbtool: error: cannot run ./data: it is a folder\n"
    assert not (store_dir / "runs").exists() or not any((store_dir / "runs").iterdir())


def test_a_script_without_a_shebang_runs_as_a_shell_would_run_it(
        cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    """It failed to start ("Exec format error", exit status 1), where a shell
    runs it with /bin/sh."""
    script = tmp_path / "work" / "train.sh"
    script.write_text('echo "$0 got $# arguments: $*"; exit 3\n')
    script.chmod(0o755)
    res = cli("run", "-q", "--", "./train.sh", "a", "b c")
    assert (res.code, res.out, res.err) == (3, "./train.sh got 2 arguments: a b c\n", "")
    doc = record(store_dir)
    assert doc["state"] == "failed" and doc["exit_code"] == 3
    binary = tmp_path / "work" / "other-machine"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\0" + bytes(100))  # no shell script
    binary.chmod(0o755)
    res = cli("run", "-q", "--", "./other-machine")
    assert res.code == 1 and res.err == "wbtool: error: Exec format error: ./other-machine\n"


def test_a_store_this_user_cannot_write_is_a_store_error(
        cli: Cli, tmp_path: Path, store_dir: Path) -> None:
    prefix = unprivileged()
    (tmp_path / "f").write_bytes(b"f")
    cli("artifact", "log", "ds", str(tmp_path / "f"), "--type", "data", check=True)
    (store_dir / "runs").mkdir(exist_ok=True)
    with write_protected(store_dir):
        res = subprocess.run([*prefix, PY, "-m", "wbtool", "run", "-q", "--", "true"],
                             capture_output=True, text=True, cwd=cli.cwd, timeout=60)
    assert res.returncode == 7, res.stderr
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"wbtool: error: the store at {store_dir} cannot be written")
    assert not any((store_dir / "runs").iterdir())
    # a run made before: logging to it is refused the same way
    cli("run", "-q", "--id", "ro123456", "--", "true", check=True)
    for args in (["log", "--run", "ro123456", "a=1"], ["alert", "--run", "ro123456", "t", "x"]):
        with write_protected(store_dir):
            res = subprocess.run([*prefix, PY, "-m", "wbtool", *args],
                                 capture_output=True, text=True, cwd=cli.cwd, timeout=60)
        assert res.returncode == 7 and res.stderr.count("\n") == 1, res.stderr
        assert "cannot be written" in res.stderr


def test_options_after_the_command_belong_to_it(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "--name", "n1", "--tag", "a", "--tag", "b", "--config", "lr=0.5",
              "--config", "opt=adam", PY, "-c", "import sys; print(sys.argv[1:])", "--name",
              "x")
    assert res.code == 0 and res.out == "['--name', 'x']\n"
    doc = record(store_dir)
    assert doc["name"] == "n1" and doc["tags"] == ["a", "b"]
    config = json.loads((only_run(store_dir) / "config.yaml").read_text())
    assert config == {"lr": 0.5, "opt": "adam"}


def test_interleaved_streams_and_no_trailing_newline(cli: Cli, store_dir: Path,
                                                      tmp_path: Path) -> None:
    child = script(tmp_path, """
        import sys
        for i in range(50):
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
        sys.stdout.write("no newline at the end")
    """)
    res = cli("run", "-q", "--", PY, child)
    assert res.code == 0
    assert res.out == "".join(f"out {i}\n" for i in range(50)) + "no newline at the end"
    assert res.err == "".join(f"err {i}\n" for i in range(50))
    log = (only_run(store_dir) / "output.log").read_text().splitlines()
    assert [x for x in log if x.startswith("out")] == [f"out {i}" for i in range(50)]
    assert [x for x in log if x.startswith("err")] == [f"err {i}" for i in range(50)]
    assert "no newline at the end" in log
    from wbtool.runs.rawlog import read_frames

    raw = list(read_frames(only_run(store_dir) / "output.raw"))
    assert {s for _t, s, _d in raw} == {"stdout", "stderr"}
    assert b"".join(d for _t, s, d in raw if s == "stdout").decode() == res.out


def test_ten_megabytes_of_output(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import sys
        line = ("x" * 99 + "\\n").encode()
        for _ in range(100_000):
            sys.stdout.buffer.write(line)
        sys.stdout.buffer.write(b"\\xff\\xfe binary tail\\n")
    """)
    res = subprocess.run(wbtool_cmd("run", "-q", "--", PY, child), capture_output=True,
                         timeout=120)
    assert res.returncode == 0
    assert len(res.stdout) == 100_000 * 100 + len(b"\xff\xfe binary tail\n")
    log = (only_run(store_dir) / "output.log").read_bytes()
    assert log.count(b"\n") == 100_001 and log.endswith(b"binary tail\n")
    from wbtool.runs.rawlog import read_frames

    raw = only_run(store_dir) / "output.raw"
    assert b"".join(d for _t, _s, d in read_frames(raw)) == res.stdout


def test_raw_record_of_plain_text_mixed_with_escapes(cli: Cli, store_dir: Path,
                                                    tmp_path: Path) -> None:
    child = script(tmp_path, """
        import os, sys, time
        block = b"".join(b"line %05d of plain text\\n" % i for i in range(4000))
        time.sleep(0.5)  # wbtool has made its pipes larger than a block by now
        for stream in (sys.stdout.buffer, sys.stderr.buffer) * 3:
            stream.flush()
            os.write(stream.fileno(), block)  # one write: wbtool reads it in large chunks
            stream.write(b"\\x1b[31mred\\x1b[0m\\r50%\\r100%\\n" + block[:5000])
            stream.flush()
            time.sleep(0.01)
        sys.stdout.buffer.write(block + b"no newline")
    """)
    res = subprocess.run(wbtool_cmd("run", "-q", "--", PY, child), capture_output=True,
                         timeout=120)
    assert res.returncode == 0
    from wbtool.runs.rawlog import read_frames

    frames = list(read_frames(only_run(store_dir) / "output.raw"))
    assert b"".join(d for _t, s, d in frames if s == "stdout") == res.stdout
    assert b"".join(d for _t, s, d in frames if s == "stderr") == res.stderr
    # Plain text read in large chunks is kept once, in output.log: the raw
    # record points at it there.
    raw = (only_run(store_dir) / "output.raw").read_bytes()
    assert b'"log":' in raw and len(raw) < len(res.stdout)
    log = (only_run(store_dir) / "output.log").read_bytes()
    assert b"\x1b" not in log and log.split(b"\n").count(b"100%") == 6
    assert log.endswith(b"no newline\n")


def test_progress_bar_under_a_real_terminal(store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import sys, time
        print("tty" if sys.stdout.isatty() else "pipe", flush=True)
        for i in range(101):
            sys.stdout.write(f"\\r\\x1b[32m{i:3d}%\\x1b[0m |{'#' * (i // 10):<10}|")
            sys.stdout.flush()
        print()
        print("done")
    """)
    pid, fd = pty.fork()
    if pid == 0:  # the child: wbtool with a terminal as stdout
        os.execvpe(PY, wbtool_cmd("run", "-q", "--", PY, child), os.environ)
    seen = b""
    while True:
        try:
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                break
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"tty" in seen and b"\x1b[32m" in seen  # the user saw a terminal, colours intact
    log = (only_run(store_dir) / "output.log").read_text().splitlines()
    assert log == ["tty", "100% |##########|", "done"]


def test_sigint_reaches_the_command(store_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    child = script(tmp_path, f"""
        import signal, sys, time
        def on_int(signum, frame):
            open({str(marker)!r}, "w").write("interrupted")
            sys.exit(130)
        signal.signal(signal.SIGINT, on_int)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--", PY, child), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert marker.read_text() == "interrupted"
    doc = record(store_dir)
    assert doc["state"] == "killed" and doc["exit_code"] == 130


def test_sigterm_reaches_the_command_while_nothing_reads_its_output(
    store_dir: Path, tmp_path: Path
) -> None:
    """wbtool, blocked writing to a reader that had stopped reading, passed
    the signal on only once that reader read again or went away."""
    started, marker = tmp_path / "started", tmp_path / "marker"
    child = script(tmp_path, f"""
        import os, signal, sys
        def on_term(signum, frame):
            open({str(marker)!r}, "w").close()
            os._exit(7)
        signal.signal(signal.SIGTERM, on_term)
        open({str(started)!r}, "w").close()
        while True:
            sys.stdout.write("x" * 1000 + "\\n")
    """)
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--no-stats", "--", PY, child),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        time.sleep(1)  # the pipes fill up: wbtool waits for this test to read
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while not marker.exists():
            assert time.monotonic() < deadline, "the command never got SIGTERM"
            time.sleep(0.05)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 7
    doc = record(store_dir)
    assert doc["state"] == "killed" and doc["exit_code"] == 7


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_sigusr_reaches_the_command_and_ends_nothing(store_dir: Path, tmp_path: Path,
                                                     signum: int) -> None:
    """A batch system's notice (SIGUSR1 before the time limit) ended wbtool,
    and with it the command that was to save a checkpoint."""
    child = script(tmp_path, f"""
        import signal, time
        got = []
        signal.signal({int(signum)}, lambda signum, frame: got.append(signum))
        print("ready", flush=True)
        while not got:
            time.sleep(0.05)
        print("checkpoint saved", flush=True)
    """)
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--", PY, child), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (0, "checkpoint saved\n", "")
    doc = record(store_dir)
    assert doc["state"] == "finished" and doc["exit_code"] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_before_the_command_starts_leaves_a_killed_run(
    store_dir: Path, tmp_path: Path, signum: int
) -> None:
    """wbtool died of it while it set the run up (here: waiting for a busy
    store), and left a run that read as running, then crashed."""
    import sqlite3

    assert subprocess.run(wbtool_cmd("run", "-q", "--", "true")).returncode == 0
    started = tmp_path / "started"
    index = sqlite3.connect(store_dir / "index.db", isolation_level=None)
    index.execute("BEGIN EXCLUSIVE")
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--id", "early", "--", "touch", str(started)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (store_dir / "runs" / "early").exists():
            assert time.monotonic() < deadline, "the run was never set up"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signum)
        time.sleep(0.3)
        index.execute("ROLLBACK")
        _, err = proc.communicate(timeout=60)
    finally:
        index.close()
        proc.kill()
    assert proc.returncode == 128 + signum
    assert "came before the command started: it was not started" in err
    assert not started.exists()
    doc = json.loads((store_dir / "runs" / "early" / "run.json").read_text())
    assert doc["state"] == "killed" and doc["exit_code"] == 128 + signum


def test_a_signal_ignored_under_nohup_stays_ignored_for_the_command(store_dir: Path) -> None:
    def nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    res = subprocess.run(
        wbtool_cmd("run", "-q", "--", PY, "-c",
                   "import signal; print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)"),
        capture_output=True, text=True, timeout=60, preexec_fn=nohup)
    assert (res.returncode, res.stdout) == (0, "True\n")


def test_second_sigint_kills_a_stubborn_command(store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--", PY, child), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 128 + signal.SIGKILL
    assert record(store_dir)["state"] == "killed"


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# The process whose pid the command writes: itself, or a worker it started
# (a shell's pipeline, DataLoader workers), which dies with wbtool too.
_WATCHED = {
    "the command": "watched = os.getpid()",
    "what it started": "watched = subprocess.Popen([sys.executable, '-c', "
                       "'import time; time.sleep(120)']).pid",
}


@pytest.mark.parametrize("watched", sorted(_WATCHED))
def test_sigkill_of_wbtool_leaves_nothing_running(
    store_dir: Path, tmp_path: Path, watched: str
) -> None:
    pidfile = tmp_path / "pid"
    child = script(tmp_path, f"""
        import os, subprocess, sys, time
        {_WATCHED[watched]}
        open({str(pidfile)!r}, "w").write(str(watched))
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--", PY, child), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    pid = int(pidfile.read_text())
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{watched} outlived wbtool")
        time.sleep(0.1)
    assert effective_state(record(store_dir)) == "crashed"


def test_a_closed_output_pipe_ends_the_command_as_it_would_without_wbtool(
    store_dir: Path,
) -> None:
    """``wbtool run -- yes | head -1``: once the reader is gone the command's
    next write fails (SIGPIPE), instead of wbtool recording ``yes`` forever."""
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--", "yes"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"y\n"
    proc.stdout.close()  # as head does after its line
    try:
        assert proc.wait(timeout=30) == 128 + signal.SIGPIPE
    finally:
        proc.kill()
        proc.stderr.close()
    assert record(store_dir)["exit_code"] == 128 + signal.SIGPIPE
    assert (only_run(store_dir) / "output.log").stat().st_size < 64 << 20


def test_a_run_deleted_while_it_runs_keeps_the_command_status(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    proc = subprocess.Popen(
        wbtool_cmd("run", "--id", "gone", "--", "sh", "-c",
                   f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (store_dir / "runs" / "gone" / "run.json").exists():
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        cli("runs", "delete", "gone", "--yes", "--force", check=True)
        go.touch()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "was deleted while it ran" in err and "Error" not in err
    assert "None" not in err  # no end-of-run summary of a run that is gone
    assert not (store_dir / "runs" / "gone").exists()


def test_wbtool_run_inside_wbtool_run_is_a_run_of_its_own(cli: Cli, store_dir: Path) -> None:
    """It took the outer run's id from the environment: "run … already exists"."""
    inner = " ".join([*wbtool_cmd("run", "-q", "--name", "inner", "--"), "sh", "-c",
                      f"'{PY} -m wbtool log x=1; exit 7'"])
    res = cli("run", "-q", "--name", "outer", "--", "sh", "-c",
              f"{inner}; echo inner=$?; {PY} -m wbtool log y=2")
    assert res.code == 0 and res.out == "inner=7\n", res
    runs = {json.loads((f / "run.json").read_text())["name"]: f
            for f in (store_dir / "runs").iterdir()}
    assert sorted(runs) == ["inner", "outer"]
    assert [r["x"] for r in iter_rows(runs["inner"] / "history.jsonl")] == [1]
    assert [r["y"] for r in iter_rows(runs["outer"] / "history.jsonl")] == [2]
    assert json.loads((runs["inner"] / "run.json").read_text())["exit_code"] == 7


def test_python_child_joins_the_run(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import wbtool
        run = wbtool.init(project="ignored-if-same", config={"bs": 8}, tags=["child"])
        print("child run", run.id, flush=True)
        for i in range(5):
            run.log({"acc": i / 10})
        run.summary["best"] = 0.4
        run.finish()
    """)
    res = cli("run", "--project", "p", "--tag", "outer", "--config", "lr=0.1", "--",
              PY, child)
    assert res.code == 0, res.err
    folder = only_run(store_dir)
    assert res.out == f"child run {folder.name}\n"
    doc = record(store_dir)
    assert doc["state"] == "finished" and doc["tags"] == ["outer", "child"]
    rows = list(iter_rows(folder / "history.jsonl"))
    assert [r["acc"] for r in rows] == [0.0, 0.1, 0.2, 0.3, 0.4]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best"] == 0.4 and summary["acc"] == 0.4
    assert json.loads((folder / "config.yaml").read_text()) == {"lr": 0.1, "bs": 8}
    assert (folder / "output.log").read_text() == res.out  # recorded once, not twice


def test_a_python_child_that_names_another_id_joins_the_run_and_is_told(
        cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    """init(id=...) under wbtool run started a second run beside the launched
    one, silently: the console and exit status went to one, the metrics to
    the other. The id is ignored, with a warning, as under a sweep agent."""
    child = script(tmp_path, """
        import wbtool
        run = wbtool.init(id="explicit", config={"bs": 8})
        print("child run", run.id, flush=True)
        run.log({"acc": 0.5})
        run.finish()
    """)
    res = cli("run", "-q", "--project", "p", "--", PY, child)
    assert res.code == 0, res.err
    folder = only_run(store_dir)  # one run: the launched one
    assert folder.name != "explicit" and res.out == f"child run {folder.name}\n"
    assert [r["acc"] for r in iter_rows(folder / "history.jsonl")] == [0.5]
    assert res.err == (f"wbtool: WARNING init(id='explicit') ignored: this program runs under "
                       f"`wbtool run`, whose run {folder.name} it joins (`wbtool run --id "
                       "explicit -- …` names that run)\n")
    # The launcher named with that id: the same run, and nothing to tell.
    res = cli("run", "-q", "--id", "explicit", "--project", "p", "--", PY, child)
    assert res.code == 0 and res.out == "child run explicit\n" and res.err == "", res


def test_forked_workers_of_a_joined_program_join_the_run_too(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """Forked workers used their copy of the parent's run: each wrote the
    parent's pending row again."""
    child = script(tmp_path, """
        import multiprocessing, wbtool

        def work(i):
            run = wbtool.init()
            run.log({"worker": i})
            run.finish()

        if __name__ == "__main__":
            run = wbtool.init()
            run.log({"main": 1})
            workers = [multiprocessing.get_context("fork").Process(target=work, args=(i,))
                       for i in range(3)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            run.log({"main": 2})
    """)
    res = cli("run", "-q", "--", PY, child)
    assert res.code == 0, res.err
    rows = list(iter_rows(only_run(store_dir) / "history.jsonl"))
    assert sorted(r["worker"] for r in rows if "worker" in r) == [0, 1, 2]
    assert [r["main"] for r in rows if "main" in r] == [1, 2]
    assert len(rows) == 5 and record(store_dir)["state"] == "finished"


def test_programs_that_join_a_run_side_by_side_tell_their_rows_apart(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """Two programs of one ``wbtool run`` (ranks a launcher starts) both join
    its run and each counts its own steps: the rows of one that joined while
    another was writing carry its label (x_label, else host:pid), as those of
    a secondary of a shared run do, so that rows of equal ``_step`` are told
    apart. A program alone, or after the others ended, writes as before."""
    worker = script(tmp_path, """
        import sys, wbtool
        run = wbtool.init(settings={"x_disable_stats": True})
        print("joined", flush=True)
        sys.stdin.readline()
        for i in range(3):
            run.log({"loss": int(sys.argv[1]) * 10 + i})
        run.finish()
    """, "worker.py")
    main = script(tmp_path, f"""
        import subprocess, sys
        def start(rank):
            p = subprocess.Popen([sys.executable, {worker!r}, str(rank)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline() == "joined\\n"
            return p
        first, second = start(1), start(2)  # both write from here on
        for p in (second, first):
            p.communicate("go\\n")
            assert p.returncode == 0
        print(second.pid)
        third = start(3)  # alone again
        third.communicate("go\\n")
        assert third.returncode == 0
    """, "main.py")
    res = cli("run", "-q", "--", PY, main)
    assert res.code == 0, res.err
    import socket

    folder = only_run(store_dir)
    rows = list(iter_rows(folder / "history.jsonl"))
    by_rank = {rank: [r for r in rows if r["loss"] // 10 == rank] for rank in (1, 2, 3)}
    assert [r["_step"] for r in by_rank[1]] == [r["_step"] for r in by_rank[2]] == [0, 1, 2]
    assert {r.get("_label") for r in by_rank[1]} == {None}
    assert {r.get("_label") for r in by_rank[2]} == {f"{socket.gethostname()}:{res.out.strip()}"}
    assert [(r["_step"], r.get("_label")) for r in by_rank[3]] == [(3, None), (4, None),
                                                                    (5, None)]
    assert not (folder / ".writers.json").exists()
    shown = cli("runs", "show", folder.name, check=True).out
    assert f"loss ({socket.gethostname()}:" in shown  # each program's own chart


def test_a_joined_program_deletes_summary_keys(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import wbtool
        run = wbtool.init()
        run.log({"acc": 0.1, "loss": 2.0})
        run.summary["tmp"] = 1
        run.summary.update({"kept": 2})
        run._write_summary()  # as the periodic flush does
        del run.summary["tmp"], run.summary["acc"]
        run.finish()
    """)
    res = cli("run", "--project", "p", "--", PY, child)
    assert res.code == 0, res.err
    summary = json.loads((only_run(store_dir) / "summary.json").read_text())
    assert "tmp" not in summary and "acc" not in summary
    assert summary["loss"] == 2.0 and summary["kept"] == 2


def test_capture_metrics_from_a_shell_script(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "-q", "--capture-metrics", r"loss=(?P<loss>[0-9.]+)",
              "--capture-metrics", r"epoch (?P<epoch>\d+)", "--",
              "sh", "-c", "for i in 1 2 3; do echo \"epoch $i loss=0.$i\"; done")
    assert res.code == 0
    rows = list(iter_rows(only_run(store_dir) / "history.jsonl"))
    assert [(r["epoch"], r["loss"]) for r in rows] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    bad = cli("run", "--capture-metrics", "no groups", "--", "true")
    assert bad.code == 2 and "named group" in bad.err


def test_capture_metrics_sees_a_line_written_in_pieces(cli: Cli, store_dir: Path) -> None:
    """A line that came in two reads reached the patterns as two lines: the
    value was cut short (0.1 for 0.125), or the row lost."""
    res = cli("run", "-q", "--capture-metrics", r"loss=(?P<loss>[0-9.]+)", "--", "sh", "-c",
              "printf 'step 1 loss=0.1'; sleep 0.3; echo 25; printf 'step 2 lo'; sleep 0.3; "
              "echo ss=0.5; printf 'loss=0.75'")
    assert res.code == 0, res.err
    rows = list(iter_rows(only_run(store_dir) / "history.jsonl"))
    assert [r["loss"] for r in rows] == [0.125, 0.5, 0.75]


def test_a_captured_integer_too_long_to_convert_is_kept_as_text(
    cli: Cli, store_dir: Path
) -> None:
    digits = "7" * 5000  # past Python's int conversion limit
    res = cli("run", "-q", "--capture-metrics", r"v=(?P<v>[0-9]+)", "--",
              "sh", "-c", f"echo v={digits}; echo v=12")
    assert res.code == 0, res.err
    rows = list(iter_rows(only_run(store_dir) / "history.jsonl"))
    assert [r["v"] for r in rows] == [digits, 12]  # not infinity


@pytest.mark.slow
def test_wbtool_log_from_concurrent_shell_loops(cli: Cli, store_dir: Path) -> None:
    wb = f"{PY} -m wbtool"
    loop = f"for i in $(seq 1 100); do {wb} log loop=$1 i=$i; done"
    cmd = f"for n in 1 2 3 4 5 6 7 8; do sh -c '{loop}' sh $n & done; wait"
    # 800 processes: give a loaded machine time (the fast entry path takes ~60 ms each).
    res = subprocess.run(wbtool_cmd("run", "-q", "--", "sh", "-c", cmd), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    rows = list(iter_rows(only_run(store_dir) / "history.jsonl"))
    assert len(rows) == 800
    assert sorted(r["_step"] for r in rows) == list(range(800))
    for n in range(1, 9):
        assert [r["i"] for r in rows if r["loop"] == n] == list(range(1, 101))


def test_wbtool_log_takes_numbers_as_bc_and_printf_write_them(cli: Cli, store_dir: Path) -> None:
    """``loss=$(echo 1/4 | bc -l)`` gives ``.25``: it was kept as the text
    ".25", which no chart or summary reads as a number."""
    cli("run", "-q", "--id", "shell", "--", "true", check=True)
    pairs = {"a": ".25", "b": "-.5", "c": "+3", "d": "5.", "e": "+.5e-3", "f": "-0.",
             "keep1": "007", "keep2": "1_000", "keep3": "0x10", "keep4": "1.2.3", "keep5": ".",
             "keep6": "+", "keep7": "٣", "keep8": "-e5"}
    cli("log", "--run", "shell", *(f"{k}={v}" for k, v in pairs.items()), check=True)
    res = cli("run", "-q", "--config", "lr=.001", "--", "true", check=True)
    assert res.code == 0
    row = next(iter_rows(store_dir / "runs" / "shell" / "history.jsonl"))
    assert {k: row[k] for k in "abcdef"} == {"a": 0.25, "b": -0.5, "c": 3, "d": 5.0,
                                               "e": 0.0005, "f": 0.0}
    assert type(row["c"]) is int
    assert {k: row[k] for k in pairs if k.startswith("keep")} == {
        k: v for k, v in pairs.items() if k.startswith("keep")}
    config = [json.loads((d / "config.yaml").read_text()) for d in (store_dir / "runs").iterdir()
              if d.name != "shell"]
    assert config == [{"lr": 0.001}]


def test_wbtool_log_keeps_a_number_too_long_to_convert_as_text(
        cli: Cli, store_dir: Path) -> None:
    """An integer of more digits than Python converts ended in a traceback."""
    cli("run", "-q", "--id", "long", "--", "true", check=True)
    digits = "9" * 5000
    res = cli("log", "--run", "long", f"n={digits}", f"m=+{digits}")
    assert res.code == 0 and "Traceback" not in res.err, res.err
    row = next(iter_rows(store_dir / "runs" / "long" / "history.jsonl"))
    assert (row["n"], row["m"]) == (digits, "+" + digits)


def test_wbtool_log_steps_commit_and_summary(cli: Cli, store_dir: Path) -> None:
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.finish()
    assert cli("log", "--run", run.id, "a=1", "b=true", "c=hello", "d=[1,2]").code == 0
    assert cli("log", "--run", run.id, "--no-commit", "x=0.5").code == 0
    assert cli("log", "--run", run.id, "y=2").code == 0
    assert cli("log", "--run", run.id, "--step", "10", "z=1").code == 0
    assert cli("log", "--run", run.id, "--step", "10", "w=2", "--commit").code == 0
    low = cli("log", "--run", run.id, "--step", "3", "q=1")
    assert low.code == 2 and "lower" in low.err
    assert cli("log", "--run", run.id, "--summary", "best=9").code == 0
    for stepped in (["--step", "11"], ["--commit"], ["--no-commit"]):
        res = cli("log", "--run", run.id, "--summary", *stepped, "best=8")
        assert res.code == 2 and "--summary" in res.err and res.err.count("\n") == 1
    rows = [{k: v for k, v in r.items() if k[:2] != "_r" and k[:2] != "_t"}
            for r in iter_rows(Path(run._folder.history))]
    assert rows == [{"a": 1, "b": True, "c": "hello", "d": [1, 2], "_step": 0},
                    {"x": 0.5, "y": 2, "_step": 1}, {"z": 1, "w": 2, "_step": 10}]
    summary = json.loads(Path(run._folder.summary).read_text())
    assert summary["best"] == 9 and summary["w"] == 2
    no_run = cli("log", "a=1")
    assert no_run.code == 2 and "WBTOOL_RUN_ID" in no_run.err
    assert cli("log", "--run", "nope1234", "a=1").code == 3
    assert cli("log", "--run", run.id, "novalue").code == 2
    helped = cli("log", "--help")
    assert helped.code == 0 and "KEY=VALUE" in helped.out


def test_wbtool_log_refuses_the_keys_wbtool_sets_in_every_row(cli: Cli, store_dir: Path) -> None:
    """``wbtool log _step=5 a=1`` logged a=1 at the next step without a word,
    ``_label=x`` was taken for the process of a shared run, and ``--summary
    _step=99`` set the step a resumed run catches its summary up from."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.finish()
    is_error(cli("log", "--run", run.id, "_step=5", "a=1"), 2,
             "cannot log '_step': the key is reserved (pass --step N to log to a given step)")
    for key in ("_runtime", "_timestamp", "_label"):
        for summary in ([], ["--summary"]):
            is_error(cli("log", "--run", run.id, *summary, f"{key}=1", "a=1"), 2,
                     f"cannot log {key!r}: the key is reserved (wbtool sets it in every row)")
    is_error(cli("log", "--run", run.id, "--summary", "_step=99"), 2,  # --step is no way there
             "cannot log '_step': the key is reserved (wbtool sets it in every row)")
    assert cli("log", "--run", run.id, "_mine=1", "a=1").code == 0  # not one of them
    (row,) = iter_rows(Path(run._folder.history))
    assert (row["_step"], row["_mine"], row["a"]) == (0, 1, 1) and "_label" not in row
    assert json.loads(Path(run._folder.summary).read_text())["_step"] == 0


def test_wbtool_log_keeps_the_summaries_define_metric_asked_for(
    cli: Cli, store_dir: Path
) -> None:
    """A shell step that logs to a run whose program defined a metric's
    summary goes on aggregating it over the whole run."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.define_metric("loss", summary="min,mean")
    run.define_metric("acc", summary="max")
    run.log({"loss": 3.0, "acc": 0.5})
    run.log({"loss": 1.0, "acc": 0.25})
    run.summary["note"] = "set by hand"
    run.finish()
    cli("log", "--run", run.id, "loss=0.5", "acc=0.125", "note=logged", "other=7", check=True)
    cli("log", "--run", run.id, "loss=5.5", check=True)
    summary = json.loads(Path(run._folder.summary).read_text())
    assert summary["loss"] == {"min": 0.5, "mean": 2.5}
    assert summary["acc"] == {"max": 0.5}
    assert (summary["note"], summary["other"], summary["_step"]) == ("set by hand", 7, 3)
    shown = cli("runs", "show", run.id, "--json", check=True).json()["result"]["summary"]
    assert shown["loss"] == {"min": 0.5, "mean": 2.5}


def test_a_resumed_run_keeps_its_summary_and_runtime_going(
    cli: Cli, store_dir: Path
) -> None:
    """The launcher's summary was read when it resumed the run: writing it
    back at the end must not undo what ``wbtool log`` recorded since."""
    log = f"{PY} -m wbtool log"
    cli("run", "-q", "--id", "again", "--", "sh", "-c", f"sleep 0.5; {log} a=1", check=True)
    cli("run", "-q", "--resume", "allow", "--id", "again", "--", "sh", "-c", f"{log} a=2",
        check=True)
    summary = json.loads((store_dir / "runs" / "again" / "summary.json").read_text())
    assert (summary["a"], summary["_step"]) == (2, 1)
    first, second = iter_rows(store_dir / "runs" / "again" / "history.jsonl")
    assert first["_runtime"] >= 0.5 and second["_runtime"] > first["_runtime"]  # it goes on
    shown = cli("runs", "show", "again", "--json", check=True).json()["result"]["summary"]
    assert shown["a"] == 2


def test_resume_errors_name_wbtool_runs_own_options(cli: Cli, store_dir: Path) -> None:
    """On the command line the way out is ``--resume allow``, not Python's
    ``resume='allow'``; ``wbtool.init`` still says the latter."""
    cli("run", "-q", "--id", "taken", "--", "true", check=True)
    is_error(cli("run", "--id", "taken", "--", "true"), 5, "pass --resume allow to continue it")
    is_error(cli("run", "--id", "taken", "--resume", "never", "--", "true"), 5,
             "already exists and --resume never")
    is_error(cli("run", "--id", "other", "--resume", "must", "--", "true"), 3,
             "(--resume must) not found: other")
    is_error(cli("run", "--resume", "must", "--", "true"), 2, "--resume must needs --id")
    res = subprocess.run([PY, "-c", "import wbtool; wbtool.init(id='taken')"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "pass resume='allow' to continue it" in res.stderr


def test_resuming_with_another_config_value_warns_unless_allowed(
    cli: Cli, store_dir: Path
) -> None:
    """``--resume allow --config lr=0.2`` wrote over the run's saved 0.1 without
    a word; it still does, with a warning that names the setting's variable."""
    cli("run", "-q", "--id", "cfg", "--config", "lr=0.1", "--", "true", check=True)
    res = cli("run", "--resume", "allow", "--id", "cfg", "--config", "lr=0.2", "--", "true",
              check=True)
    assert ("wbtool: WARNING resuming run cfg with config lr=0.2 over its saved 0.1 "
            "(set WBTOOL_ALLOW_VAL_CHANGE=true to change it without this warning)") in res.err
    res = cli("run", "--resume", "allow", "--id", "cfg", "--config", "lr=0.2", "--config",
              "bs=4", "--", "true", check=True)
    assert "WARNING" not in res.err
    res = cli("run", "--resume", "allow", "--id", "cfg", "--config", "lr=0.3", "--", "true",
              env={"WBTOOL_ALLOW_VAL_CHANGE": "true"}, check=True)
    assert "WARNING" not in res.err
    shown = cli("runs", "show", "cfg", "--json", check=True).json()["result"]["config"]
    assert shown == {"lr": 0.3, "bs": 4}


def test_a_launched_runs_programs_go_on_aggregating_its_metrics(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """A metric's max and mean are over the whole run: a second program of
    the command, and the program of the run resumed, go on from what the
    earlier ones logged instead of starting again from their own values."""
    child = script(tmp_path, """
        import sys, wbtool
        run = wbtool.init()
        run.define_metric("acc", summary="max,mean")
        for value in sys.argv[1:]:
            run.log({"acc": float(value)})
        run.finish()
    """)

    def acc() -> dict:
        return json.loads((store_dir / "runs" / "two" / "summary.json").read_text())["acc"]

    cli("run", "-q", "--id", "two", "--", "sh", "-c", f"{PY} {child} 0.9 0.1 && {PY} {child} 0.5",
        check=True)
    assert acc() == {"max": 0.9, "mean": 0.5}
    cli("run", "-q", "--id", "two", "--resume", "must", "--", PY, child, "0.3", check=True)
    assert acc() == {"max": 0.9, "mean": 0.45}


def test_a_run_resumed_after_wbtool_was_killed_keeps_its_runtime_going(
    cli: Cli, store_dir: Path
) -> None:
    """A run whose launcher was killed recorded no runtime: resumed, it goes
    on from the last ``_runtime`` it logged instead of from 0, so that its
    history's ``_runtime`` never goes back."""
    log = f"{PY} -m wbtool log"
    proc = subprocess.Popen(
        wbtool_cmd("run", "-q", "--id", "killed", "--", "sh", "-c",
                   f"{log} a=1 && sleep 1.5 && {log} a=2 && echo ready && sleep 120"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.kill()  # the command dies with it
    proc.wait(timeout=30)
    assert effective_state(record(store_dir)) == "crashed"
    cli("run", "-q", "--resume", "must", "--id", "killed", "--", "sh", "-c", f"{log} a=3",
        check=True)
    rows = list(iter_rows(store_dir / "runs" / "killed" / "history.jsonl"))
    assert [r["a"] for r in rows] == [1, 2, 3]
    assert rows[1]["_runtime"] >= 1.5 and rows[2]["_runtime"] > rows[1]["_runtime"]
    assert record(store_dir)["runtime"] >= rows[2]["_runtime"]


def _killed_once_logged(store_dir: Path, run_id: str, child: str,
                        logged: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Launch ``child`` as run ``run_id``; once it printed "ready" and its
    history (flushed every second) holds what ``logged`` waits for, kill
    wbtool run, and the command with it."""
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--id", run_id, "--", PY, child),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    history = store_dir / "runs" / run_id / "history.jsonl"
    deadline = time.monotonic() + 20
    while not logged(list(iter_rows(history))):
        assert time.monotonic() < deadline, "the last row never reached the history"
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=30)


def test_a_run_resumed_after_wbtool_was_killed_keeps_what_it_logged_last_in_its_summary(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """The summary is written every few seconds, the history every second:
    a run killed between the two is resumed with the summary of every row
    its history holds (a test metric logged last, the last loss)."""
    child = script(tmp_path, """
        import time, wbtool
        run = wbtool.init()
        run.log({"acc": 0.5, "loss": 1.0})
        time.sleep(1.5)  # the summary is written once, with these
        run.log({"acc": 0.9, "loss": 0.2, "test_acc": 0.93})
        print("ready", flush=True)
        time.sleep(120)
    """)
    _killed_once_logged(store_dir, "oom", child, lambda rows: any("test_acc" in r for r in rows))
    resume = "import wbtool; run = wbtool.init(); run.log({'acc': 0.7}); run.finish()"
    cli("run", "-q", "--resume", "must", "--id", "oom", "--", PY, "-c", resume, check=True)
    summary = json.loads((store_dir / "runs" / "oom" / "summary.json").read_text())
    assert (summary["test_acc"], summary["loss"], summary["acc"]) == (0.93, 0.2, 0.7)
    found = cli("runs", "list", "-w", "summary.test_acc>0.9", "--json", check=True).json()
    assert [r["id"] for r in found["result"]] == ["oom"]


def test_a_run_killed_soon_after_defining_a_metric_resumes_summarising_it_so(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """``define_metric`` reaches run.json within a second, not at the next
    heartbeat: a run killed before that is resumed (here by a shell step
    that logs) with the metric's max going on over the whole run."""
    child = script(tmp_path, """
        import time, wbtool
        run = wbtool.init()
        run.define_metric("acc", summary="max")
        run.log({"acc": 0.5})
        time.sleep(1.5)  # one flush: the history and the summary, with acc's max
        run.log({"acc": 0.9})
        print("ready", flush=True)
        time.sleep(120)
    """)
    _killed_once_logged(store_dir, "defined", child, lambda rows: len(rows) >= 2)
    cli("run", "-q", "--resume", "must", "--id", "defined", "--", PY, "-m", "wbtool", "log",
        "acc=0.3", check=True)
    summary = json.loads((store_dir / "runs" / "defined" / "summary.json").read_text())
    assert summary["acc"] == {"max": 0.9}


def test_a_value_nested_too_deep_is_a_usage_error(cli: Cli, store_dir: Path) -> None:
    """JSON nested deeper than Python's reader (or the history writer) can
    recurse is refused in one line, and nothing is written."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.log({"a": 1})
    run.finish()
    before = Path(run._folder.history).read_bytes()
    for depth in (500, 5000):
        deep = "[" * depth + "]" * depth
        is_error(cli("log", "--run", run.id, f"a={deep}"), 2, "'a'", "deep")
        is_error(cli("run", "--config", f"a={deep}", "--", "true"), 2, "'a'", "deep")
    assert Path(run._folder.history).read_bytes() == before
    assert [p.name for p in (store_dir / "runs").iterdir()] == [run.id]
    cli("log", "--run", run.id, "a=" + "[" * 100 + "]" * 100, check=True)


def test_log_and_alert_with_no_store_create_none(cli: Cli, store_dir: Path) -> None:
    """A run that cannot exist (there is no store) is not found; looking for
    it leaves no empty store behind."""
    is_error(cli("log", "--run", "nope1234", "a=1"), 3, "run not found: nope1234")
    is_error(cli("alert", "--run", "nope1234", "t", "x"), 3, "run not found: nope1234")
    is_error(cli("log", "--run", "../x", "a=1"), 2, "invalid run id")
    assert not store_dir.exists()


@pytest.mark.parametrize("damage", ["garbage", "not an object", "wrong types"])
def test_log_to_a_run_whose_record_is_damaged(cli: Cli, store_dir: Path, damage: str) -> None:
    """A run.json that cannot be read is a store error, said before anything
    is appended to the history; fields of the wrong type do not stop a log."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.log({"a": 1})
    run.finish()
    record = Path(run._folder.run_json)
    history = Path(run._folder.history)
    before = history.read_bytes()
    if damage == "wrong types":
        doc = json.loads(record.read_text())
        record.write_text(json.dumps({**doc, "started_at": "soon", "resumed_runtime": [1]}))
        cli("log", "--run", run.id, "a=2", check=True)
        cli("log", "--run", run.id, "--summary", "b=3", check=True)
        assert [r["a"] for r in iter_rows(history)] == [1, 2]
        return
    record.write_bytes(b"\x00garbage{" if damage == "garbage" else b"[1, 2]")
    for args in (["a=2"], ["--summary", "b=3"]):
        is_error(cli("log", "--run", run.id, *args), 7, str(record))
    assert history.read_bytes() == before


def test_live_takes_at_most_what_a_wait_can_take(cli: Cli, store_dir: Path,
                                                 tmp_path: Path) -> None:
    """--live inf would fail in the thread that pushes, leaving a traceback
    under the command's output."""
    remote = tmp_path / "remote"
    remote.mkdir()
    cli("remote", "add", "r", str(remote), "--default", check=True)
    for value in ("inf", "1e300"):
        is_error(cli("run", "-q", "--live", value, "--", "true"), 2, "--live")
    assert not (store_dir / "runs").exists() or not list((store_dir / "runs").iterdir())


def test_wbtool_alert(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "-q", "--", "sh", "-c",
              f"{PY} -m wbtool alert 'disk full' 'only 1% left' --level WARN")
    assert res.code == 0 and "ALERT [WARN] disk full" in res.err
    events = [json.loads(x) for x in
              (only_run(store_dir) / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "alert" and e["title"] == "disk full" for e in events)


def size_limited(path: Path, room: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``wbtool ARGS`` with ``room`` bytes left to grow ``path`` by: the file
    size limit stands in for a full disk (a write stops short of it, then
    fails with EFBIG, as SIGXFSZ is ignored)."""
    import resource

    limit = path.stat().st_size + room

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return subprocess.run(wbtool_cmd(*args), capture_output=True, text=True, timeout=120,
                          preexec_fn=limited)


def test_a_log_on_a_full_disk_tears_no_history_line(cli: Cli, store_dir: Path) -> None:
    """A ``wbtool log`` whose append stopped short left half a line, which the
    next log's row was glued onto: readers lost both rows."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.finish()
    history = Path(run._folder.history)
    for i in range(3):
        cli("log", "--run", run.id, f"i={i}", check=True)
    failed = size_limited(history, 100, "log", "--run", run.id, "i=3", "pad=" + "x" * 1000)
    assert failed.returncode == 1 and failed.stderr == "wbtool: error: File too large\n"
    cli("log", "--run", run.id, "i=4", check=True)
    lines = history.read_bytes().splitlines()
    assert [json.loads(line)["i"] for line in lines] == [0, 1, 2, 4]


def test_an_alert_on_a_full_disk_tears_no_event_line(cli: Cli, store_dir: Path) -> None:
    """As for ``wbtool log``: a torn alert line cost it and the next event."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.finish()
    events = Path(run._folder.events)
    cli("alert", "--run", run.id, "first", "a", check=True)
    failed = size_limited(events, 50, "alert", "--run", run.id, "second", "x" * 1000)
    assert failed.returncode == 1 and failed.stderr == "wbtool: error: File too large\n"
    cli("alert", "--run", run.id, "third", "c", check=True)
    lines = events.read_bytes().splitlines()
    alerts = [e["title"] for e in map(json.loads, lines) if e["type"] == "alert"]
    assert alerts == ["first", "third"]


def test_output_cut_short_by_a_full_disk_tears_no_line(cli: Cli, store_dir: Path) -> None:
    """output.log filled the disk part-way through a line (the file size
    limit stands in for it): the run resumed later glued its first line
    onto the torn one."""
    import resource

    cli("run", "-q", "--id", "r1", "--", "true", check=True)
    child = ("import sys\n"
             "for i in range(200):\n"
             "    print('\\x1b[31m%d' % i + 'y' * 10_000 + '\\x1b[0m', flush=True)\n")

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))

    full = subprocess.run(wbtool_cmd("run", "-q", "--resume", "must", "--id", "r1", "--",
                                     PY, "-c", child),
                          capture_output=True, text=True, timeout=120, preexec_fn=limited)
    assert full.returncode == 0, full.stderr
    assert "the command's output is no longer recorded" in full.stderr
    assert "File too large" in full.stderr
    cli("run", "-q", "--resume", "must", "--id", "r1", "--", "echo", "after", check=True)
    folder = store_dir / "runs" / "r1"
    *lines, last, end = (folder / "output.log").read_bytes().split(b"\n")
    assert (last, end) == (b"after", b"")
    assert len(lines) > 50
    assert lines == [b"%dy" % i + b"y" * 9_999 for i in range(len(lines))]
    frames = list(rawlog.read_frames(folder / "output.raw"))
    assert frames[-1][2] == b"after\n"


def test_an_alert_shows_control_characters_instead_of_sending_them(
    cli: Cli, store_dir: Path
) -> None:
    """The text may come from anything the program read: an escape sequence in
    it must not reach the terminal (it is recorded as given)."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.finish()
    res = cli("alert", "--run", run.id, "title\x1b]0;pwned\x07", "red \x1b[31mtext",
              check=True)
    assert "\x1b" not in res.err and "\x07" not in res.err
    assert "title\\x1b]0;pwned\\x07: red \\x1b[31mtext" in res.err
    events = [json.loads(x) for x in Path(run._folder.events).read_text().splitlines()]
    assert events[-1]["text"] == "red \x1b[31mtext"


def test_an_alert_title_stays_on_its_line(cli: Cli, store_dir: Path) -> None:
    """A newline (or a C1 control, or a bidirectional override) in a title
    was printed as it is, so the alert's first line ended mid-title; it is
    shown escaped, as a run's name is. The text keeps its lines and tabs."""
    import wbtool

    run = wbtool.init(project="p", settings={"quiet": True, "console": "off"})
    run.finish()
    title, text = "disk\nfull\u202e\x85", "line 1\n\tline 2\u202e"
    res = cli("alert", "--run", run.id, title, text, "--level", "WARN", check=True)
    assert res.err == ("wbtool: ALERT [WARN] disk\\nfull\\u202e\\x85: "
                       "line 1\n\tline 2\\u202e\n")
    events = run._folder.read_events()
    assert (events[-1]["title"], events[-1]["text"]) == (title, text)  # recorded as given
    child = ("import sys, wbtool\n"
             "run = wbtool.init(project='p', settings={'quiet': True, 'console': 'off'})\n"
             "run.alert(sys.argv[1], sys.argv[2])\n"
             "run.finish()\n")
    res = subprocess.run([sys.executable, "-c", child, title, text], capture_output=True,
                         text=True, cwd=cli.cwd, timeout=120, check=True)
    assert res.stderr == ("wbtool: ALERT [INFO] disk\\nfull\\u202e\\x85: "
                          "line 1\n\tline 2\\u202e\n")


def test_capture_groups_that_match_nothing_log_no_value(cli: Cli, store_dir: Path) -> None:
    res = cli("run", "-q", "--capture-metrics", r"loss=(?P<loss>[0-9.]*)", "--",
              "sh", "-c", "echo loss=; echo loss=0.5")
    assert res.code == 0
    rows = list(iter_rows(only_run(store_dir) / "history.jsonl"))
    assert [r["loss"] for r in rows] == [0.5]


def test_runs_logs_plain_raw_and_follow(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import sys, time
        sys.stdout.write("\\x1b[31mred\\x1b[0m\\n")
        for i in range(3):
            sys.stdout.write(f"\\r{i}/2")
            sys.stdout.flush()
        sys.stdout.write("\\n")
        print("slow", flush=True)
        time.sleep(1.5)
        print("end", flush=True)
    """)
    proc = subprocess.Popen(wbtool_cmd("run", "-q", "--", PY, child), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().endswith("red\x1b[0m\n")
    deadline = time.monotonic() + 20
    while not (store_dir / "runs").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run_id = only_run(store_dir).name
    followed = cli("runs", "logs", run_id, "--follow")  # returns when the run ends
    proc.wait(timeout=30)
    assert followed.code == 0 and followed.out == "red\n2/2\nslow\nend\n"
    raw = subprocess.run(wbtool_cmd("runs", "logs", run_id, "--raw"), capture_output=True,
                         timeout=60)  # bytes: text mode would turn \r into \n
    assert raw.stdout == b"\x1b[31mred\x1b[0m\n\r0/2\r1/2\r2/2\nslow\nend\n"
    assert cli("runs", "logs", "nope1234").code == 3


def test_a_line_longer_than_a_megabyte(cli: Cli, store_dir: Path) -> None:
    res = subprocess.run(wbtool_cmd("run", "-q", "--", PY, "-c",
                                    "import sys; sys.stdout.write('y' * 3_000_000 + '\\n')"),
                         capture_output=True, timeout=120)
    assert res.returncode == 0 and len(res.stdout) == 3_000_001
    log = (only_run(store_dir) / "output.log").read_bytes()
    assert log.count(b"y") == 3_000_000


def test_window_resizes_reach_the_command(store_dir: Path, tmp_path: Path) -> None:
    import fcntl
    import struct
    import termios

    child = script(tmp_path, """
        import os, signal, sys, time
        first = os.get_terminal_size(1)
        seen = []
        # Programs re-read the size on each SIGWINCH; the last one carries the news.
        signal.signal(signal.SIGWINCH, lambda *a: seen.append(os.get_terminal_size(1)))
        print("size", tuple(first), flush=True)
        deadline = time.time() + 20
        while not (seen and seen[-1] != first) and time.time() < deadline:
            time.sleep(0.05)
        print("resized", tuple(seen[-1]) if seen else None, flush=True)
    """)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(PY, wbtool_cmd("run", "-q", "--", PY, child), os.environ)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    seen = b""
    resized = False
    while True:
        try:
            ready, _, _ = select.select([fd], [], [], 30)
            chunk = os.read(fd, 65536) if ready else b""
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if b"size" in seen and not resized:
            time.sleep(0.3)
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            resized = True
    os.waitpid(pid, 0)
    assert b"size (100, 30)" in seen
    assert b"resized (120, 40)" in seen


def test_two_runs_at_once_never_mix(store_dir: Path, tmp_path: Path) -> None:
    child = script(tmp_path, """
        import sys, wbtool
        run = wbtool.init()
        for i in range(300):
            run.log({"who": sys.argv[1], "i": i})
        run.finish()
    """)
    procs = [subprocess.Popen(wbtool_cmd("run", "-q", "--name", who, "--", PY, child, who),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for who in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=60) == 0
    folders = list((store_dir / "runs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        doc = json.loads((folder / "run.json").read_text())
        rows = list(iter_rows(folder / "history.jsonl"))
        assert {r["who"] for r in rows} == {doc["name"]} and len(rows) == 300


@pytest.mark.slow
def test_ctrl_z_and_fg_in_an_interactive_shell(store_dir: Path, tmp_path: Path) -> None:
    """Job control passes through: Ctrl-Z stops the job, fg resumes it."""
    import shutil

    if shutil.which("bash") is None:
        pytest.skip("needs bash for job control")
    child = script(tmp_path, """
        import time
        for i in range(30):
            print(f"tick {i}", flush=True)
            time.sleep(0.1)
    """)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"],
                   {**os.environ, "PS1": "$ "})

    def read_for(seconds: float) -> bytes:
        out = b""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        return out

    read_for(0.5)
    os.write(fd, f"{PY} -m wbtool run -q -- {PY} {child}\n".encode())
    before = read_for(1.5)
    assert b"tick 1" in before
    os.write(fd, b"\x1a")
    stopped = read_for(1.0)
    assert b"Stopped" in stopped
    paused = read_for(0.6)
    assert b"tick" not in paused  # really stopped
    os.write(fd, b"fg\n")
    resumed = read_for(6.0)
    assert b"tick 29" in resumed
    os.write(fd, b"echo status=$?\n")
    assert b"status=0" in read_for(1.0)
    os.write(fd, b"exit\n")
    os.waitpid(pid, 0)
    log = (only_run(store_dir) / "output.log").read_text().splitlines()
    assert log == [f"tick {i}" for i in range(30)]
    assert record(store_dir)["state"] == "finished"


def read_until(fd: int, wanted: bytes, seconds: float = 60) -> bytes:
    """What the terminal shows until ``wanted`` (b"" when it never comes)."""
    out = b""
    end = time.monotonic() + seconds
    while wanted not in out and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out if wanted in out else b""


ASKS = """
    print("ready", flush=True)
    print("got", input(), flush=True)
"""


@pytest.mark.slow
def test_ctrl_z_stops_a_whole_pipeline(store_dir: Path, tmp_path: Path) -> None:
    """``wbtool run -- cmd | cat``: Ctrl-Z stops the job, not wbtool alone (the
    shell waited for ``cat`` and the terminal hung)."""
    import shutil

    if shutil.which("bash") is None:
        pytest.skip("needs bash for job control")
    child = script(tmp_path, ASKS)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"],
                   {**os.environ, "PS1": "$ "})
    try:
        os.write(fd, f"{PY} -m wbtool run -q -- {PY} {child} | cat\n".encode())
        assert read_until(fd, b"ready\r\n")
        os.write(fd, b"\x1a")
        assert read_until(fd, b"Stopped"), "the shell never saw the job stop"
        os.write(fd, b"fg\n")
        os.write(fd, b"go\n")
        assert read_until(fd, b"got go")
        os.write(fd, b"echo status=${PIPESTATUS[0]}\n")
        assert read_until(fd, b"status=0")
        os.write(fd, b"exit\n")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    assert record(store_dir)["state"] == "finished"


def interactive_bash() -> tuple[int, int]:
    import shutil

    if shutil.which("bash") is None:
        pytest.skip("needs bash for job control")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"],
                   {**os.environ, "PS1": "$ "})
    return pid, fd


def end_bash(pid: int, fd: int) -> None:
    """Kill the shell and whatever is left in its session."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rpartition(")")[2].split()[3]) == pid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(fd)


@pytest.mark.slow
def test_a_background_run_reading_the_terminal_stops_until_fg(
    store_dir: Path, tmp_path: Path
) -> None:
    """``wbtool run -- cmd &`` with cmd reading the terminal: the job stops, and
    ``fg`` hands it the terminal (the command stayed stopped and fg hung)."""
    child = script(tmp_path, ASKS)
    pid, fd = interactive_bash()
    try:
        os.write(fd, f"{PY} -m wbtool run -q -- {PY} {child} &\n".encode())
        assert read_until(fd, b"ready\r\n")
        deadline = time.monotonic() + 60
        while not read_until(fd, b"Stopped", 1):
            assert time.monotonic() < deadline, "the job never stopped"
            os.write(fd, b"jobs\n")
        os.write(fd, b"fg\n")
        os.write(fd, b"go\n")
        assert read_until(fd, b"got go")
        os.write(fd, b"echo status=$?\n")
        assert read_until(fd, b"status=0")
    finally:
        end_bash(pid, fd)
    assert record(store_dir)["state"] == "finished"


@pytest.mark.slow
def test_a_run_sent_to_the_background_leaves_the_terminal_to_the_shell(
    store_dir: Path, tmp_path: Path
) -> None:
    """Ctrl-Z, ``bg``: when the run ended wbtool took the terminal from the
    shell, which then exited."""
    go = tmp_path / "go"
    child = script(tmp_path, f"""
        import os, time
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        print("done", flush=True)
    """)
    pid, fd = interactive_bash()
    try:
        os.write(fd, f"{PY} -m wbtool run -q -- {PY} {child}\n".encode())
        assert read_until(fd, b"ready\r\n")
        os.write(fd, b"\x1a")
        assert read_until(fd, b"Stopped")
        os.write(fd, b"bg\n")
        go.touch()
        assert read_until(fd, b"done")
        deadline = time.monotonic() + 60
        while record(store_dir)["state"] == "running":  # written once the terminal is let go
            assert time.monotonic() < deadline, "the run never ended"
            time.sleep(0.1)
        os.write(fd, b"echo $((6 * 7))\n")
        assert read_until(fd, b"42"), "the shell lost its terminal"
    finally:
        end_bash(pid, fd)
    assert record(store_dir)["state"] == "finished"


def test_ctrl_z_without_a_shell_to_continue_it(store_dir: Path, tmp_path: Path) -> None:
    """wbtool leads the terminal's session (``docker run -it``, ``tmux new
    'wbtool run …'``): no shell could continue a stopped job, so Ctrl-Z does
    nothing, as for the command alone (both stayed stopped for good)."""
    child = script(tmp_path, ASKS)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(PY, wbtool_cmd("run", "-q", "--", PY, child), os.environ)
    try:
        assert read_until(fd, b"ready\r\n")
        os.write(fd, b"\x1a")
        os.write(fd, b"go\n")
        assert read_until(fd, b"got go"), "the command stayed stopped"
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # the command dies with wbtool
        raise
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert record(store_dir)["state"] == "finished"


def test_fast_entry_parses_run_like_the_full_command_line() -> None:
    """The fast path knows exactly the options that ``wbtool run`` declares."""
    import typer.main

    from wbtool.cli import fast, run_cmd

    command = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=run_cmd.run), pretty_exceptions_short=True,
        rich_markup_mode=None)
    declared = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)
                if opt.startswith("-")} - {"--help"}
    assert declared == set(fast.RUN_OPTIONS)
    opts = fast._parse_run(["--tag", "a", "--tag=b", "-q", "--interval", "0.5", "--",
                            "python", "-q", "x"])
    assert opts == {"tags": ["a", "b"], "quiet": True, "interval": 0.5,
                    "command": ["python", "-q", "x"]}
    assert fast._parse_run(["--bogus", "x"]) is None  # the full parser explains
    assert fast._parse_run(["--help"]) is None
    assert fast._parse_run(["--interval", "soon", "x"]) is None


def test_fast_entry_parses_log() -> None:
    from wbtool.cli import fast

    assert fast._parse_log(["a=1", "--step", "3", "--run=abc", "--no-commit", "--json"]) == {
        "pairs": ["a=1"], "step": 3, "commit": False, "summary": False, "run_id": "abc",
        "as_json": True}
    assert fast._parse_log(["--step=x", "a=1"]) is None
    assert fast._parse_log(["--help"]) is None
    assert fast._parse_log(["a=1", "--run"]) is None
    assert fast._parse_log([]) is None


def test_a_writer_left_by_a_killed_run_on_another_host_labels_no_later_rows(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """A program of a launched run that was killed (a preempted job) leaves
    its entry in the run's list of writers; on another host (a job resumed
    elsewhere) it cannot be told dead. The run resumed under ``wbtool run``
    has none of the old programs left: its lone program labels no rows."""
    child = script(tmp_path, """
        import wbtool
        run = wbtool.init(settings={"x_disable_stats": True})
        run.log({"loss": 1})
        run.finish()
    """)
    assert cli("run", "-q", "--id", "pre", "--", PY, child).code == 0
    folder = store_dir / "runs" / "pre"
    (folder / ".writers.json").write_text(
        json.dumps({"4242": {"host": "gone-host", "pid_start": "1"}}))
    res = cli("run", "-q", "--id", "pre", "--resume", "allow", "--", PY, child)
    assert res.code == 0, res.err
    rows = list(iter_rows(folder / "history.jsonl"))
    assert [(r["_step"], r.get("_label")) for r in rows] == [(0, None), (1, None)]
    assert not (folder / ".writers.json").exists()


def test_setup_settings_of_the_process_that_starts_wbtool_run_leave_its_run_alone(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """``wbtool.setup`` hands its settings to the processes its program starts;
    ``wbtool run``'s program takes its run's from ``wbtool run`` instead."""
    child = script(tmp_path, """
        import wbtool
        run = wbtool.init(settings={"x_disable_stats": True})
        run.log({"loss": 1})
        print(run.project)
        run.finish()
    """)
    env = {"WBTOOL_SETUP_SETTINGS": json.dumps({"project": "outer"})}
    res = cli("run", "-q", "--project", "inner", "--id", "r1", "--", PY, child, env=env)
    assert res.code == 0, res.err
    assert res.out.strip() == "inner"
    assert record(store_dir)["project"] == "inner"


@pytest.mark.parametrize("where", ["no run", "a run"])
def test_alert_tells_a_bad_level_before_it_looks_for_the_run(
    cli: Cli, store_dir: Path, where: str
) -> None:
    """As click checks options before the command runs: a bad --level is the
    error, whether or not there is a run to alert."""
    args = []
    if where == "a run":
        cli("run", "-q", "--id", "alerted", "--", "true", check=True)
        args = ["--run", "alerted"]
    is_error(cli("alert", "--level", "BOGUS", "t", "x", *args), 2,
             "--level must be one of INFO, WARN, ERROR")


@pytest.mark.parametrize("step", [str(2**63), str(10**20), "-1"])
@pytest.mark.parametrize("path", ["fast", "full"])
def test_log_step_beyond_a_64_bit_integer_or_below_0_is_refused(
    cli: Cli, store_dir: Path, step: str, path: str
) -> None:
    """A step past 2**63-1 was written into the history as it was."""
    cli("run", "-q", "--id", "stepped", "--", "true", check=True)
    history = store_dir / "runs" / "stepped" / "history.jsonl"
    before = history.read_bytes() if history.exists() else b""
    # "--" before the pair sends the call to the full command line.
    pairs = ["a=1"] if path == "fast" else ["--", "a=1"]
    is_error(cli("log", "--run", "stepped", f"--step={step}", *pairs), 2,
             f"--step must be between 0 and {2**63 - 1}, not {step}")
    assert (history.read_bytes() if history.exists() else b"") == before
    cli("log", "--run", "stepped", "--commit", f"--step={2**63 - 1}", *pairs, check=True)
    assert [r["_step"] for r in iter_rows(history)] == [2**63 - 1]
    # and no step follows it: the next row was written as step 2**63
    before = history.read_bytes()
    for more in ([], ["--no-commit"]):
        is_error(cli("log", "--run", "stepped", *more, *pairs), 2,
                 f"the run has a row at step {2**63 - 1}")
    assert history.read_bytes() == before


@pytest.mark.parametrize("path", ["fast", "full"])
def test_log_after_a_row_at_the_highest_step_is_refused(
    cli: Cli, store_dir: Path, path: str
) -> None:
    """The next step after a row at 2**63-1 was 2**63, written into the
    history as it was."""
    cli("run", "-q", "--id", "stepped", "--", "true", check=True)
    history = store_dir / "runs" / "stepped" / "history.jsonl"
    pairs = ["a=1"] if path == "fast" else ["--", "a=1"]
    cli("log", "--run", "stepped", "--commit", f"--step={2**63 - 1}", *pairs, check=True)
    before = history.read_bytes()
    for opts in ([], ["--no-commit"], [f"--step={2**63 - 1}"]):
        is_error(cli("log", "--run", "stepped", *opts, *pairs), 2,
                 f"the run has a row at step {2**63 - 1}, the highest a step can be")
    assert history.read_bytes() == before


def test_capture_metrics_leaves_out_lines_after_the_highest_step(
    cli: Cli, store_dir: Path
) -> None:
    """A captured line after a row at step 2**63-1 was logged at step 2**63;
    refused, it ended the command's run with a traceback."""
    res = cli("run", "-q", "--capture-metrics", r"step (?P<_step>\S+) loss=(?P<loss>[0-9.]+)",
              "--capture-metrics", r"acc=(?P<acc>[0-9.]+)", "--", "sh", "-c",
              f"echo step {2**63 - 1} loss=0.5; echo acc=0.7; echo acc=0.8; echo end")
    assert res.code == 0, res.err
    assert "Traceback" not in res.err
    assert f"the run has a row at step {2**63 - 1}, the highest a step can be" in res.err
    rows = [{k: v for k, v in r.items() if k in ("_step", "loss", "acc")}
            for r in iter_rows(only_run(store_dir) / "history.jsonl")]
    assert rows == [{"_step": 2**63 - 1, "loss": 0.5, "acc": 0.7}]
    assert json.loads((only_run(store_dir) / "run.json").read_text())["state"] == "finished"


def test_capture_metrics_takes_the_step_from_a_group_named_step(
    cli: Cli, store_dir: Path
) -> None:
    """A ``_step`` group was dropped: every line became a row of its own step."""
    res = cli("run", "-q", "--capture-metrics", r"step (?P<_step>\S+) loss=(?P<loss>[0-9.]+)",
              "--capture-metrics", r"acc=(?P<acc>[0-9.]+)", "--", "sh", "-c",
              "echo step 3 loss=0.5; echo step 3 loss=0.4 acc=0.7; echo step 10 loss=0.3; "
              "echo step 2 loss=0.9; echo step x loss=0.2")
    assert res.code == 0, res.err
    rows = [{k: v for k, v in r.items() if k in ("_step", "loss", "acc")}
            for r in iter_rows(only_run(store_dir) / "history.jsonl")]
    assert rows == [{"_step": 3, "loss": 0.4, "acc": 0.7}, {"_step": 10, "loss": 0.2}]
    assert "lower than the current step" in res.err
    assert "captured _step 'x' is not a step" in res.err


def test_runs_list_and_show_of_a_killed_run_hold_its_last_rows_at_once(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """The index row of a run killed between heartbeats (every 30 s) held
    what the run had at its start until it was resumed: no summary, no
    runtime. The first listing that finds its process gone catches it up
    from the folder, and records it as crashed."""
    child = script(tmp_path, """
        import time, wbtool
        run = wbtool.init()
        run.define_metric("acc", summary="max")
        for i in range(4):
            run.log({"acc": i / 10, "loss": 1 - i / 10})
            time.sleep(0.4)
        print("ready", flush=True)
        time.sleep(120)
    """)
    _killed_once_logged(store_dir, "gone", child, lambda rows: len(rows) == 4)
    rows = list(iter_rows(store_dir / "runs" / "gone" / "history.jsonl"))
    listed = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
    (run,) = listed
    assert run["state"] == "crashed"
    assert run["summary"]["acc"] == {"max": 0.3} and run["summary"]["loss"] == 0.7
    assert run["summary"]["_step"] == 3
    assert run["runtime"] == rows[-1]["_runtime"] >= 1.2
    shown = cli("runs", "show", "gone", "--json", check=True).json()["result"]  # type: ignore[index]
    assert (shown["state"], shown["summary"], shown["runtime"]) == (
        "crashed", run["summary"], run["runtime"])
    assert "0.7" in cli("runs", "list", check=True).out
    # Caught up once: the index now records the run as crashed; its folder
    # is left as the run wrote it, and doctor still tells of it.
    import sqlite3

    db = sqlite3.connect(store_dir / "index.db")
    assert db.execute("SELECT state FROM runs WHERE id = 'gone'").fetchall() == [("crashed",)]
    db.close()
    assert json.loads((store_dir / "runs" / "gone" / "run.json").read_text())["state"] == (
        "running")
    assert "1 run recorded as running whose process is gone" in cli("doctor").out
    cli("run", "-q", "--resume", "must", "--id", "gone", "--", PY, "-m", "wbtool", "log",
        "acc=0.9", check=True)
    (run,) = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
    assert run["state"] == "finished" and run["summary"]["acc"] == {"max": 0.9}


def test_a_listing_that_finds_a_killed_run_never_waits_on_another_writer(
    cli: Cli, store_dir: Path, tmp_path: Path
) -> None:
    """What it recorded of the run in passing waited for the index's write
    lock as every write does, up to a minute, while another process held it."""
    import sqlite3

    child = script(tmp_path, """
        import time, wbtool
        run = wbtool.init()
        run.log({"loss": 0.5})
        time.sleep(1.5)
        print("ready", flush=True)
        time.sleep(120)
    """)
    _killed_once_logged(store_dir, "held", child, lambda rows: len(rows) == 1)
    other = sqlite3.connect(store_dir / "index.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a long commit of another process
    try:
        began = time.monotonic()
        (run,) = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
        assert time.monotonic() - began < 10
        assert (run["state"], run["summary"]["loss"]) == ("crashed", 0.5)
        assert other.execute("SELECT state FROM runs").fetchall() == [("running",)]
    finally:
        other.execute("ROLLBACK")
        other.close()
    cli("runs", "list", check=True)
    db = sqlite3.connect(store_dir / "index.db")
    assert db.execute("SELECT state FROM runs").fetchall() == [("crashed",)]
    db.close()


def test_runs_show_and_list_of_a_running_run_tell_its_runtime_so_far(
    cli: Cli, store_dir: Path
) -> None:
    """A run still running showed the runtime of its last heartbeat (0.0s
    in its first 30 s)."""
    proc = subprocess.Popen(
        wbtool_cmd("run", "-q", "--id", "live", "--", PY, "-c",
                   "import time; print('ready', flush=True); time.sleep(120)"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1.5)
        shown = cli("runs", "show", "live", check=True).out
        (line,) = [ln for ln in shown.splitlines() if "runtime:" in ln]
        seconds = float(line.split()[1].removesuffix("s"))
        assert 1.5 <= seconds < 60 and line.endswith(" so far"), line
        doc = cli("runs", "show", "live", "--json", check=True).json()["result"]  # type: ignore[index]
        listed = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
        assert seconds <= doc["runtime"] <= listed[0]["runtime"] < 60
        assert listed[0]["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    (run,) = cli("runs", "list", "--json", check=True).json()["result"]  # type: ignore[index]
    assert run["state"] == "killed" and run["runtime"] >= doc["runtime"]
    assert "so far" not in cli("runs", "show", "live", check=True).out
