"""Joining a run of another process by a handle it gave out.

The reference lets a run be handed to another process (a ``multiprocessing``
worker started with the spawn method): ``run._attach_id`` names the run, and
``wandb._attach(attach_id)`` in the other process joins it. PyTorch
Lightning's ``WandbLogger`` does so when ``Trainer(strategy="ddp_spawn")``
pickles it into its workers, and a pickled :class:`~wbtool.runs.run.Run`
does the same when it is unpickled.

Here joining is ``mode="shared"``: the run that gives out a handle becomes the
primary of a shared run (its writes of run.json, summary and config merge with
the others' from then on), and the process that attaches is a secondary
(``x_primary=False``), whose history rows carry its ``_label``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbtool.errors import ConflictError, NotFoundError, UsageError

if TYPE_CHECKING:
    from wbtool.runs.folder import RunFolder
    from wbtool.runs.run import Run


def attach_id(run: Run) -> str | None:
    """The handle of ``run`` for another process (the path of its folder), after
    making it the primary of a shared run; None for a run that writes nothing."""
    folder = run._folder
    if folder is None or run._finished:
        return None
    with run._lock:
        if run._shared is None:
            run._shared = "primary"
        run._flush()  # the rows so far: the other process's steps count on from them
    return str(folder.path.absolute())


def attach(attach_id: str | None = None, run_id: str | None = None, *,
           run: Any = None) -> Run:
    """Join the run that ``attach_id`` (given by ``run._attach_id`` in another
    process) or ``run_id`` names, as a secondary process of a shared run; the
    run itself where it is active in this process."""
    from wbtool.runs import current
    from wbtool.runs.init import init

    handle = attach_id or run_id
    if run is not None and handle is None:
        handle = getattr(run, "_attach_id", None)
    if not handle or not isinstance(handle, str):
        raise UsageError("wbtool._attach needs the attach_id (run._attach_id) or the id of "
                         "the run to join")
    settings: dict[str, Any] = {"mode": "shared", "x_primary": False}
    folder: Path | None = None
    if "/" in handle or os.sep in handle:
        folder = Path(handle).absolute()
        handle = folder.name
        if run_id is not None and run_id != handle:
            raise UsageError(f"wbtool._attach: attach_id names run {handle}, not {run_id}")
        root = _root_of(folder.parent.parent)
        if root is not None:
            settings["root_dir"] = root
    for active in current.active():  # the run is this process's own
        mine = active._folder
        if mine is not None and (mine.path.absolute() == folder if folder is not None
                                 else active.id == handle):
            return active
    if folder is not None:
        _check_live(folder)
    return init(id=handle, settings=settings)


def _check_live(folder: Path) -> None:
    """Refuse at once a handle whose run has ended (or is gone): its process
    gave the handle out while the run ran, and no process starts it again, so
    waiting for it (as a secondary waits for its primary) would be in vain."""
    from wbtool.runs.folder import LIVE_STATES, RunFolder, effective_state

    doc = RunFolder(folder).read_run()
    if doc is None:
        raise NotFoundError(what="run to attach to", name=str(folder))
    state = effective_state(doc)
    if state not in LIVE_STATES:
        raise ConflictError(f"run {folder.name} has ended ({state}): a run handed to another "
                            "process (wbtool._attach, or a pickled run) is joined only while "
                            "it runs")


def _root_of(store: Path) -> str | None:
    """The ``root_dir`` that finds ``store`` in this process (None: it is found
    without one); a store that this process cannot find (``WBTOOL_DIR`` names
    another) is refused."""
    from wbtool.store.layout import STORE_DIRNAME, discover

    root = str(store.parent) if store.name == STORE_DIRNAME else None
    found = discover(root_dir=root)
    if found.absolute() != store:
        raise UsageError(f"wbtool._attach: the run is in the store {store}, but this process "
                         f"uses {found}: set WBTOOL_DIR={store}")
    return None if os.environ.get("WBTOOL_DIR") else root


def reattach(handle: str) -> Run:
    """Unpickle a run: join it (see :meth:`Run.__reduce__`)."""
    return attach(handle)


# The programs that joined a launched run (``wbtool run``) and have not ended:
# {pid: {"host": ..., "pid_start": ...}}, in the run folder.
WRITERS_FILE = ".writers.json"


def start_launched(folder: RunFolder) -> None:
    """Forget the programs of an earlier launch of the run in ``folder``: its
    launcher has ended, so they have too, though the entry of one killed on
    another host (a job resumed elsewhere) cannot be told dead from here."""
    with folder.lock():
        (folder.path / WRITERS_FILE).unlink(missing_ok=True)


def join_launched(folder: RunFolder) -> bool:
    """Count this process among the programs writing into the launched run in
    ``folder``; whether another one still is (its rows would then have the
    same steps as this one's: this one's carry its label)."""
    from wbtool.runs.folder import hostname, process_alive, process_start

    pid, host = os.getpid(), hostname()
    path = folder.path / WRITERS_FILE
    with folder.lock():
        stored = folder.read_json(path, {})
        writers = {k: v for k, v in (stored if isinstance(stored, dict) else {}).items()
                   if isinstance(v, dict) and k.isdigit() and k != str(pid)
                   and (v.get("host") != host or process_alive(int(k), v.get("pid_start")))}
        alongside = bool(writers)
        writers[str(pid)] = {"host": host, "pid_start": process_start(pid)}
        folder.write_json(path, writers)
    return alongside


def leave_launched(folder: RunFolder) -> None:
    """This process no longer writes into the launched run in ``folder``."""
    path = folder.path / WRITERS_FILE
    with folder.lock():
        writers = folder.read_json(path, {})
        if not isinstance(writers, dict):
            writers = {}
        writers.pop(str(os.getpid()), None)
        if writers:
            folder.write_json(path, writers)
        else:
            path.unlink(missing_ok=True)
