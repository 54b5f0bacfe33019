"""The ``.wbtool/`` store folder: discovery, ``config.yaml``, locks.

Discovery: ``WBTOOL_DIR`` (the store folder itself) wins; else the
``root_dir`` setting names the folder holding ``.wbtool/``; else walk up
from the current directory like git looks for ``.git``; else
``./.wbtool`` is created on first write.

A store is made in order: its folder, the folders in it, ``index.db``, and
last ``config.yaml``, which names the folder a store. A ``.wbtool`` folder
without ``config.yaml`` is one whose making was cut short (by a kill, say):
nothing can have been stored in it yet, and the next command that writes
finishes making it. Walking up stops at it all the same, so that such a
folder never sends commands on to a store further up, nor has a second
store made below it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbtool import fsutil
from wbtool.errors import (
    StoreError,
    StoreFormatError,
    StoreLockedError,
    StoreNotWritableError,
)
from wbtool.store.index import Index

if TYPE_CHECKING:
    from wbtool.store.objects import ObjectStore

STORE_DIRNAME = ".wbtool"
FORMAT_VERSION = 1


def discover(
    *, root_dir: str | None = None, cwd: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The store folder to use (it may not exist yet)."""
    return locate(root_dir=root_dir, cwd=cwd, environ=environ)[0]


def locate(
    *, root_dir: str | None = None, cwd: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Path, str]:
    """The store folder to use, and how it was found: ``"WBTOOL_DIR"``,
    ``"root_dir"`` (the setting), ``"walking up"`` from the current
    directory, or ``"default"`` (none found: ``./.wbtool``)."""
    env = os.environ if environ is None else environ
    explicit = env.get("WBTOOL_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute(), "WBTOOL_DIR"
    if root_dir:
        return Path(root_dir).expanduser().absolute() / STORE_DIRNAME, "root_dir"
    start = Path(cwd or os.getcwd()).absolute()
    for folder in (start, *start.parents):
        candidate = folder / STORE_DIRNAME
        if candidate.is_dir():  # a store, or one whose making was cut short
            return candidate, "walking up"
        if candidate.is_symlink() and not candidate.exists():
            return candidate, "walking up"  # a store moved away: refused, not passed by
    return start / STORE_DIRNAME, "default"


def unfinished(path: Path) -> bool:
    """Whether ``path`` is a store folder whose making was cut short: a
    folder with no ``config.yaml`` in it yet."""
    return path.is_dir() and not (path / "config.yaml").exists()


def _dump_config(doc: dict[str, Any]) -> bytes:
    # JSON is valid YAML, and reading it back needs no YAML parser (whose
    # import would cost every command tens of milliseconds).
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _load_config(text: str) -> Any:
    """Parse config.yaml: JSON-style as written by wbtool, any YAML by hand."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    from wbtool import yamltext

    return yamltext.safe_load(text)


class Store:
    """An opened store folder. Cheap to construct; opens the index lazily."""

    def __init__(self, path: str | os.PathLike, *, read_only: bool = False) -> None:
        self.path = Path(path)
        # Open the index for reading only, even where it could be written
        # (a check that must change nothing, not even SQLite's side files).
        self.read_only = read_only
        self._durable = True
        self._objects: ObjectStore | None = None
        self._index: Index | None = None
        self._config: dict[str, Any] | None = None

    # -- creation and format --------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True,
             read_only: bool = False) -> Store:
        store = cls(path, read_only=read_only)
        config_path = store.path / "config.yaml"
        if not config_path.exists():
            # Nothing is stored before config.yaml names the folder a store
            # (and nothing removes it): data here without it means it was
            # lost, with the remotes it named. Looked for again after the
            # data, for a process that made the store meanwhile.
            if store.holds_data() and not config_path.exists():
                raise StoreError(
                    f"{config_path} is missing, but the store holds objects or runs; restore "
                    "it from a backup (wbtool will not start a new config over stored data)")
            if not create:
                raise StoreError(f"no wbtool store at {store.path}")
            store._initialise()
        store.config  # noqa: B018 - validates the format version
        return store

    def _initialise(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for sub in ("tmp", "runs", "objects"):
                (self.path / sub).mkdir(exist_ok=True)
            # The index exists before config.yaml names the folder a store:
            # a store whose index is missing later has lost it.
            self.index  # noqa: B018
            doc: dict[str, Any] = {"format": FORMAT_VERSION, "default_remote": None,
                                   "remotes": {}}
            data = _dump_config(doc)
            # Publish config.yaml exclusively (naming a new file fails if one
            # is there): two processes creating the store at once both end up
            # with one valid config, on disk before its name. Where a file
            # cannot be written unnamed, it is staged in tmp/, where
            # `wbtool gc` clears what a kill left.
            try:
                with fsutil.new_file(self.path / "config.yaml", 0o666,
                                     staging=self.path / "tmp") as fd:
                    fsutil.write_all(fd, data)
                    os.fsync(fd)
                fsutil.fsync_dir(self.path)
            except FileExistsError:
                pass
        except OSError as e:
            raise StoreError(f"cannot create the store at {self.path}: {e.strerror}") from None

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            path = self.path / "config.yaml"
            try:
                doc = _load_config(path.read_text(encoding="utf-8"))
            except OSError as e:
                raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
            except ValueError as e:
                raise StoreError(f"{path} is not valid YAML: {e}") from None
            if not isinstance(doc, dict):
                raise StoreError(f"{path}: not a wbtool store config")
            if type(doc.get("format")) is not int or doc["format"] != FORMAT_VERSION:
                raise StoreFormatError(
                    path=str(path), found=doc.get("format"), supported=FORMAT_VERSION
                )
            self._config = doc
        return self._config

    def save_config(self, doc: dict[str, Any]) -> None:
        doc = {**doc, "format": FORMAT_VERSION}
        try:
            fsutil.atomic_write(self.path / "config.yaml", _dump_config(doc),
                                staging=self.path / "tmp")
        except OSError as e:
            if e.errno not in fsutil.NOT_WRITABLE:
                raise
            raise StoreNotWritableError(path=str(self.path), reason=e.strerror,
                                        what="this command") from None
        self._config = doc

    @property
    def objects(self) -> ObjectStore:
        """The object store (loaded on first use: runs that log no artifact
        never import the hashing and packing code)."""
        if self._objects is None:
            from wbtool.store.objects import ObjectStore

            self._objects = ObjectStore(self.path / "objects", self.path / "tmp",
                                        lambda: self.index)
            self._objects.durable = self._durable
        return self._objects

    @property
    def durable(self) -> bool:
        """New objects are flushed to disk before a version names them (the
        setting x_store_fsync); large copies then start going to disk early."""
        return self._durable

    @durable.setter
    def durable(self, value: bool) -> None:
        self._durable = value
        if self._objects is not None:
            self._objects.durable = value

    def flush(self) -> None:
        """In a durable store, put everything written so far on disk: what
        placed new objects calls this before anything may name them."""
        if self._durable:
            fsutil.syncfs(self.path)

    @property
    def index(self) -> Index:
        if self._index is None:
            path = self.path / "index.db"
            try:
                lost = os.stat(path).st_size == 0
            except FileNotFoundError:
                lost = True
            if lost and self.holds_data():
                # A new, empty index would call every object unreferenced
                # (and `cache gc` would delete them all), and hide every run.
                raise StoreError(
                    f"{path} is missing or empty, but the store holds objects or runs; restore "
                    "it from a backup (wbtool will not start a new index over stored data)")
            self._index = Index.open_read_only(path) if self.read_only else Index(path)
        return self._index

    def holds_data(self) -> bool:
        """Whether any object or run folder is stored here."""
        return self._holds_objects() or self._holds_runs()

    def _holds_objects(self) -> bool:
        try:
            shards = os.scandir(self.path / "objects")
        except FileNotFoundError:
            return False
        with shards:
            for shard in shards:
                if shard.is_dir(follow_symlinks=False):
                    with os.scandir(shard.path) as it:
                        if any(True for _ in it):
                            return True
        return False

    def _holds_runs(self) -> bool:
        try:
            with os.scandir(self.path / "runs") as it:
                return any(True for _ in it)
        except FileNotFoundError:
            return False

    @property
    def tmp(self) -> Path:
        return self.path / "tmp"

    def close(self) -> None:
        if self._objects is not None:
            self._objects.close()
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- locking --------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, *, exclusive: bool, wait: bool = True) -> Iterator[None]:
        """Shared lock for writers of objects; exclusive for garbage collection."""
        try:
            fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            if e.errno not in fsutil.NOT_WRITABLE:
                raise
            raise StoreNotWritableError(path=str(self.path), reason=e.strerror,
                                        what="this command") from None
        try:
            flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            if not wait:
                flags |= fcntl.LOCK_NB
            try:
                fcntl.flock(fd, flags)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise StoreLockedError(
                        path=str(self.path), message="another wbtool process is using it"
                    ) from None
                raise
            yield
        finally:
            os.close(fd)  # closing releases the lock
