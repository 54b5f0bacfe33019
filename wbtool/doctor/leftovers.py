"""``wbtool doctor``'s look at what is left over: temp files, staged files
and objects no version needs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from wbtool.doctor.check import FAIL, LISTED, OK, WARN, Check, names, plural
from wbtool.errors import StoreError

if TYPE_CHECKING:
    from wbtool.context import Context

STALE_DRAFT_SECONDS = 86400.0  # staged files untouched this long look forgotten


def checks(ctx: Context, referenced: set[str] | None = None) -> Iterator[Check]:
    """Leftovers; ``referenced``: what the artifact checks found every
    version and draft needs, which the garbage estimate then need not read again."""
    yield _tmp(ctx)
    yield _drafts(ctx)
    yield _garbage(ctx, referenced)


def _tmp(ctx: Context) -> Check:
    """Temp files older than gc's grace period: what a killed process left."""
    from wbtool.artifacts.gc import DEFAULT_GRACE_SECONDS
    from wbtool.units import human_size

    cutoff = time.time() - DEFAULT_GRACE_SECONDS
    files, folders, recent, size = [], [], 0, 0
    try:
        entries = list(os.scandir(ctx.store.tmp))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # finished meanwhile
        if st.st_mtime >= cutoff:
            recent += 1
        elif entry.is_dir(follow_symlinks=False):
            folders.append(entry.name)
        else:
            files.append(entry.name)
            size += st.st_size
    data = {"files": files[:LISTED], "folders": folders[:LISTED], "bytes": size,
            "recent": recent}
    in_use = f"; {recent:,} recent (in use)" if recent else ""
    if not files and not folders:
        return Check("leftovers", "tmp", OK, f"no leftover temp files{in_use}", data=data)
    parts = []
    if files:
        parts.append(f"{plural(len(files), 'temp file')} ({human_size(size)})")
    if folders:
        parts.append(plural(len(folders), "folder"))
    hint = "`wbtool gc` removes temp files older than an hour"
    if folders:
        hint += f"; remove the folders in {ctx.store.tmp} by hand"
    return Check("leftovers", "tmp", WARN,
                 f"{' and '.join(parts)} older than an hour left in tmp/{in_use}", hint,
                 data=data)


def _drafts(ctx: Context) -> Check:
    from wbtool.artifacts.staging import list_drafts

    try:
        drafts = list_drafts(ctx)
    except StoreError as e:
        return Check("leftovers", "drafts", FAIL, f"staged files cannot be read: {e}",
                     "`wbtool artifact reset NAME` drops them")
    if not drafts:
        return Check("leftovers", "drafts", OK, "no staged files", data={"drafts": []})
    now = time.time()
    stale = [d for d in drafts if now - d.updated_at > STALE_DRAFT_SECONDS]
    labels = [f"{d.project}/{d.name} ({plural(len(d.manifest), 'file')})" for d in drafts]
    data = {"drafts": [{"project": d.project, "name": d.name, "files": len(d.manifest),
                        "updated_at": d.updated_at} for d in drafts]}
    if not stale:
        return Check("leftovers", "drafts", OK, f"staged: {names(labels)}", data=data)
    return Check("leftovers", "drafts", WARN,
                 f"{plural(len(stale), 'draft')} untouched for over a day: "
                 f"{names([f'{d.project}/{d.name}' for d in stale])}",
                 "`wbtool artifact log NAME` commits the staged files; "
                 "`wbtool artifact reset NAME` drops them", data=data)


def _garbage(ctx: Context, referenced: set[str] | None) -> Check:
    from wbtool.artifacts.gc import garbage_estimate
    from wbtool.units import human_size

    try:
        res = garbage_estimate(ctx, keep=referenced)
    except StoreError:
        return Check("leftovers", "garbage", WARN,
                     "unknown: a manifest or draft cannot be read (see above), so what no "
                     "version needs cannot be told")
    data = {"objects": res.removed, "bytes": res.freed, "recent": res.recent,
            "referenced": res.kept}
    if not res.removed:
        return Check("leftovers", "garbage", OK, "no unreferenced objects to free", data=data)
    return Check("leftovers", "garbage", OK,
                 f"{plural(res.removed, 'unreferenced object')} ({human_size(res.freed)}) "
                 "that `wbtool gc` would free", "`wbtool gc`", data=data)
