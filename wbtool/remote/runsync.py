"""Runs on a remote: ``<remote>/projects/<p>/runs/<id>/…`` (push and pull).

A run folder is sent file by file:

- small records (``summary.json``, ``config.yaml``, ``metadata.json``) are
  rewritten whenever their size or mtime changed;
- append-only files (``history.jsonl``, ``system.jsonl``, ``events.jsonl``,
  ``output.log``, ``output.raw``) are sent incrementally. Object stores cannot
  append, so each new stretch is a complete object of its own,
  ``<name>.parts/<offset>-<end>``, cut at the last newline so that every part
  of a JSON-lines file holds whole lines. A run that is over (finished,
  failed, killed, or crashed: its process gone) appends no more, so its
  files go whole, a last line without a newline too (a console's last
  output before a crash). A reader concatenates the parts in offset order.
  An empty file is sent as the empty part ``0-0``, so that a reader makes it
  empty rather than leaving it out;
- ``files/`` and ``media/`` are compared by (path, size, mtime);
- ``run.json`` goes last, so a reader never sees a run record whose files are
  missing.

What was sent is remembered per remote in ``<store>/sync/<hash>.json``
(written atomically): per run, the bytes of each append-only file already on
the remote and the (size, mtime) of every other file. A file that shrank or
whose head changed since is sent again from the start.

That record is checked against the remote before it is trusted: the remote
may lose what was sent behind the store's back (its folder deleted and made
again, the bucket emptied or replaced, a run folder removed by hand), and a
sync that believed the record would never send it again. The check costs
no request for a project of which the record claims nothing (a first sync),
and otherwise:

- a sync of every run lists the run folders of each project, without their
  files (``projects/<p>/runs/``, one request per thousand runs, however many
  parts they hold). A run recorded as sent whose folder is not there is sent
  again whole, run.json last: a wiped or replaced remote, a deleted project
  or run folder. It does not see a file or part lost inside a run folder
  that is still there; a checking sync (``wbtool sync --check``) does: it
  lists each project's run folders with their files and sizes (a request
  per thousand files and parts), as:
- a sync that names its runs (``wbtool sync RUN_ID``, and ``wbtool run
  --sync`` and ``--live``) lists each of them whole.

A file recorded as sent that such a listing lacks, or that holds other
bytes than were sent (by size), is sent again; an append-only file whose
parts no longer read from byte 0 to the offset recorded is sent again from
byte 0, its remaining parts deleted first, so that no stretch from before
overlaps the new ones.

Neither sees a file replaced on the remote by one of the same size, nor a
deletion made while the sync runs (the next sync repairs that). The remote's
layout is unchanged: nothing is written to tell one remote from another.

One run may be appended to in two stores at once (pulled into another store
and resumed there while the store that made it logs on): both would send
parts from the same offset. Without locks, a sync that has an append-only
file to send lists the run's files first (a sync of one run has that
listing already) and compares each part that reaches past what it sent with
the file here: one that holds the same bytes (sent by a sync whose record
was not saved) is taken as sent; one that holds others, or more than the
file here, was written by another store, and the run is not sent at all
(a conflict, exit 5), the remote and the local run left as they are. Parts
are created exclusively, and the run is listed again once they are
written: a part from another store that was written meanwhile beside one
of them makes the sync delete its own and stop, so that no two parts of a
file overlap (a sync stopped before it deleted them leaves them for the
next one to find and delete). A sync with nothing new asks nothing more. Pull refuses a run
whose parts overlap with other bytes (written before syncs refused that)
rather than join them.

Pull rebuilds a run folder from those objects (taking the parts a previous
pull received, unchanged since, from its copy), validating the run id and
every path read from the remote before a byte is written, then refreshes the
run's row in the index. A run folder that holds data the remote lacks (made
here, or logged to since it was pulled, and not synced since) is never
replaced: it is reported as a conflict. One made here and sent whole is
replaced only when the remote holds more of it (resumed in another store).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbtool import yamltext
from wbtool.errors import InvalidNameError, NotFoundError
from wbtool.fsutil import atomic_write
from wbtool.names import MAX_VERSION, is_clean_entry_path, validate_entry_path
from wbtool.remote.fs import Remote
from wbtool.remote.records import LATEST_TIME
from wbtool.runs import catalog
from wbtool.runs.folder import (
    LIVE_STATES,
    STATES,
    RunFolder,
    being_born,
    effective_state,
    is_record,
    record_damaged,
    unreadable,
)
from wbtool.runs.ids import validate_id
from wbtool.store.index import Index

STATE_FORMAT = 1
RUN_RECORD = "run.json"
SMALL_FILES = ("summary.json", "config.yaml", "metadata.json")
APPEND_FILES = ("history.jsonl", "system.jsonl", "events.jsonl", "output.log", "output.raw")
TREES = ("files", "media")
PARTS = ".parts"
MAX_PART = 64 << 20  # the most bytes one part object holds
_HEAD = 4096  # bytes of an append-only file checked to tell a rewrite from an append
_PART_RE = re.compile(r"([0-9]{1,15})-([0-9]{1,15})")  # ASCII digits only
PULLED_MARK = ".pulled"  # in a run folder rebuilt by pull: the remote it came from


def run_prefix(project: str, run_id: str) -> str:
    return f"projects/{project}/runs/{run_id}"


def part_name(name: str, start: int, end: int) -> str:
    return f"{name}{PARTS}/{start:012d}-{end:012d}"


# -- the state file -------------------------------------------------------------------------
def state_path(store_path: Path, url: str) -> Path:
    return store_path / "sync" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.json"


def load_state(path: Path, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        doc = None
    if (not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT
            or doc.get("remote") != url or not isinstance(doc.get("runs"), dict)):
        return {"format": STATE_FORMAT, "remote": url, "runs": {}}
    return doc


STATE_SAVE_SECONDS = 1.0  # how often a long sync records what it has sent


def save_state(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n", fsync=True)


# -- push -----------------------------------------------------------------------------------
@dataclass
class RunPushResult:
    runs_sent: int = 0  # runs of which at least one file was sent
    bytes_sent: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # runs not sent


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _head_digest(path: Path, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(min(size, _HEAD))).hexdigest()


def local_runs(store_path: Path, project: str | None = None,
               run_ids: Iterable[str] | None = None,
               ) -> tuple[list[tuple[RunFolder, dict[str, Any]]], list[str]]:
    """The run folders of the store (optionally of one project, or these
    ids), and a warning for each run folder left out because its run.json is
    missing or damaged. A run named whose folder is so is refused (exit 7,
    as ``runs show`` refuses it); one without a run.json that changed in the
    last :data:`~wbtool.runs.folder.BORN_SECONDS` is a run being created or
    pulled, left out of a sync of every run without a word."""
    base = store_path / "runs"
    if run_ids is not None:
        names = [validate_id(r) for r in run_ids]
    else:
        names = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    out: list[tuple[RunFolder, dict[str, Any]]] = []
    warnings: list[str] = []
    now = time.time()
    for name in names:
        folder = RunFolder(base / name)
        doc = folder.read_run()
        if not is_record(doc):
            if run_ids is not None:
                raise unreadable(folder)
            with contextlib.suppress(InvalidNameError):  # no run's folder
                validate_id(name)
                if folder.path.is_dir() and not being_born(folder, now):
                    warnings.append(f"run {name} skipped: {record_damaged(folder)}")
            continue
        if project is not None and doc.get("project") != project:
            continue
        out.append((folder, doc))
    return out, warnings


def push_runs(store_path: Path, remote: Remote, project: str | None = None,
              run_ids: Iterable[str] | None = None, *, dry_run: bool = False,
              check: bool = False) -> RunPushResult:
    """Send what the remote lacks of each run (see the module docstring);
    ``check``: list each project's run files, not only its run folders."""
    res = RunPushResult()
    spath = state_path(store_path, remote.url)
    state = load_state(spath, remote.url)
    listed = RemoteRuns(remote, files=check)
    unsaved = False
    saved_at = time.monotonic()
    runs, res.warnings = local_runs(store_path, project, run_ids)
    for folder, doc in runs:
        proj = str(doc.get("project") or "")
        try:
            validate_id(folder.id)
            validate_entry_path(proj)
            if "/" in proj:
                raise InvalidNameError(what="project", value=proj, reason="contains '/'")
        except InvalidNameError as e:
            res.warnings.append(f"run {folder.id} skipped: {e}")
            continue
        seen = state["runs"].get(folder.id)
        if not isinstance(seen, dict) or seen.get("project") != proj:
            seen = _seen_by_pull(folder.path, remote.url, proj)
        prefix = run_prefix(proj, folder.id)
        if (not (seen.get("stat") or seen.get("append"))
                and listed.holds(proj, folder.id, whole=run_ids is not None)
                and _another_run(remote, prefix, doc)):
            res.conflicts.append({"run": folder.id, "project": proj, "reason": (
                f"run {folder.id} on {remote.display(prefix)} is another run with the same "
                "id (this store neither sent nor pulled it); not sent: to go on with that "
                "run, pull it before resuming it")})
            continue
        lost = listed.forget_lost(seen, proj, folder.id, whole=run_ids is not None)
        if not dry_run:
            for rel in lost:
                remote.delete(f"{prefix}/{rel}")
        there = _Lazy(listed, proj, folder.id, run_ids is not None, set(lost))
        sent = _push_run(folder, remote, prefix, seen, dry_run, there, _over(doc))
        stopped = isinstance(sent, str)  # what was sent before it stopped is recorded
        if isinstance(sent, str):
            res.conflicts.append({"run": folder.id, "project": proj, "reason": sent})
            sent = 0
        if sent:
            res.runs_sent += 1
            res.bytes_sent += sent
            res.runs.append({"id": folder.id, "project": proj, "bytes_sent": sent})
        if not dry_run and (sent or lost or stopped
                            or state["runs"].get(folder.id) is not seen):
            state["runs"][folder.id] = seen
            unsaved = True
            # Saved every so often, not after every run (the whole record is
            # rewritten each time): an interrupted sync resumes from the last
            # save and sends the runs after it again, which changes nothing.
            if time.monotonic() - saved_at >= STATE_SAVE_SECONDS:
                save_state(spath, state)
                unsaved, saved_at = False, time.monotonic()
    if unsaved:
        save_state(spath, state)
    return res


class RemoteRuns:
    """What a remote holds of run folders: listed once per project for a sync
    of every run (the folders only, or with ``files`` every file and its
    size), once per run (every file) for a sync that names its runs, as the
    module docstring says."""

    def __init__(self, remote: Remote, *, files: bool = False) -> None:
        self.remote = remote
        self.files = files
        self._folders: dict[str, set[str]] = {}
        self._projects: dict[str, dict[str, dict[str, int]]] = {}
        self._runs: dict[tuple[str, str], dict[str, int]] = {}

    def forget_lost(self, seen: dict[str, Any], project: str, run_id: str, *,
                    whole: bool) -> list[str]:
        """Forget what ``seen`` (the sync state of the run) claims was sent and
        the remote lacks; return the parts to delete before sending again.
        ``whole``: list this run's folder alone, not the project's runs."""
        if not (seen.get("stat") or seen.get("append")):
            return []  # nothing claimed: nothing to check
        if whole:
            files = self.run_files(project, run_id, whole=True)
        elif self.files:
            files = self._project_files(project).get(run_id, {})
        else:
            if project not in self._folders:
                self._folders[project] = set(
                    self.remote.list_folders(f"projects/{project}/runs"))
            if run_id in self._folders[project]:
                return []
            return _forget_lost(seen, {}, lambda _rel: True)
        return _forget_lost(seen, files, self.remote.listed)

    def run_files(self, project: str, run_id: str, *, whole: bool) -> dict[str, int]:
        """Path in the run folder → size of every file the remote holds of the
        run: from the listing ``forget_lost`` made, or one listing of the run."""
        if self.files and not whole:
            return self._project_files(project).get(run_id, {})
        key = (project, run_id)
        if key not in self._runs:
            prefix = run_prefix(project, run_id)
            self._runs[key] = {path[len(prefix) + 1:]: size for path, size, _mtime
                               in self.remote.list_detail(prefix)
                               if path.startswith(prefix + "/")}
        return self._runs[key]

    def holds(self, project: str, run_id: str, *, whole: bool) -> bool:
        """Whether the remote has a folder for the run (listed as ``forget_lost``
        lists it)."""
        if whole:
            return bool(self.remote.list(run_prefix(project, run_id)))
        if self.files:
            return run_id in self._project_files(project)
        if project not in self._folders:
            self._folders[project] = set(self.remote.list_folders(f"projects/{project}/runs"))
        return run_id in self._folders[project]

    def _project_files(self, project: str) -> dict[str, dict[str, int]]:
        """run id → (path in its folder → size) for every run folder of ``project``."""
        if project not in self._projects:
            base = f"projects/{project}/runs/"
            runs: dict[str, dict[str, int]] = {}
            for path, size, _mtime in self.remote.list_detail(base.rstrip("/")):
                run_id, sep, rel = path[len(base):].partition("/")
                if path.startswith(base) and sep and rel:
                    runs.setdefault(run_id, {})[rel] = size
            self._projects[project] = runs
        return self._projects[project]


def _another_run(remote: Remote, prefix: str, doc: dict[str, Any]) -> bool:
    """Whether the run record at ``prefix`` on the remote is of another run than
    ``doc`` (the local run.json). A folder without a record yet (a push cut
    short) is taken as this run's."""
    try:
        there = json.loads(remote.read(f"{prefix}/{RUN_RECORD}"))
    except NotFoundError:
        return False
    except ValueError:
        there = None
    return _other_run(there, doc)


def _other_run(a: Any, b: Any) -> bool:
    """Whether the run records ``a`` and ``b`` (of one id) are of two runs: made
    in two stores, at two times. A record that is not a mapping is another's."""
    return not (isinstance(a, dict) and isinstance(b, dict)
                and a.get("created_at") == b.get("created_at"))


def _forget_lost(seen: dict[str, Any], files: dict[str, int],
                 listed: Callable[[str], bool]) -> list[str]:
    """Forget what ``seen`` (the sync state of a run) claims was sent and the
    run folder's listing ``files`` lacks, so that it is sent again; return the
    parts to delete first: those of an append-only file sent again from byte 0.
    A file that no listing would show (``listed``) is taken as there."""
    stats: dict[str, Any] = seen["stat"]
    for rel, key in list(stats.items()):
        if not isinstance(key, list) or not key or (listed(rel) and files.get(rel) != key[0]):
            del stats[rel]
    stale: list[str] = []
    appended: dict[str, Any] = seen["append"]
    for name, mark in list(appended.items()):
        parts = {rel: size for rel, size in files.items()
                 if rel.startswith(f"{name}{PARTS}/")}
        whole = {rel: size for rel, size in parts.items()
                 if (k := _safe_classify(rel)) is not None and size == k[3] - k[2]}
        try:
            offset = int(mark["offset"])
        except (KeyError, TypeError, ValueError):
            offset = -1
        if (_contiguous_end(name, whole) < offset or offset < 0
                or (not offset and not parts and listed(part_name(name, 0, 0)))):
            del appended[name]
            stale += sorted(parts)
    return stale


def _seen_by_pull(path: Path, url: str, project: str) -> dict[str, Any]:
    """What the remote ``url`` holds of a run folder that a pull from it made:
    the whole parts it received (an append-only file logged to since goes on
    from there, instead of starting again as a part that overlaps them) and
    the files unchanged since. Nothing for a folder that no pull made."""
    seen: dict[str, Any] = {"project": project, "append": {}, "stat": {}}
    mark = _pulled_mark(path, url)
    if mark is None:
        return seen
    parts = mark.get("parts")
    parts = parts if isinstance(parts, dict) else {}
    for name in APPEND_FILES:
        end = _contiguous_end(name, parts)
        key = _stat_key(path / name)
        if key is not None and key[0] >= end and (end or part_name(name, 0, 0) in parts):
            seen["append"][name] = {"offset": end, "head": _head_digest(path / name, end)}
    local = mark.get("local")
    for rel, key in (local.items() if isinstance(local, dict) else ()):
        if rel not in APPEND_FILES and isinstance(rel, str) and _stat_key(path / rel) == key:
            seen["stat"][rel] = key
    return seen


def _contiguous_end(name: str, parts: dict[str, Any]) -> int:
    """Where the parts of ``name`` (paths of a run folder on the remote) stop
    reading as one file from byte 0, as a pull reads them."""
    spans = sorted(k[2:4] for k in map(_safe_classify, parts)
                   if k is not None and k[0] == "part" and k[1] == name)
    pos = 0
    for start, end in spans:
        if start > pos:
            break
        pos = max(pos, end)
    return pos


class _Lazy:
    """The remote's files of one run (path in its folder → size), less those
    just deleted (``gone``), listed when first asked: a sync with nothing new
    to append never lists them."""

    def __init__(self, listed: RemoteRuns, project: str, run_id: str, whole: bool,
                 gone: set[str]) -> None:
        self._args = (listed, project, run_id, whole, gone)
        self._value: dict[str, int] | None = None

    def __call__(self) -> dict[str, int]:
        if self._value is None:
            listed, project, run_id, whole, gone = self._args
            self._value = {rel: size for rel, size
                           in listed.run_files(project, run_id, whole=whole).items()
                           if rel not in gone}
        return self._value


def _over(doc: dict[str, Any]) -> bool:
    """Whether the run of this record appends to its files no more."""
    return effective_state(doc) not in LIVE_STATES


def _push_run(folder: RunFolder, remote: Remote, prefix: str, seen: dict[str, Any],
              dry_run: bool, there: Callable[[], dict[str, int]], over: bool) -> int | str:
    """Send what the remote lacks of the run; the bytes sent, or why nothing
    was: another store appended to the run on the remote (``there``: the
    remote's files of the run and their sizes, listed when first asked;
    ``over``: the run appends no more, so a last line without a newline goes
    too)."""
    sent = 0
    stats: dict[str, Any] = seen["stat"]
    appended: dict[str, Any] = seen["append"]

    def put_if_changed(rel: str) -> None:
        nonlocal sent
        key = _stat_key(folder.path / rel)
        if key is None or stats.get(rel) == key:
            return
        if not dry_run:
            remote.put_file(folder.path / rel, f"{prefix}/{rel}")
            stats[rel] = key
        sent += key[0]

    # Every append-only file is checked against the remote before any is sent:
    # a run that another store appended to is left as the remote holds it.
    starts: dict[str, tuple[int, bool]] = {}
    for name in APPEND_FILES:
        got = _append_start(folder.path / name, remote, prefix, name, appended.get(name),
                            there, dry_run, over=over)
        if isinstance(got, str):
            return f"run {folder.id}: {got}"
        if got is not None:
            starts[name] = got
    got_sent = _append_all(folder.path, remote, prefix, starts, appended, there, dry_run,
                           over)
    if isinstance(got_sent, str):
        return f"run {folder.id}: {got_sent}"
    sent += got_sent
    for name in SMALL_FILES:
        put_if_changed(name)
    for tree in TREES:
        root = folder.path / tree
        if not root.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for fname in sorted(files):
                rel = Path(dirpath, fname).relative_to(folder.path).as_posix()
                try:
                    validate_entry_path(rel)
                except InvalidNameError:
                    continue
                put_if_changed(rel)
    put_if_changed(RUN_RECORD)
    return sent


_APPENDED_ELSEWHERE = ("{where} holds bytes from {start} to {end} that this store's copy "
                       "lacks: the run was logged to in another store and synced from there "
                       "since this store last sent or pulled it; not {done}, and both copies "
                       "kept (to take the remote's instead, delete the run here with `wbtool "
                       "runs delete` and pull it)")


def _append_start(path: Path, remote: Remote, prefix: str, name: str, mark: Any,
                  there: Callable[[], dict[str, int]], dry_run: bool,
                  done: str = "sent", over: bool = False) -> tuple[int, bool] | str | None:
    """Where to send the append-only file ``path`` from, and whether the
    remote's parts of it go first (rewritten here); None when it holds no
    whole line past what was sent (no byte, when the run is ``over``); or
    why it must not be sent.

    The remote's parts that reach past what the sync state says was sent
    (``mark``) are compared with the file here: bytes the file lacks were
    appended by another store, and no part is written beside them. Those it
    holds were sent by a sync whose record of it was not saved, and are not
    sent again. Only a file with something to send lists the remote."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    offset, head = (int(mark["offset"]), mark.get("head")) if isinstance(mark, dict) else (0, None)
    rewritten = bool(offset) and (size < offset or _head_digest(path, offset) != head)
    if not rewritten and not _more_past(path, offset, size, over):
        # an empty file never sent goes as the empty part 0-0
        return (0, False) if not size and mark is None else None
    spans = sorted((k[2], k[3], rel) for rel in there()
                   if (k := _safe_classify(rel)) is not None and k[0] == "part" and k[1] == name)
    where = remote.display(f"{prefix}/{name}{PARTS}")
    if rewritten:
        # Rewritten rather than appended to: started over, unless the remote
        # holds more than this store sent.
        past = [(start, end) for start, end, _rel in spans if end > offset]
        if past:
            return _APPENDED_ELSEWHERE.format(where=where, start=past[0][0], end=past[-1][1],
                                              done=done)
        return 0, True
    pos = offset
    own: list[tuple[int, int, str]] = []
    other: list[tuple[int, int]] = []
    with open(path, "rb") as f:
        for start, end, rel in spans:
            if end <= offset:
                continue
            data = remote.read(f"{prefix}/{rel}") if end <= size else b""
            f.seek(start)
            if end > size or data != f.read(end - start):
                other.append((start, end))
            else:
                own.append((start, end, rel))
                if start <= pos:
                    pos = max(pos, end)
    if not other:
        return pos, False
    if not dry_run:
        # A part of these bytes that overlaps another store's was left by a
        # sync of this store stopped before it took it back: taken back now.
        for start, end, rel in own:
            if any(s < end and start < e for s, e in other):
                remote.delete(f"{prefix}/{rel}")
    return _APPENDED_ELSEWHERE.format(where=where, start=other[0][0], end=other[0][1],
                                      done=done)


def _append_all(folder: Path, remote: Remote, prefix: str,
                starts: dict[str, tuple[int, bool]], appended: dict[str, Any],
                there: Callable[[], dict[str, int]], dry_run: bool, over: bool) -> int | str:
    """Send each append-only file of the run folder from where ``starts`` says;
    the bytes sent, or why not: then no part this call wrote is left, and
    ``appended`` is as it was.

    Another store may have listed the remote before these parts were written
    and written its own from the same offsets: once they are written the run
    is listed again, and a part that neither that listing nor this call
    made, reaching past where this call began, takes them back. Of two
    syncs that race, at least one does so, and at worst both: no two parts
    of a file are left overlapping."""
    marks = dict(appended)
    mine: list[str] = []
    sent = 0
    why: str | None = None
    for name, (offset, rewritten) in starts.items():
        if rewritten and not dry_run:
            for old in remote.list(f"{prefix}/{name}{PARTS}"):
                remote.delete(old)
        got = _push_appended(folder / name, remote, f"{prefix}/{name}", appended, name,
                             offset, dry_run, mine, over)
        if isinstance(got, str):
            why = got
            break
        sent += got
    if why is None and mine:
        known = set(there()) | {path[len(prefix) + 1:] for path in mine}
        for path in remote.list(prefix):
            k = _safe_classify(path[len(prefix) + 1:])
            if (k is not None and k[0] == "part" and k[1] in starts
                    and k[3] > starts[k[1]][0] and k[4] not in known):
                why = _APPENDED_ELSEWHERE.format(
                    where=remote.display(f"{prefix}/{k[1]}{PARTS}"), start=k[2], end=k[3],
                    done="sent")
                break
    if why is None:
        return sent
    for path in mine:
        remote.delete(path)
    appended.clear()
    appended.update(marks)
    return why


def _push_appended(path: Path, remote: Remote, target: str, appended: dict[str, Any],
                   name: str, offset: int, dry_run: bool, mine: list[str],
                   over: bool) -> int | str:
    """Send the whole lines of ``path`` from ``offset`` on (all of it when
    the run is ``over``); return the bytes sent, or why the rest was not
    sent; add the parts created to ``mine``.
    Each part is created exclusively: one of that name already there (another
    store's, written since the remote was listed) is left as it is."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    sent = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            chunk = f.read(min(size - offset, MAX_PART))
            if not (over and offset + len(chunk) == size):  # else its last line is final
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    break  # no whole line yet
                chunk = chunk[:cut + 1]
            end = offset + len(chunk)
            part = part_name(target, offset, end)
            if dry_run:
                pass
            elif remote.create_exclusive(part, chunk):
                mine.append(part)
            elif remote.read(part) != chunk:
                return _APPENDED_ELSEWHERE.format(where=remote.display(f"{target}{PARTS}"),
                                                  start=offset, end=end, done="sent")
            sent += len(chunk)
            offset = end
    mark = appended.get(name)
    if not size and not dry_run and (not isinstance(mark, dict) or mark.get("offset")):
        # empty: the part 0-0 tells a reader that it is there
        remote.write(part_name(target, 0, 0), b"")
        appended[name] = {"offset": 0, "head": _head_digest(path, 0)}
    if not dry_run and offset:
        appended[name] = {"offset": offset, "head": _head_digest(path, offset)}
    return sent


# -- pull -----------------------------------------------------------------------------------
@dataclass
class RunPullResult:
    runs_pulled: int = 0
    bytes_received: int = 0
    runs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    # Local runs left alone because they hold data the remote lacks.
    conflicts: list[dict[str, str]] = field(default_factory=list)

    def add(self, other: RunPullResult) -> None:
        """Count ``other`` (a pull of another project's runs) in with this one."""
        self.runs_pulled += other.runs_pulled
        self.bytes_received += other.bytes_received
        for name in ("runs", "warnings", "refused", "conflicts"):
            getattr(self, name).extend(getattr(other, name))


def _classify(rel: str) -> tuple[str, str, int, int, str] | None:
    """``(kind, name, start, end, rel)`` for a path of a run folder on the remote, or None."""
    if validate_entry_path(rel) != rel:
        return None
    if rel == RUN_RECORD or rel in SMALL_FILES:
        return ("small", rel, 0, 0, rel)
    head, _, rest = rel.partition("/")
    if head in TREES and rest:
        return ("tree", rel, 0, 0, rel)
    if head.endswith(PARTS) and head[:-len(PARTS)] in APPEND_FILES:
        m = _PART_RE.fullmatch(rest)
        start, end = (int(m.group(1)), int(m.group(2))) if m else (0, -1)
        if start < end or start == end == 0:  # 0-0: the file is there, empty
            return ("part", head[:-len(PARTS)], start, end, rel)
    return None


def _safe_classify(rel: str) -> tuple[str, str, int, int, str] | None:
    try:
        return _classify(rel)
    except InvalidNameError:
        return None


def remote_run_ids(remote: Remote, project: str) -> tuple[list[str], list[str]]:
    """The run folders found under ``projects/<project>/runs/``, and what is
    there that is no run folder (a file, a folder whose name is no run id)."""
    base = f"projects/{project}/runs/"
    ids: set[str] = set()
    stray: set[str] = set()
    for path in remote.list(base.rstrip("/")):
        if not path.startswith(base):
            continue
        head, sep, _ = path[len(base):].partition("/")
        if not sep:  # a file beside the run folders
            stray.add(path)
            continue
        try:
            ids.add(validate_id(head))
        except InvalidNameError:
            stray.add(f"{base}{head}/")
    return sorted(ids), sorted(stray)


def pull_runs(store_path: Path, index: Index, remote: Remote, project: str,
              run_ids: Iterable[str] | None = None) -> RunPullResult:
    """Rebuild runs of ``project`` from the remote (every run when ``run_ids`` is
    None; then what is no run folder there is skipped with a warning)."""
    from wbtool.remote.records import ignored_warning

    res = RunPullResult()
    if run_ids is None:
        ids, stray = remote_run_ids(remote, project)
        res.warnings += [ignored_warning(remote.display(p)) for p in stray]
    else:
        ids = list(run_ids)
    for run_id in ids:
        try:
            validate_id(run_id)
        except InvalidNameError as e:
            res.refused.append({"path": f"projects/{project}/runs/{run_id}", "reason": str(e)})
            continue
        _pull_run(store_path, index, remote, project, run_id, res)
    return res


def _pull_run(store_path: Path, index: Index, remote: Remote, project: str, run_id: str,
              res: RunPullResult) -> None:
    prefix = run_prefix(project, run_id)
    detail = {full: (size, mtime, stamp)
              for full, size, mtime, stamp in remote.list_stamped(prefix)}
    if not detail:
        raise NotFoundError(what="remote run", name=remote.display(prefix))
    plan: list[tuple[str, str, int, int, str]] = []
    for full in sorted(detail):
        rel = full[len(prefix) + 1:] if full.startswith(prefix + "/") else full
        try:
            kind = _classify(rel) if full.startswith(prefix + "/") else None
        except InvalidNameError:
            kind = None
        if kind is None:
            res.refused.append({"path": full, "reason": "not a path of a run folder"})
            return
        plan.append(kind)
    if not any(k[4] == RUN_RECORD for k in plan):
        res.warnings.append(f"run {run_id}: no run.json on the remote yet; skipped")
        return
    target = store_path / "runs" / run_id
    seen = {rel[len(prefix) + 1:]: list(v) for rel, v in detail.items()}
    if _unchanged_since_pull(target, remote.url, seen):
        return  # nothing to fetch, and nothing here to keep
    try:
        doc = json.loads(remote.read(f"{prefix}/{RUN_RECORD}"))
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("id") != run_id or doc.get("project") != project:
        res.refused.append({"path": f"{prefix}/{RUN_RECORD}",
                            "reason": "not a run record of this run"})
        return
    why = _bad_run_record(doc)
    if why is not None:
        res.refused.append({"path": f"{prefix}/{RUN_RECORD}", "reason": why})
        return
    if target.exists():
        pulled = (target / PULLED_MARK).exists()
        if not pulled and _other_run(doc, RunFolder(target).read_run() or {}):
            res.conflicts.append({"run": run_id, "reason": (
                f"run {run_id} on {remote.display(prefix)} is another run than this store's "
                f"of the same id; left alone (`wbtool runs delete {run_id}` here to pull it)")})
            return
        if not pulled or _changed_since_pull(target):
            sent = load_state(state_path(store_path, remote.url), remote.url)["runs"].get(run_id)
            if not isinstance(sent, dict) or sent.get("project") != project:
                sent = _seen_by_pull(target, remote.url, project)  # as a push would see it
            lacks = _unsent(target, sent)
            if lacks is not None:
                why = _diverged(target, remote, prefix, sent, seen)
                if why is not None:  # then a sync refuses it too: say how to take the remote's
                    res.conflicts.append({"run": run_id, "reason": f"run {run_id}: {why}"})
                    return
                res.conflicts.append({
                    "run": run_id, "reason": f"run {run_id} has data in this store that "
                    f"{remote.url} lacks ({lacks}); run `wbtool sync` first, then pull again"})
                return
        if not pulled and not _remote_has_more(target, seen):
            return  # made here and all sent: the remote holds nothing else of it
    tmp_root = store_path / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    stage = Path(tmp_root, f"pull-{run_id}-{os.getpid()}-{time.monotonic_ns()}")
    before = _pulled_parts(target, remote.url)
    try:
        got = _download(remote, prefix, plan, stage, run_id, res,
                        reuse=(target, before, seen))
        if got < 0:
            return
        for name in SMALL_FILES:
            why = _unreadable_record(stage / name)
            if why is not None:
                res.refused.append({"path": f"{prefix}/{name}", "reason": why})
                return
        (stage / PULLED_MARK).write_text(json.dumps(
            {"remote": remote.url, "parts": {rel: v for rel, v in seen.items()
                                              if _classify(rel) and ".parts/" in rel},
             "listing": seen, "local": _fingerprint(stage)},
            sort_keys=True), encoding="utf-8")
        if target.exists():
            old = Path(f"{stage}.old")
            os.replace(target, old)
            os.replace(stage, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage, target)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage)
    _forget_sent(store_path, remote.url, run_id)
    folder = RunFolder(target)
    summary = folder.read_json(folder.summary, {})
    catalog.put(index, doc, summary if isinstance(summary, dict) else {}, folder.read_config())
    res.runs_pulled += 1
    res.bytes_received += got
    res.runs.append(run_id)


def _diverged(target: Path, remote: Remote, prefix: str, sent: dict[str, Any],
              listing: dict[str, list[Any]]) -> str | None:
    """Why the run folder ``target``, with data the remote lacks, cannot be
    sent either: the remote holds lines of an append-only file that it lacks
    (logged to in another store and synced from there); else None."""
    appended = sent.get("append")
    appended = appended if isinstance(appended, dict) else {}
    sizes = {rel: int(v[0]) for rel, v in listing.items()}
    over = _over(RunFolder(target).read_run() or {})
    for name in APPEND_FILES:
        got = _append_start(target / name, remote, prefix, name, appended.get(name),
                            lambda: sizes, True, done="pulled", over=over)
        if isinstance(got, str):
            return got
    return None


def _forget_sent(store_path: Path, url: str, run_id: str) -> None:
    """Drop what the sync state says was sent of a run folder that a pull from
    ``url`` has just replaced: a push then goes by the pull's record (the
    remote holds all of it), instead of sending again what it recorded of the
    folder that was there before."""
    path = state_path(store_path, url)
    state = load_state(path, url)
    if state["runs"].pop(run_id, None) is not None:
        save_state(path, state)


# Fields of run.json that readers take as times (seconds since the epoch, or
# spans), whole numbers or text: each may also be null or absent.
_RUN_TIMES = ("started_at", "finished_at", "updated_at", "heartbeat_at", "heartbeat_seconds",
              "runtime", "resumed_runtime")
_RUN_INTS = ("exit_code", "pid")
_RUN_TEXTS = ("name", "notes", "group", "job_type", "entity", "host", "program", "pid_start")


def _bad_run_record(doc: dict[str, Any]) -> str | None:
    """Why a run record from a remote would not read back as one (a field of
    the wrong type that listings and ``runs show`` could not use), or None."""
    if doc.get("state") not in STATES:
        return f"state {doc.get('state')!r} is not a run state"
    for key in ("created_at", *_RUN_TIMES):
        value = doc.get(key)
        if value is None and key != "created_at":
            continue
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not 0 <= value < LATEST_TIME):  # NaN fails too
            return f"{key} is not a number of seconds from 0 to {LATEST_TIME}"
    for key in _RUN_INTS:
        value = doc.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not -MAX_VERSION <= value <= MAX_VERSION):
            return f"{key} is not a whole number"
    for key in _RUN_TEXTS:
        if not isinstance(doc.get(key, ""), (str, type(None))):
            return f"{key} is not text"
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return "tags is not a list of text"
    return None


def _unreadable_record(path: Path) -> str | None:
    """Why a run's summary, config or metadata file would not read back as the
    mapping it holds (a reader would show it empty), or None (also when absent)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        try:
            doc = json.loads(text)
        except ValueError as e:
            if path.name != "config.yaml":
                return f"not JSON: {e}"
            doc = yamltext.safe_load(text)  # as the reader does
    except ValueError as e:
        return f"neither JSON nor YAML: {e}"
    except RecursionError:
        return "nested too deep"
    return None if isinstance(doc, dict) else "not a mapping"


def _open_old(reuse: tuple[Path, dict[str, list[Any]], dict[str, list[Any]]] | None,
              name: str) -> Any:
    """The last pull's copy of the append-only file ``name``, open, or None."""
    if reuse is None or not reuse[1]:
        return None
    try:
        return open(reuse[0] / name, "rb")
    except OSError:
        return None


def _fingerprint(path: Path) -> dict[str, list[int]]:
    """(size, mtime) of every file of the run folder ``path`` (its relative
    path as the key), the pull's record and the lock file left out."""
    out: dict[str, list[int]] = {}
    for dirpath, _dirs, files in os.walk(path):
        for fname in files:
            rel = Path(dirpath, fname).relative_to(path).as_posix()
            key = _stat_key(path / rel)
            if key is not None and rel not in (PULLED_MARK, ".lock"):
                out[rel] = key
    return out


def _changed_since_pull(target: Path) -> bool:
    """True when a file of the run folder ``target`` was written, added or
    removed since the pull that made it (or that pull kept no record)."""
    try:
        doc = json.loads((target / PULLED_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(doc, dict) or doc.get("local") != _fingerprint(target)


def _unsent(path: Path, seen: dict[str, Any]) -> str | None:
    """A file of the run folder ``path`` with data that a push has not sent
    (``seen``: what the sync state says was sent of the run), or None."""
    appended, stats = seen.get("append"), seen.get("stat")
    appended = appended if isinstance(appended, dict) else {}
    stats = stats if isinstance(stats, dict) else {}
    over = _over(RunFolder(path).read_run() or {})
    for rel, key in sorted(_fingerprint(path).items()):
        if rel in APPEND_FILES:
            mark = appended.get(rel)
            try:
                offset, head = ((int(mark["offset"]), mark.get("head"))
                                if isinstance(mark, dict) else (0, None))
            except (KeyError, TypeError, ValueError):
                offset, head = 0, None
            if offset and (key[0] < offset or _head_digest(path / rel, offset) != head):
                return rel  # rewritten since it was sent
            if _more_past(path / rel, offset, key[0], over):
                return rel
        elif (rel == RUN_RECORD or rel in SMALL_FILES
              or (rel.split("/", 1)[0] in TREES and is_clean_entry_path(rel))) and (
                stats.get(rel) != key):
            return rel
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _more_past(path: Path, offset: int, size: int, over: bool) -> bool:
    """Whether ``path`` holds more to send past ``offset``: a whole line
    (a torn one may grow yet), or any byte when its run is ``over``."""
    return size > offset if over else _whole_line_past(path, offset)


def _whole_line_past(path: Path, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            if b"\n" in chunk:
                return True
    return False


def _pulled_mark(target: Path, url: str) -> dict[str, Any] | None:
    """The record that the last pull of the run folder ``target`` left, when
    that pull was from ``url``; else None."""
    try:
        doc = json.loads((target / PULLED_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("remote") == url else None


def _unchanged_since_pull(target: Path, url: str, listing: dict[str, list[Any]]) -> bool:
    """Whether the run folder ``target`` is as the last pull from ``url`` left
    it, and the remote lists the run's files with the sizes, times and stamps
    it listed then: pulling it again would fetch nothing new. A backend that
    gives neither times (0) nor stamps is never taken at its word."""
    mark = _pulled_mark(target, url)
    return (mark is not None and mark.get("listing") == listing
            and all(v[1] or v[2] for v in listing.values())
            and mark.get("local") == _fingerprint(target))


def _remote_has_more(target: Path, listing: dict[str, list[Any]]) -> bool:
    """Whether the remote's files of a run (``listing``: path in the run folder →
    [size, mtime, stamp]) hold more than the run folder ``target`` (a file it
    lacks or of another size, an append-only file that goes on past it): the
    run was resumed or written to elsewhere since this store sent it."""
    local = _fingerprint(target)
    parts = {rel: v for rel, v in listing.items() if f"{PARTS}/" in rel}
    for rel, value in listing.items():
        if rel not in parts and (rel not in local or local[rel][0] != value[0]):
            return True
    return any(_contiguous_end(name, parts) > local.get(name, [0])[0] for name in APPEND_FILES)


def _pulled_parts(target: Path, url: str) -> dict[str, list[Any]]:
    """The parts (path → [size, mtime, stamp] on the remote) that the last pull of the
    run folder ``target`` from ``url`` received, or {}."""
    parts = (_pulled_mark(target, url) or {}).get("parts")
    return parts if isinstance(parts, dict) else {}


def _download(remote: Remote, prefix: str, plan: list[tuple[str, str, int, int, str]],
              stage: Path, run_id: str, res: RunPullResult,
              reuse: tuple[Path, dict[str, list[Any]], dict[str, list[Any]]] | None = None,
              ) -> int:
    """Write the run's files under ``stage``; the bytes received, or -1 when refused.

    With ``reuse`` (the run folder of the last pull, the parts it received and
    the parts listed now), a part unchanged on the remote since (same size,
    time and stamp) is taken from the last pull's file instead of being downloaded again,
    so pulling a run that is still running fetches only what is new."""
    stage.mkdir()
    (stage / "files").mkdir()
    got = 0
    parts: dict[str, list[tuple[int, int, str]]] = {}
    for kind, name, start, end, rel in plan:
        if kind == "part":
            parts.setdefault(name, []).append((start, end, rel))
        else:
            remote.get_file(f"{prefix}/{name}", stage / name)
            got += (stage / name).stat().st_size
    for name, spans in parts.items():
        pos = 0
        old = _open_old(reuse, name)
        with open(stage / name, "xb") as out, contextlib.ExitStack() as stack:
            if old is not None:
                stack.callback(old.close)
            # Parts may overlap: a sync of an earlier version whose record of
            # what it sent was not saved (interrupted) sent the file again
            # from byte 0, in other parts whose bytes agree; each part adds
            # what it holds past what is read already. Parts that disagree
            # were written by two stores appending to the run at once (before
            # sync refused that): no file is made of them.
            for start, end, rel in sorted(spans, key=lambda s: (s[0], -s[1])):
                if start < pos:
                    out.flush()
                    data = remote.read(f"{prefix}/{rel}")
                    got += len(data)
                    with open(stage / name, "rb") as before:
                        before.seek(start)
                        same = data[:pos - start] == before.read(min(end, pos) - start)
                    if len(data) != end - start or not same:
                        res.refused.append({"path": f"{prefix}/{rel}", "reason": (
                            f"holds {len(data)} bytes, not {end - start}"
                            if len(data) != end - start else
                            f"overlaps another part of {name} with other bytes: the run "
                            "was appended to in two stores at once; not pulled")})
                        return -1
                    if end > pos:
                        out.write(memoryview(data)[pos - start:])
                        pos = end
                    continue
                if start > pos:
                    if reuse is not None and _size(reuse[0] / name) > pos:
                        # what the last pull got is more than the remote has now
                        res.refused.append({"path": f"{prefix}/{rel}", "reason": (
                            f"{name} has a gap at byte {pos}; the copy pulled before, "
                            "which holds more, is kept")})
                        return -1
                    res.warnings.append(f"run {run_id}: {name} has a gap at byte {pos}; "
                                        "kept what comes before it")
                    break
                now = reuse[2].get(rel) if reuse is not None else None
                if old is not None and reuse is not None and now and (now[1] or now[2]) and (
                        reuse[1].get(rel) == now):
                    old.seek(pos)
                    data = old.read(end - pos)
                    if len(data) == end - pos:
                        out.write(data)
                        pos = end
                        continue
                data = remote.read(f"{prefix}/{rel}")
                if len(data) != end - start:
                    res.refused.append({"path": f"{prefix}/{rel}",
                                        "reason": f"holds {len(data)} bytes, not "
                                        f"{end - start}"})
                    return -1
                out.write(memoryview(data)[pos - start:])
                got += len(data)
                pos = end
    return got
