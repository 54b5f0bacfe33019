"""``run.save``, ``run.restore``, ``run.log_code`` and the saved program.

Saved files are copied into the run's ``files/`` folder (the run folder stays
self-contained, so it can be synced as it is). ``live`` files are copied
again whenever they change, and at finish; ``end`` files at finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbtool.errors import ConflictError, NotFoundError, UsageError
from wbtool.flags import flag
from wbtool.names import validate_entry_path

if TYPE_CHECKING:
    from wbtool.artifacts.artifact import Artifact
    from wbtool.runs.run import Run

POLICIES = ("live", "now", "end")


class RunFileNotFoundError(NotFoundError, ValueError):
    """file {name!r} not found in run {run}"""


class RunFileExistsError(ConflictError, ValueError):
    """{path} exists: pass replace=True to overwrite it, or exist_ok=True to open it as it is"""


class File:
    """A file in a run's ``files/`` folder, as the public API's ``run.files()``
    and ``run.file(name)`` give it: ``name`` (its path in the run, with
    slashes), ``size`` in bytes, ``path`` and ``url`` (where it lies in the
    local store), and ``download``. ``str(f)`` is its name, ``os.fspath(f)``
    its path (``open(f)`` reads it)."""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    @property
    def size(self) -> int:
        return os.stat(self.path).st_size

    @property
    def url(self) -> str:
        return Path(self.path).resolve().as_uri()

    direct_url = url

    @property
    def mimetype(self) -> str:
        import mimetypes

        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    @property
    def updated_at(self) -> str:
        import datetime as dt

        mtime = os.stat(self.path).st_mtime
        return dt.datetime.fromtimestamp(mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def download(self, root: str | os.PathLike[str] = ".", replace: bool = False,
                 exist_ok: bool = False) -> Any:
        """Copy the file to ``root``/name and open the copy for reading.

        A file already there is refused (RunFileExistsError, a ValueError)
        unless ``replace`` (copied over) or ``exist_ok`` (opened as it is)."""
        replace, exist_ok = flag(replace, "replace"), flag(exist_ok, "exist_ok")
        dest = Path(os.fspath(root)) / self.name
        if dest.exists() and not replace:
            if not exist_ok:
                raise RunFileExistsError(path=str(dest))
        elif not dest.exists() or not os.path.samefile(dest, self.path):
            _copy(self.path, dest)
        return open(dest, encoding="utf-8")

    def __str__(self) -> str:
        return self.name

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        try:
            size = f"{self.size}B"
        except OSError:
            size = "missing"
        return f"<File {self.name} ({self.mimetype}) {size}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and (self.name, self.path) == (other.name, other.path)

    def __hash__(self) -> int:
        return hash((self.name, self.path))


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _copy(src: str, dest: Path) -> None:
    import shutil

    from wbtool.fsutil import as_atomic

    dest.parent.mkdir(parents=True, exist_ok=True)
    with as_atomic(dest) as tmp:
        shutil.copyfile(src, tmp)


def save(run: Run, glob_str: str | os.PathLike, base_path: str | os.PathLike | None,
         policy: str) -> list[str]:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    pattern = _path_arg("glob_str", glob_str)
    if not pattern:
        raise ValueError("run.save needs a path or a glob")
    if "://" in pattern:
        raise ValueError(f"run.save takes local paths, not URLs: {pattern}")
    if base_path is None:
        base = os.path.dirname(os.path.dirname(pattern)) if os.path.isabs(pattern) else "."
    else:
        base = _path_arg("base_path", base_path)
    base_abs = os.path.abspath(base)
    pattern_abs = os.path.abspath(pattern)
    if os.path.commonpath([base_abs, pattern_abs]) != base_abs:
        raise ValueError(f"the glob {pattern!r} is not under the base path {base!r}")
    if run._folder is None:
        return []
    import glob

    matches = sorted(m for m in glob.glob(pattern_abs, recursive=True) if os.path.isfile(m))
    out: list[str] = []
    files_dir = run._folder.files
    for match in matches:
        rel = os.path.relpath(match, base_abs).replace(os.sep, "/")
        validate_entry_path(rel)
        dest = files_dir / rel
        if os.path.abspath(match) == os.path.abspath(dest):
            out.append(str(dest))
            continue
        if policy in ("live", "now"):
            _copy(match, dest)
        if policy in ("live", "end"):
            stamp = _stamp(match) if policy == "live" else None
            run._saves[rel] = (match, policy, stamp)
        out.append(str(dest))
    return out


def copy_live(run: Run) -> None:
    """Copy again every live file that changed since its last copy."""
    assert run._folder is not None
    for rel, (src, policy, stamp) in list(run._saves.items()):
        if policy != "live":
            continue
        now = _stamp(src)
        if now is not None and now != stamp:
            _copy(src, run._folder.files / rel)
            run._saves[rel] = (src, policy, now)


def copy_at_end(run: Run) -> None:
    if run._folder is None:
        return
    for rel, (src, _policy, _stamp) in list(run._saves.items()):
        if os.path.isfile(src):
            try:
                _copy(src, run._folder.files / rel)
            except OSError as e:
                run._warn("save", f"could not save {src}: {e}")


def _run_folder(run: Run | None, run_path: str | None) -> Any:
    from wbtool.context import Context
    from wbtool.runs.folder import RunFolder
    from wbtool.runs.ids import split_run_path

    if run_path is None:
        if run is None or run._folder is None:
            raise UsageError("restore needs run_path when no run is active")
        return run._folder
    ctx = run._ctx if run is not None and run._ctx is not None else Context.from_settings()
    _entity, project, run_id = split_run_path(run_path, ctx.named_entity)
    folder = RunFolder(ctx.store.path / "runs" / run_id)
    if not folder.exists() or (
            project is not None and (folder.read_run() or {}).get("project") != project):
        raise NotFoundError(what="run", name=run_path)
    return folder


def restore(run: Run | None, name: str, run_path: str | None, replace: bool,
            root: str | None) -> Any:
    replace = flag(replace, "replace")
    rel = validate_entry_path(name)
    folder = _run_folder(run, run_path)
    src = folder.files / rel
    if not src.is_file():
        raise RunFileNotFoundError(name=name, run=run_path or (run.path if run else "?"))
    if root is None:
        root = run.dir if run is not None and run._folder is not None else os.getcwd()
    dest = Path(root) / rel
    if dest.resolve() != src.resolve() and (replace or not dest.exists()):
        _copy(str(src), dest)
    return open(dest, encoding="utf-8")


def _path_arg(name: str, value: Any) -> str:
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"run.save's {name} must be a path or a glob, not "
                         f"{type(value).__name__}")
    return os.fspath(value)


def save_program(run: Run) -> None:
    """Copy the program being run into ``files/code/`` (the save_code setting)."""
    program = run._doc.get("program")
    if not program or not os.path.isfile(program) or run._folder is None:
        return
    _copy(program, run._folder.files / "code" / os.path.basename(program))


def _call(fn: Callable[..., bool], path: str, root: str) -> bool:
    import inspect

    try:
        params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = 2
    return bool(fn(path, root) if params >= 2 else fn(path))


def _default_include(path: str, root: str) -> bool:
    return path.endswith(".py")


def _default_exclude(path: str, root: str) -> bool:
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return any(p in (".wbtool", ".git", "__pycache__") for p in rel.split("/"))


def log_code(run: Run, root: str | None, name: str | None,
             include_fn: Callable[..., bool] | None,
             exclude_fn: Callable[..., bool] | None) -> Artifact | None:
    from wbtool.artifacts.artifact import Artifact

    run._require_store("log_code")
    root_abs = os.path.abspath(root or ".")
    include = include_fn or _default_include
    exclude = exclude_fn or _default_exclude
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root_abs):
        dirnames[:] = sorted(d for d in dirnames
                             if not _call(exclude, os.path.join(dirpath, d, ""), root_abs))
        for fn in sorted(filenames):
            path = os.path.join(dirpath, fn)
            if _call(include, path, root_abs) and not _call(exclude, path, root_abs):
                found.append((path, os.path.relpath(path, root_abs).replace(os.sep, "/")))
    if not found:
        run._warn("code", f"log_code found no files under {root_abs}")
        return None
    if name is None:
        program = run._doc.get("program") or "code"
        try:
            entry = os.path.relpath(program, root_abs)
        except ValueError:
            entry = os.path.basename(program)
        import re

        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"source-{run.project}-{entry}").strip("_")
    artifact = Artifact(name, "code")
    for path, rel in found:
        artifact.add_file(path, name=rel)
    return run.log_artifact(artifact)
