"""``wbtool doctor``: check the environment, the store and its remotes; change nothing."""

from __future__ import annotations

from typing import Any

import typer

from wbtool.cli import output

# How each status reads: on a terminal (a mark and its colour), and in a pipe.
_MARKS = {"ok": ("✔", "green"), "warn": ("!", "yellow"), "fail": ("✘", "red")}
_WORDS = {"ok": "ok", "warn": "warn", "fail": "FAIL"}
_NAME_WIDTH = 12


def doctor(
    verify: bool = typer.Option(False, "--verify", help="Also hash every object that a "
                                "version or staged file needs (reads the whole store)."),
    remote: str | None = typer.Option(
        None, "--remote", "-r", metavar="NAME|URL|all", help="Contact this remote (or every "
        "configured one, with 'all') to see that it answers; without it remotes are only "
        "listed."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document instead of "
                                 "text."),
) -> None:
    """Check the environment, the store and its remotes, and say what repairs each problem.

    It only reads: nothing in the store is changed, locked or created, so it
    also checks a store this user cannot write. Exit code 0 when nothing
    failed (warnings allowed), 4 when a check failed, 6 when only a remote
    did not answer, 7 when there is no store or it cannot be opened.
    """
    from wbtool.doctor import diagnose

    checks = []
    tty = output.is_tty()
    for check in diagnose(verify=verify, remote=remote, progress=output.progress):
        checks.append(check)
        if not as_json:
            _show(check, tty)
    counts = {status: sum(c.status == status for c in checks) for status in _WORDS}
    if as_json:
        output.emit_json("doctor", {
            "ok": counts["fail"] == 0, "checks": [c.to_json() for c in checks],
            "summary": counts})
    else:
        output.line(f"{len(checks)} checks: {counts['ok']} ok, {counts['warn']} "
                    f"warning{'' if counts['warn'] == 1 else 's'}, {counts['fail']} failed")
    _exit(checks)


def _show(check: Any, tty: bool) -> None:
    """One finding; a remote's URL or a stored name in it is shown escaped, as
    in error lines, so that it cannot drive the terminal."""
    from wbtool.text import printable

    name, detail, hint = printable(check.name), printable(check.detail), printable(check.hint or "")
    if not tty:
        output.line(f"{_WORDS[check.status]:<4}  {name}: {detail}")
        if hint and check.status != "ok":
            output.line(f"      repair: {hint}")
        return
    from rich.console import Console
    from rich.text import Text

    mark, colour = _MARKS[check.status]
    text = Text.assemble((mark, f"bold {colour}"), " ", (f"{name:<{_NAME_WIDTH}}", "bold"),
                         " ", detail)
    console = Console(highlight=False, soft_wrap=True)
    console.print(text)
    if hint and check.status != "ok":
        console.print(Text.assemble(" " * (_NAME_WIDTH + 3), ("→ " + hint, "dim")))


def _exit(checks: list[Any]) -> None:
    """One line on stderr and the exit code of the worst finding."""
    from wbtool.errors import RemoteUnreachableError, StoreError, VerificationError

    fatal = [c for c in checks if c.fatal]
    if fatal:
        raise StoreError(fatal[0].detail)
    failed = [c for c in checks if c.status == "fail"]
    store = [c for c in failed if not c.remote]
    if store:
        raise VerificationError(
            message=f"{len(store)} check(s) failed: "
            + ", ".join(dict.fromkeys(c.name for c in store)))
    if failed:
        raise RemoteUnreachableError(
            f"{len(failed)} remote(s) did not answer: "
            + ", ".join(c.name.removeprefix("remote ") for c in failed))
