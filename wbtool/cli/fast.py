"""The entry point, with fast paths for ``wbtool run`` and ``wbtool log``.

Both sit in the hot path of other programs: ``wbtool run`` in front of every
training job, ``wbtool log`` once per metric row in shell loops. The full
command line (Typer, click) costs more to import and build than their own
work, so plain calls of these two are parsed here, with the same options;
anything unusual (``--help``, an unknown option, a bad value) goes to the full
command line, which also owns the help text and the shell completions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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
            elif value.lstrip("-").isdigit():
                opts["step"] = int(value)
            else:
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


# ``wbtool run`` options: flag(s) → (keyword of launching.execute, kind).
RUN_OPTIONS: dict[str, tuple[str, str]] = {
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
        flag, eq, inline = arg.partition("=")
        spec = RUN_OPTIONS.get(flag)
        if spec is None:
            return None
        dest, kind = spec
        if kind == "flag":
            if eq:
                return None
            opts[dest] = True
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        elif i + 1 < len(argv):
            value = argv[i + 1]
            i += 2
        else:
            return None
        if kind == "float":
            try:
                opts[dest] = float(value)
            except ValueError:
                return None
        elif kind == "list":
            opts.setdefault(dest, [])
            opts[dest].append(value)  # type: ignore[attr-defined]
        else:
            opts[dest] = value
    command = argv[i:]
    if not command:
        return None
    opts["command"] = command
    return opts


def _guarded(fn: Callable[[], int]) -> int:
    """Errors as the full command line reports them: one line, the error's code."""
    from wbtool.errors import WbtoolError

    try:
        return fn()
    except WbtoolError as e:
        sys.stderr.write(f"wbtool: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("wbtool: error: interrupted\n")
        return 130


def _run(opts: dict[str, object]) -> int:
    from wbtool.cli.launching import execute

    command = opts.pop("command")
    return _guarded(lambda: execute(command, **opts))  # type: ignore[arg-type]


def _log(opts: dict[str, object]) -> int:
    def log() -> int:
        from wbtool.context import Context
        from wbtool.runs.shell import log_values, parse_pairs

        result = log_values(
            Context.from_settings(), opts["run_id"],  # type: ignore[arg-type]
            parse_pairs(opts["pairs"]),  # type: ignore[arg-type]
            step=opts["step"], commit=opts["commit"],  # type: ignore[arg-type]
            summary_only=bool(opts["summary"]),
        )
        if opts["as_json"]:
            import json

            doc = {"schema": 1, "command": "log", "result": result}
            sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
        return 0

    return _guarded(log)


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["log"]:
        opts = _parse_log(argv[1:])
        if opts is not None:
            sys.exit(_log(opts))
    elif argv[:1] == ["run"]:
        opts = _parse_run(argv[1:])
        if opts is not None:
            sys.exit(_run(opts))
    from wbtool.cli.main import main as full

    full()
