"""``wbtool remote …``: name the places a store is shared through."""

from __future__ import annotations

from typing import Any

import typer

from wbtool.cli import output

app = typer.Typer(
    help="Remotes: S3, GCS or Azure URLs or shared folders that runs and artifacts sync to.",
    no_args_is_help=True,
)

JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of text.")


def _store(create: bool = True) -> Any:
    """The store; None where there is none and ``create`` is False (looking
    at remotes never creates a store)."""
    from wbtool.context import Context

    ctx = Context.from_settings() if create else Context.existing()
    return None if ctx is None else ctx.store


def _options_text(options: dict[str, Any]) -> str:
    import json

    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                    for k, v in sorted(options.items()))


@app.command()
def add(
    name: str = typer.Argument(..., help="Name of the remote."),
    url: str = typer.Argument(..., help="s3://bucket/prefix, gs://…, az://…, file:///path "
                              "or a folder."),
    default: bool = typer.Option(False, "--default", help="Also make it the default remote."),
    option: list[str] = typer.Option(
        None, "--option", "-o", metavar="KEY=VALUE",
        help="Backend option, e.g. endpoint_url=URL or profile=NAME (repeatable; JSON values "
        "are decoded). Credentials are refused: the backend reads them from its usual sources."),
    as_json: bool = JsonOpt,
) -> None:
    """Add remote NAME at URL (checks the backend is installed; contacts nothing)."""
    from wbtool.remote import config

    options = config.parse_options(option or [])
    spec = config.add(_store(), name, url, options, default=default)
    _note_missing_folder(spec.url)
    if as_json:
        output.emit_json("remote add", spec.to_json())
        return
    output.line(f"added remote {spec.name} at {output.cell(spec.url)}"
                + (" (default)" if spec.default else ""))


def _note_missing_folder(url: str) -> None:
    """Adding a folder that does not exist is allowed (as git accepts any URL;
    the first push makes it where the folder above it exists), but said, since
    reading it fails until then."""
    import os

    from wbtool.remote.fs import parse_url

    parsed = parse_url(url)
    if not parsed.is_local or os.path.lexists(parsed.root):  # a file is refused by add()
        return
    if os.path.isdir(os.path.dirname(os.path.abspath(parsed.root))):
        problem = "does not exist yet; the first `wbtool sync` to it creates it"
    else:
        problem = ("does not exist, nor does the folder above it; make it "
                   "(mkdir -p) before the first `wbtool sync`")
    output.note(f"wbtool: note: the folder {parsed.root} {problem}")


@app.command("list")
def list_(as_json: bool = JsonOpt) -> None:
    """List the remotes (the default one is marked)."""
    from wbtool.remote import config

    store = _store(create=False)
    specs = [] if store is None else config.list(store)
    if as_json:
        output.emit_json("remote list", [s.to_json() for s in specs])
        return
    if not specs and output.is_tty():
        output.note("no remotes: add one with `wbtool remote add NAME URL`")
        return
    output.table(("name", "url", "default", "options"),
                 [(s.name, s.url, "*" if s.default else "", _options_text(s.options))
                  for s in specs])


@app.command()
def remove(
    name: str = typer.Argument(..., help="Name of the remote."),
    as_json: bool = JsonOpt,
) -> None:
    """Forget remote NAME (nothing on the remote is deleted)."""
    from wbtool.errors import NotFoundError
    from wbtool.names import validate_name
    from wbtool.remote import config

    store = _store(create=False)
    if store is None:
        raise NotFoundError(what="remote", name=validate_name(name, "remote name"))
    spec = config.remove(store, name)
    if as_json:
        output.emit_json("remote remove", spec.to_json())
        return
    output.line(f"removed remote {spec.name} ({output.cell(spec.url)})")


@app.command()
def default(
    name: str = typer.Argument(None, help="Name of the remote (omit to show the default)."),
    as_json: bool = JsonOpt,
) -> None:
    """Make NAME the default remote (sync and pull use it), or show the default."""
    from wbtool.errors import NotFoundError
    from wbtool.names import validate_name
    from wbtool.remote import config

    store = _store(create=False)
    if name is not None and store is None:
        raise NotFoundError(what="remote", name=validate_name(name, "remote name"))
    spec = config.set_default(store, name) if name is not None else (
        None if store is None else config.get_default(store))
    if as_json:
        output.emit_json("remote default", spec.to_json() if spec else None)
        return
    if spec is None:
        output.note("no default remote: set one with `wbtool remote default NAME`")
    elif name is not None:
        output.line(f"default remote is now {spec.name} ({output.cell(spec.url)})")
    else:
        output.line(f"{spec.name}\t{output.cell(spec.url)}")
