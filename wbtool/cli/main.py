"""The ``wbtool`` command: the only place where errors become exit codes."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from wbtool._version import __version__
from wbtool.cli import artifact as artifact_cmd
from wbtool.cli import doctor as doctor_cmd
from wbtool.cli import remote as remote_cmd
from wbtool.cli import run_cmd
from wbtool.cli import runs as runs_cmd
from wbtool.cli import settings as settings_cmd
from wbtool.cli import sync as sync_cmd

# The command groups and commands. Building Typer's click objects for all of
# them costs tens of milliseconds, so a call builds only the one it names.
_GROUPS = {
    "artifact": artifact_cmd.app,
    "remote": remote_cmd.app,
    "runs": runs_cmd.app,
    "settings": settings_cmd.app,
}
_COMMANDS: dict[str, tuple[Any, dict[str, Any] | None]] = {
    "run": (run_cmd.run, {"allow_interspersed_args": False}),
    "log": (run_cmd.log, None),
    "alert": (run_cmd.alert, None),
    "sync": (sync_cmd.sync, None),
    "pull": (sync_cmd.pull, None),
    "gc": (sync_cmd.gc, None),
    "doctor": (doctor_cmd.doctor, None),
}


class _Root(TyperGroup):
    """The ``wbtool`` group. Ctrl-C in a command is told as every failure is
    (Typer would end the command with 130 and not a word)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:
            from wbtool.cli.failure import exit_code

            raise typer.Exit(exit_code(e)) from None


def build_app(only: str | None = None) -> typer.Typer:
    """The ``wbtool`` app: every command, or just ``only`` (a group or command)."""
    application = typer.Typer(
        cls=_Root,
        name="wbtool",
        help="Local-first experiment tracking and artifact versioning.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    application.callback()(root)
    for name, group in _GROUPS.items():
        if only in (None, name):
            application.add_typer(group, name=name)
    for name, (fn, context) in _COMMANDS.items():
        if only in (None, name):
            application.command(name, context_settings=context)(fn)
    return application


def _version(value: bool) -> None:
    if value:
        from wbtool.cli.output import line

        line(f"wbtool {__version__}")
        raise typer.Exit()


def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Local-first experiment tracking and artifact versioning."""


app = build_app()


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raises for expected errors).

    Usage errors (exit 2) and wbtool's own errors become one line on stderr
    and their exit code; Ctrl-C exits 130.
    """
    from wbtool.cli.failure import exit_code, fail
    from wbtool.errors import EXIT_FAILURE

    args = sys.argv[1:] if argv is None else argv
    first = next((a for a in args if not a.startswith("-")), None)
    target = build_app(first) if first in _GROUPS or first in _COMMANDS else app
    try:
        # Not standalone: click's own errors come back here to be told in one line.
        result = target(args=args, prog_name="wbtool", standalone_mode=False)
    except SystemExit as e:
        if isinstance(e.__context__, BrokenPipeError):  # Typer's exit 1 for a reader gone
            from wbtool.cli.output import discard_stdout

            discard_stdout()
            return 0  # as a command's own output into a closed pipe: no error
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_FAILURE)
    except typer.TyperException as e:
        return _usage_failure(e)
    except typer.Abort:  # end of input at a prompt
        return fail("aborted", EXIT_FAILURE)
    except (Exception, KeyboardInterrupt) as e:
        return exit_code(e)
    # A command's return value is None; an int here is the code of a typer.Exit.
    return result if type(result) is int else 0


def _usage_failure(e: typer.TyperException) -> int:
    """Tell a usage error (unknown option, missing argument, bad value) in one
    line that names the command's help; a group called with no command
    shows its help, as ``wbtool`` alone does."""
    from wbtool.cli.failure import fail

    ctx = getattr(e, "ctx", None)
    message = e.format_message()
    if ctx is not None and message == ctx.get_help():
        sys.stderr.write(message + "\n")
        return e.exit_code
    line = " ".join(message.split()).removesuffix(".")
    if line[1:2].islower():
        line = line[0].lower() + line[1:]
    if ctx is not None:
        line += f" (see '{ctx.command_path} -h')"
    return fail(line, e.exit_code)


def main() -> None:
    from wbtool.cli.fast import flushed

    sys.exit(flushed(run(sys.argv[1:])))
