"""``wbtool doctor``: every check of the environment, a store and its remotes.

It only reads: the store is opened read-only (its index too, without the
side files SQLite would make), nothing is locked, created or repaired. Each
check says what is wrong and which command repairs it. Checks come one at a
time, as they finish, so that a terminal shows progress on a large store.

Without ``verify`` the object checks are existence checks (a stat per loose
object, one query for the packed ones), so a store of 100,000 objects takes
seconds; ``verify`` hashes every object that a version or draft needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from wbtool.doctor.check import FAIL, Check, ProgressBar, no_bar
from wbtool.errors import StoreError

__all__ = ["Check", "diagnose"]


def diagnose(*, verify: bool = False, remote: str | None = None,
             progress: ProgressBar = no_bar, cwd: str | None = None) -> Iterator[Check]:
    """Run every check, yielding each finding as it is made.

    ``remote``: a remote's name or URL, or ``"all"``, to contact (the others
    are only listed). A name that is no remote raises NotFoundError before
    any check of the store's contents is made.
    """
    from wbtool.doctor import artifacts, environment, leftovers, remotes, runs, store

    settings, problem = environment.settings()
    yield from environment.checks(settings)
    if problem is not None:
        yield problem
    ctx, found = store.open_store(settings, cwd)
    yield from found
    if ctx is None:
        return
    targets = remotes.targets(ctx, remote)  # a bad name is refused before the long checks
    index_ok = yield from store.index(ctx)
    if index_ok:
        referenced: set[str] | None = None

        def artifact_checks() -> Iterator[Check]:
            nonlocal referenced
            referenced = yield from artifacts.checks(ctx, verify, progress)

        yield from _guarded("artifacts", artifact_checks)
        yield from _guarded("leftovers", lambda: leftovers.checks(ctx, referenced))
        yield from _guarded("runs", lambda: runs.checks(ctx))
    yield from _guarded("remotes", lambda: remotes.checks(ctx, targets))


def _guarded(area: str, checks: Callable[[], Iterator[Check]]) -> Iterator[Check]:
    """The checks of ``area``; a damaged index that fails them mid-way ends
    them with one failed check, named after the area."""
    import sqlite3

    try:
        yield from checks()
    except (sqlite3.DatabaseError, StoreError) as e:
        yield Check(area, area, FAIL, f"cannot be checked: {e}",
                    "restore .wbtool/index.db from a backup")
