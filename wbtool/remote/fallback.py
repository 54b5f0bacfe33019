"""Reading artifacts that are only on the default remote.

``use_artifact``, ``Api().artifact``, ``Artifact.download``/``checkout`` and
``wbtool artifact download/checkout/info`` look in the local store first.
When a version is not there, and the store has a default remote, it is
pulled from there (records validated, objects verified, as ``wbtool pull``
does); when a version is known but some of its objects are not in the local
store, only those objects are fetched. Without a default remote nothing
changes: the local "not found" stands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from wbtool.errors import CorruptObjectError, NotFoundError, StoreError, VerificationError
from wbtool.names import parse_version

if TYPE_CHECKING:
    from wbtool.artifacts.registry import Registry, VersionRecord
    from wbtool.manifest import Manifest
    from wbtool.remote.fs import Remote

T = TypeVar("T")


def _default_remote(registry: Registry) -> Remote | None:
    from wbtool.remote import config
    from wbtool.remote.fs import open_remote

    spec = config.get_default(registry.store)
    if spec is None:
        return None
    return open_remote(spec.url, spec.options)


def _note(text: str) -> None:
    sys.stderr.write(f"wbtool: {text}\n")
    sys.stderr.flush()


def resolve(registry: Registry, project: str, name: str,
            version: str | None = None) -> VersionRecord:
    """The local version record, pulled from the default remote when missing here."""
    try:
        return registry.resolve(project, name, version)
    except NotFoundError:
        remote = _default_remote(registry)
        if remote is None:
            raise
    from wbtool.remote.pull import pull

    label = f"{project}/{name}:{version or 'latest'}"
    try:
        result = pull(registry, remote, [(project, name, version)])
    except NotFoundError:  # one line: neither here nor there
        raise NotFoundError(f"artifact {label} not found, neither here nor on the default "
                            f"remote {remote.url}", what="artifact", name=label) from None
    if result.refused:
        first = result.refused[0]
        raise VerificationError(f"{label} on {remote.url} was refused: {first['path']}: "
                                f"{first['reason']}")
    _note(f"{label} was not in the local store; fetched it from {remote.url}")
    n = parse_version(version) if version else None
    if n is not None:  # a version number names the remote's numbering
        for v in result.versions:
            if (v["project"], v["name"], v["remote_version"]) == (project, name, f"v{n}"):
                return registry.resolve(project, name, str(v["version"]))
    return registry.resolve(project, name, version)


def ensure_objects(registry: Registry, manifest: Manifest, *, jobs: int = 8) -> int:
    """Fetch the manifest's objects missing from the local store from the
    default remote. Returns how many were fetched; raises when some are missing
    and cannot be fetched."""
    store = registry.store
    sizes = {e.digest: e.size or 0 for e in manifest if e.ref is None}
    missing = store.objects.missing(sizes)
    if not missing:
        return 0
    remote = _default_remote(registry)
    if remote is None:
        raise StoreError(f"{len(missing)} object(s) of this version are missing from the "
                         f"local store (first: {missing[0]}) and no default remote is set; "
                         "add one with 'wbtool remote add NAME URL --default'")
    from wbtool.remote.pull import fetch_objects

    _note(f"fetching {len(missing)} missing object(s) from {remote.url}")
    with store.lock(exclusive=False):
        failed = fetch_objects(store, remote, {d: sizes[d] for d in missing}, jobs)
    if failed:  # missing there, or not what the manifest says: nothing was stored
        digest, why = sorted(failed.items())[0]
        raise VerificationError(f"{len(failed)} object(s) could not be fetched from "
                                f"{remote.url} (first: {digest}: {why})")
    return len(missing)


def with_objects(registry: Registry, manifest: Manifest, write: Callable[[], T]) -> T:
    """Run ``write`` (a download or checkout); if it stops because an object is
    missing from the local store, fetch the missing objects and run it again
    (files already written are left as they are)."""
    try:
        return write()
    except (FileNotFoundError, CorruptObjectError):
        if ensure_objects(registry, manifest) == 0:
            raise
    return write()


def exists(registry: Registry, project: str, name: str, version: str | None = None,
           type: str | None = None) -> bool:
    """Whether the version is here or on the default remote, without pulling it
    (one listing, plus one read per alias event or for the type)."""
    try:
        rec = registry.resolve(project, name, version)
    except NotFoundError:
        pass
    else:
        return type is None or rec.type == type
    remote = _default_remote(registry)
    if remote is None:
        return False
    from wbtool.remote import records
    from wbtool.remote.pull import read_aliases, select_versions

    found, _ = records.parse_listing(project, remote.list(records.collection_prefix(project,
                                                                                    name)))
    listing = found.get(name)
    if listing is None or not listing.versions:
        return False
    warnings: list[str] = []
    refused: list[dict[str, str]] = []
    needs_aliases = version not in (None, "latest") and parse_version(version or "") is None
    aliases = read_aliases(remote, listing, 8, warnings, refused) if needs_aliases else {}
    try:
        idx = max(select_versions(listing, version or "latest", aliases, remote))
    except NotFoundError:
        return False
    if type is None:
        return True
    path = records.version_path(project, name, idx)
    try:
        doc = records.VersionRecordDoc.from_bytes(remote.read(path), path, project, name, idx)
    except (records.UnreadableRecordError, records.BadRecordError, NotFoundError):
        return False
    return doc.type == type
