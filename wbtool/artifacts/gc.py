"""Garbage collection of objects that no version and no draft references."""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass

from wbtool.context import Context
from wbtool.errors import UsageError
from wbtool.store.packs import PackWriter

DEFAULT_GRACE_SECONDS = 3600.0
REPACK_GARBAGE_RATIO = 0.5


def check_grace(seconds: float) -> float:
    """``seconds`` as a grace period, or UsageError: with a negative or NaN
    one, gc would delete objects that are being written right now."""
    if not (isinstance(seconds, (int, float)) and 0 <= seconds < math.inf):  # NaN fails too
        raise UsageError(
            f"the grace period (--grace) must be a number of seconds, 0 or more, not {seconds!r}")
    return float(seconds)


@dataclass
class GcResult:
    removed: int = 0
    freed: int = 0
    kept: int = 0
    recent: int = 0
    repacked: int = 0
    dry_run: bool = False


def collect_garbage(
    ctx: Context, *, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
) -> GcResult:
    """Remove unreferenced objects under the store's exclusive lock.

    Objects changed within ``grace_seconds`` are kept: they may belong to an
    artifact that a running program is still building. A pack whose objects
    are all unreferenced is deleted; one that is mostly garbage is rewritten
    with its live objects.
    """
    check_grace(grace_seconds)
    store = ctx.store
    result = GcResult(dry_run=dry_run)
    with store.lock(exclusive=True, wait=False):
        keep = ctx.registry.referenced_digests()
        if not dry_run:  # cached walks vouch for objects; forget them all
            with store.index.transaction() as tx:
                tx.execute("DELETE FROM tree_cache")
        cutoff = time.time() - grace_seconds
        _sweep(ctx, keep, cutoff, result, dry_run)
        if not dry_run:
            _clean_tmp(ctx, cutoff)
    return result


def garbage_estimate(ctx: Context, *, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                     keep: set[str] | None = None) -> GcResult:
    """What ``collect_garbage(dry_run=True)`` reports, found without the
    store's lock and without writing anything: for a store this process
    cannot write, or one that other processes are using. What they change
    meanwhile may make it a little off; gc itself looks again under the lock.
    ``keep``: the referenced digests, where the caller has read them already."""
    check_grace(grace_seconds)
    result = GcResult(dry_run=True)
    if keep is None:
        keep = ctx.registry.referenced_digests()
    _sweep(ctx, keep, time.time() - grace_seconds, result, dry_run=True)
    return result


def _sweep(
    ctx: Context, keep: set[str], cutoff: float, result: GcResult, dry_run: bool
) -> None:
    """Remove (or only count) the objects outside ``keep`` older than ``cutoff``.

    Everything is looked at first, then whatever vouches for the objects to
    go is forgotten before any of them goes, so that a gc killed midway
    leaves nothing naming a missing one: what other processes remember of
    the store (packed digests) is stale from then on, and the stat cache
    names none of them."""
    store = ctx.store
    loose = _doomed_loose(ctx, keep, cutoff, result)
    packs = _doomed_packs(ctx, keep, cutoff, result)
    if dry_run:
        return
    doomed = [digest for digest, _ in loose] + [r[0] for p in packs for r in p.dead]
    if doomed:
        store.index.bump_gc_generation()
        store.index.stat_cache_forget(doomed)
    for _, path in loose:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    _remove_packs(ctx, packs, cutoff, result)


def _doomed_loose(
    ctx: Context, keep: set[str], cutoff: float, result: GcResult
) -> list[tuple[str, str]]:
    """(digest, path) of the loose objects to remove, counted in ``result``."""
    objects = ctx.store.objects
    doomed: list[tuple[str, str]] = []
    for digest in list(objects.iter_loose()):
        if digest in keep:
            result.kept += 1
            continue
        path = objects.path(digest)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if st.st_ctime > cutoff:
            result.recent += 1
            continue
        result.removed += 1
        result.freed += st.st_size
        doomed.append((digest, path))
    return doomed


@dataclass
class _DoomedPack:
    """A pack with objects to remove: ``live`` ones to copy into a new pack
    first (none where the pack file is gone: its rows are only forgotten)."""

    name: str
    path: str
    rows: list[tuple[str, int, int]]  # digest, offset, size
    live: list[tuple[str, int, int]]
    dead: list[tuple[str, int, int]]
    gone: bool = False


def _doomed_packs(
    ctx: Context, keep: set[str], cutoff: float, result: GcResult
) -> list[_DoomedPack]:
    """The packs to remove or rewrite, their objects counted in ``result``."""
    store = ctx.store
    packs: dict[str, list[tuple[str, int, int]]] = {}
    for digest, pack, offset, size in store.index.db.execute(
        "SELECT digest, pack, offset, size FROM packed ORDER BY pack, offset"
    ).fetchall():
        packs.setdefault(pack, []).append((digest, offset, size))
    doomed: list[_DoomedPack] = []
    for name, rows in packs.items():
        path = store.objects.pack_path(name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            # The pack file is gone (deleted by hand, a damaged disk). Its rows
            # would have every later add take these objects as stored, and
            # never write them again: forget them, so that logging the files
            # again (or a pull) restores them.
            doomed.append(_DoomedPack(name, path, rows, [], rows, gone=True))
            continue
        live = [r for r in rows if r[0] in keep]
        dead = [r for r in rows if r[0] not in keep]
        result.kept += len(live)
        if not dead:
            continue
        if st.st_ctime > cutoff:
            result.recent += len(dead)
            continue
        dead_bytes = sum(r[2] for r in dead)
        if live and dead_bytes < REPACK_GARBAGE_RATIO * sum(r[2] for r in rows):
            continue  # mostly live: not worth rewriting yet
        result.removed += len(dead)
        result.freed += dead_bytes
        doomed.append(_DoomedPack(name, path, rows, live, dead))
    return doomed


def _remove_packs(ctx: Context, packs: list[_DoomedPack], cutoff: float,
                  result: GcResult) -> None:
    """Rewrite the live objects of ``packs`` into a new pack and delete them;
    then delete pack files no row names (a crash between rename and indexing)."""
    store = ctx.store
    for pack in packs:
        if pack.live:
            with PackWriter(store.objects) as writer:  # rows now point at the new pack
                for digest, offset, size in pack.live:
                    writer.add(digest, store.objects.read_packed((pack.path, offset, size)))
            result.repacked += 1
        with store.index.transaction() as tx:  # the live rows point at the new pack now
            tx.executemany("DELETE FROM packed WHERE digest=? AND pack=?",
                           ((r[0], pack.name) for r in pack.rows))
        if not pack.gone:
            os.unlink(pack.path)
    pack_dir = os.path.join(store.objects.root, "pack")
    if os.path.isdir(pack_dir):
        indexed = {p for (p,) in store.index.db.execute("SELECT DISTINCT pack FROM packed")}
        for entry in os.scandir(pack_dir):
            name = entry.name.removesuffix(".pack")
            if name not in indexed and entry.stat().st_ctime < cutoff:
                os.unlink(entry.path)


def _clean_tmp(ctx: Context, cutoff: float) -> None:
    for entry in os.scandir(ctx.store.tmp):
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(
                follow_symlinks=False
            ).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            pass
