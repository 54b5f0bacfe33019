"""Garbage collection of objects that no version and no draft references."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from wbtool.context import Context

DEFAULT_GRACE_SECONDS = 3600.0


@dataclass
class GcResult:
    removed: int = 0
    freed: int = 0
    kept: int = 0
    recent: int = 0
    dry_run: bool = False


def collect_garbage(
    ctx: Context, *, grace_seconds: float = DEFAULT_GRACE_SECONDS, dry_run: bool = False
) -> GcResult:
    """Remove unreferenced objects under the store's exclusive lock.

    Objects changed within ``grace_seconds`` are kept: they may belong to an
    artifact that a running program is still building.
    """
    store = ctx.store
    result = GcResult(dry_run=dry_run)
    with store.lock(exclusive=True, wait=False):
        keep = ctx.registry.referenced_digests()
        cutoff = time.time() - grace_seconds
        removed: list[str] = []
        for digest in list(store.objects):
            if digest in keep:
                result.kept += 1
                continue
            path = store.objects.path(digest)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if st.st_ctime > cutoff:
                result.recent += 1
                continue
            result.removed += 1
            result.freed += st.st_size
            if not dry_run:
                os.unlink(path)
                removed.append(digest)
        if removed:
            store.index.stat_cache_forget(removed)
        if not dry_run:
            for entry in os.scandir(store.tmp):
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat(
                        follow_symlinks=False
                    ).st_mtime < cutoff:
                        os.unlink(entry.path)
                except OSError:
                    pass
    return result
