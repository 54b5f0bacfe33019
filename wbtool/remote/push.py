"""Push artifact versions to a remote: objects, then manifests, then version
records, then alias events, then link events and lineage records (so a crash
at any moment leaves a valid remote; :mod:`wbtool.remote.linksync` tells how
the last two are sent).

What the remote lacks is decided from listings, never key by key: the
``remote_versions`` table says which local versions are on the remote
already; one listing of each project's records confirms them; one listing of
``manifests/`` tells which manifests (and so, by the write order, which
objects) are there; and only when a manifest is missing is ``objects/``
listed once. A push with nothing new lists the version records and sends
nothing.

A push trusts that a version whose record is on the remote still has its
manifest and objects there, and its lineage records and link events. A
checking push (``check``) does not: it lists ``manifests/`` and ``objects/``
(with sizes) whatever the records say, and sends again any manifest or
object of a version it covers that the remote lost or holds at another size
(deleted by hand, by a lifecycle rule, cut short), before anything that
refers to it; it lists each project's lineage and links, reads the events
of the portfolios it sent links to, and sends again each lineage record, and
each link that no event names any more, that the remote lost.

Version numbers are claimed by exclusive create: ``v<N>`` for the next N,
and on a lost race N+1, so stores pushing at once all succeed with distinct
numbers. A version whose digest the collection already has on the remote
maps onto that version instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wbtool.artifacts.registry import Registry, VersionRecord
from wbtool.remote import linksync, records, state
from wbtool.remote.fs import Remote
from wbtool.remote.pool import run_all
from wbtool.store.objects import SMALL

BIG_UPLOADS = 2  # large objects sent at once (each in parallel parts)

Progress = Callable[[int, int], None]


def _no_progress(files: int, nbytes: int) -> None:
    pass


@dataclass
class PushPlan:
    """What a push will send (a dry run reports it and stops here)."""

    remote: Remote
    versions: list[VersionRecord]  # local versions not yet on the remote, oldest first
    known: dict[tuple[str, str], dict[str, int]]  # (project, name) → remote digest → number
    listings: dict[tuple[str, str], records.CollectionListing]
    manifests: dict[str, VersionRecord]  # manifest digest → a version that has it
    objects: dict[str, int]  # object digest → size
    mapped: dict[int, state.Mapped]  # local version id → remote version (already there)
    scope: list[VersionRecord]  # every local version the push covers
    project: str | None = None  # the project pushed (None: every project)
    gone: dict[int, state.Mapped] = field(default_factory=dict)  # remembered, lost there
    lost_lineage: list[state.LineageKey] = field(default_factory=list)  # sent, gone (check)
    # links whose events the remote lost, with what it reads of them now (check)
    lost_links: list[linksync.LinkChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def bytes(self) -> int:
        return sum(self.objects.values())


@dataclass
class PushResult:
    remote: str
    dry_run: bool
    objects_sent: int = 0
    bytes_sent: int = 0
    manifests_sent: int = 0
    versions_sent: int = 0
    versions_mapped: int = 0  # matched a version already on the remote
    aliases_sent: int = 0
    links_sent: int = 0  # link events: links made, changed or removed
    lineage_sent: int = 0  # lineage records: a run used or logged a version
    versions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote, "dry_run": self.dry_run, "objects_sent": self.objects_sent,
            "bytes_sent": self.bytes_sent, "manifests_sent": self.manifests_sent,
            "versions_sent": self.versions_sent, "versions_mapped": self.versions_mapped,
            "aliases_sent": self.aliases_sent, "links_sent": self.links_sent,
            "lineage_sent": self.lineage_sent, "versions": self.versions,
            "warnings": self.warnings, "seconds": round(self.seconds, 3),
        }


def _pushable(rec: VersionRecord) -> bool:
    return rec.state == "COMMITTED" and not rec.is_link


def plan(registry: Registry, remote: Remote, project: str | None = None,
         jobs: int = 8, *, check: bool = False) -> PushPlan:
    """Work out what ``remote`` lacks of the artifacts of ``project`` (all when None);
    ``check``: also what it lost of the versions already there (see the module
    docstring)."""
    started = time.monotonic()
    scope = [r for r in registry.versions(project) if _pushable(r)]
    mapped = state.load(registry.store.index, remote.url, project)
    warnings: list[str] = []

    # One listing per project confirms the versions believed to be there.
    listings: dict[tuple[str, str], records.CollectionListing] = {}
    for proj in sorted({r.project for r in scope}):
        found, ignored = records.parse_listing(proj, remote.list(records.project_prefix(proj)))
        warnings += [records.ignored_warning(remote.display(p)) for p in ignored]
        for name, listing in found.items():
            listings[(proj, name)] = listing
    # Versions the remote lost (or a remote replaced) are sent again; the
    # index forgets them when the push is executed (a dry run writes nothing).
    gone = {vid: mapped.pop(vid) for vid, m in list(mapped.items())
            if m.remote_idx not in _listing(listings, m.project, m.name).versions}
    pending = [r for r in scope if r.id not in mapped]

    # Digests of remote versions this store does not know yet, for deduplication.
    known: dict[tuple[str, str], dict[str, int]] = {}
    to_read: list[tuple[str, str, int]] = []
    ours = {(m.project, m.name, m.remote_idx) for m in mapped.values()}
    for key in sorted({(r.project, r.name) for r in pending}):
        known[key] = {}
        for idx in sorted(_listing(listings, *key).versions):
            if (*key, idx) not in ours:
                to_read.append((*key, idx))

    def read_record(item: tuple[str, str, int]) -> tuple[tuple[str, str, int],
                                                          records.VersionRecordDoc | None]:
        proj, name, idx = item
        path = records.version_path(proj, name, idx)
        try:
            return item, records.VersionRecordDoc.from_bytes(remote.read(path), path, proj,
                                                             name, idx)
        except records.UnreadableRecordError as e:
            warnings.append(str(e))
        except records.BadRecordError as e:
            warnings.append(str(e))
        return item, None

    for (proj, name, idx), doc in run_all(read_record, to_read, jobs):
        if doc is not None:
            known[(proj, name)].setdefault(doc.digest, idx)
    by_id = {r.id: r for r in scope}
    for m in mapped.values():  # our own records: their digests are known locally
        if (m.project, m.name) in known and m.version_id in by_id:
            known[(m.project, m.name)].setdefault(by_id[m.version_id].digest, m.remote_idx)

    # Manifests and objects the new versions need (with ``check``, every version).
    new = [r for r in pending if r.digest not in known[(r.project, r.name)]]
    wanted = scope if check else new
    manifests: dict[str, VersionRecord] = {}
    objects: dict[str, int] = {}
    if wanted:
        present = {d for p in remote.list("manifests")
                   if (d := records.digest_of_manifest_path(p)) is not None}
        for rec in wanted:
            if rec.manifest not in present:
                manifests.setdefault(rec.manifest, rec)
        for rec in (scope if check else manifests.values()):
            for entry in registry.load_manifest(rec):
                if entry.ref is None:
                    objects[entry.digest] = entry.size or 0
        if objects:
            objects = _lacking(remote, objects, sizes=check)
        if check and objects:
            gone_here = registry.store.objects.missing(objects)
            if gone_here:  # the remote lost them and this store no longer has them
                warnings.append(f"{len(gone_here)} object(s) the remote lacks are not in this "
                                "store either; not sent")
                for digest in gone_here:
                    del objects[digest]
    lost_lineage: list[state.LineageKey] = []
    lost_links: list[linksync.LinkChange] = []
    if check:
        lost_lineage = linksync.lost_lineage(registry, remote, mapped)
        lost_links = linksync.lost_links(registry, remote, project, warnings, jobs)
    return PushPlan(remote=remote, versions=pending, known=known, listings=listings,
                    manifests=manifests, objects=objects, mapped=mapped, scope=scope,
                    project=project, gone=gone, warnings=warnings, started=started,
                    lost_lineage=lost_lineage, lost_links=lost_links)


def _lacking(remote: Remote, objects: dict[str, int], *, sizes: bool) -> dict[str, int]:
    """The ``objects`` (digest → size) that one listing of the remote's
    ``objects/`` lacks; with ``sizes``, also those it holds at another size."""
    if not sizes:
        there = {d for p in remote.list("objects")
                 if (d := records.digest_of_object_path(p)) is not None}
        return {d: s for d, s in objects.items() if d not in there}
    held = {d: size for p, size, _mtime in remote.list_detail("objects")
            if (d := records.digest_of_object_path(p)) is not None}
    return {d: s for d, s in objects.items() if held.get(d) != s}


def _listing(listings: dict[tuple[str, str], records.CollectionListing], project: str,
             name: str) -> records.CollectionListing:
    return listings.setdefault((project, name), records.CollectionListing(project, name))


def execute(registry: Registry, plan: PushPlan, jobs: int = 8,
            progress: Progress = _no_progress) -> PushResult:
    """Send what ``plan`` found missing, in the safe order (announced to a
    garbage collection of the remote when it sends anything it could sweep)."""
    from wbtool.remote.gc import push_lock

    if plan.objects or plan.manifests or plan.versions:
        with push_lock(plan.remote) as removed:  # locks that killed pushes left
            result = _execute(registry, plan, jobs, progress)
            result.warnings[:0] = removed
            return result
    return _execute(registry, plan, jobs, progress)


def _execute(registry: Registry, plan: PushPlan, jobs: int,
             progress: Progress) -> PushResult:
    remote = plan.remote
    store = registry.store
    result = PushResult(remote=remote.url, dry_run=False, warnings=list(plan.warnings))
    if plan.gone:  # forgotten with their lineage and links, which are sent again
        state.forget(store.index, remote.url, plan.gone)
        state.forget_remote_versions(store.index, remote.url, _remote_keys(plan.gone))

    big = threading.BoundedSemaphore(BIG_UPLOADS)

    def send_object(item: tuple[str, int]) -> None:
        digest, size = item
        path = records.object_path(digest)
        if size > SMALL and store.objects.locate(digest) is None:
            with big:  # each is a multipart upload of its own, parts in parallel
                remote.put_file(store.objects.path(digest), path)
        else:
            remote.write(path, store.objects.read_bytes(digest))  # checked against its digest
        progress(1, size)

    run_all(send_object, sorted(plan.objects.items()), jobs)
    result.objects_sent = len(plan.objects)
    result.bytes_sent = plan.bytes

    def send_manifest(digest: str) -> None:
        remote.write(records.manifest_path(digest), store.objects.read_bytes(digest))

    run_all(send_manifest, sorted(plan.manifests), jobs)
    result.manifests_sent = len(plan.manifests)

    index = store.index
    for rec in plan.versions:
        key = (rec.project, rec.name)
        known = plan.known[key]
        listing = _listing(plan.listings, *key)
        idx = known.get(rec.digest)
        if idx is None:
            idx = _claim(remote, rec, listing, known)
            result.versions_sent += 1
            created = True
        else:
            result.versions_mapped += 1
            created = False
        known.setdefault(rec.digest, idx)
        state.remember(index, remote.url, [(rec.id, rec.digest, idx, ())])
        plan.mapped[rec.id] = state.Mapped(rec.id, rec.project, rec.name, idx, ())
        result.versions.append({"project": rec.project, "name": rec.name,
                                "version": rec.version, "remote_version": f"v{idx}",
                                "created": created})

    result.aliases_sent = _push_aliases(registry, plan)
    # What a check found lost is forgotten, so that it is sent again below.
    state.forget_lineage(index, remote.url, plan.lost_lineage)
    state.set_links(index, remote.url, plan.lost_links)
    result.links_sent = linksync.push_links(registry, remote, plan.project, result.warnings)
    result.lineage_sent = linksync.push_lineage(registry, remote, plan.mapped, jobs)
    result.seconds = time.monotonic() - plan.started
    return result


def _claim(remote: Remote, rec: VersionRecord, listing: records.CollectionListing,
           known: dict[str, int]) -> int:
    """Create the next free ``v<N>`` record for ``rec`` (or find its digest there)."""
    idx = listing.next_version()
    while True:
        doc = records.VersionRecordDoc(
            project=rec.project, name=rec.name, version=idx, digest=rec.digest,
            manifest=rec.manifest, size=rec.size, file_count=rec.file_count, type=rec.type,
            description=rec.description, metadata=rec.metadata, created_at=rec.created_at,
            run_id=rec.run_id, tags=tuple(rec.tags))
        path = records.version_path(rec.project, rec.name, idx)
        if remote.create_exclusive(path, doc.to_bytes()):
            listing.versions.add(idx)
            return idx
        listing.versions.add(idx)
        try:  # someone was quicker: maybe with the same content
            theirs = records.VersionRecordDoc.from_bytes(remote.read(path), path, rec.project,
                                                         rec.name, idx)
        except (records.UnreadableRecordError, records.BadRecordError):
            theirs = None
        if theirs is not None:
            known.setdefault(theirs.digest, idx)
            if theirs.digest == rec.digest:
                return idx
        idx += 1


AliasChanges = list[tuple[tuple[str, str], list[tuple[str, int | None]], list[VersionRecord]]]


def _alias_changes(plan: PushPlan, mapped: dict[int, state.Mapped]) -> AliasChanges:
    """Per collection, each alias moved, added or removed since the last sync
    (alias, remote version or None), with the collection's versions on the
    remote (``mapped``)."""
    by_collection: dict[tuple[str, str], list[VersionRecord]] = {}
    for rec in plan.scope:
        if rec.id in mapped:
            by_collection.setdefault((rec.project, rec.name), []).append(rec)
    out: AliasChanges = []
    for key, recs in sorted(by_collection.items()):
        want = {a: mapped[r.id].remote_idx for r in recs for a in r.aliases if a != "latest"}
        had = {a: mapped[r.id].remote_idx for r in recs for a in mapped[r.id].aliases}
        changes = sorted((a, want.get(a)) for a in set(want) | set(had)
                         if want.get(a) != had.get(a))
        if changes:
            out.append((key, changes, recs))
    return out


def _push_aliases(registry: Registry, plan: PushPlan) -> int:
    """Send an event for every alias moved, added or removed since the last sync."""
    remote = plan.remote
    sent = 0
    updates: list[tuple[int, list[str]]] = []
    for key, changes, recs in _alias_changes(plan, plan.mapped):
        listing = _listing(plan.listings, *key)
        seq = listing.next_seq()
        for alias, idx in changes:
            event = records.AliasEvent(alias=alias, version=idx, time=time.time())
            while not remote.create_exclusive(records.alias_path(*key, seq), event.to_bytes()):
                seq += 1
            listing.aliases.add(seq)
            seq += 1
            sent += 1
        updates += [(r.id, [a for a in r.aliases if a != "latest"]) for r in recs]
    if updates:
        state.set_aliases(registry.store.index, remote.url, updates)
    return sent


def _remote_keys(versions: dict[int, state.Mapped]) -> list[tuple[str, str, int]]:
    return [(m.project, m.name, m.remote_idx) for m in versions.values()]


def _dry_run(registry: Registry, p: PushPlan) -> PushResult:
    """What executing ``p`` would send, counted without writing anything: each
    new version stands for the remote version it would be (one of the same
    digest there, or a number of its own), for its aliases, links and lineage."""
    would = dict(p.mapped)
    for i, rec in enumerate(p.versions):
        idx = p.known[(rec.project, rec.name)].get(rec.digest)
        would[rec.id] = state.Mapped(rec.id, rec.project, rec.name,
                                     -1 - i if idx is None else idx, ())
    url = p.remote.url
    index = registry.store.index
    warnings = list(p.warnings)
    every = {vid: m for vid, m in state.load(index, url).items() if vid not in p.gone}
    every.update(would)
    # What an executed push forgets of the versions the remote lost, first.
    lost_there = set(_remote_keys(p.gone))
    lost_lineage = [*p.lost_lineage, *(k for k in state.load_lineage(index, url)
                                       if k[:3] in lost_there)]
    lost_links = [*p.lost_links, *((k, None) for k in state.load_links(index, url)
                                   if k[2:] in lost_there)]
    return PushResult(
        remote=url, dry_run=True, objects_sent=len(p.objects), bytes_sent=p.bytes,
        manifests_sent=len(p.manifests), versions=[
            {"project": r.project, "name": r.name, "version": r.version} for r in p.versions],
        versions_sent=len(p.versions),
        aliases_sent=sum(len(changes) for _, changes, _ in _alias_changes(p, would)),
        links_sent=len(linksync.link_changes(registry, url, p.project, warnings, every,
                                             lost=lost_links)),
        lineage_sent=len(linksync.lineage_todo(registry, url, would, lost=lost_lineage)),
        warnings=warnings, seconds=time.monotonic() - p.started)


def push(registry: Registry, remote: Remote, project: str | None = None, *, jobs: int = 8,
         dry_run: bool = False, check: bool = False,
         progress: Progress = _no_progress) -> PushResult:
    """Plan and (unless ``dry_run``) execute a push."""
    p = plan(registry, remote, project, jobs, check=check)
    if dry_run:
        return _dry_run(registry, p)
    return execute(registry, p, jobs, progress)
