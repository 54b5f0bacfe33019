"""How a command that fails ends: one line on stderr and its exit code.

Shared by the full command line and the entry point's fast paths, so that
an error reads and exits the same whichever of them ran the command.
"""

from __future__ import annotations

import sys

from wbtool.text import printable

# Below this much room, an index that fails to open is taken to fail for want of it.
FULL_BELOW_BYTES = 1 << 20
# An error line longer than this (a bad value of 100 KB quoted whole) keeps
# its start and end, which say what was wrong, and leaves out the middle.
MAX_MESSAGE = 2000


def fail(message: str, code: int) -> int:
    """Print ``message`` as one ``wbtool: error:`` line on stderr; return ``code``."""
    message = printable(message)
    if len(message) > MAX_MESSAGE:
        keep = MAX_MESSAGE // 2
        message = (f"{message[:keep]} …({len(message) - 2 * keep} characters left out)… "
                   f"{message[-keep:]}")
    try:
        sys.stderr.write(f"wbtool: error: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or full: the exit code still tells
        pass
    return code


def exit_code(exc: BaseException) -> int:
    """Report ``exc`` and return its exit code; raise it again when it is
    not an expected failure (a bug, which keeps its traceback)."""
    from wbtool.errors import EXIT_FAILURE, EXIT_INTERRUPTED, WbtoolError

    if isinstance(exc, WbtoolError):
        return fail(str(exc), exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return fail("interrupted", EXIT_INTERRUPTED)
    if isinstance(exc, BrokenPipeError):
        return 0
    if isinstance(exc, UnicodeEncodeError) and "surrogates" in str(exc.reason):
        # bytes that are not UTF-8 (an argument, a file name) where only text goes
        from wbtool.errors import EXIT_USAGE

        near = exc.object[max(0, exc.start - 20):exc.end + 20]
        return fail(f"text that is not valid UTF-8 cannot be kept here (near {near!r})",
                    EXIT_USAGE)
    if isinstance(exc, OSError):
        import errno

        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        if not where and _stdout_fails():  # > /dev/full: no output, but the store is whole
            from wbtool.cli.output import stdout_failed

            return exit_code(stdout_failed(exc))
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # say whose disk, and what to do
            return _disk_full(exc, where)
        return fail(f"{exc.strerror or exc}{where}", EXIT_FAILURE)
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.Error):
        from wbtool.errors import EXIT_CONFLICT, EXIT_STORE

        if "locked" in str(exc) or "busy" in str(exc):
            return fail(f"the store's index is busy ({exc}); try again", EXIT_CONFLICT)
        if "readonly" in str(exc):
            return fail(f"the store's index cannot be written here ({exc}): this command "
                        "needs write access to the store folder", EXIT_STORE)
        return fail(f"the store's index cannot be used: {exc}{_full_disk()}", EXIT_STORE)
    raise exc


def _stdout_fails() -> bool:
    """Whether stdout cannot be written, so that an error naming no file
    came from writing it (help text, a table) rather than from the store:
    what it has left to write cannot be flushed either, or (unbuffered) it
    is ``/dev/full``."""
    import os
    import stat

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return False
    except (OSError, ValueError):
        return True
    try:
        st = os.fstat(sys.stdout.fileno())
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat("/dev/full").st_rdev
    except (OSError, ValueError, AttributeError):  # no descriptor, no /dev/full
        return False


def _disk_full(exc: OSError, where: str) -> int:
    """Tell a write that found no room: which disk, how much is free now
    (what the failed write had taken is given back by then), and what to do.
    A write named no file writes into the store; a named file elsewhere (the
    folder of a checkout) is on another disk. Exit 7 when the store's disk is
    the full one, else 1: the store is fine, the operation failed."""
    import os

    from wbtool.errors import EXIT_FAILURE, EXIT_STORE
    from wbtool.fsutil import is_within

    store = _existing(None)
    folder = _existing(exc.filename) if getattr(exc, "filename", None) else store
    if store is not None and folder is not None and is_within(folder, store):
        folder = store  # a file of the store's: name the store
    code = EXIT_STORE
    try:
        if folder is None:
            raise OSError
        st = os.statvfs(folder)
        if store is not None and os.stat(folder).st_dev != os.stat(store).st_dev:
            code = EXIT_FAILURE  # not the store's disk
    except OSError:
        return fail(f"{exc.strerror or exc}{where}", code)
    free = st.f_bavail * st.f_frsize
    state = "is full" if free < FULL_BELOW_BYTES else "has too little room for this"
    return fail(f"{exc.strerror or exc}{where}{_disk_text(folder, state, free)}", code)


def _disk_text(folder: str, state: str, free: int) -> str:
    from wbtool.units import human_size

    return (f"; the disk holding {folder} {state} ({human_size(free)} free): free some "
            "space and try again")


def _existing(path: object) -> str | None:
    """The nearest existing folder at or above ``path`` (None: the store's)."""
    import os

    try:
        if path is None:
            from wbtool.store.layout import discover

            folder = os.fspath(discover())
        else:
            folder = os.fsdecode(path)  # type: ignore[arg-type]
        folder = os.path.abspath(folder)
        while not os.path.isdir(folder) and folder != os.path.dirname(folder):
            folder = os.path.dirname(folder)
    except (OSError, ValueError, TypeError):
        return None
    return folder


def _full_disk() -> str:
    """What to add to an index error when the disk holding the store is full:
    SQLite then fails even to read ("disk I/O error"), since every reader
    needs room beside the index for its shared memory."""
    import os

    folder = _existing(None)
    if folder is None:
        return ""
    try:
        st = os.statvfs(folder)
    except OSError:
        return ""
    free = st.f_bavail * st.f_frsize
    return _disk_text(folder, "is full", free) if free < FULL_BELOW_BYTES else ""

