"""The entry point, with a fast path for ``wbtool log``.

Shell scripts call ``wbtool log`` once per metric row, often in loops; the
full command line (Typer, click) costs more to import than the work itself.
Plain ``wbtool log`` calls are parsed here with the same options; anything
unusual (``--help``, an unknown option) goes to the full command line, which
also owns the help text and the shell completions.
"""

from __future__ import annotations

import sys


def _parse_log(argv: list[str]) -> dict[str, object] | None:
    opts: dict[str, object] = {"pairs": [], "step": None, "commit": None, "summary": False,
                               "run_id": None, "as_json": False}
    pairs: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--step", "--run") and i + 1 < len(argv):
            value = argv[i + 1]
            if arg == "--step":
                try:
                    opts["step"] = int(value)
                except ValueError:
                    return None
            else:
                opts["run_id"] = value
            i += 2
            continue
        if arg.startswith(("--step=", "--run=")):
            name, _, value = arg.partition("=")
            if name == "--step":
                try:
                    opts["step"] = int(value)
                except ValueError:
                    return None
            else:
                opts["run_id"] = value
        elif arg == "--commit":
            opts["commit"] = True
        elif arg == "--no-commit":
            opts["commit"] = False
        elif arg == "--summary":
            opts["summary"] = True
        elif arg == "--json":
            opts["as_json"] = True
        elif arg.startswith("-") or "=" not in arg:
            return None  # help, unknown options, bad pairs: the full parser explains
        else:
            pairs.append(arg)
        i += 1
    if not pairs:
        return None
    opts["pairs"] = pairs
    return opts


def _log(opts: dict[str, object]) -> int:
    from wbtool.errors import WbtoolError

    try:
        from wbtool.context import Context
        from wbtool.runs.shell import log_values, parse_pairs

        result = log_values(
            Context.from_settings(), opts["run_id"],  # type: ignore[arg-type]
            parse_pairs(opts["pairs"]),  # type: ignore[arg-type]
            step=opts["step"], commit=opts["commit"],  # type: ignore[arg-type]
            summary_only=bool(opts["summary"]),
        )
    except WbtoolError as e:
        sys.stderr.write(f"wbtool: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("wbtool: error: interrupted\n")
        return 130
    if opts["as_json"]:
        import json

        doc = {"schema": 1, "command": "log", "result": result}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return 0


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["log"]:
        opts = _parse_log(argv[1:])
        if opts is not None:
            sys.exit(_log(opts))
    from wbtool.cli.main import main as full

    full()
