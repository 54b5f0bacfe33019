"""``wbtool doctor``'s look at artifact versions: manifests, the objects they
name (present, or with ``verify`` intact), and who needs a missing one."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from wbtool.doctor.check import FAIL, LISTED, OK, Check, ProgressBar, names, plural
from wbtool.errors import StoreError

if TYPE_CHECKING:
    import sqlite3

    from wbtool.context import Context
    from wbtool.manifest import Manifest


def _versions(db: sqlite3.Connection) -> dict[str, list[str]]:
    """Manifest digest → the versions that use it (``project/name:vN``)."""
    users: dict[str, list[str]] = {}
    for project, name, idx, manifest in db.execute(
            "SELECT c.project, c.name, v.idx, v.manifest FROM versions v JOIN collections c"
            " ON c.id = v.collection_id ORDER BY c.project, c.name, v.idx"):
        users.setdefault(manifest, []).append(f"{project}/{name}:v{idx}")
    return users


def _read_manifests(
    ctx: Context, users: dict[str, list[str]]
) -> tuple[dict[str, Manifest], dict[str, str]]:
    """The manifests that read and validate, and why each other one does not."""
    from wbtool.errors import CorruptObjectError
    from wbtool.manifest import Manifest

    objects = ctx.store.objects
    good: dict[str, Manifest] = {}
    bad: dict[str, str] = {}
    for digest, labels in users.items():
        try:
            good[digest] = Manifest.from_bytes(objects.read_bytes(digest),
                                               f"manifest of {labels[0]}")
        except CorruptObjectError:
            bad[digest] = "corrupt" if objects.has(digest) else "missing"
        except StoreError as e:
            bad[digest] = f"invalid: {e}"
        except OSError as e:
            bad[digest] = f"unreadable: {e.strerror or e}"
    return good, bad


def checks(ctx: Context, verify: bool,
           progress: ProgressBar) -> Generator[Check, None, set[str] | None]:
    """The checks of artifact versions and drafts; return every object digest
    they need (manifests included: what gc keeps), or None when some could not
    be read and what they need is unknown."""
    from wbtool.artifacts.staging import list_drafts

    users = _versions(ctx.store.index.db)
    good, bad = _read_manifests(ctx, users)
    versions = sum(len(v) for v in users.values())
    if bad:
        broken = [f"{label} ({why})" for d, why in bad.items() for label in users[d]]
        yield Check("artifacts", "manifests", FAIL,
                    f"{plural(len(broken), 'version')} cannot be read: {names(broken)}",
                    "`wbtool pull NAME:vN` restores a version from a remote that has it; "
                    "`wbtool artifact rm NAME:vN` deletes it",
                    data={"versions": [{"version": label, "manifest": d, "problem": why}
                                       for d, why in bad.items() for label in users[d]]})
    else:
        yield Check("artifacts", "manifests", OK,
                    f"{plural(versions, 'version')}, {plural(len(good), 'manifest')} read",
                    data={"versions": versions, "manifests": len(good)})
    complete = not bad
    needs: dict[str, list[str]] = {d: users[d] for d in good}
    try:
        for draft in list_drafts(ctx):
            key = f"draft:{draft.project}/{draft.name}"
            good[key] = draft.manifest
            needs[key] = [f"the staged files of {draft.project}/{draft.name}"]
    except StoreError:  # an unreadable draft is told under leftovers
        complete = False
    for key, label, m in _distributed_drafts(ctx):
        if m is None:
            complete = False
            continue
        good[key] = m
        needs[key] = [label]
    wanted = {e.digest for m in good.values() for e in m if e.ref is None}
    missing = _missing_objects(ctx, wanted)
    yield _objects_check(ctx, wanted, missing, good, needs, verify)
    if verify:
        yield _verify(ctx, wanted - missing, good, needs, progress)
    return wanted | users.keys() if complete else None


def _distributed_drafts(ctx: Context) -> Iterator[tuple[str, str, Manifest | None]]:
    """The drafts that distributed runs are building (``upsert_artifact``),
    with their staged files, or None where those do not read."""
    from wbtool.manifest import Manifest

    for project, name, run_group, doc in ctx.store.index.db.execute(
            "SELECT project, name, distributed_id, manifest FROM distributed_drafts"):
        label = f"the distributed draft {project}/{name} ({run_group})"
        try:
            m: Manifest | None = Manifest.from_bytes(doc.encode(), label)
        except StoreError:
            m = None
        yield f"distributed:{project}/{name}/{run_group}", label, m


def _missing_objects(ctx: Context, wanted: set[str]) -> set[str]:
    """Those of ``wanted`` with no loose copy and no readable packed one: the
    store's own lookup, and packs that are gone or shorter than their rows."""
    objects = ctx.store.objects
    missing = set(objects.missing(wanted))
    db = ctx.store.index.db
    damaged = []
    for pack, end in db.execute("SELECT pack, MAX(offset + size) FROM packed GROUP BY pack"):
        try:
            if os.stat(objects.pack_path(pack)).st_size < end:
                damaged.append(pack)
        except FileNotFoundError:
            damaged.append(pack)
    for pack in damaged:
        for (digest,) in db.execute("SELECT digest FROM packed WHERE pack = ?", (pack,)):
            if digest in wanted and not os.path.exists(objects.path(digest)):
                missing.add(digest)
    return missing


def _who_needs(digests: set[str], manifests: dict[str, Manifest],
               needs: dict[str, list[str]]) -> list[str]:
    """The versions (and drafts) whose manifests name any of ``digests``."""
    out: list[str] = []
    for key, m in manifests.items():
        if any(e.digest in digests for e in m if e.ref is None):
            out.extend(needs[key])
    return out


def _objects_check(ctx: Context, wanted: set[str], missing: set[str],
                   manifests: dict[str, Manifest], needs: dict[str, list[str]],
                   verify: bool) -> Check:
    if not missing:
        packed = len(wanted & ctx.store.objects.packed_digests())
        return Check("artifacts", "objects", OK,
                     f"all {plural(len(wanted), 'object')} present ({packed:,} packed, "
                     f"{len(wanted) - packed:,} loose)"
                     + ("" if verify else "; not hashed (--verify hashes them)"),
                     data={"objects": len(wanted), "packed": packed})
    users = _who_needs(missing, manifests, needs)
    return Check("artifacts", "objects", FAIL,
                 f"{plural(len(missing), 'object')} of {len(wanted):,} missing, needed by "
                 f"{names(users)}",
                 "where a pack file is gone, `wbtool gc` first forgets its objects; then "
                 "`wbtool pull NAME:vN` fetches them from a remote that has the version, or "
                 "logging the same files again stores them; `wbtool artifact rm NAME:vN` "
                 "deletes a version that cannot be restored",
                 data={"missing": sorted(missing)[:LISTED], "needed_by": users[:LISTED]})


def _verify(ctx: Context, present: set[str], manifests: dict[str, Manifest],
            needs: dict[str, list[str]], progress: ProgressBar) -> Check:
    from wbtool.artifacts.materialize import verify_digests

    with progress("verifying objects", len(present)) as cb:
        corrupt = verify_digests(ctx.store, present, cb)
    if not corrupt:
        return Check("artifacts", "verify", OK,
                     f"all {plural(len(present), 'object')} match their digests",
                     data={"objects": len(present)})
    users = _who_needs(corrupt, manifests, needs)
    objects = ctx.store.objects
    return Check("artifacts", "verify", FAIL,
                 f"{plural(len(corrupt), 'object')} corrupt, needed by {names(users)}",
                 "move each damaged loose file (listed by --json) out of objects/, then "
                 "`wbtool pull NAME:vN` restores it from a remote; or delete the versions "
                 "with `wbtool artifact rm NAME:vN`",
                 data={"corrupt": sorted(corrupt)[:LISTED], "needed_by": users[:LISTED],
                       "files": [objects.path(d) for d in sorted(corrupt)[:LISTED]
                                 if os.path.exists(objects.path(d))]})
