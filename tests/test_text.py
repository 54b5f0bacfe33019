from __future__ import annotations

import ast
from pathlib import Path

import wbtool
from wbtool.text import printable, printable_lines


def test_printable_escapes_what_a_terminal_acts_on() -> None:
    assert printable("plain ünïcode") == "plain ünïcode"
    assert printable("a\x1b[31mb\tc\nd\u202ee") == "a\\x1b[31mb\\tc\\nd\\u202ee"
    assert printable_lines("a\x1b[31mb\tc\nd\r\x07") == "a\\x1b[31mb\tc\nd\\r\\x07"
    assert printable("a\tb\nc\rd", keep="\r") == "a\\tb\\nc\rd"


def test_only_the_command_line_imports_the_command_line() -> None:
    """The SDK layer (a run's alerts and messages) imported its escaping from
    wbtool.cli; no module outside wbtool/cli (but the entry point) may."""
    root = Path(wbtool.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("cli/") or rel == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{rel}: {n}" for n in names if n == "wbtool.cli"
                          or n.startswith("wbtool.cli.")]
    assert offenders == []
