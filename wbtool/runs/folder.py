"""The run folder (``.wbtool/runs/<id>/``) and the run record ``run.json``.

    run.json        identity, state, exit code, timestamps, owner process
    config.yaml     the config (JSON text that YAML reads too: see yaml_floats)
    history.jsonl   one line per committed step
    system.jsonl    system metric samples
    summary.json    the summary
    metadata.json   host, OS, Python, program, git, hardware
    events.jsonl    alerts and state changes
    output.log      the console, as a terminal shows it
    files/          files saved with run.save, and the run's own files
    media/          logged media
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeGuard

from wbtool.errors import (
    NotFoundError,
    RunRecordDamagedError,
    StoreError,
    StoreNotWritableError,
    WbtoolError,
)
from wbtool.fsutil import NOT_WRITABLE, append_to, atomic_write
from wbtool.lazyre import lazy_compile
from wbtool.runs.values import JSON_SAFE

RUN_FORMAT = 1
# Fields of run.json that the process owning the run (``wbtool run``, or the
# program that called ``init``) writes; a program attached to a launched run
# writes the others (name, tags, notes, metric definitions …).
OWNER_FIELDS = frozenset((
    "format", "id", "state", "exit_code", "pid", "pid_start", "host", "heartbeat_at",
    "heartbeat_seconds", "started_at", "created_at", "finished_at", "runtime", "program",
    "command", "launcher", "wbtool_version", "resume_count", "resumed_runtime",
))
STATES = ("running", "finished", "failed", "killed", "crashed", "preempting")
LIVE_STATES = ("running", "preempting")


def runtime_at(doc: dict[str, Any], now: float) -> float:
    """A run's ``_runtime`` at ``now``: its time since it (re)started, plus
    what it had run before it was resumed. A time that is not a number (a
    record edited by hand) counts as none."""
    started = _seconds(doc.get("started_at")) or now
    return (_seconds(doc.get("resumed_runtime")) or 0.0) + max(0.0, now - started)


def runtime_shown(doc: dict[str, Any], state: str) -> float:
    """A run's runtime as readers show it: of a run still running (``state``,
    its :func:`effective_state`), the time it has run so far; of any other,
    what its record says."""
    if state == "running":
        return runtime_at(doc, time.time())
    return _seconds(doc.get("runtime")) or 0.0


def _seconds(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def hostname() -> str:
    try:
        return os.uname().nodename
    except AttributeError:  # not a POSIX system
        import socket

        return socket.gethostname()


def process_start(pid: int) -> str | None:
    """A token that tells a process from a later one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return stat[stat.rindex(b")") + 2:].split()[19].decode()
    except (ValueError, IndexError):
        return None


def process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused
        if now is None and os.path.isdir("/proc"):
            return False
    # A zombie has exited; its parent just has not reaped it yet.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        if stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] == b"Z":
            return False
    except (OSError, ValueError):
        pass
    return True


def effective_state(doc: dict[str, Any], now: float | None = None,
                    host: str | None = None) -> str:
    """The state a reader should show: a live state whose owner is gone
    reads as ``crashed`` (a preempting run keeps its state)."""
    state = str(doc.get("state") or "crashed")
    if state not in LIVE_STATES:
        return state
    if doc.get("host") == (host or hostname()) and doc.get("pid"):
        alive = process_alive(int(doc["pid"]), doc.get("pid_start"))
    else:
        beat = float(doc.get("heartbeat_at") or doc.get("updated_at") or 0)
        interval = float(doc.get("heartbeat_seconds") or 30)
        alive = ((now or time.time()) - beat) <= 2 * interval
    if alive:
        return state
    return "preempting" if state == "preempting" else "crashed"


def folder_missing(run_id: str, path: str | os.PathLike[str]) -> StoreError:
    """The error for a run that the index lists but whose folder is gone:
    its files cannot be read or written, and the store needs the repair
    that doctor names."""
    return StoreError(f"run {run_id} is in the store's index but its folder {path} is "
                      f"missing (deleted by hand?); `wbtool runs delete {run_id} --yes` "
                      "removes what is left of it")


def is_record(doc: Any) -> TypeGuard[dict[str, Any]]:
    """Whether ``doc`` (run.json as read) is a run record wbtool can read:
    an object with a string id, project and state and a numeric created_at."""
    return (isinstance(doc, dict) and all(type(doc.get(k)) is str
                                          for k in ("id", "project", "state"))
            and type(doc.get("created_at")) in (int, float))


def record_damaged(folder: RunFolder) -> RunRecordDamagedError:
    """The error for a run folder whose run.json is missing or is not a run
    record: nothing of the run can be read, and ``runs delete`` removes it."""
    what = ("is damaged: it is not a run record wbtool can read"
            if os.path.lexists(folder.run_json) else "is missing")
    return RunRecordDamagedError(path=str(folder.run_json), what=what, run_id=folder.id)


def unreadable(folder: RunFolder, *, indexed: bool = False,
               name: str | None = None) -> WbtoolError:
    """The error for a run whose run.json is not a record wbtool can read:
    its folder there, :func:`record_damaged`; else, where the index lists the
    run (``indexed``), :func:`folder_missing`; else no such run, named as
    asked for (``name``, a run path) or by its id."""
    if folder.path.is_dir():
        return record_damaged(folder)
    if indexed:
        return folder_missing(folder.id, folder.path)
    return NotFoundError(what="run", name=name or folder.id)


def read_record(folder: RunFolder, *, indexed: bool = False,
                name: str | None = None) -> dict[str, Any]:
    """The run's record (run.json); :func:`unreadable`'s error where it is
    not one wbtool can read."""
    doc = folder.read_run()
    if not is_record(doc):
        raise unreadable(folder, indexed=indexed, name=name)
    return doc


# How long a folder without run.json may be a run still being created.
BORN_SECONDS = 60.0


def being_born(folder: RunFolder, now: float) -> bool:
    """Whether ``folder``, a run folder whose run.json cannot be read, is a
    run being created or pulled (which writes its run.json last) rather than
    a damaged one: it has no run.json and changed in the last
    :data:`BORN_SECONDS`. A folder gone meanwhile is not damaged either."""
    try:
        return (not os.path.lexists(folder.run_json)
                and now - folder.path.stat().st_mtime < BORN_SECONDS)
    except OSError:  # gone meanwhile
        return True


class RunFolder:
    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def system(self) -> Path:
        return self.path / "system.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metadata(self) -> Path:
        return self.path / "metadata.json"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def output(self) -> Path:
        return self.path / "output.log"

    @property
    def files(self) -> Path:
        return self.path / "files"

    @property
    def media(self) -> Path:
        return self.path / "media"

    def exists(self) -> bool:
        return self.run_json.is_file()

    def create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.files.mkdir(exist_ok=True)
        except OSError as e:
            self._refused(e)

    def _refused(self, e: OSError) -> NoReturn:
        """Raise ``e``, or, where the store cannot be written, say so."""
        if e.errno not in NOT_WRITABLE:
            raise e
        raise StoreNotWritableError(path=str(self.path.parent.parent), reason=e.strerror,
                                    what="a run") from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise read-modify-writes of the run's files between the
        processes that share a run (a launcher, its program, ``wbtool log``)."""
        import fcntl

        try:
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self._refused(e)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def merge_json(self, path: Path, updates: dict[str, Any], *, drop: Iterable[str] = (),
                   highest: Iterable[str] = (), fsync: bool = False) -> dict[str, Any]:
        """``{**on_disk, **updates}`` less the keys in ``drop``, written back;
        of the keys in ``highest``, the larger number of the two stays. The
        caller holds :meth:`lock`."""
        doc = self.read_json(path, {})
        if not isinstance(doc, dict):
            doc = {}
        for key in drop:
            doc.pop(key, None)
        kept = {k: doc[k] for k in highest
                if _number(doc.get(k)) and _number(updates.get(k)) and doc[k] > updates[k]}
        doc.update(updates)
        doc.update(kept)
        self.write_json(path, doc, fsync=fsync)
        return doc

    def write_json(self, path: Path, doc: Any, *, fsync: bool = False) -> None:
        data = json.dumps(doc, indent=1, sort_keys=True, allow_nan=True, ensure_ascii=False)
        atomic_write(path, data.encode("utf-8", JSON_SAFE) + b"\n", fsync=fsync)

    def read_json(self, path: Path, default: Any = None) -> Any:
        try:
            with open(path, "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return default

    def read_run(self) -> dict[str, Any] | None:
        doc = self.read_json(self.run_json)
        return doc if isinstance(doc, dict) else None

    def read_config(self) -> dict[str, Any]:
        try:
            text = self.config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
        try:
            doc = json.loads(json_floats(text))
        except ValueError:
            import yaml

            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                return {}
        return doc if isinstance(doc, dict) else {}

    def write_config(self, items: dict[str, Any]) -> None:
        data = json.dumps(items, indent=1, sort_keys=True, allow_nan=True, ensure_ascii=False)
        atomic_write(self.config, yaml_floats(data).encode("utf-8", JSON_SAFE) + b"\n")

    def append_event(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, sort_keys=True, allow_nan=True, ensure_ascii=False) + "\n"
        try:
            append_to(self.events, line.encode("utf-8", JSON_SAFE))
        except OSError as e:
            self._refused(e)

    def read_events(self) -> list[dict[str, Any]]:
        from wbtool.runs.history import iter_rows

        return list(iter_rows(self.events))


# A JSON string (skipped whole), a number in exponent form with no point, or
# one of the non-finite numbers Python's json writes.
_YAML_UNSAFE = lazy_compile(
    r'"(?:[^"\\]|\\.)*"|(?<![\d.])(-?\d+)([eE][-+]?\d+)|(NaN|-?Infinity)')
_YAML_SPECIAL = {"NaN": ".nan", "Infinity": ".inf", "-Infinity": "-.inf"}
# A JSON string (skipped whole), or one of YAML's non-finite numbers.
_YAML_NONFINITE = lazy_compile(r'"(?:[^"\\]|\\.)*"|(-?\.inf|\.nan)(?![\w.])')
_JSON_SPECIAL = {v: k for k, v in _YAML_SPECIAL.items()}


def yaml_floats(text: str) -> str:
    """JSON ``text`` as numbers YAML 1.1 readers such as PyYAML read as floats.

    Exponent numbers get a point (``5e-05`` becomes ``5.0e-05``, still the
    same JSON number): without one PyYAML reads a string, and 5e-05 is a
    common learning rate. ``NaN``, ``Infinity`` and ``-Infinity`` become
    YAML's ``.nan``, ``.inf`` and ``-.inf`` (:func:`json_floats` turns them
    back)."""
    if not any(c in text for c in "eENI"):
        return text
    return _YAML_UNSAFE.sub(_to_yaml, text)


def _to_yaml(m: Any) -> str:
    if m[3] is not None:
        return _YAML_SPECIAL[m[3]]
    return m[0] if m[1] is None else f"{m[1]}.0{m[2]}"


def json_floats(text: str) -> str:
    """:func:`yaml_floats`'s ``.nan``, ``.inf`` and ``-.inf`` back as the
    ``NaN``, ``Infinity`` and ``-Infinity`` Python's json reads."""
    if ".nan" not in text and ".inf" not in text:
        return text
    return _YAML_NONFINITE.sub(lambda m: m[0] if m[1] is None else _JSON_SPECIAL[m[1]], text)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
