"""The commands the artifact benchmark times, one ``Case`` each, for one data set.

Every case makes a fresh ``Trial`` per run: its own destination folder or
store, prepared before the clock starts and set aside after it stops (see
``bench.fsutil.Trash``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.datasets import DatasetSpec
from bench.fsutil import Trash, tree_summary
from bench.runner import Measurement, Trial, run_quiet

CP_R = "cp -r"
CP_R_SYNC = "cp -r + sync"
CP_A = "cp -a"
CP_AL = "cp -al"
CAT = "cat"
TAR = "tar"
HASH = "hash only"
COLD = "wbtool log cold"
COLD_NOSYNC = "wbtool log cold, no fsync"
WARM = "wbtool log warm"
IMMUTABLE = "wbtool log immutable"
CHECKOUT_COPY = "wbtool checkout copy"
CHECKOUT_HARDLINK = "wbtool checkout hardlink"
CHECKOUT_HARDLINK_FIRST = "wbtool checkout hardlink, first"
WANDB = "wandb offline"
DVC = "dvc add"

ARTIFACT = "ds"

HASH_SCRIPT = """\
import os, sys, xxhash
buf = bytearray(1 << 20)
view = memoryview(buf)
for folder, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        digest = xxhash.xxh3_128()
        with open(os.path.join(folder, name), "rb", buffering=0) as handle:
            while size := handle.readinto(buf):
                digest.update(view[:size])
        digest.hexdigest()
"""

WANDB_SCRIPT = """\
import sys, wandb
run = wandb.init(project="bench", job_type="bench")
art = wandb.Artifact("ds", type="dataset")
art.add_dir(sys.argv[1])
run.log_artifact(art)
run.finish()
"""


@dataclass
class Case:
    """A command timed on one data set; ``anchor`` names the case it is compared with."""

    name: str
    make: Callable[[int], Trial]
    anchor: str | None = None
    needs: str | None = None
    skip: str | None = None
    result: Measurement = field(default_factory=Measurement)


@dataclass
class CaseBuilder:
    """Builds the cases for the data set at ``data`` with scratch space in ``scratch``."""

    spec: DatasetSpec
    data: Path
    scratch: Path
    wbtool: str
    notes: list[str]
    trash: Trash
    python: str = sys.executable

    def build(self) -> list[Case]:
        # Each wbtool case sits right before its anchor so that both see the
        # same moment of a noisy machine; run 0 of every case is the warm-up.
        return [
            Case(COLD, self._log_cold, anchor=CP_R),
            Case(CP_R, self._copy("-r")),
            # wbtool makes new objects durable (one syncfs) before recording a
            # version; these two compare like with like.
            Case(COLD_NOSYNC, self._log_cold_nosync, anchor=CP_R),
            Case(CP_R_SYNC, self._copy_sync),
            Case(WARM, self._log_warm, anchor=CP_R, needs=COLD),
            Case(IMMUTABLE, self._log_immutable, anchor=HASH),
            Case(HASH, self._hash_only),
            Case(CHECKOUT_COPY, self._checkout("copy"), anchor=CP_A, needs=COLD),
            Case(CP_A, self._copy("-a")),
            Case(CHECKOUT_HARDLINK, self._checkout("hardlink"), anchor=CP_AL, needs=COLD),
            # The first hard-link checkout from a fresh store also gives each
            # packed small object a file of its own, once.
            Case(CHECKOUT_HARDLINK_FIRST, self._checkout_first, anchor=CP_AL, needs=COLD),
            Case(CP_AL, self._copy("-al")),
            Case(CAT, self._cat),
            Case(TAR, self._tar),
            Case(WANDB, self._wandb, anchor=CP_R, skip=self._wandb_missing()),
            Case(DVC, self._dvc_add, anchor=CP_R, skip=self._dvc_missing()),
        ]

    # -- wbtool ---------------------------------------------------------------

    def _env(self, store: Path) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("WBTOOL_")}
        env["WBTOOL_DIR"] = str(store)
        return env

    def _log_argv(self, path: Path, *extra: str) -> list[str]:
        return [self.wbtool, "artifact", "log", ARTIFACT, str(path), "--type", "dataset", *extra]

    @property
    def _reference_store(self) -> Path:
        """The store written by the cold warm-up run, kept for the warm and checkout cases."""
        return self.scratch / "store-ref"

    def _log_cold(self, run: int) -> Trial:
        store = self._reference_store if run == 0 else self.scratch / f"store-cold-{run}"
        self.trash.discard(store)
        cleanup = None if run == 0 else lambda: self.trash.discard(store)
        return Trial(self._log_argv(self.data), self._env(store), self.scratch, cleanup=cleanup)

    def _log_cold_nosync(self, run: int) -> Trial:
        store = self.scratch / f"store-nosync-{run}"
        self.trash.discard(store)
        env = {**self._env(store), "WBTOOL_X_STORE_FSYNC": "false"}
        return Trial(self._log_argv(self.data), env, self.scratch,
                     cleanup=lambda: self.trash.discard(store))

    def _log_warm(self, run: int) -> Trial:
        store = self._reference_store
        return Trial(
            self._log_argv(self.data),
            self._env(store),
            self.scratch,
            check=lambda: self._check_warm(store),
        )

    def _check_warm(self, store: Path) -> str | None:
        argv = self._log_argv(self.data, "--json")
        out = run_quiet(argv, env=self._env(store), cwd=self.scratch).stdout
        try:
            result = json.loads(out)["result"]
            created, count, size = result["created"], result["file_count"], result["size"]
        except (ValueError, KeyError, TypeError):
            return f"unexpected output of '{shlex.join(argv)}': {out[:200]!r}"
        problems = []
        if created is not False:
            problems.append(f"logging unchanged data made a new version (created={created})")
        if (count, size) != (self.spec.files, self.spec.total_bytes):
            problems.append(
                f"version holds {count} files, {size} bytes; expected "
                f"{self.spec.files} files, {self.spec.total_bytes} bytes"
            )
        return "; ".join(problems) or None

    def _log_immutable(self, run: int) -> Trial:
        # Immutable logging may hard-link the user's files into the store and
        # make them read-only, so it runs on a private copy of the data.
        copy = self.scratch / f"immutable-data-{run}"
        store = self.scratch / f"store-immutable-{run}"
        self.trash.discard(copy)
        self.trash.discard(store)
        run_quiet(["cp", "-r", str(self.data), str(copy)])
        os.sync()

        def cleanup() -> None:
            self.trash.discard(copy)
            self.trash.discard(store)

        return Trial(
            self._log_argv(copy, "--policy", "immutable"),
            self._env(store),
            self.scratch,
            check=lambda: self._note_immutable(copy),
            cleanup=cleanup,
        )

    def _note_immutable(self, copy: Path) -> None:
        for folder, _dirs, files in os.walk(copy):
            if files:
                info = os.stat(os.path.join(folder, files[0]))
                self.notes.append(
                    f"{self.spec.label}: after 'log --policy immutable' a data file has "
                    f"{info.st_nlink} link(s) and mode {info.st_mode & 0o777:o}"
                )
                return

    def _checkout(self, link: str) -> Callable[[int], Trial]:
        def make(run: int) -> Trial:
            out = self.scratch / f"checkout-{link}-{run}"
            self.trash.discard(out)
            out.mkdir()
            argv = [self.wbtool, "artifact", "checkout", f"{ARTIFACT}:v0", str(out), "--link", link]
            return Trial(
                argv,
                self._env(self._reference_store),
                self.scratch,
                check=lambda: self._check_tree(out, argv),
                cleanup=lambda: self.trash.discard(out),
            )

        return make

    def _checkout_first(self, run: int) -> Trial:
        store = self.scratch / f"store-first-{run}"
        out = self.scratch / f"checkout-first-{run}"
        self.trash.discard(store)
        self.trash.discard(out)
        run_quiet(self._log_argv(self.data), env=self._env(store), cwd=self.scratch)
        out.mkdir()
        argv = [self.wbtool, "artifact", "checkout", f"{ARTIFACT}:v0", str(out),
                "--link", "hardlink"]

        def cleanup() -> None:
            self.trash.discard(out)
            self.trash.discard(store)

        return Trial(argv, self._env(store), self.scratch,
                     check=lambda: self._check_tree(out, argv), cleanup=cleanup)

    def _check_tree(self, out: Path, argv: list[str]) -> str | None:
        count, size = tree_summary(out)
        if (count, size) == (self.spec.files, self.spec.total_bytes):
            return None
        return (
            f"'{shlex.join(argv)}' wrote {count} files, {size} bytes; expected "
            f"{self.spec.files} files, {self.spec.total_bytes} bytes"
        )

    # -- anchors --------------------------------------------------------------

    def _copy(self, flag: str) -> Callable[[int], Trial]:
        def make(run: int) -> Trial:
            dest = self.scratch / f"cp{flag}-{run}"
            self.trash.discard(dest)
            argv = ["cp", flag, str(self.data), str(dest)]
            return Trial(
                argv,
                cwd=self.scratch,
                check=lambda: self._check_tree(dest, argv),
                cleanup=lambda: self.trash.discard(dest),
            )

        return make

    def _copy_sync(self, run: int) -> Trial:
        dest = self.scratch / f"cp-sync-{run}"
        self.trash.discard(dest)
        script = f"cp -r {shlex.quote(str(self.data))} {shlex.quote(str(dest))} && sync"
        return Trial(["bash", "-c", script], cwd=self.scratch,
                     cleanup=lambda: self.trash.discard(dest))

    def _cat(self, run: int) -> Trial:
        pipeline = f"find {shlex.quote(str(self.data))} -type f -print0 | xargs -0 cat > /dev/null"
        return Trial(["bash", "-o", "pipefail", "-c", pipeline], cwd=self.scratch)

    def _tar(self, run: int) -> Trial:
        # GNU tar notices an archive of /dev/null and then skips reading file
        # contents: this anchor is the cost of walking and stat-ing the tree.
        argv = ["tar", "-C", str(self.data.parent), "-cf", "/dev/null", self.data.name]
        return Trial(argv, cwd=self.scratch)

    def _hash_only(self, run: int) -> Trial:
        return Trial([self.python, "-c", HASH_SCRIPT, str(self.data)], cwd=self.scratch)

    # -- other tools, when installed -------------------------------------------

    def _wandb_missing(self) -> str | None:
        if importlib.util.find_spec("wandb") is None:
            return "wandb is not installed in this Python (pip install wandb)"
        return None

    def _wandb(self, run: int) -> Trial:
        home = self.scratch / f"wandb-{run}"
        self.trash.discard(home)
        home.mkdir()
        env = dict(os.environ)
        env.update(
            WANDB_MODE="offline",
            WANDB_SILENT="true",
            WANDB_DIR=str(home),
            WANDB_CACHE_DIR=str(home / "cache"),
            WANDB_DATA_DIR=str(home / "data"),
            WANDB_CONFIG_DIR=str(home / "config"),
        )
        argv = [self.python, "-c", WANDB_SCRIPT, str(self.data)]
        return Trial(argv, env, home, cleanup=lambda: self.trash.discard(home))

    def _dvc(self) -> str | None:
        beside = Path(self.python).with_name("dvc")
        return str(beside) if beside.is_file() else shutil.which("dvc")

    def _dvc_missing(self) -> str | None:
        return None if self._dvc() else "dvc is not installed (pip install dvc)"

    def _dvc_add(self, run: int) -> Trial:
        dvc = self._dvc() or "dvc"
        repo = self.scratch / f"dvc-{run}"
        self.trash.discard(repo)
        repo.mkdir()
        if shutil.which("git"):
            run_quiet(["git", "init", "-q"], cwd=repo)
        run_quiet([dvc, "init", "--no-scm", "-q"], cwd=repo)
        run_quiet(["cp", "-r", str(self.data), str(repo / "data")])
        os.sync()
        return Trial([dvc, "add", "data"], cwd=repo, cleanup=lambda: self.trash.discard(repo))
