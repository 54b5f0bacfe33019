"""Error lines show control characters escaped: a value taken from the command
line, a config file or a remote cannot drive the terminal that shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_runs_cli import make_run
from tests.conftest import Cli, is_error

# What a terminal acts on: colour, clear screen, carriage return, bell,
# newline, a C1 control, a line separator and a right-to-left override.
HOSTILE = "\x1b[31mred\x1b[2J\r\x07\n\x9b\u2028\u202e"
SHOWN = r"\x1b[31mred\x1b[2J\r\x07\n\x9b\u2028\u202e"


def shows_escaped(err: str) -> None:
    assert not any(c in err for c in "\x1b\r\x07\x9b\u2028\u202e"), repr(err)
    assert err.count("\n") == 1


def test_a_key_that_a_run_never_recorded(cli: Cli, store_dir: Path) -> None:
    run = make_run()
    res = cli("runs", "system", run.id, "--keys", HOSTILE)
    is_error(res, 2, SHOWN)
    shows_escaped(res.err)


def test_a_remote_url_that_does_not_answer(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    cli("artifact", "log", "ds", str(tmp_path / "f.txt"), "-t", "data", check=True)  # a store
    res = cli("doctor", "--remote", str(tmp_path / f"nowhere{HOSTILE}"))
    is_error(res, 6, f"nowhere{SHOWN}")
    shows_escaped(res.err)
    assert "\x1b" not in res.out and f"nowhere{SHOWN}" in res.out


@pytest.mark.parametrize("argv", [
    ["artifact", "log", "ds", f"missing{HOSTILE}", "-t", "data"],  # the entry point's fast path
    ["artifact", "add", "ds", f"missing{HOSTILE}"],  # the full command line
])
def test_a_path_that_is_not_there(cli: Cli, store_dir: Path, argv: list[str]) -> None:
    res = cli(*argv)
    is_error(res, 3, f"missing{SHOWN}")
    shows_escaped(res.err)


def test_a_remote_name_that_is_not_configured(cli: Cli, store_dir: Path) -> None:
    res = cli("remote", "remove", f"r{HOSTILE}")
    assert res.code != 0
    shows_escaped(res.err)
    assert f"r{SHOWN}" in res.err


def test_text_already_escaped_and_other_unicode_are_shown_as_they_are(
    cli: Cli, store_dir: Path
) -> None:
    # the name is quoted with repr(): escaped once, not twice
    is_error(cli("artifact", "info", "x\x1by"), 2, r"'x\x1by'")
    run = make_run()
    text = "é 日本 😀 Ω \u200d tab"
    is_error(cli("runs", "system", run.id, "--keys", text), 2, text)


def test_a_skipped_file_name_is_shown_escaped(cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "kept.txt").write_text("x")
    (data / f"back\\slash{HOSTILE}").write_text("y")  # not storable: skipped, with a note
    res = cli("artifact", "add", "ds", str(data))
    assert res.code == 0, res.err
    assert f"back\\slash{SHOWN}" in res.err
    assert not any(c in res.err for c in "\x1b\r\x07\x9b\u2028\u202e"), repr(res.err)
