"""Command line of the benchmarks: ``python -m bench artifact|log|run|startup|stats|sync``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import artifact, log, run, startup, stats, sync, syncruns
from bench.datasets import DATASET_KEYS, GIB, KIB, MIB
from bench.runner import find_wbtool


def _sizes(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [key for key in keys if key not in DATASET_KEYS]
    if not keys or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(DATASET_KEYS)}, got {text!r}"
        )
    return list(dict.fromkeys(keys))


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _size(text: str) -> int:
    """A byte count: ``10240``, ``10KiB``, ``64MiB``, ``1GiB`` (0 allowed)."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    factors = {"gib": GIB, "mib": MIB, "kib": KIB, "b": 1}
    for suffix, factor in factors.items():
        if cleaned.lower().endswith(suffix):
            number, unit = cleaned[: -len(suffix)].strip(), factor
            break
    else:
        number, unit = cleaned, 1
    try:
        value = int(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size in bytes (e.g. 10240, 10KiB, 64MiB): {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _sync_cases(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [key for key in keys if key not in sync.CASES]
    if not keys or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(sync.CASES)}, got {text!r}"
        )
    return list(dict.fromkeys(keys))


def _quiet_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    least = run.SAMPLE_AFTER_S + 2 * run.POLL_S
    if not value >= least:
        raise argparse.ArgumentTypeError(f"must be at least {least:g}: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks for wbtool, with the targets they are held to.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    art = sub.add_parser(
        "artifact",
        help="time 'wbtool artifact log' and 'checkout' against cp, cat, tar and hashing",
        description=(
            "Time 'wbtool artifact log' (cold, warm, immutable) and 'wbtool artifact "
            "checkout' (copy, hardlink) against cp -r, cp -a, cp -al, cat, tar and plain "
            "xxh3-128 hashing, on generated data sets: a = one 1 GiB file, b = 10,000 "
            "files of 10 KiB, c = 100,000 files of 1 KiB (or --files N)."
        ),
    )
    art.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DATASET_KEYS),
        metavar="a,b,c",
        help="data sets to run (default: a,b,c)",
    )
    art.add_argument(
        "--files",
        type=_positive,
        default=None,
        metavar="N",
        help="number of 1 KiB files in data set c (default: 100,000)",
    )
    art.add_argument(
        "--repeat", type=_positive, default=3, metavar="R", help="timed runs per case (default: 3)"
    )
    art.add_argument(
        "--root",
        type=Path,
        default=Path("bench-data"),
        metavar="DIR",
        help="where data sets are generated and kept, and scratch space (default: ./bench-data)",
    )
    art.add_argument("--wbtool", default=None, metavar="PATH", help="wbtool executable to time")
    art.add_argument("--json", action="store_true", help="print the results as JSON")

    st = sub.add_parser(
        "startup",
        help="time 'import wbtool' and 'wbtool --help'",
        description=(
            "Median cumulative time of 'import wbtool' (python -X importtime) and median "
            "wall time of 'wbtool --help'."
        ),
    )
    st.add_argument(
        "--repeat", type=_positive, default=10, metavar="R", help="runs of each (default: 10)"
    )
    st.add_argument("--wbtool", default=None, metavar="PATH", help="wbtool executable to time")
    st.add_argument("--json", action="store_true", help="print the results as JSON")

    lg = sub.add_parser(
        "log",
        help="time run.log, a run's start-up, and what a SIGKILL loses",
        description=(
            "Rate of run.log with 3 and 50 keys, time of finish(), wall time of import + "
            "init + finish of an empty run, and the rows a SIGKILL loses 2.0 s and 0.5 s "
            "after the last run.log; against wandb offline where it is installed."
        ),
    )
    lg.add_argument(
        "--repeat", type=_positive, default=3, metavar="R", help="timed rounds (default: 3)"
    )
    lg.add_argument(
        "--calls3",
        type=_positive,
        default=100_000,
        metavar="N",
        help="run.log calls of 3 keys (default: 100,000)",
    )
    lg.add_argument(
        "--calls50",
        type=_positive,
        default=10_000,
        metavar="N",
        help="run.log calls of 50 keys (default: 10,000)",
    )
    lg.add_argument(
        "--trials",
        type=_positive,
        default=5,
        metavar="T",
        help="SIGKILL trials for each delay (default: 5)",
    )
    lg.add_argument(
        "--no-wandb",
        dest="wandb",
        action="store_false",
        help="do not run wandb even where it is installed (show its reference figures)",
    )
    lg.add_argument("--wbtool", default=None, metavar="PATH", help="wbtool executable to report")
    lg.add_argument("--json", action="store_true", help="print the results as JSON")

    rn = sub.add_parser(
        "run",
        help="time what 'wbtool run -- CMD' adds: start-up, output capture, idle CPU",
        description=(
            "Wall time that 'wbtool run -q --' adds to 'true' and 'python -c pass'; "
            "throughput of a command's output through it, against a pipe to cat; and "
            "the wrapper's own CPU use while its command sleeps."
        ),
    )
    rn.add_argument(
        "--repeat", type=_positive, default=3, metavar="R", help="timed rounds (default: 3)"
    )
    rn.add_argument(
        "--megabytes",
        type=_positive,
        default=100,
        metavar="N",
        help="MiB the output throughput case writes (default: 100)",
    )
    rn.add_argument(
        "--quiet-seconds",
        type=_quiet_seconds,
        default=60.0,
        metavar="S",
        help="how long the command of the idle CPU case sleeps (default: 60)",
    )
    rn.add_argument(
        "--wbtool",
        default=None,
        metavar="PATH",
        help="wbtool executable to time (default: this Python's 'python -m wbtool')",
    )
    rn.add_argument("--json", action="store_true", help="print the results as JSON")

    ss = sub.add_parser(
        "stats",
        help="CPU time and memory of sampling system metrics, with a tree of 51 processes",
        description=(
            "CPU time per sample of the system collector (Sampler.sample_once) and the "
            "process's resident memory, sampling itself and 50 idle children every 1 s "
            "and every 0.1 s."
        ),
    )
    ss.add_argument(
        "--repeat", type=_positive, default=1, metavar="R", help="rounds of each case (default: 1)"
    )
    ss.add_argument(
        "--seconds", type=_positive, default=10, metavar="S",
        help="how long each case samples (default: 10)",
    )
    ss.add_argument("--wbtool", default=None, metavar="PATH", help="wbtool executable to report")
    ss.add_argument("--json", action="store_true", help="print the results as JSON")

    sy = sub.add_parser(
        "sync",
        help="time 'wbtool sync' to an S3 server against 'aws s3 sync' and 'dvc push'",
        description=(
            "Start moto's S3 server on 127.0.0.1, then time the first push and the no-op "
            "second push of 'wbtool sync --no-runs', 'aws s3 sync' and 'dvc push' (where "
            "installed), each into a fresh prefix: N small files, N/4 of them (for the "
            "growth of peak RSS), and one big file. Then the run cases: no-op and "
            "incremental 'wbtool sync --no-artifacts' of many runs, and of runs of many "
            "history parts, to the same server and to a folder."
        ),
    )
    sy.add_argument(
        "--cases", type=_sync_cases, default=list(sync.CASES), metavar="artifacts,runs",
        help="which cases to run (default: artifacts,runs)",
    )
    sy.add_argument(
        "--small", type=_positive, default=None, metavar="N",
        help=f"number of small files (default: {sync.DEFAULT_SMALL:,}; --quick: "
        f"{sync.QUICK_SMALL:,})",
    )
    sy.add_argument(
        "--small-size", type=_size, default=sync.DEFAULT_SMALL_SIZE, metavar="BYTES",
        help="size of each small file (default: 10KiB)",
    )
    sy.add_argument(
        "--big-size", type=_size, default=None, metavar="BYTES",
        help="size of the big file, 0 for none (default: 1GiB; --quick: 64MiB)",
    )
    sy.add_argument(
        "--quick", action="store_true",
        help=f"a short check: {sync.QUICK_SMALL:,} small files, a 64 MiB big file, "
        f"{syncruns.QUICK_RUNS} runs and {syncruns.QUICK_PARTS} parts",
    )
    sy.add_argument(
        "--runs", type=_positive, default=None, metavar="N",
        help=f"runs of the run cases (default: {syncruns.DEFAULT_RUNS:,}; --quick: "
        f"{syncruns.QUICK_RUNS:,})",
    )
    sy.add_argument(
        "--part-runs", type=_positive, default=syncruns.DEFAULT_PART_RUNS, metavar="K",
        help=f"runs of many history parts (default: {syncruns.DEFAULT_PART_RUNS})",
    )
    sy.add_argument(
        "--parts", type=_positive, default=None, metavar="P",
        help=f"history parts of each of them (default: {syncruns.DEFAULT_PARTS:,}; --quick: "
        f"{syncruns.QUICK_PARTS:,})",
    )
    sy.add_argument(
        "--repeat", type=_positive, default=1, metavar="R",
        help="timed runs of each push, each into a fresh prefix, and of each run case "
        "(default: 1)",
    )
    sy.add_argument(
        "--root", type=Path, default=Path("bench-data"), metavar="DIR",
        help="where data sets are generated and kept, and scratch space (default: ./bench-data)",
    )
    sy.add_argument("--no-dvc", dest="dvc", action="store_false",
                    help="leave dvc out even where it is installed")
    sy.add_argument("--wbtool", default=None, metavar="PATH", help="wbtool executable to time")
    sy.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Time commands as users run them: with byte-code caches. A shell that sets
    # PYTHONDONTWRITEBYTECODE would make every wbtool run compile itself anew.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        wbtool = find_wbtool(args.wbtool)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "artifact":
        return artifact.main(
            sizes=args.sizes,
            files=args.files,
            repeat=args.repeat,
            root=args.root,
            wbtool=wbtool,
            as_json=args.json,
        )
    if args.command == "log":
        return log.main(
            repeat=args.repeat,
            calls3=args.calls3,
            calls50=args.calls50,
            trials=args.trials,
            wandb=args.wandb,
            wbtool=wbtool,
            as_json=args.json,
        )
    if args.command == "run":
        return run.main(
            repeat=args.repeat,
            megabytes=args.megabytes,
            quiet_seconds=args.quiet_seconds,
            wbtool=[wbtool] if args.wbtool else [sys.executable, "-m", "wbtool"],
            as_json=args.json,
        )
    if args.command == "sync":
        quick = args.quick
        if args.small_size < 1:
            print("error: --small-size must be at least 1 byte", file=sys.stderr)
            return 2
        return sync.main(
            small=args.small or (sync.QUICK_SMALL if quick else sync.DEFAULT_SMALL),
            small_size=args.small_size,
            big_size=(args.big_size if args.big_size is not None
                      else sync.QUICK_BIG if quick else sync.DEFAULT_BIG),
            repeat=args.repeat,
            root=args.root,
            dvc=args.dvc,
            wbtool=wbtool,
            as_json=args.json,
            cases=args.cases,
            run_sizes=syncruns.Sizes(
                runs=args.runs or (syncruns.QUICK_RUNS if quick else syncruns.DEFAULT_RUNS),
                part_runs=args.part_runs,
                parts=args.parts or (syncruns.QUICK_PARTS if quick else syncruns.DEFAULT_PARTS),
            ),
        )
    if args.command == "stats":
        return stats.main(repeat=args.repeat, seconds=args.seconds, wbtool=wbtool,
                          as_json=args.json)
    return startup.main(repeat=args.repeat, wbtool=wbtool, as_json=args.json)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader of our output went away (``| head``); say nothing more.
        sys.stderr.close()
        sys.exit(1)
