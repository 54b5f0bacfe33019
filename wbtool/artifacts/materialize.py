"""Writing an artifact's files out of the store: download, checkout, verify.

Every entry path is validated again, and every folder on the way to a file
is checked not to be a symbolic link, so a hostile manifest or a planted
link can never make wbtool write outside the root.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat as stat_mod
from array import array
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from wbtool import forked, fsutil
from wbtool.bulk import gc_paused
from wbtool.errors import (
    ConflictError,
    CorruptObjectError,
    NotFoundError,
    StoreError,
    UsageError,
    VerificationError,
)
from wbtool.hashing import copy_hashing, hash_bytes, hash_file
from wbtool.manifest import Manifest, ManifestEntry
from wbtool.names import all_clean_entry_paths, validate_entry_path
from wbtool.store.layout import STORE_DIRNAME, Store
from wbtool.store.objects import ObjectStore, PackLocation, Unpacked

if TYPE_CHECKING:
    from wbtool.artifacts import references
    from wbtool.artifacts.registry import Registry, VersionRecord

LINK_MODES = ("auto", "copy", "reflink", "hardlink", "symlink")
Progress = Callable[[int, int], None]
BATCH = 4
PARALLEL_MIN = 1 << 20  # files above this size are written by a thread pool
PARALLEL_SERIAL_MIN = 4000  # from this many small files on, a forked helper writes half
# Files unpacked for links become objects (ObjectStore.settle) in groups of
# this many, so that the list of them stays short on 10^6 files.
SETTLE_EVERY = 100_000


# What a batch of entries came to: files written, files unchanged, bytes
# written, references skipped, and the positions of packed objects left for
# later (see ObjectStore.link_out); plain values, to travel back from a helper.
_Outcome = tuple[int, int, int, list[str], list[int]]


def _no_progress(files: int, nbytes: int) -> None:
    pass


@dataclass
class MaterializeResult:
    root: str
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    bytes: int = 0
    skipped_refs: list[str] = field(default_factory=list)


class _SafeDirs:
    """Creates folders under ``root``, refusing any symlink on the way."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ok: set[str] = {""}
        self.fresh: set[str] = set()  # created here, so empty: no lstat needed inside

    def ensure(self, rel_dir: str, *, replace_links: bool) -> None:
        if rel_dir in self.ok:
            return
        parent, _, _ = rel_dir.rpartition("/")
        self.ensure(parent, replace_links=replace_links)
        full = self.root / rel_dir
        if parent in self.fresh or rel_dir == "":
            st = None
        else:
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                st = None
        if st is None:
            try:
                os.mkdir(full)
            except FileExistsError:
                pass
            else:
                self.fresh.add(rel_dir)
                self.ok.add(rel_dir)
                return
            st = os.lstat(full)
        if stat_mod.S_ISLNK(st.st_mode) or not stat_mod.S_ISDIR(st.st_mode):
            if not replace_links:
                what = "symlink" if stat_mod.S_ISLNK(st.st_mode) else "file"
                raise UsageError(
                    f"{full} is in the way (a {what} where the artifact has a folder); "
                    "remove it or use checkout"
                )
            os.unlink(full)
            os.mkdir(full)
        self.ok.add(rel_dir)


def _ref_source(entry: ManifestEntry) -> str | None:
    """A local path for a file:// reference, else None (object-store and http(s)
    references are fetched by :class:`references.Fetcher` instead)."""
    assert entry.ref is not None
    parsed = urlparse(entry.ref)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return None


def _checksummed(entry: ManifestEntry) -> bool:
    """Whether a reference's digest is its content's (``checksum=True``) rather
    than its URI's (``checksum=False``)."""
    assert entry.ref is not None
    return entry.digest != hash_bytes(entry.ref.encode())


def _copy_ref(entry: ManifestEntry, src: str, dest: str) -> None:
    """Copy a file:// reference's file to a new file ``dest``, hashing what is
    read on the way: VerificationError, and nothing at ``dest``, when a
    checksummed reference's content is no longer what was logged."""
    if not _checksummed(entry):
        fsutil.copy_into(src, dest)
        return

    def verified(sfd: int, dfd: int) -> None:
        digest, total = copy_hashing(sfd, dfd)
        if (entry.size is not None and total != entry.size) or digest != entry.digest:
            raise VerificationError(message=(
                f"{entry.ref} changed since it was logged (its content differs); log a "
                "new version to track the new content"))

    fsutil.copy_into(src, dest, copy=verified)


def _place_folder_ref(src: str, dest: str, store: Store, *,
                      replace: bool) -> tuple[str, int]:
    """Copy the current files of a folder tracked by URI (``checksum=False``)
    under ``dest``: its content was never recorded, so it is what is there now.
    Files already under ``dest`` are replaced, others left (checkout removed them)."""
    from wbtool.artifacts import ingest

    walked = ingest.walk_dir(src, store=store.path)  # never the store, nor links out
    if os.path.islink(dest) or (os.path.lexists(dest) and not os.path.isdir(dest)):
        if not replace:
            raise UsageError(f"{dest} is in the way (a file where the artifact has a folder "
                             "reference); remove it or use checkout")
        os.unlink(dest)
    dirs = _SafeDirs(Path(dest))
    if not os.path.lexists(dest):
        try:
            os.mkdir(dest)
        except FileExistsError:
            pass  # made meanwhile (by another download of the same version)
        else:
            dirs.fresh.add("")
    total = 0
    for fpath, rel in walked.files:
        dirs.ensure(rel.rpartition("/")[0], replace_links=replace)
        target = os.path.join(dest, rel)
        if os.path.isdir(target) and not os.path.islink(target):
            if not replace:
                raise UsageError(f"{target} is a folder where the artifact has a file")
            shutil.rmtree(target)
        with fsutil.as_atomic(target) as tmp:
            fsutil.copy_into(fpath, tmp)
        total += os.path.getsize(target)
    return "written", total


def store_under(store: Store, root: str | os.PathLike) -> str | None:
    """Where the store lies under ``root`` (a relative POSIX path), or None
    when it does not; UsageError when ``root`` is inside the store (or is a
    file). What is written under ``root`` must never reach into the store,
    nor delete it."""
    if os.path.lexists(root) and not os.path.islink(root) and not os.path.isdir(root):
        raise UsageError(f"{root} is not a folder")
    if fsutil.is_within(root, store.path):
        raise UsageError(f"{root} is inside the wbtool store {store.path}; choose a folder "
                         "outside it")
    return _relative_store(os.path.realpath(root), os.path.realpath(store.path))


def _relative_store(real_root: str, real_store: str) -> str | None:
    """The store's path under ``real_root`` (both resolved), as a relative
    POSIX path, or None when it is not under it."""
    if real_store.startswith(real_root + os.sep):
        return os.path.relpath(real_store, real_root).replace(os.sep, "/")
    return None


def _refuse_entries_into(store_rel: str, paths: Iterable[str], store: Store) -> None:
    inside = store_rel + "/"
    for path in paths:
        if path == store_rel or path.startswith(inside) or store_rel.startswith(path + "/"):
            raise UsageError(f"the artifact's entry {path!r} would be written over the wbtool "
                             f"store {store.path}; write it to another folder")


@gc_paused
def materialize(
    store: Store,
    manifest: Manifest,
    root: str | os.PathLike,
    *,
    path_prefix: str | None = None,
    link: str = "auto",
    allow_missing_references: bool = False,
    replace: bool = False,
    progress: Progress = _no_progress,
) -> MaterializeResult:
    """Write the manifest's files under ``root``.

    Files that already hold the right content are left alone. ``replace``
    (checkout) also replaces symlinks and files standing where a folder
    must be.
    """
    if link not in LINK_MODES:
        raise UsageError(f"link mode must be one of {', '.join(LINK_MODES)}, not {link!r}")
    root_path = Path(root).absolute()
    if os.path.islink(root_path):
        raise UsageError(f"{root_path} is a symbolic link; give the real folder")
    store_rel = store_under(store, root_path)
    new_root = not os.path.lexists(root_path)
    # a plain string prefix, as the reference's: "train/" is not "train_b/"
    prefix = path_prefix.lstrip("/") if path_prefix else ""
    entries = [e for e in manifest if e.path.startswith(prefix)]
    if store_rel is not None:
        _refuse_entries_into(store_rel, (e.path for e in entries), store)
    root_path.mkdir(parents=True, exist_ok=True)
    # Shared with any other download or checkout into the same folder (every
    # rank of a training job): see writers.alone below.
    with fsutil.FolderWriters(root_path) as writers:
        result = MaterializeResult(root=str(root_path))
        dirs = _SafeDirs(root_path)
        if new_root:
            dirs.fresh.add("")
        objects = store.objects
        if link == "auto":
            link = "reflink" if _probe_reflink(store, root_path) else "copy"

        # references are never copied into the store
        remote_refs = _fetcher(store) if any(e.ref is not None for e in entries) else None

        root_str = str(root_path)
        # Packed objects written out for links become objects of their own only
        # once on disk (ObjectStore.settle), a group at a time and at the end.
        unpacked = Unpacked()

        def place(i: int, may_locate: bool = True) -> tuple[str, int]:
            entry = entries[i]
            path = entry.path  # validated below, before any file is written
            parent = path.rpartition("/")[0]  # made below too, with every other folder
            dest = f"{root_str}/{path}"
            loc = None
            if entry.ref is not None:
                assert remote_refs is not None
                if remote_refs.handles(entry):
                    try:
                        return remote_refs.place(entry, Path(dest),
                                                 check_existing=parent not in dirs.fresh,
                                                 replace=replace)
                    except NotFoundError:
                        if allow_missing_references:
                            return "skipped", 0
                        raise
                src = _ref_source(entry)
                if src is not None and not _checksummed(entry) and os.path.isdir(src):
                    return _place_folder_ref(src, dest, store, replace=replace)
                if src is None or not os.path.isfile(src):
                    if allow_missing_references:
                        return "skipped", 0
                    raise NotFoundError(what="referenced file", name=entry.ref)
                mode = "ref"  # copied, and checked against its digest in the same read
            else:
                src = objects.path(entry.digest)
                mode = link
                loc = locations.get(i)
            # a folder made by this download holds only what it wrote
            st = None if parent in dirs.fresh else _lstat(dest)
            if st is None:
                # Whole or not at all: a link is made in one step, a file's bytes
                # are written before it takes its name (FileExistsError if
                # something took it meanwhile).
                try:
                    with fsutil.naming(dest):
                        if not _write(objects, entry, src, dest, mode, loc, unpacked, may_locate):
                            return "later", 0
                    return "written", entry.size or 0
                except FileExistsError:
                    # Most often another download of the same version into the
                    # same folder (every rank of a training job) wrote just this
                    # file: judged as if it had been there from the start.
                    st = _lstat(dest)
                    if st is None:
                        raise
            if mode == "hardlink" and loc is None and not may_locate and not os.path.exists(src):
                return "later", 0
            if stat_mod.S_ISDIR(st.st_mode):
                if not replace:
                    raise UsageError(f"{dest} is a folder where the artifact has a file")
                shutil.rmtree(dest)
            elif (
                stat_mod.S_ISREG(st.st_mode) and st.st_size == entry.size
                and not (mode in ("copy", "reflink", "ref") and st.st_nlink > 1
                         and _is_file(st, src))
                and _same_content(dest, entry, mode, src)
            ):
                return "unchanged", 0  # (a link into the store is no copy: replaced)
            with fsutil.naming(dest), fsutil.as_atomic(dest) as tmp:
                _write(objects, entry, src, tmp, mode, loc, unpacked)
            unpacked.moved(tmp, dest)
            return "written", entry.size or 0

        def run_batch(batch: Sequence[int], may_locate: bool = True) -> _Outcome:
            written = unchanged = nbytes = 0
            skipped: list[str] = []
            later: list[int] = []
            for i in batch:
                what, n = place(i, may_locate)
                if what == "written":
                    written += 1
                    nbytes += n
                elif what == "unchanged":
                    unchanged += 1
                elif what == "later":
                    later.append(i)
                else:
                    skipped.append(entries[i].path)
            return written, unchanged, nbytes, skipped, later

        def settle_some() -> None:
            if len(unpacked) >= SETTLE_EVERY:
                objects.settle(unpacked, final=False)

        def run_helper(batch: Sequence[int]) -> _Outcome:
            try:
                total = _Totals()
                for i in range(0, len(batch), 256):
                    total.add(run_batch(batch[i:i + 256], False))
                    settle_some()
                objects.settle(unpacked)  # this process's own (forked) list
            finally:
                objects.discard(unpacked)
            return total.outcome()

        # Folders first, serially, so that worker threads never race on mkdir.
        paths = [e.path for e in entries]
        if not all_clean_entry_paths(paths):
            for path in paths:
                if validate_entry_path(path) != path:
                    raise UsageError(f"refused entry path {path!r}")
        folders = sorted({path.rpartition("/")[0] for path in paths})
        for folder in folders:
            dirs.ensure(folder, replace_links=replace)
        del paths
        for folder in folders:
            # A folder made now holds nothing left over; and while another
            # process writes here, its temporary files are its work, not leftovers.
            if folder not in dirs.fresh and writers.alone:
                _remove_leftovers(root_path, folder, manifest.entries)
        writers.share()
        del folders
        # Hard links need pack locations only until the objects have been
        # unpacked once (see ObjectStore.link_out): skip the lookup when the
        # first objects have files of their own already.
        first = list(itertools.islice((e.digest for e in entries if e.ref is None), 64))
        locations = _PackLocations(objects, entries,
                                   wanted=not (link == "hardlink" and _unpacked(objects, first)))
        # Many small files are a stream of short system calls, which threads only
        # slow down (they fight over the GIL); large files go to a thread pool.
        # Entries are named by their position in ``entries``.
        serial = array("q")
        parallel = array("q")
        for i, e in enumerate(entries):
            small = (e.size or 0) <= PARALLEL_MIN or link in ("hardlink", "symlink")
            (serial if small else parallel).append(i)
        batches = [parallel[i:i + BATCH] for i in range(0, len(parallel), BATCH)]
        workers = min(4, (os.cpu_count() or 2) * 2)
        helper = None
        later: list[int] = []  # packed objects the helper left to this process
        if len(serial) >= PARALLEL_SERIAL_MIN and forked.can_fork():
            # Folders exist already, so a forked helper can take half the files
            # (without the index, which a forked process must not use).
            half = len(serial) // 2
            helper = forked.ForkedJob(run_helper, serial[half:])
            serial = serial[:half]
        with contextlib.ExitStack() as stack:
            stack.callback(objects.discard, unpacked)  # after an interrupt: temp files
            if helper is not None:
                stack.callback(helper.stop)
            if len(batches) > 1:
                pool = stack.enter_context(forked.thread_pool(workers, "wbtool-out"))
                large: Iterator[_Outcome] = pool.map(run_batch, batches)
            else:
                large = map(run_batch, batches)
            results = itertools.chain(
                (run_batch(serial[i:i + 256]) for i in range(0, len(serial), 256)),
                large,
                (h.result() for h in ([helper] if helper is not None else [])),  # last, lazily
                _batches_of(later, run_batch),  # filled by then: read only once reached
            )
            for written, unchanged, nbytes, skipped, left in results:
                result.written += written
                result.unchanged += unchanged
                result.bytes += nbytes
                result.skipped_refs += skipped
                later += left
                progress(written + unchanged + len(skipped), nbytes)
                settle_some()  # only hard and symbolic links unpack, all in this thread
            objects.settle(unpacked)
        return result


class _Totals:
    """The sum of several batches' outcomes."""

    def __init__(self) -> None:
        self.written = self.unchanged = self.bytes = 0
        self.skipped: list[str] = []
        self.later: list[int] = []

    def add(self, outcome: _Outcome) -> None:
        written, unchanged, nbytes, skipped, later = outcome
        self.written += written
        self.unchanged += unchanged
        self.bytes += nbytes
        self.skipped += skipped
        self.later += later

    def outcome(self) -> _Outcome:
        return self.written, self.unchanged, self.bytes, self.skipped, self.later


class _PackLocations:
    """Where the packed objects of a list of entries lie, by the entry's
    position in it: three numbers an entry (a dict of location tuples took
    hundreds of MiB for 10^6 entries). Looked up before any file is
    written, so a forked helper reads them without the index."""

    def __init__(self, objects: ObjectStore, entries: list[ManifestEntry], *,
                 wanted: bool) -> None:
        self.packs: list[str] = []
        self.pack_of = array("i")  # an index into packs; -1: not packed
        self.offsets = array("q")
        self.sizes = array("q")
        if not wanted:
            return
        numbers: dict[str, int] = {}
        for start in range(0, len(entries), 4096):
            chunk = entries[start:start + 4096]
            found = objects.locate_many(e.digest for e in chunk if e.ref is None)
            for e in chunk:
                loc = None if e.ref is not None else found.get(e.digest)
                if loc is None:
                    self.pack_of.append(-1)
                    self.offsets.append(0)
                    self.sizes.append(0)
                    continue
                path, offset, size = loc
                number = numbers.get(path)
                if number is None:
                    number = numbers[path] = len(self.packs)
                    self.packs.append(path)
                self.pack_of.append(number)
                self.offsets.append(offset)
                self.sizes.append(size)

    def get(self, i: int) -> PackLocation | None:
        """The location of the ``i``-th entry's object, or None where it is
        not packed (or was not looked up)."""
        if i >= len(self.pack_of) or self.pack_of[i] < 0:
            return None
        return self.packs[self.pack_of[i]], self.offsets[i], self.sizes[i]


def _unpacked(objects: ObjectStore, digests: list[str]) -> bool:
    return all(os.path.exists(objects.path(d)) for d in digests)


def _batches_of(
    positions: list[int], run: Callable[[Sequence[int]], _Outcome]
) -> Iterator[_Outcome]:
    for i in range(0, len(positions), 256):
        yield run(positions[i:i + 256])


def _remove_leftovers(root: Path, folder: str, entries: Container[str]) -> None:
    """Delete the temporary files that a write killed midway left in ``folder``
    (under ``root``): files and links named as :func:`fsutil.tmp_name` names
    them, which no entry is."""
    with os.scandir(root / folder if folder else root) as it:
        for item in it:
            if _is_leftover(item, f"{folder}/{item.name}" if folder else item.name, entries):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(item.path)


def _is_leftover(item: os.DirEntry[str], rel: str, entries: Container[str]) -> bool:
    """Whether ``item`` (at ``rel`` under the root) is a temporary file that an
    interrupted download or checkout left: never an entry of the artifact."""
    return (fsutil.is_tmp_name(item.name) and not item.is_dir(follow_symlinks=False)
            and rel not in entries)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _is_file(st: os.stat_result, path: str) -> bool:
    """Whether ``st`` is the stat of the file at ``path``."""
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def _same_content(dest: str, entry: ManifestEntry, mode: str, src: str) -> bool:
    if mode in ("hardlink", "symlink"):
        with contextlib.suppress(OSError):
            if os.path.samefile(dest, src):
                return True
    if entry.ref is not None and entry.digest.startswith("ref:"):
        return False
    try:
        return hash_file(dest)[0] == entry.digest
    except OSError:
        return False


def _write(
    objects: ObjectStore, entry: ManifestEntry, src: str, dest: str, mode: str,
    loc: PackLocation | None, unpacked: Unpacked, may_locate: bool = True,
) -> bool:
    """Write ``entry`` at ``dest`` from ``src`` (an object or a referenced file)
    or, for a packed object, from its pack at ``loc``. False: a hard link to
    a packed object was left for later (see ObjectStore.link_out)."""
    if mode == "hardlink":
        return objects.link_out(entry.digest, dest, loc, unpacked=unpacked, locate=may_locate)
    if loc is not None:
        if mode == "symlink":
            with fsutil.naming(objects.tmp):  # into the store, not beside ``dest``
                target = objects.unpack(entry.digest, loc, unpacked)
            os.symlink(target, dest)
        else:
            objects.copy_to(entry.digest, dest, loc)
        return True
    if not os.path.exists(src):
        raise CorruptObjectError(digest=entry.digest, path=objects.root)
    if mode == "ref":
        _copy_ref(entry, src, dest)
    elif mode == "copy":
        fsutil.copy_into(src, dest)
    elif mode == "reflink":
        if not fsutil.copy_into(src, dest, clone=True):
            raise UsageError("this filesystem cannot reflink; use --link copy or auto")
    elif mode == "symlink":
        os.symlink(src, dest)
    else:  # pragma: no cover - validated earlier
        raise UsageError(f"unknown link mode {mode!r}")
    return True


def _fetcher(store: Store) -> references.Fetcher:
    from wbtool.artifacts import references

    return references.Fetcher(store)


def _probe_reflink(store: Store, root: Path) -> bool:
    if store.objects.can_reflink is not None:
        return store.objects.can_reflink
    probe_src = store.tmp / ".reflink-probe"
    probe_dst = fsutil.tmp_name(root, "reflink-probe")
    try:
        probe_src.write_bytes(b"x")
        ok = fsutil.reflink(probe_src, probe_dst)
    except OSError:
        ok = False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe_src)
        with contextlib.suppress(OSError):
            os.unlink(probe_dst)
    store.objects.can_reflink = ok
    return ok


def refuse_dangerous_root(root: str | os.PathLike) -> None:
    """UsageError for a checkout into a folder that is never meant: the
    filesystem's root or the home folder (an unset variable in
    ``checkout m:v1 "$OUT/"``), where deleting what the version lacks would
    take everything."""
    if os.fspath(root) == "":
        raise UsageError("name the folder to check out into")
    real = os.path.realpath(root)
    home = os.path.expanduser("~")
    if os.path.dirname(real) == real or (home != "~" and real == os.path.realpath(home)):
        raise UsageError(f"refusing to check out into {root}: checkout deletes everything "
                         "there that is not in the version; name a folder of its own")


def remove_extras(store: Store, root: str | os.PathLike, manifest: Manifest, *,
                  check: Callable[[list[str]], None] | None = None) -> int:
    """Delete everything under ``root`` that is not an entry (checkout). The
    store, and any ``.wbtool`` folder, are left alone (walks never add them),
    with the folders that hold them; an entry that would land on the store is
    refused first. ``check`` is given every file that would be deleted (paths
    relative to ``root``) before any is, and may raise to keep them all."""
    root_path = Path(root).absolute()
    store_rel = store_under(store, root_path)
    try:
        with os.scandir(root_path) as it:
            if next(it, None) is None:
                return 0  # empty (or new): nothing to remove
    except (FileNotFoundError, NotADirectoryError):
        return 0
    keep_files = manifest.entries  # looked up, never copied: it may hold 10^6 paths
    keep_dirs = _folders_of(keep_files)
    if store_rel is not None:
        _refuse_entries_into(store_rel, keep_files, store)
        # neither swept into nor deleted (_extras never walks into it)
        keep_dirs |= _folders_of([store_rel])
    files, folders, links, leftovers = _extras(root_path, store_rel, keep_files, keep_dirs)
    with fsutil.FolderWriters(root_path) as writers:
        # never the user's: deleted unasked, and not counted; nor another
        # process's work in progress (a download into the same folder)
        for rel in leftovers if writers.alone else ():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root_path / rel)
    if check is not None and len(files) > len(links):
        check([f for f in files if f not in links])  # a link holds no data of its own
    for rel in files:
        os.unlink(root_path / rel)
    for rel in folders:  # deepest first; one that holds a store stays
        with contextlib.suppress(OSError):
            os.rmdir(root_path / rel)
    return len(files)


def _folders_of(paths: Iterable[str]) -> set[str]:
    """Every folder that holds one of ``paths`` (relative), and "" for the root."""
    folders = {""}
    for parent in {p.rpartition("/")[0] for p in paths}:  # few: a set of folders
        while parent not in folders:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    return folders


def only_versions_files(registry: Registry, rec: VersionRecord, root: str | os.PathLike,
                        hint: str) -> Callable[[list[str]], None]:
    """A ``check`` for :func:`remove_extras` that lets a checkout delete only
    files that some version of the same collection holds (what an earlier
    checkout or download of it left), and refuses, with ``hint``, anything
    else: a checkout into a folder of other work deletes none of it."""

    def check(files: list[str]) -> None:
        pending = set(files)
        # Newest first; this version too, for the files of a folder reference.
        for other in reversed(registry.versions(rec.project, rec.name)):
            pending = _not_held(registry, other, pending)
            if not pending:
                return
        count = f"{len(pending)} file{'s' if len(pending) != 1 else ''}"
        raise ConflictError(
            f"{root} holds {count} that no version of {rec.name} has (such as "
            f"{min(pending)!r}), which checkout would delete; check out into an empty folder, "
            f"or {hint}")

    return check


def _not_held(registry: Registry, rec: VersionRecord, paths: set[str]) -> set[str]:
    """Those of ``paths`` that version ``rec`` does not hold (all of them when
    its manifest is not here: such a version vouches for nothing). Its
    manifest is let go on return: one version's at a time."""
    try:
        entries = registry.load_manifest(rec).entries
    except StoreError:
        return paths
    return {p for p in paths if not _held(p, entries)}


def _held(path: str, entries: dict[str, ManifestEntry]) -> bool:
    """Whether ``path`` is an entry, or a file in a folder an entry refers to
    (a reference by URI only, which a download lists)."""
    if path in entries:
        return True
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        entry = entries.get(path)
        if entry is not None:
            return entry.ref is not None and not _checksummed(entry)
    return False


def _extras(root: Path, store_rel: str | None, keep_files: Container[str],
            keep_dirs: set[str]) -> tuple[list[str], list[str], set[str], list[str]]:
    """What a checkout deletes under ``root``: the files (and links) that are
    not entries, the folders no entry is in, deepest first, which of those
    files are symbolic links, and apart from them all, the temporary files
    that an interrupted download or checkout left."""
    files: list[str] = []
    folders: list[str] = []
    links: set[str] = set()
    leftovers: list[str] = []

    def walk(folder: Path, rel: str, doomed: bool) -> None:
        with os.scandir(folder) as it:
            entries = list(it)
        for entry in entries:
            entry_rel = f"{rel}/{entry.name}" if rel else entry.name
            if entry_rel == store_rel or (
                entry.name == STORE_DIRNAME and entry.is_dir(follow_symlinks=False)
            ):
                continue  # a store (this one, or another project's) is never swept
            if entry.is_dir(follow_symlinks=False):
                gone = doomed or entry_rel not in keep_dirs
                walk(Path(entry.path), entry_rel, gone)
                if gone:
                    folders.append(entry_rel)
            elif _is_leftover(entry, entry_rel, keep_files):
                leftovers.append(entry_rel)
            elif doomed or entry_rel not in keep_files or entry_rel in keep_dirs:
                files.append(entry_rel)
                if entry.is_symlink():
                    links.add(entry_rel)

    walk(root, "", False)
    return files, folders, links, leftovers


def verify_tree(manifest: Manifest, root: str | os.PathLike, store: Store | None = None) -> None:
    """Raise VerificationError unless ``root`` holds exactly the manifest's
    files (a ``store`` inside ``root``, and ``.wbtool`` folders, are not
    counted: they are never part of an artifact)."""
    root_path = Path(root).absolute()
    if not root_path.is_dir():
        what = "is not a folder" if root_path.exists() else "does not exist"
        raise VerificationError(message=f"{root_path} {what}")
    store_rel = (None if store is None else
                 _relative_store(os.path.realpath(root_path), os.path.realpath(store.path)))
    problems: list[str] = []
    for entry in manifest:
        if entry.ref is not None:
            continue  # references are not verified, as the reference API says
        path = root_path / entry.path
        try:
            digest, size = hash_file(path)
        except FileNotFoundError:
            problems.append(f"missing: {entry.path}")
            continue
        except OSError as e:
            problems.append(f"unreadable: {entry.path} ({e.strerror})")
            continue
        if digest != entry.digest or size != entry.size:
            problems.append(f"modified: {entry.path}")
    expected = manifest.entries
    ref_folders = tuple(e.path + "/" for e in manifest if e.ref is not None)
    for dirpath, dirs, files in os.walk(root_path):  # never through a link: real paths
        rel_dir = os.path.relpath(dirpath, root_path)
        dirs[:] = [d for d in dirs if d != STORE_DIRNAME
                   and (d if rel_dir == "." else f"{rel_dir}/{d}") != store_rel]
        for f in files:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/")
            if rel not in expected and not rel.startswith(ref_folders):
                problems.append(f"left by an interrupted write: {rel}" if fsutil.is_tmp_name(f)
                                else f"not in the artifact: {rel}")
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)"
                                           if len(problems) > 5 else "")
        raise VerificationError(message=f"{root_path}: {shown}", problems=problems)


def verify_objects(
    store: Store, manifest: Manifest, progress: Progress = _no_progress
) -> list[str]:
    """Paths whose stored object is missing or corrupt (empty when all is well)."""
    bad = verify_digests(store, {e.digest for e in manifest if e.ref is None}, progress)
    return sorted(e.path for e in manifest if e.ref is None and e.digest in bad)


def verify_digests(
    store: Store, wanted: set[str], progress: Progress = _no_progress
) -> set[str]:
    """Those of ``wanted`` whose stored object is missing or corrupt.

    Packed objects are checked pack by pack in file order (sequential reads,
    constant memory); loose ones by a thread pool.
    """
    bad: set[str] = set()
    checked: set[str] = set()
    objects = store.objects
    rows = store.index.db.execute(
        "SELECT digest, pack, offset, size FROM packed ORDER BY pack, offset")
    for digest, pack, offset, size in rows:
        if digest not in wanted or digest in checked:
            continue
        loc = (objects.pack_path(pack), offset, size)
        try:
            ok = hash_bytes(objects.read_packed(loc)) == digest
        except (OSError, CorruptObjectError):
            ok = False
        if ok:
            checked.add(digest)  # else: a loose copy may still be good, checked below
        progress(1, size)
    loose = [d for d in wanted if d not in checked]
    del checked

    def check(digest: str) -> tuple[str, bool]:
        return digest, objects.verify(digest)

    workers = min(4, (os.cpu_count() or 2) * 2)
    with forked.thread_pool(workers, "wbtool-verify") as pool:
        for digest, ok in pool.map(check, loose, chunksize=16):
            if not ok:
                bad.add(digest)
            progress(1, 0)
    return bad
