"""``python -m bench sync``: ``wbtool sync`` to an S3 server against ``aws s3 sync``, ``dvc push``.

One moto server (``moto_server``, S3 over HTTP on a free port of 127.0.0.1)
serves every client in the same run, so that they are compared with each
other and not with figures taken on another day. Each push goes into a fresh
prefix of one bucket; each client first pushes a data set (timed: the wall
time of the whole process), then pushes it again with nothing new (the
no-op push, timed too). Peak resident memory of the first push is taken at
two file counts, N and N/4, to show whether it grows with the number of
objects. The same server serves the run cases (``bench.syncruns``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from bench import syncruns
from bench.datasets import GIB, KIB, MIB, DatasetSpec, ensure, format_count, format_size
from bench.fsutil import remove_tree
from bench.report import Target, align, environment, format_seconds, print_json
from bench.runner import Sample, Timing, _last_number, describe, peak_wrapper, run_quiet

BUCKET = "bench"
REGION = "us-east-1"
DEFAULT_SMALL = 10_000
DEFAULT_SMALL_SIZE = 10 * KIB
DEFAULT_BIG = GIB
QUICK_SMALL = 1_000
QUICK_BIG = 64 * MIB
FILES_PER_FOLDER = 100
WARMUP_FILES = 20
SERVER_START_S = 60.0
MARGIN = 512 * MIB

WBTOOL = "wbtool"
AWS = "aws s3 sync"
DVC = "dvc push"
TOOLS = (WBTOOL, AWS, DVC)
PREFIXES = {WBTOOL: "wbtool", AWS: "awscli", DVC: "dvc"}
FIRST = "first push"
NOOP = "no-op push"
ARTIFACT = "data"
ARTIFACT_CASES = "artifacts"
RUN_CASES = "runs"
CASES = (ARTIFACT_CASES, RUN_CASES)

FIRST_TARGET = Target("ratio", 1.0)  # wbtool's first push against aws s3 sync
NOOP_TARGET = Target("seconds", 1.0, inclusive=False)
GROWTH_TARGET = Target("ratio", 1.2)  # peak RSS at N against N/4: flat

HEADER = ["case", "data", "unit", "wbtool", "aws s3 sync", "dvc push", "wbtool/aws", "target",
          "result"]
RIGHT = {3, 4, 5, 6}

DVC_PUSHED = re.compile(r"(\d+) files? pushed")


# -- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    """A folder to push: ``role`` is "small", "quarter", "big", "both" (or "warmup").

    "both" is the small and the big data set in one folder, the whole of what
    the first-push target is about; ``extra`` is the data set added to ``spec``.
    """

    role: str
    spec: DatasetSpec
    path: Path
    extra: DatasetSpec | None = None

    @property
    def files(self) -> int:
        return self.spec.files + (self.extra.files if self.extra else 0)

    @property
    def label(self) -> str:
        text = f"{format_count(self.spec.files)}×{format_size(self.spec.file_size)}"
        if self.extra:
            text += f" + {format_count(self.extra.files)}×{format_size(self.extra.file_size)}"
        return text


def link_both(small: DataSet, big: DataSet, folder: Path) -> DataSet:
    """One folder holding the small data set (under ``small/``) and the big one
    (under ``big/``), made of hard links (copies where links cannot be made)."""
    for part, name in ((small, "small"), (big, "big")):
        for dirpath, _dirs, files in os.walk(part.path):
            target = folder / name / os.path.relpath(dirpath, part.path)
            target.mkdir(parents=True, exist_ok=True)
            for file in files:
                try:
                    os.link(os.path.join(dirpath, file), target / file)
                except OSError:
                    shutil.copy2(os.path.join(dirpath, file), target / file)
    return DataSet("both", small.spec, folder, extra=big.spec)


def small_spec(files: int, size: int) -> DatasetSpec:
    # The artifact benchmark's data set b at its defaults (10,000 × 10 KiB), so
    # that both benchmarks share the generated folder.
    folders = max(1, -(-files // FILES_PER_FOLDER))
    return DatasetSpec(key="b", files=files, file_size=size, folders=folders, seed=2)


def big_spec(size: int) -> DatasetSpec:
    # The artifact benchmark's data set a at 1 GiB.
    return DatasetSpec(key="a", files=1, file_size=size, folders=0, seed=1)


def plan_specs(small: int, small_size: int, big_size: int) -> list[tuple[str, DatasetSpec]]:
    specs = [("small", small_spec(small, small_size))]
    if small >= 4:
        specs.append(("quarter", small_spec(small // 4, small_size)))
    if big_size > 0:
        specs.append(("big", big_spec(big_size)))
    return specs


def _present(root: Path, spec: DatasetSpec) -> bool:
    try:
        marker = json.loads((root / f"{spec.name}.json").read_text())
    except (OSError, ValueError):
        return False
    return (root / spec.name).is_dir() and marker == spec.as_dict()


def disk_problem(root: Path, specs: Sequence[DatasetSpec]) -> str | None:
    """Why the disk under ``root`` is too small for this run, or None.

    Needed: the data sets not generated yet; a client's scratch copy (dvc keeps
    the folder and its cache: twice the largest data set); and the S3 server's
    spill files (its objects above 5 MiB, and the parts of a multipart upload
    until it completes: twice the largest data set again).
    """
    missing = sum(spec.total_bytes for spec in specs if not _present(root, spec))
    largest = max(spec.total_bytes for spec in specs)
    need = missing + 4 * largest + MARGIN
    probe = root if root.exists() else root.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free >= need:
        return None
    return (f"not enough free disk under {root}: this run needs about {need / GIB:.1f} GiB "
            f"({missing / GIB:.1f} GiB of data sets to generate, {4 * largest / GIB:.1f} GiB "
            f"of scratch and S3 server files, {MARGIN / GIB:.1f} GiB to spare) and "
            f"{free / GIB:.1f} GiB is free; shrink it with --quick, --small, --small-size or "
            f"--big-size, or point --root elsewhere")


def write_warmup(folder: Path, files: int, size: int) -> None:
    folder.mkdir(parents=True)
    for index in range(files):
        (folder / f"w{index:03d}.bin").write_bytes(os.urandom(size))


# -- the S3 server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def moto_command() -> list[str]:
    beside = Path(sys.executable).with_name("moto_server")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise FileNotFoundError(
            "moto's S3 server is not installed (pip install 'moto[server]')"
        ) from None
    return [sys.executable, "-m", "moto.server"]


@contextlib.contextmanager
def moto_server(scratch: Path) -> Iterator[str]:
    """Run moto in server mode for the duration; yield its endpoint URL.

    Objects above 5 MiB spill from moto's memory into temporary files; they
    go into the scratch folder. The server is stopped by its own PID, also
    when the benchmark is interrupted.
    """
    spill = scratch / "moto-tmp"
    spill.mkdir(parents=True, exist_ok=True)
    log = scratch / "moto.log"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TMPDIR": str(spill)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C reaches the benchmark, which stops it
        )
    try:
        _wait_ready(proc, endpoint, log)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1000:]
            raise RuntimeError(f"moto_server exited {proc.returncode} at start: {tail}")
        try:
            with urllib.request.urlopen(endpoint, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {SERVER_START_S:g} s")


class Bucket:
    """The benchmark's bucket, reached with boto3 (untimed checks and clean-up)."""

    def __init__(self, endpoint: str) -> None:
        import boto3  # type: ignore[import-untyped]

        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def create(self) -> None:
        self.client.create_bucket(Bucket=BUCKET)

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/")
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def delete(self, prefix: str) -> None:
        keys = self.keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=BUCKET, Delete={"Objects": batch, "Quiet": True})


# -- the clients -------------------------------------------------------------------------


@dataclass
class Push:
    """A prepared push: the command timed (twice) and where it runs."""

    argv: list[str]
    cwd: Path


@dataclass
class Clients:
    """Prepares each client's push of a folder into a prefix (untimed)."""

    endpoint: str
    wbtool: str
    aws: str | None
    dvc: str | None
    env: dict[str, str]

    def prepare(self, tool: str, data: Path, prefix: str, work: Path) -> Push:
        work.mkdir(parents=True)
        if tool == WBTOOL:
            return self._wbtool(data, prefix, work)
        if tool == AWS:
            return self._aws(data, prefix, work)
        return self._dvc(data, prefix, work)

    def env_for(self, tool: str, work: Path) -> dict[str, str]:
        env = dict(self.env)
        if tool == WBTOOL:
            env["WBTOOL_DIR"] = str(work / ".wbtool")
        if tool == DVC:
            env["DVC_SITE_CACHE_DIR"] = str(work / "site-cache")
        return env

    def _wbtool(self, data: Path, prefix: str, work: Path) -> Push:
        env = self.env_for(WBTOOL, work)
        run_quiet([self.wbtool, "artifact", "log", ARTIFACT, str(data), "--type", "dataset"],
                  env=env, cwd=work)
        run_quiet([self.wbtool, "remote", "add", "team", f"s3://{BUCKET}/{prefix}", "--default",
                   "-o", f"endpoint_url={self.endpoint}"], env=env, cwd=work)
        return Push([self.wbtool, "sync", "--no-runs", "--json"], work)

    def _aws(self, data: Path, prefix: str, work: Path) -> Push:
        assert self.aws is not None
        return Push([self.aws, "s3", "sync", str(data), f"s3://{BUCKET}/{prefix}/",
                     "--endpoint-url", self.endpoint, "--no-progress"], work)

    def _dvc(self, data: Path, prefix: str, work: Path) -> Push:
        assert self.dvc is not None
        env = self.env_for(DVC, work)
        repo = work / "repo"
        repo.mkdir()
        run_quiet([self.dvc, "init", "--no-scm", "-q"], env=env, cwd=repo)
        run_quiet(["cp", "-r", str(data), str(repo / "data")])
        run_quiet([self.dvc, "add", "-q", "data"], env=env, cwd=repo)
        run_quiet([self.dvc, "remote", "add", "-d", "team", f"s3://{BUCKET}/{prefix}"],
                  env=env, cwd=repo)
        run_quiet([self.dvc, "remote", "modify", "team", "endpointurl", self.endpoint],
                  env=env, cwd=repo)
        return Push([self.dvc, "push"], repo)


def sent_count(tool: str, stdout: str) -> int | None:
    """How many files the client says it sent, from its output (None: unreadable)."""
    if tool == WBTOOL:
        try:
            return int(json.loads(stdout)["result"]["objects_sent"])
        except (ValueError, KeyError, TypeError):
            return None
    if tool == AWS:
        return sum(line.startswith("upload:") for line in stdout.splitlines())
    found = DVC_PUSHED.search(stdout)
    if found:
        return int(found.group(1))
    return 0 if "Everything is up to date" in stdout else None


def check(tool: str, case: str, sent: int | None, files: int) -> str | None:
    """A problem with what a push sent, or None. dvc also sends a ``.dir`` listing."""
    if sent is None:
        return "its output does not say what it sent"
    if case == NOOP:
        return None if sent == 0 else f"the no-op push sent {sent} file(s)"
    least = files + 1 if tool == DVC else files
    if sent < least:
        return f"the first push sent {sent} file(s), expected {least}"
    return None


def timed(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> tuple[Sample, float, str]:
    """Run ``argv``: its wall time, status, peak RSS and stderr tail; its CPU time (user +
    system, of it and of the small wrapper that measures its peak RSS); and its stdout."""
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        peak_file = os.path.join(tmp, "peak")
        out_file = os.path.join(tmp, "stdout")
        err_file = os.path.join(tmp, "stderr")
        with open(out_file, "wb") as out, open(err_file, "wb") as err:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            # In a session of its own, so that an interrupted benchmark can stop the
            # client itself and not only the wrapper that measures it.
            proc = subprocess.Popen([*peak_wrapper(), peak_file, *argv],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=dict(env), cwd=cwd, start_new_session=True)
            try:
                proc.wait()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        stdout = Path(out_file).read_text(errors="replace")
        stderr = Path(err_file).read_text(errors="replace")
        peak_kib = _last_number(peak_file)
    peak_mib = None if peak_kib is None else peak_kib / 1024
    return Sample(seconds, peak_mib, proc.returncode, stderr[-2000:]), cpu, stdout


# -- measuring ---------------------------------------------------------------------------


Results = dict[tuple[str, str, str], Timing]  # (data set role, case, tool) → timing


def measure(data: DataSet, clients: Clients, bucket: Bucket, tools: Sequence[str],
            scratch: Path, tag: str, results: Results, say: Callable[[str], None]) -> None:
    """One round on ``data``: each client in turn pushes it into a fresh prefix, twice."""
    for tool in tools:
        prefix = f"{PREFIXES[tool]}-{data.role}-{tag}"
        work = scratch / prefix
        timings = [results.setdefault((data.role, case, tool), Timing()) for case in (FIRST,
                                                                                      NOOP)]
        say(f"  {tool}: {data.label} into s3://{BUCKET}/{prefix}/")
        try:
            try:
                push = clients.prepare(tool, data.path, prefix, work)
            except subprocess.CalledProcessError as exc:
                why = f"set-up '{describe(exc.cmd)}' exited {exc.returncode}: {_tail(exc.stderr)}"
                for timing in timings:
                    timing.error = timing.error or why
                continue
            env = clients.env_for(tool, work)
            for case, timing in zip((FIRST, NOOP), timings, strict=True):
                timing.command = describe(push.argv)
                sample, cpu, stdout = timed(push.argv, env, push.cwd)
                if sample.returncode != 0:
                    problem: str | None = f"exited {sample.returncode}: {_tail(sample.stderr)}"
                else:
                    problem = check(tool, case, sent_count(tool, stdout), data.files)
                if problem is None and case == FIRST:
                    there = len(bucket.keys(prefix))
                    if there < data.files:
                        problem = f"{there} object(s) on the server after the first push"
                if problem:
                    for failed in timings[(FIRST, NOOP).index(case):]:
                        failed.error = failed.error or f"{case}: {problem}"
                    break
                timing.samples.append(sample)
                timing.cpu_s.append(cpu)
                say(f"    {case}: {sample.seconds:.2f} s, CPU {cpu:.2f} s, "
                    f"peak {sample.peak_mib or 0:.0f} MiB")
            bucket.delete(prefix)  # frees the server's memory and spill files
        finally:
            remove_tree(work)


def _tail(text: str | None) -> str:
    """The end of a command's stderr, on one line."""
    return " ".join((text or "").split())[-500:]


# -- the report --------------------------------------------------------------------------


@dataclass
class Line:
    """One line of the table: one case on one data set, every client."""

    case: str
    data: str
    unit: str  # "s", "MiB" or "×"
    values: dict[str, float | None]
    errors: dict[str, str]
    samples: dict[str, list[float]] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    target: Target | None = None
    anchor_text: str | None = None
    judge_ratio: bool = False  # the target holds wbtool/aws, else wbtool's own value

    @property
    def ratio(self) -> float | None:
        ours, theirs = self.values.get(WBTOOL), self.values.get(AWS)
        if self.unit == "×" or ours is None or not theirs:
            return None
        return ours / theirs

    @property
    def status(self) -> str:
        if WBTOOL in self.errors:
            return "ERROR"
        if self.target is None:
            return ""
        value = self.ratio if self.judge_ratio else self.values.get(WBTOOL)
        if value is None:
            return "-"
        return "PASS" if self.target.met(value) else "MISS"

    def cells(self, tools: Sequence[str]) -> list[str]:
        def show(tool: str) -> str:
            if tool not in tools:
                return "skipped"
            if tool in self.errors:
                return "error"
            value = self.values.get(tool)
            if value is None:
                return "-"
            if self.unit == "s":
                return format_seconds(value)
            if self.unit == "MiB":
                return f"{value:.0f}"
            return f"{value:.2f}×"

        ratio = self.ratio
        return [
            self.case, self.data, self.unit, show(WBTOOL), show(AWS), show(DVC),
            "-" if ratio is None else f"{ratio:.2f}×",
            "-" if self.target is None else self.target.text(self.anchor_text),
            self.status,
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case, "data": self.data, "unit": self.unit,
            "values": {tool: None if value is None else round(value, 4)
                       for tool, value in self.values.items()},
            "samples_s": {tool: [round(v, 4) for v in values]
                          for tool, values in self.samples.items()},
            "errors": self.errors,
            "commands": self.commands,
            "ratio_wbtool_aws": None if self.ratio is None else round(self.ratio, 3),
            "target": None if self.target is None else self.target.text(self.anchor_text),
            "status": self.status or None,
        }


def build_lines(datasets: Sequence[DataSet], results: Results) -> list[Line]:
    lines: list[Line] = []
    for data in datasets:
        for case, target in ((FIRST, FIRST_TARGET), (NOOP, NOOP_TARGET)):
            versus = target is FIRST_TARGET
            timings = {tool: results[(data.role, case, tool)] for tool in TOOLS
                       if (data.role, case, tool) in results}
            lines.append(Line(
                case=case, data=data.label, unit="s",
                values={tool: t.median_s for tool, t in timings.items()},
                errors={tool: t.error for tool, t in timings.items() if t.error},
                samples={tool: [s.seconds for s in t.samples] for tool, t in timings.items()},
                commands={tool: t.command for tool, t in timings.items() if t.command},
                target=target, anchor_text=AWS if versus else None, judge_ratio=versus,
            ))
        firsts = {tool: results[(data.role, FIRST, tool)] for tool in TOOLS
                  if (data.role, FIRST, tool) in results}
        lines.append(Line(
            case="first push, client CPU", data=data.label, unit="s",
            values={tool: t.median_cpu_s for tool, t in firsts.items()},
            errors={tool: t.error for tool, t in firsts.items() if t.error},
            samples={tool: t.cpu_s for tool, t in firsts.items()},
        ))
        lines.append(Line(
            case="first push, peak RSS", data=data.label, unit="MiB",
            values={tool: t.peak_mib for tool, t in firsts.items()},
            errors={tool: t.error for tool, t in firsts.items() if t.error},
        ))
    by_role = {data.role: data for data in datasets}
    if "small" in by_role and "quarter" in by_role:
        small, quarter = by_role["small"], by_role["quarter"]
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        for tool in TOOLS:
            big_t = results.get(("small", FIRST, tool))
            little_t = results.get(("quarter", FIRST, tool))
            if big_t is None or little_t is None:
                continue
            if big_t.error or little_t.error:
                errors[tool] = big_t.error or little_t.error or ""
                continue
            big_peak, little_peak = big_t.peak_mib, little_t.peak_mib
            values[tool] = big_peak / little_peak if big_peak and little_peak else None
        lines.append(Line(
            case="peak RSS growth", data=f"{quarter.label} → {small.label}", unit="×",
            values=values, errors=errors, target=GROWTH_TARGET,
            anchor_text=f"at {format_count(quarter.files)} files",
        ))
    return lines


def render(lines: Sequence[Line], tools: Sequence[str]) -> str:
    body = [line.cells(tools) for line in lines]
    breaks = [i > 0 and line.data != lines[i - 1].data for i, line in enumerate(lines)]
    return align(HEADER, body, RIGHT, breaks)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _beside_or_path(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def find_clients(dvc: bool, notes: list[str]) -> tuple[str | None, str | None]:
    aws = _beside_or_path("aws")
    if aws is None:
        notes.append("aws s3 sync: skipped, the AWS CLI is not installed (pip install awscli)")
    dvc_exe = _beside_or_path("dvc") if dvc else None
    if not dvc:
        notes.append("dvc push: skipped (--no-dvc)")
    elif dvc_exe is None:
        notes.append("dvc push: skipped, dvc is not installed (pip install dvc dvc-s3)")
    elif Path(dvc_exe).parent == Path(sys.executable).parent and _version("dvc-s3") is None:
        notes.append("dvc push: skipped, dvc-s3 is not installed (pip install dvc-s3)")
        dvc_exe = None
    return aws, dvc_exe


def client_env(scratch: Path) -> dict[str, str]:
    """The environment of every client: S3 credentials for moto, nothing of the caller's
    (empty AWS config files: dvc refuses a missing or special one)."""
    aws_dir = scratch / "aws"
    aws_dir.mkdir(exist_ok=True)
    for name in ("config", "credentials"):
        (aws_dir / name).write_text("")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WBTOOL_", "AWS_", "DVC_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(aws_dir / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(aws_dir / "credentials"),
        DVC_NO_ANALYTICS="1",
    )
    return env


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def measure_artifacts(datasets: list[DataSet], clients: Clients, bucket: Bucket,
                      tools: Sequence[str], scratch: Path, repeat: int, small_size: int,
                      results: Results, notes: list[str],
                      say: Callable[[str], None]) -> list[str] | None:
    """The artifact cases, every data set ``repeat`` times; the clients that
    worked in the warm-up, or None where wbtool failed there."""
    # Warm-up, untimed: byte-code and page caches of every client, and a
    # check that each one works before minutes are spent on the real data.
    warm = DataSet("warmup", small_spec(WARMUP_FILES, small_size), scratch / "warmup")
    write_warmup(warm.path, WARMUP_FILES, small_size)
    say(f"warm-up ({WARMUP_FILES} files, not counted)")
    warm_results: Results = {}
    measure(warm, clients, bucket, tools, scratch, "warmup", warm_results, say)
    broken = {tool: t.error for (_r, _c, tool), t in warm_results.items() if t.error}
    for tool, error in broken.items():
        notes.append(f"{tool}: failed in the warm-up, not measured: {error}")
    if WBTOOL in broken:
        print(f"error: wbtool failed in the warm-up: {broken[WBTOOL]}", file=sys.stderr)
        return None
    working = [tool for tool in tools if tool not in broken]
    roles = {data.role: data for data in datasets}
    if "small" in roles and "big" in roles:
        datasets.append(link_both(roles["small"], roles["big"], scratch / "both"))
    for data in datasets:
        for number in range(repeat):
            say(f"{data.label} ({data.role}), round {number + 1}/{repeat}")
            measure(data, clients, bucket, working, scratch, str(number), results, say)
    return working


def main(*, small: int, small_size: int, big_size: int, repeat: int, root: Path, dvc: bool,
         wbtool: str, as_json: bool, cases: Sequence[str] = CASES,
         run_sizes: syncruns.Sizes | None = None) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    root = root.resolve()
    with_artifacts = ARTIFACT_CASES in cases
    sizes = run_sizes or syncruns.Sizes(syncruns.DEFAULT_RUNS, syncruns.DEFAULT_PART_RUNS,
                                        syncruns.DEFAULT_PARTS)
    specs = plan_specs(small, small_size, big_size) if with_artifacts else []
    problem = disk_problem(root, [spec for _role, spec in specs]) if specs else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    notes: list[str] = []
    aws, dvc_exe = find_clients(dvc, notes) if with_artifacts else (None, None)
    tools = [tool for tool, exe in ((WBTOOL, wbtool), (AWS, aws), (DVC, dvc_exe)) if exe]
    try:
        moto_command()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    datasets = [DataSet(role, spec, ensure(root, spec)[0]) for role, spec in specs]
    scratch = root / "scratch-sync"
    remove_tree(scratch)
    scratch.mkdir(parents=True)
    results: Results = {}
    run_results: syncruns.RunResults = {}
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with moto_server(scratch) as endpoint:
            say(f"moto S3 server at {endpoint}, bucket {BUCKET}")
            bucket = Bucket(endpoint)
            bucket.create()
            clients = Clients(endpoint, wbtool, aws, dvc_exe, client_env(scratch))
            if RUN_CASES in cases:
                setup = syncruns.Setup(wbtool, endpoint, bucket, BUCKET, client_env(scratch),
                                       scratch, timed, say)
                try:
                    run_results = syncruns.measure_runs(setup, sizes, repeat, notes)
                except syncruns.BuildError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                finally:
                    syncruns.cleanup(setup)
            if with_artifacts:
                measured = measure_artifacts(datasets, clients, bucket, tools, scratch,
                                             repeat, small_size, results, notes, say)
                if measured is None:
                    return 1
                tools = measured
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # the server did not start
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        remove_tree(scratch)

    lines = build_lines(datasets, results)
    run_lines = syncruns.build_run_lines(run_results, sizes)
    env = environment(wbtool, root)
    env.update(repeat=repeat, server=f"moto {_version('moto')}", awscli=_version("awscli"),
               dvc=_version("dvc") if DVC in tools else None, s3fs=_version("s3fs"))
    for line in lines:
        for tool, error in line.errors.items():
            notes.append(f"{line.data}, {line.case}, {tool}: {error}")
    for run_line in run_lines:
        if run_line.error:
            notes.append(f"{run_line.data}, {run_line.case}, {run_line.remote}: "
                         f"{run_line.error}")
    notes = list(dict.fromkeys(notes))
    if as_json:
        print_json({
            "benchmark": "sync",
            "environment": env,
            "datasets": [{"role": d.role, "label": d.label, "files": d.files,
                          "file_size": d.spec.file_size, "path": str(d.path)} for d in datasets],
            "rows": [line.as_dict() for line in lines],
            "run_rows": [line.as_dict() for line in run_lines],
            "notes": notes,
        })
    else:
        print_report(env, root, repeat, lines, run_lines, tools, notes, sizes)
    failed = (any(WBTOOL in line.errors for line in lines)
              or any(line.error for line in run_lines))
    return 1 if failed else 0


def print_report(env: dict[str, Any], root: Path, repeat: int, lines: Sequence[Line],
                 run_lines: Sequence[syncruns.RunLine], tools: Sequence[str],
                 notes: Sequence[str], sizes: syncruns.Sizes) -> None:
    versions = ", ".join(f"{name} {env[key]}" for name, key in
                         (("aws-cli", "awscli"), ("dvc", "dvc"), ("s3fs", "s3fs"))
                         if env.get(key))
    print(
        f"wbtool {env['wbtool']}, Python {env['python']}, {env['platform']}, "
        f"{env['cpus']} CPUs; {env['server']} on 127.0.0.1; {versions}; data in {root} "
        f"({env['filesystem']}); median of {repeat} run(s) after a warm-up"
        + (f" on {WARMUP_FILES} files" if lines else "")
    )
    remarks = list(notes)
    if lines:
        print()
        print(render(lines, tools))
        meter = "GNU time %M" if peak_wrapper()[0].endswith("time") else "a Python launcher"
        remarks += [
            "times: wall clock of the whole client process; each first push into a fresh "
            "prefix, then the same command again with nothing new (no-op push)",
            "clients at their default concurrency: wbtool --jobs 8, aws s3 (10 requests), "
            "dvc push (4 × CPUs); the server is one moto process, which saturates a core "
            "(about 350 PUT/s here), so first pushes of small files measure it as much as "
            "the client",
            "client CPU: user + system time of the client process and its children; "
            "steadier than wall time on a busy machine",
            f"peak RSS: the client process's high-water mark ({meter})",
        ]
    if run_lines:
        print()
        print(syncruns.render_runs(run_lines))
        remarks += syncruns.remarks(sizes)
    print()
    for remark in remarks:
        print(f"- {remark}")
