"""Pull artifact versions from a remote: the mirror image of a push.

Readers go the other way from writers: version records first, then their
manifests, then the objects. Everything read is validated before a byte is
stored: a record whose fields have the wrong type is refused, one that
cannot be parsed is skipped with a warning, a manifest must match its digest
and the record's, its paths are checked (no ``..``, no absolute part), and
each object's content is hashed and compared with its name *before* it is
stored. A version is committed locally (through the registry, so aliases
and the index stay consistent) only when all its objects arrived intact.
Then the link events of the portfolios pulled are followed (a linked
version this store lacks is pulled first) and the lineage records of the
versions here are recorded (see :mod:`wbtool.remote.linksync`); a remote
written before they existed holds none, which is nothing to follow.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wbtool import fsutil
from wbtool.artifacts.registry import Registry
from wbtool.errors import NotFoundError, StoreError
from wbtool.hashing import hash_bytes, hash_file
from wbtool.manifest import Manifest
from wbtool.names import parse_version
from wbtool.remote import linksync, records, state
from wbtool.remote.fs import Remote
from wbtool.remote.pool import run_all
from wbtool.store.layout import Store
from wbtool.store.objects import SMALL

Progress = Callable[[int, int], None]
Target = tuple[str, str | None, str | None]  # project, name (None: all), version or alias


def _no_progress(files: int, nbytes: int) -> None:
    pass


@dataclass
class PullResult:
    remote: str
    versions_pulled: int = 0
    versions_present: int = 0  # already here (same content), only mapped
    objects_received: int = 0
    bytes_received: int = 0
    aliases_moved: int = 0
    links_changed: int = 0  # links made, re-aliased or removed as the remote says
    lineage_added: int = 0  # runs that used or logged a version here, as the remote says
    versions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote, "versions_pulled": self.versions_pulled,
            "versions_present": self.versions_present,
            "objects_received": self.objects_received, "bytes_received": self.bytes_received,
            "aliases_moved": self.aliases_moved, "links_changed": self.links_changed,
            "lineage_added": self.lineage_added, "versions": self.versions,
            "warnings": self.warnings, "refused": self.refused,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Wanted:
    doc: records.VersionRecordDoc
    aliases: list[str]
    manifest: Manifest | None = None


def _collections(remote: Remote, target: Target,
                 warnings: list[str]) -> list[records.CollectionListing]:
    project, name, _ = target
    prefix = (records.collection_prefix(project, name) if name
              else records.project_prefix(project))
    found, ignored = records.parse_listing(project, remote.list(prefix))
    warnings += [records.ignored_warning(remote.display(p)) for p in ignored]
    if name is not None and not found.get(name, records.CollectionListing(project, name)).versions:
        if remote.list(records.links_prefix(project, name)):
            return []  # a portfolio: its links are followed after the versions
        raise NotFoundError(what="artifact", name=f"{project}/{name} on {remote.url}")
    return [found[n] for n in sorted(found) if found[n].versions]


def read_aliases(remote: Remote, listing: records.CollectionListing, jobs: int,
                  warnings: list[str], refused: list[dict[str, str]]) -> dict[str, int]:
    def read(seq: int) -> tuple[int, records.AliasEvent | None]:
        path = records.alias_path(listing.project, listing.name, seq)
        try:
            return seq, records.AliasEvent.from_bytes(remote.read(path), path)
        except records.UnreadableRecordError as e:
            warnings.append(f"skipped {e}")
        except records.BadRecordError as e:
            refused.append({"path": remote.display(path), "reason": e.fields["reason"]})
        return seq, None

    events = run_all(read, sorted(listing.aliases), jobs)
    return records.alias_state((seq, ev) for seq, ev in events if ev is not None)


def select_versions(listing: records.CollectionListing, version: str | None,
            aliases: dict[str, int], remote: Remote) -> list[int]:
    label = f"{listing.project}/{listing.name}:{version}"
    if version is None:
        return sorted(listing.versions)
    if version == "latest":
        return [max(listing.versions)]
    n = parse_version(version)
    if n is None:
        n = aliases.get(version)
    if n is None or n not in listing.versions:
        raise NotFoundError(what="artifact version", name=f"{label} on {remote.url}")
    return [n]


def pull(registry: Registry, remote: Remote, targets: Iterable[Target], *, jobs: int = 8,
         progress: Progress = _no_progress) -> PullResult:
    """Pull the versions ``targets`` name, then follow their links and lineage."""
    started = time.monotonic()
    result = PullResult(remote=remote.url)
    targets = list(targets)
    _pull_versions(registry, remote, targets, jobs, progress, result)

    fetched: list[Target] = []

    def fetch(target: Target) -> None:  # a linked version this store lacks
        _pull_versions(registry, remote, [target], jobs, progress, result)
        fetched.append(target)

    result.links_changed = linksync.pull_links(registry, remote, targets, jobs, result.warnings,
                                               result.refused, fetch)
    result.lineage_added = linksync.pull_lineage(registry, remote, targets + fetched, jobs,
                                                 result.warnings, result.refused)
    result.refused.sort(key=lambda r: r["path"])
    result.warnings.sort()
    result.seconds = time.monotonic() - started
    return result


def _pull_versions(registry: Registry, remote: Remote, targets: Iterable[Target], jobs: int,
                   progress: Progress, result: PullResult) -> None:
    store = registry.store
    index = store.index
    wanted: list[_Wanted] = []
    present: list[tuple[records.VersionRecordDoc, int, list[str]]] = []
    alias_states: dict[tuple[str, str], dict[str, int]] = {}

    for target in targets:
        for listing in _collections(remote, target, result.warnings):
            key = (listing.project, listing.name)
            aliases = read_aliases(remote, listing, jobs, result.warnings, result.refused)
            alias_states[key] = aliases
            mapped = {m.remote_idx for m in state.load(index, remote.url, *key).values()}
            todo = [i for i in select_versions(listing, target[2], aliases, remote)
                    if i not in mapped]
            local = {r.digest: r.id for r in registry.versions(*key)
                     if r.state == "COMMITTED" and not r.is_link}
            for doc in _read_records(remote, listing, todo, jobs, result):
                names = sorted(a for a, i in aliases.items() if i == doc.version)
                if doc.digest in local:
                    present.append((doc, local[doc.digest], names))
                else:
                    wanted.append(_Wanted(doc, names))

    # Manifests: each checked against its name, the record and the path rules.
    def fetch_manifest(w: _Wanted) -> None:
        path = records.manifest_path(w.doc.manifest)
        try:
            data = remote.read(path)
        except NotFoundError:
            raise StoreError(f"{remote.display(path)}: missing") from None
        if hash_bytes(data) != w.doc.manifest:
            raise StoreError(f"{remote.display(path)}: content does not match its digest")
        manifest = Manifest.from_bytes(data, remote.display(path))
        digest, canonical = manifest.serialize()
        if canonical != data or digest != w.doc.digest:
            raise StoreError(f"{remote.display(path)}: does not match the version record")
        if len(manifest) != w.doc.file_count or manifest.size != w.doc.size:
            raise StoreError(f"{remote.display(path)}: size or file count disagrees with "
                             "the version record")
        clash = manifest.path_clash()
        if clash is not None:
            raise StoreError(f"{remote.display(path)}: {clash[0]!r} is both a file and a folder")
        w.manifest = manifest

    def try_manifest(w: _Wanted) -> _Wanted | None:
        try:
            fetch_manifest(w)
            return w
        except StoreError as e:
            result.refused.append({"path": remote.display(records.version_path(
                w.doc.project, w.doc.name, w.doc.version)), "reason": str(e)})
            return None

    accepted = [w for w in run_all(try_manifest, wanted, jobs) if w is not None]

    sizes: dict[str, int] = {}
    for w in accepted:
        assert w.manifest is not None
        for e in w.manifest:
            if e.ref is None:
                sizes[e.digest] = e.size or 0
    with store.lock(exclusive=False):
        missing = store.objects.missing(sizes)
        failed = fetch_objects(store, remote, {d: sizes[d] for d in missing}, jobs, progress)
        for digest, reason in sorted(failed.items()):
            result.refused.append({"path": remote.display(records.object_path(digest)),
                                   "reason": reason})
        result.objects_received = len(missing) - len(failed)
        result.bytes_received = sum(sizes[d] for d in missing if d not in failed)

        actual = object_sizes(store, [d for d in sizes if d not in failed])
        remembered: list[tuple[int, str, int, list[str]]] = []
        for w in sorted(accepted, key=lambda w: (w.doc.project, w.doc.name, w.doc.version)):
            assert w.manifest is not None
            bad = [e.path for e in w.manifest if e.ref is None and e.digest in failed]
            wrong = [e for e in w.manifest
                     if e.ref is None and e.digest in actual and actual[e.digest] != e.size]
            doc = w.doc
            where = remote.display(records.version_path(doc.project, doc.name, doc.version))
            if bad:
                result.refused.append({
                    "path": where,
                    "reason": f"{len(bad)} object(s) failed verification (first: {bad[0]})"})
                continue
            if wrong:
                result.refused.append({"path": where, "reason": (
                    f"{len(wrong)} entry size(s) disagree with the objects (first: "
                    f"{wrong[0].path}: the manifest says {wrong[0].size} bytes, the object "
                    f"holds {actual[wrong[0].digest]})")})
                continue
            rec = registry.commit(
                doc.project, doc.name, doc.type, w.manifest, description=doc.description,
                metadata=doc.metadata, aliases=w.aliases, tags=list(doc.tags),
                run_id=doc.run_id, created_at=doc.created_at, number=doc.version)
            remembered.append((rec.id, rec.digest, doc.version, w.aliases))
            result.versions_pulled += 0 if rec.noop else 1
            result.versions_present += 1 if rec.noop else 0
            result.versions.append({"project": doc.project, "name": doc.name,
                                    "remote_version": f"v{doc.version}",
                                    "version": rec.version, "created": not rec.noop})
        for doc, vid, names in present:
            rec = registry.get(vid)
            for alias in names:
                registry.add_alias(rec, alias)
            remembered.append((vid, doc.digest, doc.version, names))
            result.versions_present += 1
            result.versions.append({"project": doc.project, "name": doc.name,
                                    "remote_version": f"v{doc.version}",
                                    "version": rec.version, "created": False})
        state.remember(index, remote.url, remembered)
        result.aliases_moved += _follow_aliases(registry, remote, alias_states)


def object_sizes(store: Store, digests: Iterable[str]) -> dict[str, int]:
    """The size of each of ``digests`` in the local store (those absent left out)."""
    wanted = list(digests)
    out = {d: loc[2] for d, loc in store.objects.locate_many(wanted).items()}
    for digest in wanted:
        if digest not in out:
            with contextlib.suppress(FileNotFoundError):
                out[digest] = os.stat(store.objects.path(digest)).st_size
    return out


def _unexpected(digest: str, got: int, size: int, content_digest: str) -> str | None:
    """Why an object fetched for a manifest entry of ``size`` bytes is refused, or None."""
    if got != size:
        return f"holds {got} bytes, not {size} as the manifest says"
    if content_digest != digest:
        return "content does not match its digest"
    return None


def fetch_objects(store: Store, remote: Remote, sizes: dict[str, int], jobs: int = 8,
                  progress: Progress = _no_progress) -> dict[str, str]:
    """Fetch the objects ``sizes`` names (digest → size) into the local store,
    each checked (its size, then its content's digest) before it is stored.
    Returns ``{digest: why}`` for those refused."""
    failed: dict[str, str] = {}

    def fetch_object(digest: str) -> None:
        size = sizes[digest]
        path = records.object_path(digest)
        try:
            if size <= SMALL:
                data = remote.read(path)
                why = _unexpected(digest, len(data), size, hash_bytes(data))
                if why is not None:
                    failed[digest] = why
                    return
                store.objects.put_bytes(data)
            else:
                tmp = fsutil.tmp_name(store.tmp, digest)
                try:
                    remote.get_file(path, tmp)
                    got = os.path.getsize(tmp)
                    why = _unexpected(digest, got, size, hash_file(tmp)[0] if got == size
                                      else digest)
                    if why is not None:
                        failed[digest] = why
                        return
                    store.objects.put_file(tmp, immutable=True)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        except NotFoundError:
            failed[digest] = "missing on the remote"
            return
        progress(1, size)

    run_all(fetch_object, sorted(sizes), jobs)
    if len(failed) < len(sizes):
        store.flush()  # on disk before any version names them
    return failed


def _read_records(remote: Remote, listing: records.CollectionListing, idxs: list[int],
                  jobs: int, result: PullResult) -> list[records.VersionRecordDoc]:
    def read(idx: int) -> records.VersionRecordDoc | None:
        path = records.version_path(listing.project, listing.name, idx)
        try:
            return records.VersionRecordDoc.from_bytes(remote.read(path), path,
                                                       listing.project, listing.name, idx)
        except records.UnreadableRecordError as e:
            result.warnings.append(f"skipped {remote.display(path)}: {e.fields['reason']}")
        except records.BadRecordError as e:
            result.refused.append({"path": remote.display(path), "reason": e.fields["reason"]})
        return None

    return [doc for doc in run_all(read, idxs, jobs) if doc is not None]


def _follow_aliases(registry: Registry, remote: Remote,
                    alias_states: dict[tuple[str, str], dict[str, int]]) -> int:
    """Move local aliases that changed on the remote since the last sync.

    An alias is moved only when the remote names a different version than
    the one both sides agreed on last time, so a local move not pushed yet
    is kept.
    """
    index = registry.store.index
    moved = 0
    for key, remote_state in alias_states.items():
        mapped = state.load(index, remote.url, *key)
        by_idx = {m.remote_idx: m for m in mapped.values()}
        agreed = {a: m.remote_idx for m in mapped.values() for a in m.aliases}
        columns = {m.version_id: set(m.aliases) for m in mapped.values()}
        changed = False
        for alias, idx in sorted(remote_state.items()):
            if agreed.get(alias) == idx or idx not in by_idx:
                continue
            target = by_idx[idx]
            registry.add_alias(registry.get(target.version_id), alias)
            for vid, names in columns.items():
                names.discard(alias)
                if vid == target.version_id:
                    names.add(alias)
            moved += 1
            changed = True
        if changed:
            state.set_aliases(index, remote.url, columns.items())
    return moved
