"""Garbage collection on a remote: mark and sweep, with no lock server.

Remote versions are immutable, so garbage is what interrupted pushes left:
objects and manifests that no version record reaches. The mark reads every
version record and the manifest it names; if any of them cannot be read or
does not validate, nothing is swept (what it references is unknown). Only
files older than ``grace`` seconds are swept, so the objects of a push that
has not yet written its version record are kept; files whose age the
backend does not report are kept too.

Sweeping takes ``locks/gc.json`` by exclusive create. A push that sends
anything first creates ``locks/push-<id>.json`` and then checks for the gc
lock, and the sweep, having taken its lock, checks for push locks: whichever
comes second sees the other and stops (a lock older than ``grace`` is taken
for one left by a crash, and one that a killed process of this machine left
is removed at once: see :mod:`wbtool.remote.locks`). Manifests go before
objects, so that a manifest on the remote still proves its objects are there.
A sweep that ends removes the push locks older than ``grace`` it found, which
would otherwise pile up, each read by every push and sweep.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wbtool.artifacts.gc import check_grace
from wbtool.errors import ConflictError, NotFoundError, StoreError
from wbtool.hashing import hash_bytes, is_digest
from wbtool.manifest import Manifest
from wbtool.remote import locks, records
from wbtool.remote.fs import Remote
from wbtool.remote.pool import run_all

GC_LOCK = "locks/gc.json"
PUSH_LOCKS = "locks"
DEFAULT_GRACE_SECONDS = 24 * 3600.0
# How long the end of a push or sweep waits for its lock to be deleted. A
# server that stopped answering would otherwise hold an interrupted or
# failed command for as long as its time-outs and retries last; a lock left
# behind only delays the other side (until it is older than the grace time).
RELEASE_SECONDS = 5.0


@dataclass
class RemoteGcResult:
    remote: str
    dry_run: bool
    versions: int = 0  # version records marked from
    objects: list[tuple[str, int]] = field(default_factory=list)  # swept (or to sweep)
    manifests: list[str] = field(default_factory=list)
    kept_recent: int = 0  # unreferenced but younger than the grace period
    kept: int = 0  # referenced objects and manifests
    leftovers: list[str] = field(default_factory=list)  # temp files of killed writes
    locks_removed: list[str] = field(default_factory=list)  # what killed processes left
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.objects)

    def to_json(self) -> dict[str, Any]:
        return {"remote": self.remote, "dry_run": self.dry_run, "versions": self.versions,
                "objects": len(self.objects), "bytes": self.bytes,
                "manifests": len(self.manifests), "kept": self.kept,
                "kept_recent": self.kept_recent,
                "leftovers": len(self.leftovers), "locks_removed": self.locks_removed,
                "paths": [records.manifest_path(d) for d in self.manifests]
                + [records.object_path(d) for d, _ in self.objects],
                "warnings": self.warnings, "seconds": round(self.seconds, 3)}


def _describe(remote: Remote, path: str) -> str:
    try:
        doc = json.loads(remote.read(path))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc["time"])))
        return f"by {doc['host']} (pid {doc['pid']}) since {since}"
    except (NotFoundError, ValueError, KeyError, TypeError):
        return "by another process"


def _is_push_lock(path: str) -> bool:
    return path.startswith(f"{PUSH_LOCKS}/push-") and path.endswith(".json")


@contextlib.contextmanager
def push_lock(remote: Remote, grace: float = DEFAULT_GRACE_SECONDS) -> Iterator[list[str]]:
    """Announce a push; refuse while a garbage collection is sweeping. Yields
    a line for each lock that a killed push or sweep of this machine left,
    which it removed."""
    mine = f"{PUSH_LOCKS}/push-{uuid.uuid4().hex}.json"
    remote.write(mine, locks.doc())
    try:
        listed = [(p, m) for p, _, m in remote.list_detail(PUSH_LOCKS) if p != mine]
        removed = locks.clear_dead(remote, [p for p, _ in listed if _is_push_lock(p)], "push")
        removed.update(locks.clear_dead(remote, [p for p, _ in listed if p == GC_LOCK],
                                        "garbage collection"))
        held = [(p, m) for p, m in listed if p == GC_LOCK and p not in removed]
        if held and (not held[0][1] or time.time() - held[0][1] < grace):
            raise ConflictError(f"a garbage collection is running on {remote.url} "
                                f"{_describe(remote, GC_LOCK)}; push again when it ends "
                                f"(if it died, delete {remote.display(GC_LOCK)})")
        yield list(removed.values())
    finally:
        _release(remote, mine)


def _release(remote: Remote, path: str, wait: float = RELEASE_SECONDS) -> None:
    """Delete the lock ``path``, waiting for it at most ``wait`` seconds."""

    def delete() -> None:
        with contextlib.suppress(Exception):
            remote.delete(path)

    worker = threading.Thread(target=delete, name="wbtool-release-lock", daemon=True)
    worker.start()
    worker.join(wait)


def _mark(remote: Remote, jobs: int,
          warnings: list[str]) -> tuple[set[str], set[str], int]:
    """Every manifest and object digest a version record on the remote reaches.

    Files and folders under ``projects/`` that wbtool never writes (a name
    that is no project or artifact name, a stray file) are skipped with a
    warning; what a file there shaped like a version record names is kept
    all the same (a folder renamed by hand must not cost its versions' data).
    """
    paths = remote.list("projects")
    by_project: dict[str, list[str]] = {}
    ignored: dict[str, None] = {}
    for path in paths:
        parts = path.split("/")
        if len(parts) < 3:
            ignored[path] = None
        elif not records.is_valid_name(parts[1]):
            ignored[f"projects/{parts[1]}/"] = None
        elif parts[2] == "artifacts":
            by_project.setdefault(parts[1], []).append(path)
    docs_wanted: list[tuple[str, str, int]] = []
    for project, project_paths in sorted(by_project.items()):
        found, skipped = records.parse_listing(project, project_paths)
        ignored.update(dict.fromkeys(skipped))
        for listing in found.values():
            docs_wanted += [(project, listing.name, i) for i in sorted(listing.versions)]
    warnings += [records.ignored_warning(remote.display(p)) for p in ignored]
    wanted_paths = {records.version_path(*item) for item in docs_wanted}
    stray = [p for p in paths if records.is_version_record_path(p) and p not in wanted_paths]

    def read_record(item: tuple[str, str, int]) -> records.VersionRecordDoc:
        path = records.version_path(*item)
        try:
            return records.VersionRecordDoc.from_bytes(remote.read(path), path, *item)
        except (records.UnreadableRecordError, records.BadRecordError, NotFoundError) as e:
            raise StoreError(f"not collecting garbage on {remote.url}: version record "
                             f"{remote.display(path)} cannot be used ({e}); what it "
                             "references is unknown") from None

    docs = run_all(read_record, docs_wanted, jobs)
    manifests = {d.manifest for d in docs}
    named = set().union(*run_all(lambda p: _manifest_named(remote, p), stray, jobs))
    manifests |= {d for d in named if remote.exists(records.manifest_path(d))}

    def read_manifest(digest: str) -> set[str]:
        path = records.manifest_path(digest)
        try:
            data = remote.read(path)
            if hash_bytes(data) != digest:
                raise ValueError("its content does not match its name")
            manifest = Manifest.from_bytes(data, remote.display(path))
        except Exception as e:
            raise StoreError(f"not collecting garbage on {remote.url}: manifest "
                             f"{remote.display(path)} cannot be used ({e})") from None
        return {e.digest for e in manifest if e.ref is None}

    objects: set[str] = set()
    for digests in run_all(read_manifest, sorted(manifests), jobs):
        objects |= digests
    return manifests, objects, len(docs)


def _manifest_named(remote: Remote, path: str) -> set[str]:
    """The manifest digest that the file ``path``, shaped like a version record
    but not on a path wbtool reads them from, names (none if it names none)."""
    try:
        doc = json.loads(remote.read(path))
    except (NotFoundError, ValueError, RecursionError):
        return set()
    digest = doc.get("manifest") if isinstance(doc, dict) else None
    return {str(digest)} if is_digest(digest) else set()


def _plan(remote: Remote, grace: float, jobs: int, result: RemoteGcResult) -> None:
    result.warnings = []
    manifests, objects, result.versions = _mark(remote, jobs, result.warnings)
    now = time.time()
    result.objects, result.manifests = [], []
    result.kept = result.kept_recent = 0
    for prefix, live, parse in (("manifests", manifests, records.digest_of_manifest_path),
                                ("objects", objects, records.digest_of_object_path)):
        for path, size, mtime in remote.list_detail(prefix):
            digest = parse(path)
            if digest is None:
                continue  # not ours: never touched
            if digest in live:
                result.kept += 1
            elif not mtime or now - mtime < grace:
                result.kept_recent += 1
            elif prefix == "objects":
                result.objects.append((digest, size))
            else:
                result.manifests.append(digest)
    # A write killed midway leaves its temp file (a push's is renamed within
    # seconds of being made, so one older than the grace period is dead).
    result.leftovers = [p for p, mtime in remote.leftovers() if now - mtime >= grace]


def collect(remote: Remote, *, dry_run: bool = True, grace: float = DEFAULT_GRACE_SECONDS,
            jobs: int = 8) -> RemoteGcResult:
    """Find (``dry_run``) or delete what no version record on ``remote`` reaches."""
    check_grace(grace)
    started = time.monotonic()
    result = RemoteGcResult(remote=remote.url, dry_run=dry_run)
    if dry_run:
        _plan(remote, grace, jobs, result)
        result.seconds = time.monotonic() - started
        return result
    mine = locks.doc()
    removed: dict[str, str] = {}
    if not remote.create_exclusive(GC_LOCK, mine) and (
            not (removed := locks.clear_dead(remote, [GC_LOCK], "garbage collection"))
            or not remote.create_exclusive(GC_LOCK, mine)):
        raise ConflictError(f"a garbage collection is already running on {remote.url} "
                            f"{_describe(remote, GC_LOCK)}; if it died, delete "
                            f"{remote.display(GC_LOCK)}")
    try:
        now = time.time()
        listed = [lock for lock in remote.list_stamped(PUSH_LOCKS) if _is_push_lock(lock[0])]
        stale = locks.expired(listed, grace, now)  # removed once the sweep is done
        old = {lock[0] for lock in stale}
        fresh = [lock[0] for lock in listed if lock[0] not in old]
        removed.update(locks.clear_dead(remote, fresh, "push"))
        result.locks_removed = list(removed.values())
        pushing = [p for p in fresh if p not in removed]
        if pushing:
            raise ConflictError(f"a push to {remote.url} is in progress "
                                f"({_describe(remote, pushing[0])}); collect garbage later "
                                f"(if that push died, delete {remote.display(pushing[0])})")
        _plan(remote, grace, jobs, result)
        run_all(lambda d: remote.delete(records.manifest_path(d)), result.manifests, jobs)
        run_all(lambda item: remote.delete(records.object_path(item[0])), result.objects, jobs)
        run_all(remote.delete, result.leftovers, jobs)
        result.locks_removed += locks.clear_expired(remote, PUSH_LOCKS, stale, grace, "push",
                                                    jobs).values()
    finally:
        _release(remote, GC_LOCK)
    result.seconds = time.monotonic() - started
    return result
