"""Turning local files into stored objects and manifest entries.

Files are hashed and placed in parallel (a thread pool; reads and writes
release the GIL). A stat cache (device, inode, size, mtime_ns → digest)
means an unchanged file costs one ``stat``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from wbtool import forked, fsutil
from wbtool.bulk import gc_paused
from wbtool.errors import NotFoundError, UsageError
from wbtool.hashing import DIGEST_LEN, hash_bytes
from wbtool.manifest import ManifestEntry
from wbtool.names import validate_entry_path
from wbtool.store.layout import STORE_DIRNAME, Store
from wbtool.store.objects import ObjectStore, read_all
from wbtool.store.packs import PACK_MAX, PackRows, PackWriter

Progress = Callable[[int, int], None]  # (files done, bytes done) increments


def _no_progress(files: int, nbytes: int) -> None:
    pass


# A file whose mtime is this close to "now" may still be changing within
# the filesystem's timestamp granularity: hash it, but do not cache it.
RACY_WINDOW_NS = 1_000_000_000
BATCH = 16
PACK_BATCH = 256
MIN_PACKED = 16  # fewer small files than this get objects of their own
PARALLEL_SMALL_MIN = 4000  # from this many small files on, a helper process packs half
WALK_SHARE_AFTER = 5000  # files walked before a helper process takes half the folders left
StatRow = tuple[int, int, int, int]  # dev, ino, size, mtime_ns
Miss = tuple[int, str, int]  # item index, local path, size
Done = tuple[int, str, int, bool]  # item index, digest, size, new


class Misses:
    """Files to read and store, as indices into the items and their stats:
    an int each, where a tuple per file cost a million files some 120 MiB.
    Batches of :data:`Miss` are made as they are used."""

    def __init__(self, items: list[tuple[str, str]], stats: array[int],
                 indices: array[int] | None = None) -> None:
        self.items, self.stats = items, stats
        self.indices = array("q") if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def part(self, start: int, end: int | None = None) -> Misses:
        return Misses(self.items, self.stats, self.indices[start:end])

    def batches(self, size: int) -> Iterator[list[Miss]]:
        items, stats, indices = self.items, self.stats, self.indices
        for k in range(0, len(indices), size):
            yield [(i, items[i][0], stats[4 * i + 2]) for i in indices[k:k + size]]


@dataclass
class WalkResult:
    files: list[tuple[str, str]] = field(default_factory=list)  # (local path, entry path)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (local path, why)
    # dev, ino, size, mtime_ns of every file, flat (4 per file): a compact
    # array instead of a tuple per file keeps 10^6 files in reasonable memory
    stats: array[int] = field(default_factory=lambda: array("q"))

    def stat(self, i: int) -> StatRow:
        b = 4 * i
        s = self.stats
        return s[b], s[b + 1], s[b + 2], s[b + 3]


@gc_paused
def walk_dir(
    root: str | os.PathLike, prefix: str = "", *, store: str | os.PathLike | None = None,
    warn: bool = True,
) -> WalkResult:
    """Every regular file under ``root`` as (local path, entry path).

    Symbolic links: a link to a file inside ``root`` is added with its
    target's content, and so is a link to an object of ``store`` (what a
    download or checkout with ``link="symlink"`` leaves); a link that points
    anywhere else outside ``root``, a dangling link and a link to a folder
    are skipped and reported (never followed out of the tree, never looped
    on). Sockets, FIFOs and devices are skipped.
    A wbtool store is never part of an artifact: folders named ``.wbtool``
    and the ``store`` folder (wherever it is) are skipped and reported, and
    a ``root`` inside ``store`` is refused. What was skipped is in the result
    and, with ``warn``, logged as a warning (the command line, which notes
    it itself, passes False).

    A large tree is walked by two processes: once :data:`WALK_SHARE_AFTER`
    files are seen, a forked helper takes half the folders still to visit
    (a ``stat`` per file is a stream of short system calls bound by one core).
    """
    top = os.path.abspath(os.fspath(root))
    real_top = os.path.realpath(top)
    skip = None
    objects = None
    if store is not None:
        if fsutil.is_within(real_top, store):
            raise UsageError(f"{root} is inside the wbtool store {store}; "
                             "a store is never added to an artifact")
        with contextlib.suppress(OSError):
            st = os.stat(store)
            skip = (st.st_dev, st.st_ino)
        objects = os.path.join(os.path.realpath(store), "objects")
    out = WalkResult()
    stack = [(top, prefix.strip("/"))]
    _walk(stack, out, real_top, skip, objects, stop_after=WALK_SHARE_AFTER)
    if len(stack) >= 2 and forked.can_fork():
        half = len(stack) // 2
        helper = forked.ForkedJob(_walk_share, stack[:half], real_top, skip, objects)
        try:
            del stack[:half]
            _walk(stack, out, real_top, skip, objects)
            locals_, rels, skipped, stats = helper.result()
        finally:
            helper.stop()
        if locals_:
            out.files += zip(locals_.split("\0"), rels.split("\0"), strict=True)
        out.skipped += skipped
        out.stats.frombytes(stats)
    else:
        _walk(stack, out, real_top, skip, objects)
    if out.skipped and warn:
        import logging

        log = logging.getLogger("wbtool")
        for local, reason in out.skipped:
            log.warning("skipped %s: %s", local, reason)
    return out


def _walk_share(
    stack: list[tuple[str, str]], real_top: str, skip: tuple[int, int] | None,
    objects: str | None,
) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """In a forked helper: walk the folders of ``stack`` and all below them.
    The paths travel back joined by NUL (which no path holds): one string
    travels far faster than a tuple per file, the stats as raw bytes."""
    out = WalkResult()
    _walk(stack, out, real_top, skip, objects)
    return ("\0".join(local for local, _ in out.files), "\0".join(rel for _, rel in out.files),
            out.skipped, out.stats.tobytes())


# Why a folder or file found by a walk may be gone when it is read: removed or
# replaced meanwhile, which skips it. Any other error (no permission) stops the walk.
_GONE = (errno.ENOENT, errno.ENOTDIR)


def _walk(
    stack: list[tuple[str, str]], out: WalkResult, real_top: str,
    skip: tuple[int, int] | None, objects: str | None = None, stop_after: int | None = None,
) -> None:
    """Walk the folders on ``stack`` (and those found below them) into ``out``;
    with ``stop_after``, return once that many files are in ``out``, leaving
    the folders not yet visited on ``stack``. ``skip``: the store folder's
    (device, inode); ``objects``: the real path of its objects folder."""
    while stack:
        if stop_after is not None and len(out.files) >= stop_after:
            return
        folder, rel = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as e:
            if e.errno not in _GONE:  # unreadable: a version without its files would be wrong
                raise
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
                        if name == STORE_DIRNAME or (
                            skip is not None and entry.inode() == skip[1]
                            and entry.stat(follow_symlinks=False).st_dev == skip[0]
                        ):
                            out.skipped.append((entry.path, "a wbtool store"))
                        else:
                            stack.append((entry.path, entry_rel))
                        continue
                    elif entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if not (target == real_top or target.startswith(real_top + os.sep)
                                or _is_object(target, objects)):
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
                    if e.errno not in _GONE:  # a folder that can be listed but not entered
                        raise
                    out.skipped.append((entry.path, e.strerror or str(e)))
                    continue
                out.files.append((entry.path, entry_rel))
                out.stats.extend((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


def _is_object(path: str, objects: str | None) -> bool:
    """``path`` names a loose object of the store whose objects folder is
    ``objects``: ``objects/ab/cdef…``, the digest's first two hex digits
    and then the rest."""
    if objects is None:
        return False
    shard_dir, rest = os.path.split(path)
    top, shard = os.path.split(shard_dir)
    digest = shard + rest
    return (top == objects and len(shard) == 2 and len(digest) == DIGEST_LEN
            and all(c in "0123456789abcdef" for c in digest))


@contextlib.contextmanager
def _told_if_removed(store: Store) -> Iterator[None]:
    """Say so where a file went between the walk that found it and its read
    (something else deleting files in the folder being added)."""
    try:
        yield
    except FileNotFoundError as e:
        if e.filename is None or fsutil.is_within(os.fsdecode(e.filename), store.path):
            raise
        raise NotFoundError(f"file not found: {e.filename} (removed while it was being "
                            "stored; try again once nothing removes files there)") from None


@gc_paused
def ingest(
    store: Store,
    files: Iterable[tuple[str, str]],
    *,
    immutable: bool = False,
    skip_cache: bool = False,
    progress: Progress = _no_progress,
    workers: int | None = None,
    validated: bool = False,
    stats: array[int] | None = None,
    cache_hits: set[str] | None = None,
) -> tuple[list[ManifestEntry], bool]:
    """Store the content of ``files``; return (entries, any object newly written).

    ``files`` are (local path, entry path) pairs; entry paths are validated
    unless ``validated`` says they come from :func:`walk_dir` (which yields
    only clean relative paths under an already validated prefix).
    Unchanged files (stat cache) are not read. Small files added in bulk go
    into a pack, read once and written sequentially, or, ``immutable``, are
    hard-linked into the store by two processes; large files are copied (or,
    ``immutable``, hard-linked) to objects of their own by a thread pool.
    ``stats`` (from :func:`walk_dir`) saves a second ``stat`` per file.
    ``cache_hits`` gets the digests known from the stat cache alone: their
    objects were stored earlier, and may have gone since.
    """
    items = (list(files) if validated
             else [(local, validate_entry_path(name)) for local, name in files])
    if not items:
        return [], False
    if stats is None or len(stats) != 4 * len(items):
        stats = array("q")
        for local, _name in items:
            st = os.stat(local)
            if not stat_mod.S_ISREG(st.st_mode):
                raise IsADirectoryError(f"not a regular file: {local}")
            stats.extend((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    cache = {} if skip_cache else store.index.stat_cache_load()
    entries: list[ManifestEntry | None] = [None] * len(items)
    small = Misses(items, stats)
    large = Misses(items, stats)
    for i, (local, name) in enumerate(items):
        b = 4 * i
        size = stats[b + 2]
        hit = cache.get((stats[b], stats[b + 1]))
        if hit is not None and hit[0] == size and hit[1] == stats[b + 3]:
            entries[i] = ManifestEntry(name, hit[2], size, local_path=local)
            if cache_hits is not None:
                cache_hits.add(hit[2])
            progress(1, size)
            continue
        (small if size <= PACK_MAX else large).indices.append(i)
    del cache
    if len(small) < MIN_PACKED:
        large, small = Misses(items, stats, small.indices + large.indices), Misses(items, stats)

    fresh = array("q")  # indices of items whose stat + digest go to the stat cache
    wrote_any = False
    objects = store.objects
    collect = _Collector(items, entries, stats, fresh, progress)

    def work(batch: list[Miss]) -> list[Done]:
        return _put_batch(objects, batch, immutable)

    wrote_loose = False  # objects of their own: packs are flushed as published
    with store.lock(exclusive=False), fsutil.naming(store.tmp), _told_if_removed(store):
        if small:
            place_small = _link_small if immutable else _pack_small
            for done in place_small(objects, small):
                wrote_any |= collect(done)
                del done  # not held while the next batch is made
            wrote_loose = wrote_any and immutable
        del small
        batches = list(large.batches(BATCH))
        n_workers = workers or min(4, (os.cpu_count() or 2) * 2)
        if len(batches) <= 1 or n_workers == 1:
            for batch in batches:
                wrote_loose |= collect(work(batch))
        else:
            with forked.thread_pool(n_workers, "wbtool-hash") as pool:
                for done in pool.map(work, batches):
                    wrote_loose |= collect(done)
    wrote_any |= wrote_loose
    if wrote_loose:
        # What names these objects next (stat-cache rows, a draft, a
        # version) must find them whole after a crash.
        store.flush()
    if fresh and not skip_cache:
        # One int per key (device above inode) sorts in far less memory than
        # a tuple per key; the rows are then made one at a time as SQLite
        # takes them.
        order = sorted(fresh, key=lambda i: stats[4 * i] << 64 | stats[4 * i + 1])
        del fresh
        store.index.stat_cache_put(
            ((stats[4 * i], stats[4 * i + 1], stats[4 * i + 2], stats[4 * i + 3],
              entries[i].digest)  # type: ignore[union-attr]
             for i in order),
            in_key_order=True,
        )
    return [e for e in entries if e is not None], wrote_any


class _Collector:
    """Turns finished work into manifest entries and stat-cache candidates."""

    def __init__(
        self, items: list[tuple[str, str]], entries: list[ManifestEntry | None],
        stats: array[int], fresh: array[int], progress: Progress,
    ) -> None:
        self.items, self.entries, self.stats = items, entries, stats
        self.fresh, self.progress = fresh, progress
        self.now_ns = time.time_ns()

    def __call__(self, done: list[Done]) -> bool:
        wrote = False
        stats = self.stats
        for i, digest, size, new in done:
            local, name = self.items[i]
            self.entries[i] = ManifestEntry(name, digest, size, local_path=local)
            # cache only what was read as stat'ed, and not changing right now
            if stats[4 * i + 2] == size and self.now_ns - stats[4 * i + 3] > RACY_WINDOW_NS:
                self.fresh.append(i)
            wrote |= new
            self.progress(1, size)
        return wrote


def _pack_small(objects: ObjectStore, small: Misses) -> Iterator[list[Done]]:
    """Pack small files, in two processes when there are many of them.

    Reading, hashing and appending thousands of small files is a stream of
    short system calls bound by one core; a forked helper takes the second
    half (it writes its own pack, which this process then indexes), so both
    cores work. Threads would not help: they fight over the GIL.
    """
    present = objects.packed_digests()
    helper = None
    if len(small) >= PARALLEL_SMALL_MIN and forked.can_fork():
        half = len(small) // 2
        helper = forked.ForkedJob(_pack_share, objects.root, objects.tmp, small.part(half),
                                  present, objects.durable)
        small = small.part(0, half)
    published = PackRows()  # indexed once, in key order, when both halves are done

    def publish(name: str, rows: list[tuple[str, int, int]]) -> None:
        published.add(name, rows)
        present.update(d for d, _, _ in rows)  # later packs must not repeat these

    try:
        with PackWriter(objects, on_publish=publish) as pack:
            for batch in small.batches(PACK_BATCH):
                yield _pack_batch(pack, batch, present)
        if helper is not None:
            done, theirs = helper.result()
            for name, digests, offsets, sizes in theirs:
                published.add(name, zip(_digests(digests), _int64s(offsets), _int64s(sizes),
                                        strict=True))
            del theirs
            yield from _expanded(done)
            del done
        objects.index_packs(published)
    finally:
        if helper is not None:
            helper.stop()


def _link_small(objects: ObjectStore, small: Misses) -> Iterator[list[Done]]:
    """Hard-link small files into the store (``immutable``), in two processes
    when there are many: like packing, a stream of short system calls bound
    by one core. Loose objects need no index, so the helper links on its own."""
    helper = None
    if len(small) >= PARALLEL_SMALL_MIN and forked.can_fork():
        half = len(small) // 2
        helper = forked.ForkedJob(_link_share, objects.root, objects.tmp, small.part(half))
        small = small.part(0, half)
    try:
        for batch in small.batches(PACK_BATCH):
            yield _put_batch(objects, batch, True)
        if helper is not None:
            yield from _expanded(helper.result())
    finally:
        if helper is not None:
            helper.stop()


def _link_share(root: str, tmp: str, share: Misses) -> FlatDone:
    """In a forked helper: hard-link ``share`` into the store at ``root``."""
    objects = ObjectStore(root, tmp)
    done = _FlatDone()
    for batch in share.batches(PACK_BATCH):
        done.add(_put_batch(objects, batch, True))
    return done.answer()


# What a helper sends back, flat: item indices, digests (hex, one after the
# other), sizes and new-object flags. Half a million files' answers as a
# tuple each cost the parent some 250 MiB to receive; flat, about 25 MiB.
FlatDone = tuple[bytes, bytes, bytes, bytes]


class _FlatDone:
    """Builds a :data:`FlatDone` batch by batch."""

    def __init__(self) -> None:
        self.indices, self.sizes = array("q"), array("q")
        self.digests, self.new = bytearray(), bytearray()

    def add(self, done: list[Done]) -> None:
        for i, digest, size, new in done:
            self.indices.append(i)
            self.digests += digest.encode("ascii")
            self.sizes.append(size)
            self.new.append(new)

    def answer(self) -> FlatDone:
        return (self.indices.tobytes(), bytes(self.digests), self.sizes.tobytes(),
                bytes(self.new))


def _expanded(flat: FlatDone) -> Iterator[list[Done]]:
    """A helper's flat answer as batches of :data:`Done`, made as they are used."""
    raw_indices, digests, raw_sizes, new = flat
    indices, sizes = _int64s(raw_indices), _int64s(raw_sizes)
    hexes = _digests(digests)
    for k in range(0, len(indices), PACK_BATCH):
        end = min(k + PACK_BATCH, len(indices))
        yield [(indices[j], next(hexes), sizes[j], bool(new[j])) for j in range(k, end)]


def _int64s(raw: bytes) -> array[int]:
    values = array("q")
    values.frombytes(raw)
    return values


def _digests(raw: bytes) -> Iterator[str]:
    for k in range(0, len(raw), DIGEST_LEN):
        yield raw[k:k + DIGEST_LEN].decode("ascii")


def _put_batch(objects: ObjectStore, batch: list[Miss], immutable: bool) -> list[Done]:
    """Store each file of ``batch`` as an object of its own."""
    done: list[Done] = []
    for i, local, _size in batch:
        digest, size, new = objects.put_file(local, immutable=immutable)
        done.append((i, digest, size, new))
    return done


def _pack_share(
    root: str, tmp: str, share: Misses, present: set[str], durable: bool
) -> tuple[FlatDone, list[tuple[str, bytes, bytes, bytes]]]:
    """In a forked helper: pack ``share``; the parent indexes what is published
    (each pack's digests, offsets and sizes, flat)."""
    published: list[tuple[str, list[tuple[str, int, int]]]] = []
    objects = ObjectStore(root, tmp)
    objects.durable = durable
    done = _FlatDone()
    with PackWriter(objects, on_publish=lambda name, rows: published.append((name, rows))
                    ) as pack:
        for batch in share.batches(PACK_BATCH):
            done.add(_pack_batch(pack, batch, present))
    flat = [(name, "".join([d for d, _, _ in rows]).encode("ascii"),
             array("q", [off for _, off, _ in rows]).tobytes(),
             array("q", [size for _, _, size in rows]).tobytes()) for name, rows in published]
    return done.answer(), flat


def _pack_batch(pack: PackWriter, batch: list[Miss], present: set[str]) -> list[Done]:
    read: list[tuple[int, str, bytes]] = []
    for i, local, size in batch:
        fd = os.open(local, os.O_RDONLY)
        try:
            data = read_all(fd, size)
        finally:
            os.close(fd)
        read.append((i, hash_bytes(data), data))
    done: list[Done] = []
    for i, digest, data in read:
        new = digest not in present and digest not in pack
        if new:
            pack.add(digest, data)
        done.append((i, digest, len(data), new))
    return done

