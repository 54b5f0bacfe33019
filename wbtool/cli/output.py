"""Rendering results: rich on a terminal, plain lines in pipes, a versioned
JSON envelope with ``--json``; progress bars adapted to the core's callbacks."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from wbtool.text import printable
from wbtool.units import human_size as human_size  # what every command prints sizes with

JSON_SCHEMA = 1


class _ClosedStream(io.TextIOBase):
    """Stands in for a standard stream the process was started without
    (``>&-``), which Python leaves as None. Writing to a closed stdout fails
    as writing to any closed descriptor does (the command reports it and exits
    1); messages for a closed stderr are dropped, as there is nowhere to
    report them."""

    def __init__(self, name: str, fail: bool) -> None:
        super().__init__()
        self._name = name
        self._fail = fail

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._fail:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF), self._name)
        return len(text)


def stand_in_for_closed_streams() -> None:
    """Give ``sys.stdout``/``sys.stderr`` a stand-in where they are None."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream("<stdout>", fail=True)
    if sys.stderr is None:
        sys.stderr = _ClosedStream("<stderr>", fail=False)


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# Strict JSON has no NaN or infinities: ``--json`` writes them as these strings.
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def emit_json(command: str, result: Any) -> None:
    """The ``--json`` envelope: strict JSON, non-finite floats as :data:`NON_FINITE`."""
    doc = {"schema": JSON_SCHEMA, "command": command, "result": result}
    try:
        text = json.dumps(doc, indent=2, sort_keys=True, default=str, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere (rare: walk only then)
        text = json.dumps(_finite(doc), indent=2, sort_keys=True, default=str,
                          allow_nan=False)
    _write(text + "\n")


def _finite(value: Any) -> Any:
    """``value`` with each NaN or infinity replaced by its :data:`NON_FINITE` name."""
    if isinstance(value, float):
        return value if value - value == 0 else NON_FINITE[str(value)]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def line(text: str = "") -> None:
    _write(text + "\n")


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
    except BrokenPipeError:
        discard_stdout()
    except OSError as e:
        raise stdout_failed(e) from None


def stdout_failed(e: OSError) -> Exception:
    """The error to report for a write to stdout that failed with ``e``: the
    output left unwritten is dropped, so that Python's own flush at exit
    does not fail (and report) it again. Not the store's error (exit 7): the
    store is whole; the command's output could not be written (exit 1)."""
    from wbtool.errors import OutputError

    with contextlib.suppress(OSError, ValueError):
        discard_stdout()
    return OutputError(reason=e.strerror or str(e))


def discard_stdout() -> None:
    """The reader of stdout went away (``| head``): what is still to be written
    goes nowhere, quietly, and the command keeps its exit code."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def note(text: str, *, as_is: bool = False) -> None:
    """A message for the person (stderr), silent in pipes only if asked. Control
    characters in it (from a path, a remote's record) are shown escaped unless
    ``as_is`` says the caller already made it safe to show."""
    if not as_is:
        text = printable(text)
    sys.stderr.write(text + "\n")


def cell(value: Any) -> str:
    """A value as a table shows it: None as nothing, and control characters
    (a tab or newline in a run's name, an escape sequence in a path) as their
    escapes, so that each row stays one line of the right columns in a pipe
    and nothing in it drives a terminal. ``--json`` keeps values exact."""
    return "" if value is None else printable(str(value))


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Rows as a rich table on a terminal, else as tab-separated lines, one a row."""
    if is_tty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        t = Table(title=title, show_edge=False, header_style="bold")
        for c in columns:
            t.add_column(c)
        for r in rows:  # Text: a name such as "[red]x" is shown as it is, not as markup
            t.add_row(*(Text(cell(v)) for v in r))
        Console().print(t)
        return
    for r in rows:
        line("\t".join(map(cell, r)))


@contextlib.contextmanager
def progress(description: str, total_files: int | None = None) -> Iterator[Any]:
    """A callback ``(files, bytes)`` that drives a bar on a terminal (stderr)."""
    if not is_tty(sys.stderr):
        yield lambda files, nbytes: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TransferSpeedColumn(), TimeElapsedColumn(), transient=True,
        redirect_stdout=False, redirect_stderr=False,
    )
    task = bar.add_task(description, total=total_files)
    with bar:
        yield lambda files, nbytes: bar.advance(task, files)
