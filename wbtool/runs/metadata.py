"""What a run records about where it ran: the contents of ``metadata.json``.

Everything here is gathered in a few milliseconds, because finishing a run
waits for it: git state is read from the ``.git`` folder and only the dirty
check runs ``git`` (started first, so it runs while the rest is gathered);
installed packages are read from ``*.dist-info`` folder names; NVML is loaded
only when an NVIDIA driver is present. Any part that cannot be read is left
out or recorded as None: metadata never fails a run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from wbtool.runs.redact import redact_argv, redact_env, secret_values, strip_url_credentials

GIT_TIMEOUT_S = 3.0

_T = TypeVar("_T")


class Metadata(NamedTuple):
    """The result of :func:`collect`.

    A named tuple rather than a dataclass: ``dataclasses`` (through
    ``inspect``) would cost more to import than all of :func:`collect` takes.
    """

    doc: dict[str, Any]
    """JSON-serialisable content of ``metadata.json``."""
    diff_patch: str | None
    """``git diff HEAD`` output when the working tree has changes to tracked files."""
    requirements: str | None
    """Installed distributions, one ``name==version`` line each, sorted case-insensitively."""


def collect(*, program: str | None, args: list[str], cwd: str, root: str | None,
            disable_git: bool, save_requirements: bool, disable_machine_info: bool,
            started_at: float | None = None) -> Metadata:
    """Gather the metadata of a run starting now (or at ``started_at``, in epoch seconds).

    ``program`` is the script path as given; ``args`` its arguments (recorded
    after :func:`~wbtool.runs.redact.redact_argv`); ``cwd`` the working
    directory; ``root`` the git working-tree root to use instead of the one
    found by walking up from ``cwd``. ``disable_machine_info`` leaves out the
    hardware inventory (CPU, memory, disk, GPU).
    """
    start = time.time() if started_at is None else started_at
    repo = None if disable_git else _safe(_find_repo, root, cwd)
    head = (_safe(repo.head) or (None, None)) if repo is not None else (None, None)
    probe = _safe(_DirtyProbe.start, repo, head[0] is None) if repo is not None else None
    try:
        environ = dict(os.environ)
        doc: dict[str, Any] = {
            "os": _safe(_os_string),
            "python": sys.version.split()[0],
            "executable": sys.executable or None,
            "program": program,
            "codePath": _safe(_code_path, program, cwd, repo.root) if repo else None,
            "args": _safe(redact_argv, list(args), secrets=secret_values(environ)),
            "cwd": cwd,
            "host": _safe(_hostname),
            "username": _safe(_username),
            "startedAt": _iso_utc(start),
        }
        if repo is not None:
            doc["git"] = _safe(repo.info, *head) or {}
        if not disable_machine_info:
            doc.update(_machine_info())
        doc["env"] = _safe(redact_env, environ)
        requirements = _safe(freeze) if save_requirements else None
    finally:
        dirty, diff_patch = probe.finish() if probe is not None else (None, None)
    if "git" in doc:
        doc["git"]["dirty"] = dirty
    return Metadata(doc=doc, diff_patch=diff_patch, requirements=requirements)


def _safe(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
    try:
        return fn(*args, **kwargs)
    except Exception:
        return None


def _iso_utc(ts: float) -> str:
    """``2024-05-01T12:00:00.123456Z``."""
    seconds, micros = divmod(round(ts * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def _os_string() -> str:
    """The text of ``platform.platform()``.

    Built from ``uname`` and the C library's own version string on glibc
    systems, where ``platform`` would scan the interpreter binary instead.
    """
    if sys.platform.startswith("linux"):
        u = os.uname()
        try:
            libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (ValueError, OSError):
            libc = ""
        name, _, version = libc.partition(" ")
        if name and version:
            return f"{u.sysname}-{u.release}-{u.machine}-with-{name}{version}"
    import platform

    return platform.platform()


def _hostname() -> str | None:
    if hasattr(os, "uname"):
        return os.uname().nodename or None
    import platform

    return platform.node() or None


def _username() -> str | None:
    """As ``getpass.getuser()``: the login variables first, then the password database."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _code_path(program: str | None, cwd: str, repo_root: str) -> str | None:
    if not program:
        return None
    path = os.path.realpath(os.path.join(cwd, program))
    rel = os.path.relpath(path, os.path.realpath(repo_root))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return rel.replace(os.sep, "/")


# -- git -------------------------------------------------------------------------------

_HEX = frozenset("0123456789abcdef")


def _is_sha(text: str) -> bool:
    """A full SHA-1 or SHA-256 object name."""
    return len(text) in (40, 64) and _HEX.issuperset(text)


class _Repo:
    """A working tree, its git folder, and the folder that holds refs and config."""

    __slots__ = ("common_dir", "git_dir", "root")

    def __init__(self, root: str, git_dir: str, common_dir: str) -> None:
        self.root = root
        self.git_dir = git_dir
        self.common_dir = common_dir

    def _read(self, *parts: str, common: bool = False) -> str | None:
        path = os.path.join(self.common_dir if common else self.git_dir, *parts)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def head(self) -> tuple[str | None, str | None]:
        """(commit, branch) of HEAD; commit is None on an unborn branch."""
        head = (self._read("HEAD") or "").strip()
        if not head.startswith("ref:"):
            return (head if _is_sha(head) else None), None
        ref = head[4:].strip()
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        if os.path.isdir(os.path.join(self.common_dir, "reftable")):
            return self._head_from_git()
        return self._resolve(ref), branch

    def _resolve(self, ref: str, depth: int = 0) -> str | None:
        loose = self._read(*ref.split("/")) or self._read(*ref.split("/"), common=True)
        if loose is not None:
            loose = loose.strip()
            if loose.startswith("ref:") and depth < 5:
                return self._resolve(loose[4:].strip(), depth + 1)
            return loose if _is_sha(loose) else None
        for line in (self._read("packed-refs", common=True) or "").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _is_sha(sha):
                return sha
        return None

    def _head_from_git(self) -> tuple[str | None, str | None]:
        """HEAD through ``git`` itself, for ref stores that are not plain files."""
        out = _git(self.root, "rev-parse", "--verify", "-q", "HEAD")
        commit = out.strip() if out and _is_sha(out.strip()) else None
        branch = _git(self.root, "symbolic-ref", "-q", "--short", "HEAD")
        return commit, (branch.strip() or None) if branch else None

    def info(self, commit: str | None, branch: str | None) -> dict[str, Any]:
        """commit, branch, remote name and credential-free remote URL."""
        config = _parse_git_config(self._read("config", common=True) or "")
        remotes = [sub for (sec, sub), keys in config.items() if sec == "remote" and "url" in keys]
        remote = config.get(("branch", branch or ""), {}).get("remote")
        if remote not in remotes:
            remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
        url = config.get(("remote", remote or ""), {}).get("url")
        return {
            "commit": commit,
            "branch": branch,
            "remote": remote,
            "remote_url": strip_url_credentials(url) if url else None,
        }


def _find_repo(root: str | None, cwd: str) -> _Repo | None:
    """The git repository at ``root``, or the one holding ``cwd``."""
    start = os.path.abspath(root if root is not None else cwd)
    for d in [start] if root is not None else _parents(start, _ceilings()):
        dot_git = os.path.join(d, ".git")
        if os.path.isdir(dot_git):
            return _Repo(d, dot_git, _common_dir(dot_git))
        if os.path.isfile(dot_git):
            with open(dot_git, encoding="utf-8") as f:
                content = f.read().strip()
            if not content.startswith("gitdir:"):
                return None
            git_dir = os.path.normpath(os.path.join(d, content[7:].strip()))
            return _Repo(d, git_dir, _common_dir(git_dir))
    return None


def _parents(path: str, ceilings: set[str]) -> Iterator[str]:
    """``path`` and its parents, stopping below any of ``ceilings``, as git does."""
    while path not in ceilings:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _ceilings() -> set[str]:
    value = os.environ.get("GIT_CEILING_DIRECTORIES", "")
    return {os.path.abspath(p) for p in value.split(os.pathsep) if p}


def _common_dir(git_dir: str) -> str:
    """Where refs and config live: the main ``.git`` of a linked worktree."""
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as f:
            return os.path.normpath(os.path.join(git_dir, f.read().strip()))
    except OSError:
        return git_dir


def _parse_git_config(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """``{(section, subsection): {key: last value}}`` of a git config file."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and "]" in line:
            section, _, sub = line[1:line.rindex("]")].strip().partition(" ")
            sub = sub.strip()
            if len(sub) >= 2 and sub[0] == sub[-1] == '"':
                sub = sub[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            elif "." in section:
                section, _, sub = section.partition(".")
            current = out.setdefault((section.lower(), sub), {})
            continue
        key, eq, value = line.partition("=")
        value = value.strip() if eq else "true"
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        else:
            for mark in (" #", "\t#", " ;", "\t;"):
                value = value.partition(mark)[0]
        current[key.strip().lower()] = value
    return out


_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


def _git_env() -> dict[str, str]:
    """The environment for ``git``: no index writes, no prompts, and no variables that
    would point it at another repository than the one found on disk."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def _git(root: str, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, errors="replace",
            stdin=subprocess.DEVNULL, env=_git_env(), timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


class _DirtyProbe:
    """A ``git diff HEAD`` running in the background while the rest is gathered.

    Its output is both the dirty check (empty means clean, as for ``git status
    --untracked-files=no``) and the patch. On an unborn branch there is no HEAD
    to compare with, and ``git status --porcelain`` decides instead.
    """

    def __init__(self, proc: subprocess.Popen[bytes], unborn: bool) -> None:
        self.proc = proc
        self.unborn = unborn

    @classmethod
    def start(cls, repo: _Repo, unborn: bool) -> _DirtyProbe:
        if unborn:
            args = ["status", "--porcelain", "--untracked-files=no"]
        else:
            args = ["diff", "HEAD", "--no-ext-diff", "--no-textconv", "--no-color",
                    "--submodule=short", "--"]
        proc = subprocess.Popen(
            ["git", "-C", repo.root, "--no-pager", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_git_env(),
        )
        return cls(proc, unborn)

    def finish(self) -> tuple[bool | None, str | None]:
        """(dirty, patch); (None, None) when git failed or took too long."""
        try:
            out, _ = self.proc.communicate(timeout=GIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return None, None
        if self.proc.returncode != 0:
            return None, None
        text = out.decode("utf-8", errors="replace")
        if self.unborn:
            return bool(text.strip()), None
        return (True, text) if text else (False, None)


# -- machine ---------------------------------------------------------------------------

def _machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": _safe(_physical_cpu_count),
        "cpu_count_logical": os.cpu_count(),
        "cpu_model": _safe(_cpu_model),
        "memory": {"total": _safe(_memory_total)},
    }
    disk = _safe(shutil.disk_usage, "/")
    info["disk"] = {"/": {"total": disk.total, "used": disk.used}} if disk else {}
    gpus = _safe(nvidia_gpus) or []
    info["gpu_count"] = len(gpus)
    info["gpu_type"] = gpus[0]["name"] if gpus else None
    info["gpu_nvidia"] = gpus
    return info


def _physical_cpu_count() -> int | None:
    """Physical cores from sysfs topology on Linux; None elsewhere."""
    base = "/sys/devices/system/cpu"
    if not sys.platform.startswith("linux") or not os.path.isdir(base):
        return None
    cores = set()
    for name in os.listdir(base):
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        for leaf in ("core_cpus_list", "thread_siblings_list"):
            try:
                with open(os.path.join(base, name, "topology", leaf), encoding="ascii") as f:
                    cores.add(f.read().strip())
                break
            except OSError:
                continue
    return len(cores) or None


def _cpu_model() -> str | None:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.partition(":")[2].strip() or None
        except OSError:
            pass
    import platform

    return platform.processor() or None


def _memory_total() -> int | None:
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return pages * size if pages > 0 and size > 0 else None


def _nvidia_driver_present() -> bool:
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")
    return sys.platform == "win32"


def nvidia_gpus() -> list[dict[str, Any]]:
    """``{"name", "memory_total", "uuid", "cuda_cores"?}`` per NVIDIA GPU, via NVML.

    Empty when there is no driver, no NVML library or any NVML error.
    """
    if not _nvidia_driver_present():
        return []
    try:
        import pynvml
    except Exception:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpu: dict[str, Any] = {
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "memory_total": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
            }
            cores = _safe(pynvml.nvmlDeviceGetNumGpuCores, handle)
            if cores:
                gpu["cuda_cores"] = int(cores)
            gpus.append(gpu)
        return gpus
    except Exception:
        return []
    finally:
        _safe(pynvml.nvmlShutdown)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


# -- installed packages ------------------------------------------------------------------

_DIST_SUFFIXES = (".dist-info", ".egg-info")
def _normalise(name: str) -> str:
    """PEP 503 normalised form, used to recognise one project under two spellings."""
    words = name.lower().replace("_", "-").replace(".", "-").split("-")
    return "-".join(w for w in words if w)


def freeze(paths: list[str] | None = None) -> str:
    """``name==version`` lines for the distributions installed on ``paths`` (``sys.path``).

    Read from ``*.dist-info`` and ``*.egg-info`` folder names, as they are
    spelled there; the first occurrence of a project along the path wins, as
    it does for imports. Sorted case-insensitively, one trailing newline.
    """
    seen: dict[str, str] = {}
    for entry in sys.path if paths is None else paths:
        folder = entry or os.curdir
        try:
            names = [e.name for e in os.scandir(folder) if e.name.endswith(_DIST_SUFFIXES)]
        except OSError:
            continue
        for name in sorted(names):
            parsed = _parse_dist_name(folder, name)
            if parsed is not None:
                seen.setdefault(_normalise(parsed[0]), f"{parsed[0]}=={parsed[1]}")
    lines = sorted(seen.values(), key=str.lower)
    return "".join(line + "\n" for line in lines)


def _parse_dist_name(folder: str, name: str) -> tuple[str, str] | None:
    """``(project, version)`` from ``name-version[-pyX.Y[-platform]].{dist,egg}-info``.

    Both parts are escaped in these names, so neither holds a dash.
    """
    stem = name.rpartition(".")[0]
    project, dash, rest = stem.partition("-")
    version = rest.partition("-")[0]
    if not project:
        return None
    if not dash:
        version = _pkg_info_version(os.path.join(folder, name)) or ""
    return (project, version) if version else None


def _pkg_info_version(path: str) -> str | None:
    """The ``Version:`` header of a development egg-info's PKG-INFO."""
    try:
        with open(os.path.join(path, "PKG-INFO"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Version:"):
                    return line[8:].strip() or None
                if not line.strip():
                    break
    except OSError:
        pass
    return None
