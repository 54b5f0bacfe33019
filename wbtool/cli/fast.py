"""The entry point, with fast paths for the commands other programs call.

``wbtool run`` sits in front of every training job, ``wbtool log`` runs once
per metric row in shell loops, and ``wbtool artifact log``, ``checkout``,
``download`` and ``verify`` in data pipelines. The full command line (Typer,
click) costs more to import and build than many of these calls' own work, so
plain calls of these are parsed here, with the same options; anything unusual
(``--help``, an unknown option, a bad value) goes to the full command line,
which also owns the help text and the shell completions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

_LOG_FLAGS = {"--commit": ("commit", True), "--no-commit": ("commit", False),
              "--summary": ("summary", True), "--json": ("as_json", True)}


def _parse_log(argv: list[str]) -> dict[str, object] | None:
    opts: dict[str, object] = {"pairs": [], "step": None, "commit": None, "summary": False,
                               "run_id": None, "as_json": False}
    pairs: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--step", "--run"):
            if not eq:
                if i + 1 >= len(argv):
                    return None
                i += 1
                value = argv[i]
            if name == "--run":
                opts["run_id"] = value
            else:
                try:
                    opts["step"] = int(value)  # what click's INT takes
                except ValueError:
                    return None
        elif arg in _LOG_FLAGS:
            key, flag = _LOG_FLAGS[arg]
            opts[key] = flag
        elif arg.startswith("-") or "=" not in arg:
            return None  # help, unknown options, bad pairs: the full parser explains
        else:
            pairs.append(arg)
        i += 1
    if not pairs:
        return None
    opts["pairs"] = pairs
    return opts


# Options of the commands parsed here: flag → (keyword, kind), where a kind
# is "value", "list", "float", "flag" or the tuple of the values allowed.
OptionSpec = dict[str, tuple[str, str | tuple[str, ...]]]

# ``wbtool run`` options (keywords of launching.execute).
RUN_OPTIONS: OptionSpec = {
    "--project": ("project", "value"), "-p": ("project", "value"),
    "--name": ("name", "value"), "--id": ("run_id", "value"),
    "--group": ("group", "value"), "--job-type": ("job_type", "value"),
    "--tag": ("tags", "list"), "--notes": ("notes", "value"),
    "--config": ("config", "list"), "--dir": ("directory", "value"),
    "--interval": ("interval", "float"), "--no-stats": ("no_stats", "flag"),
    "--no-console": ("no_console", "flag"), "--no-git": ("no_git", "flag"),
    "--resume": ("resume", "value"), "--capture-metrics": ("capture_metrics", "list"),
    "--quiet": ("quiet", "flag"), "-q": ("quiet", "flag"),
    "--sync": ("sync", "flag"), "--live": ("live", "float"),
}


def _take_option(
    argv: list[str], i: int, options: OptionSpec, opts: dict[str, object]
) -> int | None:
    """Read the option at ``argv[i]`` (and its value) into ``opts``; return the
    index after it, or None when the full parser should see the call (an
    unknown option, a missing or odd value)."""
    arg = argv[i]
    if arg.startswith("--"):
        flag, eq, value = arg.partition("=")
    elif "=" in arg:
        return None  # click reads "-t=x" as the value "=x": leave it to click
    else:
        flag, eq, value = arg, "", ""
    spec = options.get(flag)
    if spec is None:
        return None
    dest, kind = spec
    i += 1
    if kind == "flag":
        if eq:
            return None
        opts[dest] = True
        return i
    if not eq:
        if i >= len(argv) or argv[i].startswith("-"):
            return None
        value = argv[i]
        i += 1
    if kind == "float":
        try:
            opts[dest] = float(value)
        except ValueError:
            return None
    elif kind == "list":
        opts.setdefault(dest, [])
        opts[dest].append(value)  # type: ignore[attr-defined]
    elif isinstance(kind, tuple) and value not in kind:
        return None
    else:
        opts[dest] = value
    return i


def _parse_run(argv: list[str]) -> dict[str, object] | None:
    opts: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break  # the command starts here
        after = _take_option(argv, i, RUN_OPTIONS, opts)
        if after is None:
            return None
        i = after
    command = argv[i:]
    if not command:
        return None
    opts["command"] = command
    return opts


# ``wbtool artifact log``, ``checkout``, ``download`` and ``verify`` options.
ARTIFACT_LOG_OPTIONS: OptionSpec = {
    "--type": ("type", "value"), "-t": ("type", "value"),
    "--description": ("description", "value"), "-d": ("description", "value"),
    "--metadata": ("metadata", "value"),
    "--alias": ("aliases", "list"), "-a": ("aliases", "list"), "--tag": ("tags", "list"),
    "--policy": ("policy", ("mutable", "immutable")),
    "--name-in-artifact": ("name_in_artifact", "value"), "--run": ("run", "value"),
    "--incremental": ("incremental", "flag"), "-i": ("incremental", "flag"),
    "--project": ("project", "value"), "-p": ("project", "value"), "--json": ("as_json", "flag"),
}
_LINKS = ("auto", "copy", "reflink", "hardlink", "symlink")
ARTIFACT_CHECKOUT_OPTIONS: OptionSpec = {
    "--link": ("link", _LINKS), "--force": ("force", "flag"), "--run": ("run", "value"),
    "--project": ("project", "value"), "-p": ("project", "value"), "--json": ("as_json", "flag"),
}
ARTIFACT_DOWNLOAD_OPTIONS: OptionSpec = {
    "--root": ("root", "value"), "--path-prefix": ("path_prefix", "value"),
    "--link": ("link", _LINKS), "--run": ("run", "value"),
    "--project": ("project", "value"), "-p": ("project", "value"), "--json": ("as_json", "flag"),
}
ARTIFACT_VERIFY_OPTIONS: OptionSpec = {
    "--root": ("root", "value"),
    "--project": ("project", "value"), "-p": ("project", "value"), "--json": ("as_json", "flag"),
}


def _parse_artifact(
    argv: list[str], options: OptionSpec, least: int, most: int | None,
) -> tuple[list[str], dict[str, object]] | None:
    """(arguments, options) of a plain call, options anywhere as click takes
    them; None for anything the full parser should see."""
    args: list[str] = []
    opts: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            args += argv[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            args.append(arg)
            i += 1
            continue
        after = _take_option(argv, i, options, opts)
        if after is None:
            return None
        i = after
    if len(args) < least or (most is not None and len(args) > most):
        return None
    return args, opts


def _artifact(argv: list[str]) -> Callable[[], None] | None:
    """The work of a plain ``artifact log``, ``checkout``, ``download`` or
    ``verify`` call."""
    from wbtool.cli import artifact_ops

    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "log":
        parsed = _parse_artifact(rest, ARTIFACT_LOG_OPTIONS, 1, None)
        if parsed is None:
            return None
        (name, *paths), opts = parsed
        immutable = opts.pop("policy", "mutable") == "immutable"
        return lambda: artifact_ops.log_version(
            name, paths, immutable=immutable, **opts)  # type: ignore[arg-type]
    if command == "checkout":
        parsed = _parse_artifact(rest, ARTIFACT_CHECKOUT_OPTIONS, 2, 2)
        if parsed is None:
            return None
        (ref, directory), opts = parsed
        return lambda: artifact_ops.checkout_version(
            ref, directory, **opts)  # type: ignore[arg-type]
    if command in ("download", "verify"):
        options = ARTIFACT_DOWNLOAD_OPTIONS if command == "download" else ARTIFACT_VERIFY_OPTIONS
        work = artifact_ops.download_version if command == "download" else (
            artifact_ops.verify_version)
        parsed = _parse_artifact(rest, options, 1, 1)
        if parsed is None:
            return None
        (ref,), opts = parsed
        return lambda: work(ref, **opts)  # type: ignore[arg-type]
    return None


def _guarded(fn: Callable[[], int]) -> int:
    """Errors as the full command line reports them: one line, the error's code."""
    from wbtool.cli.failure import exit_code

    try:
        return fn()
    except (Exception, KeyboardInterrupt) as e:
        return exit_code(e)


def _run(opts: dict[str, object]) -> int:
    from wbtool.cli.launching import execute

    command = opts.pop("command")
    return _guarded(lambda: execute(command, **opts))  # type: ignore[arg-type]


def _log(opts: dict[str, object]) -> int:
    def log() -> int:
        from wbtool.context import Context
        from wbtool.runs.shell import log_values, parse_pairs

        values = parse_pairs(opts["pairs"])  # type: ignore[arg-type]
        result = log_values(
            Context.existing(), opts["run_id"],  # type: ignore[arg-type]
            values, step=opts["step"], commit=opts["commit"],  # type: ignore[arg-type]
            summary_only=bool(opts["summary"]),
        )
        if opts["as_json"]:
            from wbtool.cli.output import emit_json

            emit_json("log", result)
        return 0

    return _guarded(log)


def _leave(code: int) -> NoReturn:
    """Exit once the work is done and its output flushed, without tearing the
    interpreter down object by object: after a large checkout that takes
    longer than many small commands' whole work. Files and the index are
    closed or committed by then (SQLite needs no close to keep a commit)."""
    code = flushed(code)
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def flushed(code: int) -> int:
    """``code``, once what is left of the output is written: a reader that
    went away takes nothing and is no error; no room where it goes
    (``> /dev/full``) is one (exit 1), told here, not by Python at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from wbtool.cli.output import discard_stdout

        discard_stdout()
    except ValueError:  # closed
        pass
    except OSError as e:
        from wbtool.cli.failure import exit_code
        from wbtool.cli.output import stdout_failed

        return code or exit_code(stdout_failed(e))
    return code


def _hold_closed_descriptors() -> None:
    """Take descriptors 0, 1 and 2 where the process was started without them
    (``>&-``), so that no file opened later lands on one: ``wbtool run``
    copies the command's output to descriptor 1, which would otherwise be a
    run's history file. What holds them fails reads (0) or writes (1, 2) as
    the closed descriptor would, and is not passed on to commands."""
    for fd, flags in ((0, os.O_WRONLY), (1, os.O_RDONLY), (2, os.O_RDONLY)):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, flags | os.O_CLOEXEC)
            if held != fd:
                os.dup2(held, fd, inheritable=False)
                os.close(held)


def _escape_surrogates(exc: UnicodeError) -> tuple[str | bytes, int]:
    """An encoding error handler: a surrogate that stands for a byte (from a
    file name or an argument) is written as that byte, as ``surrogateescape``
    does; any other (``"\\ud800"``, logged from Python) as its escape."""
    import codecs

    try:
        return codecs.lookup_error("surrogateescape")(exc)
    except UnicodeError:
        return codecs.backslashreplace_errors(exc)


def main() -> None:
    _hold_closed_descriptors()
    if sys.stdout is None or sys.stderr is None:  # started with >&- or 2>&-
        from wbtool.cli.output import stand_in_for_closed_streams

        stand_in_for_closed_streams()
    # Text that was not UTF-8 (a file name, an argument) is kept in a run's
    # files as its escape, and shown so too, instead of failing the output.
    errors = getattr(sys.stdout, "errors", None)
    if errors == "strict":
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    elif errors == "surrogateescape":  # LANG=C.UTF-8: bytes back as bytes, the rest escaped
        import codecs

        codecs.register_error("wbtool-escape", _escape_surrogates)
        sys.stdout.reconfigure(errors="wbtool-escape")  # type: ignore[union-attr]
    argv = sys.argv[1:]
    if argv[:1] == ["log"]:
        opts = _parse_log(argv[1:])
        if opts is not None:
            sys.exit(flushed(_log(opts)))
    elif argv[:1] == ["run"]:
        opts = _parse_run(argv[1:])
        if opts is not None:
            sys.exit(flushed(_run(opts)))
    elif argv[:1] == ["artifact"]:
        work = _artifact(argv[1:])
        if work is not None:
            _leave(_guarded(lambda: work() or 0))
    from wbtool.cli.main import main as full

    full()
