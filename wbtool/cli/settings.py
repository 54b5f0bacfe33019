"""``wbtool settings show``: the effective settings and where each came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from wbtool.cli import output

if TYPE_CHECKING:
    from wbtool.settings import Settings

app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)


@app.command()
def show(
    name: list[str] = typer.Argument(None, help="Only these settings."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
) -> None:
    """Print every setting's effective value and its source."""
    from wbtool.errors import SettingsError
    from wbtool.settings import FIELDS, load

    settings = load()
    names = list(name) if name else sorted(FIELDS)
    for n in names:
        if n not in FIELDS:
            raise SettingsError(name=n, reason="unknown setting")
    values = {n: {"value": getattr(settings, n), "source": settings.source(n)} for n in names}
    if "project" in values:
        _warn_of_invalid_project(settings)
    if as_json:
        output.emit_json("settings show", values)
        return
    output.table(["setting", "value", "source"],
                 [[n, repr(v["value"]), v["source"]] for n, v in values.items()])


def _warn_of_invalid_project(settings: Settings) -> None:
    """Say so, on stderr, when the project shown is no valid project name:
    the settings are still shown (they are how to find where it was set),
    but the commands that work in a project refuse it."""
    from wbtool.context import checked_project
    from wbtool.errors import InvalidNameError

    try:
        checked_project(settings)
    except InvalidNameError as e:
        output.note(f"wbtool: warning: {e}; the commands that work in a project refuse it")
