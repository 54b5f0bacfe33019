"""``wbtool run --sync`` and ``--live SEC``: push a run to the default remote.

Every push is a ``wbtool sync ... RUN_ID`` in a process of its own, so
neither the command nor wbtool's pass-through of its output waits for the
network. ``--live`` starts one every SEC seconds while the command runs
(never two at once; each sends only what is new since the last, see
:mod:`wbtool.remote.runsync`; artifacts wait for the end), logging to
``.wbtool/logs/sync-<id>.log``. ``--sync`` pushes the run and its project's
artifacts after the run has finished, in the foreground, its report on
stderr (stdout belongs to the command). A failed push never
changes the exit status of ``wbtool run``: the run stays in the local store,
and a later ``wbtool sync`` sends it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

STOP_PATIENCE = 30.0  # seconds a live push in flight may take once the command ended


def _command(store: Path, run_id: str, *, artifacts: bool) -> list[str]:
    """``wbtool sync`` of one run; with ``artifacts``, also of its project's
    artifacts (the project as the run folder says: a program that joined the
    run may have named it)."""
    from wbtool.runs.folder import RunFolder

    if not artifacts:
        return [sys.executable, "-m", "wbtool", "sync", "--no-artifacts", run_id]
    doc = RunFolder(store / "runs" / run_id).read_run() or {}
    project = str(doc.get("project") or "")
    return [sys.executable, "-m", "wbtool", "sync", *(["--project", project] if project else []),
            run_id]


def _env(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WBTOOL_RUN_ID", "WBTOOL_RUN_ATTACH")}
    env["WBTOOL_DIR"] = str(store.resolve())
    return env


class LiveSync:
    """Pushes one run every ``interval`` seconds from a background thread that
    only starts and waits for ``wbtool sync`` processes."""

    def __init__(self, store: Path, run_id: str, interval: float) -> None:
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self.pushes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._loop, name="wbtool-live-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        logs = self.store / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"sync-{self.run_id}.log", "ab") as log:
            while not self._stop.wait(self.interval):
                self._proc = subprocess.Popen(
                    _command(self.store, self.run_id, artifacts=False), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, env=_env(self.store), start_new_session=True)
                code = self._proc.wait()
                self.pushes += 1
                self.failures += code != 0

    def stop(self, patience: float = STOP_PATIENCE) -> None:
        """Start no more pushes. One in flight may finish within ``patience``
        seconds (the final push would otherwise race it for the same parts);
        past that it is killed: whatever it had not sent, the final push sends."""
        self._stop.set()
        self._thread.join(patience)
        proc = self._proc
        if self._thread.is_alive() and proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._thread.join()


def _ends_with_parent() -> Any:
    """A ``preexec_fn`` that has the child sent SIGTERM when wbtool dies
    (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def child_setup() -> None:  # between fork and exec
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return child_setup


def push_now(store: Path, run_id: str) -> bool:
    """Push the run and its project's artifacts in the foreground; report on
    stderr. The push ends with wbtool (a SIGTERM sent to wbtool alone)."""
    sys.stderr.flush()
    try:
        code = subprocess.run(_command(store, run_id, artifacts=True), stdin=subprocess.DEVNULL,
                              stdout=sys.stderr.fileno(), env=_env(store),
                              preexec_fn=_ends_with_parent()).returncode
    except OSError as e:
        code = 1
        sys.stderr.write(f"wbtool: sync could not start: {e}\n")
    if code != 0:
        sys.stderr.write(f"wbtool: warning: run {run_id} was not pushed (sync exited {code}); "
                         "it is kept here: run 'wbtool sync' to push it later\n")
    return code == 0
