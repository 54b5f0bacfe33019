"""Console capture: the terminal line model and capture in real processes."""

from __future__ import annotations

import io
import os
import random
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wbtool.errors import UsageError
from wbtool.runs.console import ConsoleCapture
from wbtool.runs.terminal import MAX_LINE, TerminalLog

ROOT = Path(__file__).resolve().parents[2]


def render(*chunks: bytes) -> bytes:
    out: list[bytes] = []
    log = TerminalLog(out.append)
    for chunk in chunks:
        log.feed(chunk)
    log.close()
    return b"".join(out)


# -- TerminalLog ---------------------------------------------------------------


@pytest.mark.parametrize(("raw", "shown"), [
    (b"plain\nlines\n", b"plain\nlines\n"),
    (b"abcdef\rXY\n", b"XYcdef\n"),
    (b"abc\r\ndef\r\n", b"abc\ndef\n"),
    (b"abc\b\bX\n", b"aXc\n"),
    (b"\b\bab\n", b"ab\n"),
    (b"\x1b[1;31mred\x1b[0m and \x1b[38;5;208morange\x1b[m\n", b"red and orange\n"),
    (b"abcdef\r\x1b[Kxy\n", b"xy\n"),
    (b"abcdef\rab\x1b[K\n", b"ab\n"),
    (b"abcdef\rab\x1b[0K\n", b"ab\n"),
    (b"abcdef\x1b[2Kxy\n", b"      xy\n"),
    (b"abcdef\r\x1b[2Kxy\n", b"xy\n"),
    (b"abcdef\r\x1b[2C\x1b[1KZ\n", b"  Zdef\n"),
    (b"\x1b]0;window title\x07text\n", b"text\n"),
    (b"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\\n", b"link\n"),
    (b"\x1b(Bcharset \x1b=keypad \x1b7saved\n", b"charset keypad saved\n"),
    (b"\x1b[?25lhidden cursor\x1b[?25h\n", b"hidden cursor\n"),
    (b"ding\x07\n", b"ding\n"),
    (b"a\nb\rc\nd\n", b"a\nc\nd\n"),
    (b"bar 1\n\x1b[Abar 2\n", b"bar 1\nbar 2\n"),
    (b"row 1\nframe\x1b[1A\r\x1b[2Krow 1'\n", b"row 1\nframe\nrow 1'\n"),
    (b"x\x1b[12\n", b"x[12\n"),
    (b"ab\x1b[999999999Cx\n", b"ab" + b" " * 1024 + b"x\n"),
    (b"unfinished", b"unfinished\n"),
    (b"", b""),
])
def test_terminal_shows(raw: bytes, shown: bytes) -> None:
    assert render(raw) == shown


def test_progress_frames_collapse_to_last() -> None:
    frames = b"".join(b"\r%3d%%|%-10s| %d/100" % (i, b"#" * (i // 10), i) for i in range(101))
    assert render(b"epoch 1\n" + frames + b"\ndone\n") == (
        b"epoch 1\n100%|##########| 100/100\ndone\n")
    # tqdm writes each frame on its own, and pads a shorter frame with spaces.
    chunks = [b"\rlong frame 1", b"\rshort 2     ", b"\r", b"\n"]
    assert render(*chunks) == b"short 2     \n"


def test_a_huge_line_is_written_in_pieces_without_added_newlines() -> None:
    out: list[bytes] = []
    log = TerminalLog(out.append)
    data = b"0123456789abcdef" * (3 * 65536)  # 3 MiB, no newline
    for i in range(0, len(data), 65536):
        log.feed(data[i:i + 65536])
    assert 2 * MAX_LINE <= len(b"".join(out)) <= len(data)
    log.feed(b"\n")
    log.close()
    assert b"".join(out) == data + b"\n"


def test_shorter_final_frame_overwrites_only_its_columns() -> None:
    assert render(b"loading.....\rok\n") == b"okading.....\n"


MIXED = (
    "start \x1b[1;32mgreen\x1b[0m é€😀\r\n"
    "\x1b]0;title\x1b\\\x1b]2;other\x07\x1b(B"
    + "".join(f"\r\x1b[K{i:3d}%|{'█' * (i // 20):5}|" for i in range(0, 101, 20))
    + "\nabc\b\bX\x1b[Kz\n\x1b[31mpartial ✓"
).encode()


def test_every_split_point_gives_the_same_lines() -> None:
    whole = render(MIXED)
    assert whole == "start green é€😀\n100%|█████|\naXz\npartial ✓\n".encode()
    for i in range(len(MIXED) + 1):
        assert render(MIXED[:i], MIXED[i:]) == whole, i
    for i in range(0, len(MIXED), 7):
        for j in range(i, min(i + 11, len(MIXED)) + 1):
            assert render(MIXED[:i], MIXED[i:j], MIXED[j:]) == whole, (i, j)


def test_byte_at_a_time() -> None:
    assert render(*(MIXED[i:i + 1] for i in range(len(MIXED)))) == render(MIXED)


TOKENS = ["ab", "xyz", "é", "😀", " ", "\n", "\rframe", "\r12", "line\n", "\r", "\r\n", "\b",
          "\x1b[K", "\x1b[0K", "\x1b[1K", "\x1b[2K", "\x1b[3C", "\x1b[2D", "\x1b[4G", "\x1b[A",
          "\x1b[1;31m", "\x1b[0m", "\x1b]0;title\x07", "\x1b]8;;u\x1b\\", "\x1b(B", "\x07"]


def reference(tokens: list[str]) -> bytes:
    """A character-at-a-time model of one terminal line, for the tokens above."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    for tok in tokens:
        if tok == "\b":
            col = max(col - 1, 0)
        elif tok in ("\x1b[K", "\x1b[0K"):
            del line[col:]
        elif tok == "\x1b[1K":
            line[:col + 1] = [" "] * min(col + 1, len(line))
        elif tok == "\x1b[2K":
            line = []
        elif tok == "\x1b[3C":
            col += 3
        elif tok == "\x1b[2D":
            col = max(col - 2, 0)
        elif tok == "\x1b[4G":
            col = 3
        elif tok == "\x1b[A":
            if "".join(line).strip():
                lines.append("".join(line))
            line = []
        elif tok[0] not in "\x1b\x07":
            for ch in tok:
                if ch == "\n":
                    lines.append("".join(line))
                    line, col = [], 0
                elif ch == "\r":
                    col = 0
                else:
                    line.extend(" " * (col - len(line)))
                    line[col:col + 1] = [ch]
                    col += 1
    if line:
        lines.append("".join(line))
    return "".join(x + "\n" for x in lines).encode()


# Progress-bar frames, written as one piece each: (what is written, its tokens).
FRAMES = {
    "\r\x1b[K50%|##|": ["\r", "\x1b[K", "50%|##|"],
    "\r\x1b[2K\x1b[1;31m9\x1b[0m": ["\r", "\x1b[2K", "\x1b[1;31m", "9", "\x1b[0m"],
    "\nab\r\x1b[0Kc": ["\n", "ab", "\r", "\x1b[0K", "c"],
}


def test_matches_a_character_model_under_random_splits() -> None:
    rng = random.Random(1234)
    for _ in range(500):
        pieces = rng.choices([*TOKENS, *FRAMES], k=rng.randint(1, 40))
        tokens = [t for piece in pieces for t in FRAMES.get(piece, [piece])]
        data = "".join(pieces).encode()
        cuts = sorted(rng.sample(range(len(data) + 1), min(3, len(data) + 1)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert render(*chunks) == reference(tokens), pieces
        assert render(*(p.encode() for p in pieces)) == reference(tokens), pieces


def test_utf8_split_and_invalid_bytes() -> None:
    text = "日本語 naïve 🎉\n".encode()
    for i in range(len(text) + 1):
        assert render(text[:i], text[i:]) == text
    assert render(b"bad \xff\xfe byte\n") == "bad \ufffd\ufffd byte\n".encode()
    assert render(b"cut \xe2\x82") == "cut \ufffd\n".encode()


def test_lines_are_written_as_they_finish() -> None:
    out: list[bytes] = []
    log = TerminalLog(out.append)
    log.feed(b"one\ntw")
    assert out == [b"one\n"]
    log.feed(b"o\rTW")
    assert out == [b"one\n"]
    log.flush_partial()
    assert out == [b"one\n", b"TWo\n"]
    log.feed(b"\x1b[3")
    log.close()
    log.feed(b"ignored after close\n")
    assert b"".join(out) == b"one\nTWo\n"


def test_binary_file_sink(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    with path.open("wb") as f:
        log = TerminalLog(f)
        log.feed(b"\x1b[34mblue\x1b[0m\nlast")
        log.close()
    assert path.read_bytes() == b"blue\nlast\n"


def test_unterminated_osc_gives_up_eventually() -> None:
    raw = b"\x1b]0;" + b"x" * 5000 + b"\nafter\n"
    assert render(raw).endswith(b"\nafter\n")
    assert render(*(raw[i:i + 100] for i in range(0, len(raw), 100))).endswith(b"\nafter\n")


# -- ConsoleCapture in this process (wrap mode) ----------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 99


def test_wrap_forwards_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = FakeTTY(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    with ConsoleCapture("output.log", "wrap"):
        assert sys.stdout is not out
        assert sys.stdout.isatty() and sys.stdout.fileno() == 99
        print("\x1b[31mred\x1b[0m")
        sys.stdout.writelines(["a\rb", "\n"])
        print("oops", file=sys.stderr)
    assert sys.stdout is out and sys.stderr is err
    assert out.getvalue() == "\x1b[31mred\x1b[0m\na\rb\n"
    assert err.getvalue() == "oops\n"
    assert Path("output.log").read_bytes() == b"red\nb\noops\n"


def test_a_label_starts_every_logged_line_but_not_the_terminal_s(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """x_label: the processes of a distributed job share one console log."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", out)
    cap = ConsoleCapture("output.log", "wrap", label="rank1")
    with cap:
        print("one\ntwo")
        sys.stdout.write("par")
        cap.flush()
        sys.stdout.write("tial\n\n")
        print("err", file=sys.stderr)
        huge = "x" * (2 * MAX_LINE + 10)  # logged in pieces: one label, at its start
        for i in range(0, len(huge), 65536):
            sys.stdout.write(huge[i:i + 65536])
        print()
    assert out.getvalue() == "one\ntwo\npartial\n\nerr\n" + huge + "\n"
    assert Path("output.log").read_bytes() == (b"[rank1] one\n[rank1] two\n[rank1] partial\n"
                                               b"[rank1] \n[rank1] err\n[rank1] "
                                               + huge.encode() + b"\n")


def test_wrap_does_not_clobber_a_later_replacement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    cap = ConsoleCapture("output.log", "auto")
    cap.start()
    ours = sys.stdout
    later = io.StringIO()
    sys.stdout = later
    cap.stop()
    assert sys.stdout is later
    print("still forwarded", file=ours)  # a stale proxy forwards but no longer logs
    assert Path("output.log").read_bytes() == b""


def test_print_never_raises_when_the_log_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    cap = ConsoleCapture("output.log", "wrap")
    cap.start()
    print("logged")
    cap.flush()
    assert cap._fd is not None
    read_only = os.open(os.devnull, os.O_RDONLY)
    os.dup2(read_only, cap._fd)  # the log's file fails under it
    os.close(read_only)
    print("not logged\n" * 3)
    cap.flush()
    print("still shown")
    cap.stop()
    assert out.getvalue() == "logged\n" + "not logged\n" * 3 + "\nstill shown\n"
    assert Path("output.log").read_bytes() == b"logged\n"


def test_flush_makes_lines_durable_and_keeps_the_partial_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    cap = ConsoleCapture("output.log", "wrap")
    cap.start()
    try:
        sys.stdout.write("done\n\rprogress 1")
        cap.flush()
        assert Path("output.log").read_bytes() == b"done\n"
    finally:
        cap.stop()
    assert Path("output.log").read_bytes() == b"done\nprogress 1\n"


def test_off_mode_and_bad_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with ConsoleCapture("output.log", "off"):
        assert sys.stdout is out
        print("x")
    assert not Path("output.log").exists()
    with pytest.raises(UsageError):
        ConsoleCapture("output.log", "tee")


# -- ConsoleCapture in real child processes --------------------------------------

CHILD = textwrap.dedent("""
    import os, subprocess, sys
    from wbtool.runs.console import ConsoleCapture

    def body():
        print("\\x1b[1;31mred\\x1b[0m and plain")
        for i in range(6):
            sys.stdout.write(f"\\r\\x1b[Kstep {i}/5 " + "#" * i)
            sys.stdout.flush()
        print()
        print("h\\u00e9llo \\u2713")
        sys.stdout.flush()
        os.write(1, b"fd-level write\\n")
        subprocess.run(["echo", "from echo"], check=True)
        print("\\x1b[33mwarning\\x1b[0m", file=sys.stderr)

    mode = sys.argv[1]
    if mode == "none":
        body()
    else:
        cap = ConsoleCapture("output.log", mode)
        cap.start()
        body()
        cap.stop()
    print("after stop")
    sys.stdout.flush()
    os.write(1, b"fd after stop\\n")
""")


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONIOENCODING": "utf-8",
            "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def run_child(code: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          env=child_env(), timeout=30, check=True)


def test_capture_leaves_output_unchanged_and_logs_clean_text() -> None:
    plain = run_child(CHILD, "none")
    assert b"\x1b[1;31mred" in plain.stdout and b"\r\x1b[Kstep 5/5" in plain.stdout
    for mode in ("wrap", "redirect"):
        Path("output.log").unlink(missing_ok=True)
        got = run_child(CHILD, mode)
        assert got.stdout == plain.stdout, mode
        assert got.stderr == plain.stderr, mode
        lines = Path("output.log").read_text("utf-8").splitlines()
        assert "warning" in lines, mode  # stderr's place among stdout's is best-effort
        lines.remove("warning")
        expected = ["red and plain", "step 5/5 #####", "héllo ✓"]
        if mode == "redirect":
            expected += ["fd-level write", "from echo"]
        assert lines == expected, mode


@pytest.mark.parametrize("into", ["pipe", "file"])
def test_redirect_keeps_order_when_stderr_goes_where_stdout_goes(into: str) -> None:
    def run(mode: str) -> bytes:
        if into == "pipe":
            return subprocess.run([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=child_env(), timeout=30,
                                  check=True).stdout
        with open(f"shown-{mode}.txt", "wb") as f:  # like "> shown.txt 2>&1"
            subprocess.run([sys.executable, "-c", CHILD, mode], stdout=f,
                           stderr=subprocess.STDOUT, env=child_env(), timeout=30, check=True)
        return Path(f"shown-{mode}.txt").read_bytes()

    plain = run("none")
    assert plain.index(b"warning") < plain.index(b"after stop")
    assert run("redirect") == plain
    assert Path("output.log").read_text("utf-8").splitlines() == [
        "red and plain", "step 5/5 #####", "héllo ✓", "fd-level write", "from echo", "warning"]


def test_redirect_loses_nothing_written_before_stop() -> None:
    code = textwrap.dedent("""
        import os, sys
        from wbtool.runs.console import ConsoleCapture
        cap = ConsoleCapture("output.log", "redirect")
        cap.start()
        for i in range(20000):
            print(f"line {i:06d} " + "x" * 80)
        sys.stdout.flush()
        os.write(2, b"e" * 300000 + b"\\n")
        os.write(1, b"tail without newline")
        cap.stop()
    """)
    got = run_child(code)
    lines = Path("output.log").read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert sorted(lines[:-1]) == sorted(
        [b"line %06d " % i + b"x" * 80 for i in range(20000)]
        + [b"e" * 300000, b"tail without newline"])
    assert got.stdout.endswith(b"line 019999 " + b"x" * 80 + b"\ntail without newline")
    assert got.stderr == b"e" * 300000 + b"\n"


def test_redirect_stop_does_not_wait_for_a_lingering_child() -> None:
    code = textwrap.dedent("""
        import subprocess, sys, time
        from wbtool.runs.console import ConsoleCapture
        cap = ConsoleCapture("output.log", "redirect")
        cap.start()
        print("before", flush=True)
        child = subprocess.Popen(["sleep", "3"])
        t = time.monotonic()
        cap.stop()
        print(f"stopped in {time.monotonic() - t:.2f}", flush=True)
        child.kill()
    """)
    got = run_child(code)
    first, second = got.stdout.decode().splitlines()
    assert first == "before"
    assert float(second.split()[-1]) < 2.5
    assert Path("output.log").read_bytes() == b"before\n"


def test_a_forked_child_logs_its_own_lines_once() -> None:
    code = textwrap.dedent("""
        import os, sys
        from wbtool.runs.console import ConsoleCapture
        cap = ConsoleCapture("output.log", "wrap")
        cap.start()
        print("parent before")
        sys.stdout.write("\\rpartial ")
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            print("child")
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent after")
        cap.stop()
    """)
    run_child(code)
    lines = Path("output.log").read_text().splitlines()
    assert sorted(lines) == ["parent before", "partial child", "partial parent after"]


PTY_CHILD = textwrap.dedent("""
    import os, subprocess, sys
    from wbtool.runs.console import ConsoleCapture
    cap = ConsoleCapture("output.log", "redirect")
    cap.start()
    print("isatty", sys.stdout.isatty(), os.isatty(1), os.isatty(2))
    print("columns", os.get_terminal_size(1).columns)
    sys.stdout.flush()
    subprocess.run([sys.executable, "-c",
                    "import os; print('grandchild isatty', os.isatty(1))"], check=True)
    print("\\x1b[32mgreen\\x1b[0m")
    for i in range(4):
        sys.stdout.write(f"\\r{i * 25}%")
        sys.stdout.flush()
    print()
    print("\\x1b[31merr\\x1b[0m", file=sys.stderr)
    cap.stop()
    print("after", sys.stdout.isatty())
""")


def test_redirect_keeps_a_terminal_a_terminal() -> None:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 123, 0, 0))
    try:
        proc = subprocess.Popen([sys.executable, "-c", PTY_CHILD], stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=slave, env=child_env())
    finally:
        os.close(slave)
    raw = b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process let go of the terminal
                break
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(master)
        proc.wait(10)
    assert proc.returncode == 0, raw
    shown = raw.replace(b"\r\n", b"\n")  # the terminal's own newline translation
    assert shown == (b"isatty True True True\ncolumns 123\ngrandchild isatty True\n"
                     b"\x1b[32mgreen\x1b[0m\n\r0%\r25%\r50%\r75%\n\x1b[31merr\x1b[0m\n"
                     b"after True\n")
    assert Path("output.log").read_bytes() == (
        b"isatty True True True\ncolumns 123\ngrandchild isatty True\ngreen\n75%\nerr\n")
