"""Turning local files into stored objects and manifest entries.

Files are hashed and placed in parallel (a thread pool; reads and writes
release the GIL). A stat cache (device, inode, size, mtime_ns → digest)
means an unchanged file costs one ``stat``.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wbtool.hashing import hash_bytes
from wbtool.manifest import ManifestEntry
from wbtool.names import validate_entry_path
from wbtool.store.layout import Store
from wbtool.store.objects import ObjectStore, read_all
from wbtool.store.packs import PACK_MAX, PackWriter

log = logging.getLogger("wbtool")

Progress = Callable[[int, int], None]  # (files done, bytes done) increments


def _no_progress(files: int, nbytes: int) -> None:
    pass


# A file whose mtime is this close to "now" may still be changing within
# the filesystem's timestamp granularity: hash it, but do not cache it.
RACY_WINDOW_NS = 1_000_000_000
BATCH = 16
PACK_BATCH = 256
MIN_PACKED = 16  # fewer small files than this get objects of their own
StatRow = tuple[int, int, int, int]  # dev, ino, size, mtime_ns
Miss = tuple[int, str, StatRow]  # item index, local path, stat
Done = tuple[int, StatRow, str, int, bool]  # item index, stat, digest, size, new


@dataclass
class WalkResult:
    files: list[tuple[str, str]] = field(default_factory=list)  # (local path, entry path)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (local path, why)
    stats: list[StatRow] = field(default_factory=list)  # parallel to files


def walk_dir(root: str | os.PathLike, prefix: str = "") -> WalkResult:
    """Every regular file under ``root`` as (local path, entry path).

    Symbolic links: a link to a file inside ``root`` is added with its
    target's content; a link that points outside ``root``, a dangling link
    and a link to a folder are skipped and reported (never followed out of
    the tree, never looped on). Sockets, FIFOs and devices are skipped.
    """
    top = os.path.abspath(os.fspath(root))
    real_top = os.path.realpath(top)
    out = WalkResult()
    prefix = prefix.strip("/")
    stack = [(top, prefix)]
    while stack:
        folder, rel = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as e:
            out.skipped.append((folder, f"cannot read folder: {e.strerror}"))
            continue
        with it:
            for entry in it:
                name = entry.name
                if not name.isascii():
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        out.skipped.append((entry.path, "file name is not valid UTF-8"))
                        continue
                if "\\" in name or (not rel and name[1:2] == ":"):
                    out.skipped.append((entry.path, "file name cannot be stored portably"))
                    continue
                entry_rel = f"{rel}/{name}" if rel else name
                try:
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, entry_rel))
                        continue
                    elif entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if not (target == real_top or target.startswith(real_top + os.sep)):
                            out.skipped.append((entry.path, "symlink points outside the folder"))
                            continue
                        if not os.path.exists(target):
                            out.skipped.append((entry.path, "dangling symlink"))
                            continue
                        if os.path.isdir(target):
                            out.skipped.append((entry.path, "symlink to a folder"))
                            continue
                        st = os.stat(target)
                        if not stat_mod.S_ISREG(st.st_mode):
                            out.skipped.append((entry.path, "not a regular file"))
                            continue
                    else:
                        out.skipped.append((entry.path, "not a regular file"))
                        continue
                except OSError as e:
                    out.skipped.append((entry.path, e.strerror or str(e)))
                    continue
                out.files.append((entry.path, entry_rel))
                out.stats.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    for local, reason in out.skipped:
        log.warning("skipped %s: %s", local, reason)
    return out


def ingest(
    store: Store,
    files: Iterable[tuple[str, str]],
    *,
    immutable: bool = False,
    skip_cache: bool = False,
    progress: Progress = _no_progress,
    workers: int | None = None,
    validated: bool = False,
    stats: list[StatRow] | None = None,
) -> tuple[list[ManifestEntry], bool]:
    """Store the content of ``files``; return (entries, any object newly written).

    ``files`` are (local path, entry path) pairs; entry paths are validated
    unless ``validated`` says they come from :func:`walk_dir` (which yields
    only clean relative paths under an already validated prefix).
    Unchanged files (stat cache) are not read. Small files added in bulk go
    into a pack, read once and written sequentially; large files are copied
    (or, ``immutable``, hard-linked) to objects of their own by a thread pool.
    ``stats`` (from :func:`walk_dir`) saves a second ``stat`` per file.
    """
    items = (list(files) if validated
             else [(local, validate_entry_path(name)) for local, name in files])
    if not items:
        return [], False
    cache = {} if skip_cache else store.index.stat_cache_load()
    now_ns = time.time_ns()
    entries: list[ManifestEntry | None] = [None] * len(items)
    small: list[Miss] = []
    large: list[Miss] = []
    if stats is None or len(stats) != len(items):
        stats = []
        for local, _name in items:
            st = os.stat(local)
            if not stat_mod.S_ISREG(st.st_mode):
                raise IsADirectoryError(f"not a regular file: {local}")
            stats.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    for i, (local, name) in enumerate(items):
        key = stats[i]
        hit = cache.get((key[0], key[1]))
        if hit is not None and hit[0] == key[2] and hit[1] == key[3]:
            entries[i] = ManifestEntry(name, hit[2], key[2], local_path=local)
            progress(1, key[2])
            continue
        (small if key[2] <= PACK_MAX else large).append((i, local, key))
    del cache
    if len(small) < MIN_PACKED:
        large, small = small + large, []

    new_rows: list[tuple[int, int, int, int, str]] = []
    wrote_any = False
    objects = store.objects

    def work(batch: list[Miss]) -> list[Done]:
        done = []
        for i, local, key in batch:
            digest, size, new = objects.put_file(local, immutable=immutable)
            done.append((i, key, digest, size, new))
        return done

    with store.lock(exclusive=False):
        if small:
            with PackWriter(objects) as pack:
                for k in range(0, len(small), PACK_BATCH):
                    done = _pack_batch(objects, pack, small[k:k + PACK_BATCH])
                    wrote_any |= _collect(done, items, entries, new_rows, now_ns, progress)
        batches = [large[k:k + BATCH] for k in range(0, len(large), BATCH)]
        n_workers = workers or min(4, (os.cpu_count() or 2) * 2)
        if len(batches) <= 1 or n_workers == 1:
            for batch in batches:
                wrote_any |= _collect(work(batch), items, entries, new_rows, now_ns, progress)
        else:
            with ThreadPoolExecutor(n_workers, thread_name_prefix="wbtool-hash") as pool:
                for done in pool.map(work, batches):
                    wrote_any |= _collect(done, items, entries, new_rows, now_ns, progress)
    if new_rows and not skip_cache:
        store.index.stat_cache_put(new_rows)
    return [e for e in entries if e is not None], wrote_any


def _pack_batch(objects: ObjectStore, pack: PackWriter, batch: list[Miss]) -> list[Done]:
    read: list[tuple[int, StatRow, str, bytes]] = []
    for i, local, key in batch:
        fd = os.open(local, os.O_RDONLY)
        try:
            data = read_all(fd, key[2])
        finally:
            os.close(fd)
        read.append((i, key, hash_bytes(data), data))
    present = objects.packed_digests()
    done: list[Done] = []
    for i, key, digest, data in read:
        new = digest not in present and digest not in pack
        if new:
            pack.add(digest, data)
        done.append((i, key, digest, len(data), new))
    return done


def _collect(
    done: list[Done],
    items: list[tuple[str, str]],
    entries: list[ManifestEntry | None],
    rows: list[tuple[int, int, int, int, str]],
    now_ns: int,
    progress: Progress,
) -> bool:
    wrote = False
    for i, key, digest, size, new in done:
        local, name = items[i]
        entries[i] = ManifestEntry(name, digest, size, local_path=local)
        if key[2] == size and now_ns - key[3] > RACY_WINDOW_NS:
            rows.append((key[0], key[1], key[2], key[3], digest))
        wrote |= new
        progress(1, size)
    return wrote


def file_items(path: str | os.PathLike, name: str | None = None) -> list[tuple[str, str]]:
    p = Path(path)
    return [(os.fspath(p), name if name is not None else p.name)]
