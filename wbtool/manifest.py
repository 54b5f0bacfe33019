"""Artifact manifests: canonical JSON, the artifact digest, strict parsing.

A manifest is ``{"entries": {path: {"digest", "size", "ref"?, "extra"?}},
"hash": "xxh3-128", "version": 1}`` with sorted keys and no whitespace. The
artifact digest is the digest of the canonical ``entries`` object alone, so
the same content always has the same digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from wbtool.bulk import paused_gc
from wbtool.errors import ArtifactFinalizedError, StoreError
from wbtool.hashing import ALGORITHM, hash_bytes, is_digest
from wbtool.names import all_clean_entry_paths, is_clean_entry_path, read_entry_path

FORMAT_VERSION = 1
_HEX = "0123456789abcdef"


class ManifestEntry:
    """One file (or reference) of an artifact."""

    __slots__ = ("digest", "extra", "local_path", "path", "ref", "size")

    def __init__(
        self,
        path: str,
        digest: str,
        size: int | None,
        ref: str | None = None,
        extra: dict[str, Any] | None = None,
        local_path: str | None = None,
    ) -> None:
        self.path = path
        self.digest = digest
        self.size = size
        self.ref = ref
        self.extra = extra
        self.local_path = local_path

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"digest": self.digest, "size": self.size}
        if self.ref is not None:
            d["ref"] = self.ref
        if self.extra:
            d["extra"] = self.extra
        return d

    def same_content(self, other: ManifestEntry) -> bool:
        return (self.digest, self.size, self.ref) == (other.digest, other.size, other.ref)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ManifestEntry):
            return NotImplemented
        return self.path == other.path and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.path, self.digest))

    def __repr__(self) -> str:
        ref = f", ref={self.ref!r}" if self.ref else ""
        return f"ManifestEntry(path={self.path!r}, digest={self.digest!r}, size={self.size}{ref})"


def _entry_finalized(path: str) -> ArtifactFinalizedError:
    return ArtifactFinalizedError(f"entry {path!r} belongs to a logged artifact: log a new "
                                  "version (new_draft()) to change it")


class _FrozenEntry(ManifestEntry):
    """An entry of a read-only manifest (:meth:`Manifest.freeze`): its fields
    cannot be set, nor its ``extra`` changed. Entries become one by a change
    of class, which costs no copy and leaves :class:`ManifestEntry`'s own
    attribute writes fast. A copy (copy.copy, deepcopy, pickle) is a plain
    :class:`ManifestEntry` whose ``extra`` can be changed."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise _entry_finalized(self.path)

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def __reduce__(self) -> Any:
        return ManifestEntry, (self.path, self.digest, self.size, self.ref,
                               thawed(self.extra), self.local_path)


class _ReadOnly:
    """What the read-only containers of a logged manifest share: every
    change, ``__init__`` again included, raises the container's error, and a
    copy (copy.copy, deepcopy, pickle) is the plain built-in type."""

    __slots__ = ()

    _plain: Any  # the built-in type (dict or list) a copy is

    def _refused(self) -> ArtifactFinalizedError:
        raise NotImplementedError

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise self._refused()

    def __reduce__(self) -> Any:
        return self._plain, (self._plain(self),)

    @classmethod
    def _of(cls, value: Any) -> Any:
        """A new read-only container holding ``value``'s items; the only way
        to fill one, as its ``__init__`` refuses."""
        made = cls._plain.__new__(cls)
        cls._plain.__init__(made, value)
        return made


class _FrozenExtra(_ReadOnly, dict[str, Any]):
    """The ``extra`` of an entry of a read-only manifest, and each object in
    it: read as a dict (``json`` writes it as one), every change raises
    ArtifactFinalizedError. A copy (copy.copy, deepcopy, pickle) is a dict."""

    __slots__ = ("_path",)
    _path: str
    _plain = dict

    def _refused(self) -> ArtifactFinalizedError:
        return _entry_finalized(self._path)

    __init__ = __setitem__ = __delitem__ = __ior__ = _ReadOnly._refuse
    pop = popitem = clear = update = setdefault = _ReadOnly._refuse


class _FrozenList(_ReadOnly, list[Any]):
    """A list in the ``extra`` of an entry of a read-only manifest: read as a
    list, every change raises ArtifactFinalizedError; a copy is a list."""

    __slots__ = ("_path",)
    _path: str
    _plain = list

    def _refused(self) -> ArtifactFinalizedError:
        return _entry_finalized(self._path)

    __init__ = __setitem__ = __delitem__ = __iadd__ = __imul__ = _ReadOnly._refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _ReadOnly._refuse


# The values of an extra that are read-only as they are: most are.
_SCALARS = frozenset((str, int, float, bool, type(None)))


def _frozen_extra(value: Any, path: str) -> Any:
    """``value`` (an entry's extra, or a value in it) made read-only, lists
    and objects at every depth; values already made so are kept."""
    kind = type(value)
    if kind in _SCALARS or kind is _FrozenExtra or kind is _FrozenList:
        return value
    if isinstance(value, dict):
        frozen: Any = _FrozenExtra._of(value)
        for k, v in value.items():
            if type(v) not in _SCALARS:
                dict.__setitem__(frozen, k, _frozen_extra(v, path))
    elif isinstance(value, list):
        frozen = _FrozenList._of([_frozen_extra(v, path) for v in value])
    else:  # a plain value
        return value
    frozen._path = path
    return frozen


def thawed(value: Any) -> Any:
    """A copy of ``value`` (an entry's extra, maybe a logged one's, which is
    read-only) that can be changed, at every depth."""
    if isinstance(value, dict):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thawed(v) for v in value]
    return value


class _FrozenEntries(_ReadOnly, dict[str, ManifestEntry]):
    """The entries of a read-only manifest: reading is a dict's, every change
    raises ArtifactFinalizedError; a copy is a dict (of plain entries, for
    deepcopy and pickle)."""

    __slots__ = ("_owner",)
    _owner: str
    _plain = dict

    def _refused(self) -> ArtifactFinalizedError:
        return ArtifactFinalizedError(name=self._owner)

    __init__ = __setitem__ = __delitem__ = __ior__ = _ReadOnly._refuse
    pop = popitem = clear = update = setdefault = _ReadOnly._refuse


_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\x9f\u2028\u2029]*')


def _jstr(value: str) -> str:
    """``json.dumps(value, ensure_ascii=False)``, faster for plain strings."""
    if _PLAIN.fullmatch(value):
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _entry_json(e: ManifestEntry) -> str:
    # Hand-rolled for speed on 10^6 entries; identical to
    # json.dumps(e.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).
    size = "null" if e.size is None else str(int(e.size))
    if e.extra is None and e.ref is None:
        return f'{{"digest":{_jstr(e.digest)},"size":{size}}}'
    parts = [f'"digest":{_jstr(e.digest)}']
    if e.extra:
        parts.append('"extra":' + _canonical(e.extra))
    if e.ref is not None:
        parts.append('"ref":' + _jstr(e.ref))
    parts.append(f'"size":{size}')
    return "{" + ",".join(parts) + "}"


_CHUNK = 4096


def _all_plain(chunk: list[ManifestEntry]) -> bool:
    """Whether every entry of ``chunk`` is a plain file entry (an int size,
    no ref, no extra) whose path and digest need no JSON escaping, so its
    canonical text is a plain f-string."""
    for e in chunk:
        if e.ref is not None or e.extra or type(e.size) is not int:
            return False
    return _PLAIN.fullmatch("".join([e.path + e.digest for e in chunk])) is not None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Manifest:
    """An ordered mapping of entry path → :class:`ManifestEntry`."""

    def __init__(self, entries: Iterable[ManifestEntry] = ()) -> None:
        self.entries: dict[str, ManifestEntry] = {e.path: e for e in entries}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries.values())

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def get(self, path: str) -> ManifestEntry | None:
        return self.entries.get(path)

    def add(self, entry: ManifestEntry) -> None:
        self.entries[entry.path] = entry

    def remove(self, path: str) -> None:
        del self.entries[path]

    def __setattr__(self, name: str, value: object) -> None:
        entries = self.__dict__.get("entries")
        if isinstance(entries, _FrozenEntries):
            raise ArtifactFinalizedError(name=entries._owner)
        object.__setattr__(self, name, value)

    def freeze(self, owner: str) -> None:
        """Make this manifest read-only, as a logged artifact's is: adding,
        removing or replacing an entry, or setting an entry's field, raises
        ArtifactFinalizedError naming ``owner``. :meth:`copy` (or
        copy.deepcopy, or pickle) gives a manifest that can be changed."""
        if isinstance(self.entries, _FrozenEntries):
            return
        frozen = _FrozenEntries._of(self.entries)
        frozen._owner = owner
        for entry in frozen.values():
            if type(entry) is ManifestEntry:
                if entry.extra is not None:
                    entry.extra = _frozen_extra(entry.extra, entry.path)
                entry.__class__ = _FrozenEntry
        self.entries = frozen

    @property
    def frozen(self) -> bool:
        return isinstance(self.entries, _FrozenEntries)

    def path_clash(self) -> tuple[str, str] | None:
        """A path that is both a file and a folder here, as (the file, a path
        under it), or None. Such a version could never be written out."""
        entries = self.entries
        parents = {p.rpartition("/")[0] for p in entries}  # few: a set of folders
        parents.discard("")
        folders: set[str] = set()
        for folder in parents:
            while folder and folder not in folders:
                folders.add(folder)
                folder = folder.rpartition("/")[0]
        if folders.isdisjoint(entries):
            return None
        clash = min(folders.intersection(entries))
        under = min(p for p in entries if p.startswith(clash + "/"))
        return clash, under

    def changes_to(self, other: Manifest) -> tuple[list[str], list[str], list[str]]:
        """Sorted paths (added, removed, changed) from this manifest to ``other``."""
        mine, theirs = self.entries, other.entries
        added = sorted(theirs.keys() - mine.keys())
        removed = sorted(mine.keys() - theirs.keys())
        changed = sorted(p for p in mine.keys() & theirs.keys()
                         if not mine[p].same_content(theirs[p]))
        return added, removed, changed

    def copy(self) -> Manifest:
        m = Manifest()
        m.entries = {
            p: ManifestEntry(e.path, e.digest, e.size, e.ref, thawed(e.extra) if e.extra else None,
                             e.local_path)
            for p, e in self.entries.items()
        }
        return m

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self.entries.values())

    def entries_json(self) -> str:
        return "{" + ",".join(self._entry_texts()) + "}"

    def _entry_texts(self) -> Iterator[str]:
        """The canonical ``"path":{...}`` text of every entry in path order,
        a chunk of entries joined per item (a string per entry costs more)."""
        entries = self.entries
        paths = sorted(entries)
        for k in range(0, len(paths), _CHUNK):
            chunk = [entries[p] for p in paths[k:k + _CHUNK]]
            if _all_plain(chunk):
                yield ",".join([f'"{e.path}":{{"digest":"{e.digest}","size":{e.size}}}'
                                for e in chunk])
            else:
                yield ",".join([_jstr(e.path) + ":" + _entry_json(e) for e in chunk])

    def serialize(self) -> tuple[str, bytes]:
        """(artifact digest, canonical bytes), built in one pass without holding
        the JSON of every entry at once (10^6 entries stay in modest memory)."""
        out = bytearray(b'{"entries":{')
        start = len(out) - 1
        first = True
        for text in self._entry_texts():
            if not first:
                out += b","
            first = False
            out += text.encode("utf-8")
        out += b"}"
        digest = hash_bytes(memoryview(out)[start:])
        out += f',"hash":"{ALGORITHM}","version":{FORMAT_VERSION}'.encode() + b"}"
        return digest, bytes(out)

    def to_bytes(self) -> bytes:
        """The canonical serialisation (sorted keys, no whitespace, UTF-8)."""
        return self.serialize()[1]

    def digest(self) -> str:
        """The artifact digest: the digest of the canonical entries."""
        return hash_bytes(self.entries_json().encode("utf-8"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": {p: self.entries[p].to_dict() for p in sorted(self.entries)},
            "hash": ALGORITHM,
            "version": FORMAT_VERSION,
        }

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "manifest") -> Manifest:
        """Parse and validate; any bad path, digest or field raises StoreError."""
        # Parsing makes two objects per entry and no reference cycles.
        with paused_gc():
            return cls._from_bytes(data, source)

    @classmethod
    def _from_bytes(cls, data: bytes, source: str) -> Manifest:
        canonical = _canonical_plain_entries(data)
        if canonical is not None:
            m = cls()
            m.entries = canonical
            return m
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{source}: not valid JSON ({e})") from None
        except RecursionError:
            raise StoreError(f"{source}: not valid JSON (nested too deeply)") from None
        if not isinstance(doc, dict):
            raise StoreError(f"{source}: not a manifest")
        if doc.get("version") != FORMAT_VERSION:
            raise StoreError(f"{source}: unsupported manifest version {doc.get('version')!r}")
        if doc.get("hash") != ALGORITHM:
            raise StoreError(f"{source}: unsupported hash {doc.get('hash')!r}")
        raw = doc.get("entries")
        if not isinstance(raw, dict):
            raise StoreError(f"{source}: entries missing")
        m = cls()
        plain = _plain_entries(raw)
        if plain is not None:
            m.entries = plain
            return m
        entries = m.entries
        for path, fields in raw.items():
            # the common entry, {"digest", "size"}, checked inline; anything
            # else (and anything wrong) goes through parse_entry
            if type(fields) is dict and len(fields) == 2:
                digest, size = fields.get("digest"), fields.get("size")
                if (
                    type(digest) is str and len(digest) == 32 and not digest.strip(_HEX)
                    and type(size) is int and size >= 0 and is_clean_entry_path(path)
                ):
                    entries[path] = ManifestEntry(path, digest, size)
                    continue
            m.add(parse_entry(path, fields, source))
        return m


_HEAD = b'{"entries":{'
_TAIL = f'}},"hash":"{ALGORITHM}","version":{FORMAT_VERSION}}}'.encode()
# One canonical plain entry, after a comma unless it is the first of a piece:
# a path JSON holds unescaped, a digest, a size of at most 19 digits.
_PLAIN_ENTRY = re.compile(
    r'(?:\A|,)"([^"\\\x00-\x1f]*)":\{"digest":"([0-9a-f]{32})","size":(0|[1-9][0-9]{0,18})\}')
_ENTRY_FRAME = len('"":{"digest":"","size":}') + 32
_PIECE = 1 << 20


def _canonical_plain_entries(data: bytes) -> dict[str, ManifestEntry] | None:
    """The entries of a manifest in canonical form whose every entry is the
    common ``{"digest", "size"}`` with a clean path, read a piece of about
    :data:`_PIECE` bytes at a time, without the objects ``json.loads`` makes
    for every entry (on 10^6 entries they would take several hundred MiB at
    once). None for anything else, which the JSON parser then judges."""
    if not (data.startswith(_HEAD) and data.endswith(_TAIL)):
        return None
    view = memoryview(data)
    start, stop = len(_HEAD), len(data) - len(_TAIL)
    entries: dict[str, ManifestEntry] = {}
    while start < stop:
        end = data.find(b'},"', start + _PIECE, stop)
        end = stop if end < 0 else end + 1  # a piece ends with an entry's "}"
        try:
            piece = str(view[start:end], "utf-8")
        except UnicodeDecodeError:
            return None
        found = _PLAIN_ENTRY.findall(piece)
        if not found:
            return None
        paths, digests, sizes = zip(*found, strict=True)
        # The matches cover the piece, with nothing between them, exactly
        # when their lengths add up to its length.
        matched = (sum(map(len, paths)) + sum(map(len, sizes))
                   + len(found) * (_ENTRY_FRAME + 1) - 1)
        if matched != len(piece) or not all_clean_entry_paths(list(paths)):
            return None
        ints = {s: int(s) for s in set(sizes)}  # files of one size share their size
        entries.update(zip(paths, map(ManifestEntry, paths, digests, map(ints.__getitem__, sizes)),
                           strict=True))
        if end < stop and data[end:end + 1] != b",":
            return None
        start = end + 1
    return entries


def _plain_entries(raw: dict[str, Any]) -> dict[str, ManifestEntry] | None:
    """The entries when every one is the common ``{"digest", "size"}`` with a
    clean path, checked column by column (far faster than entry by entry on
    large manifests); None when any is not, for the careful path to judge."""
    fields = list(raw.values())
    if set(map(type, fields)) != {dict} or set(map(len, fields)) != {2}:
        return None
    try:
        digests = [f["digest"] for f in fields]
        sizes = [f["size"] for f in fields]
    except KeyError:
        return None
    if (
        set(map(type, digests)) != {str} or set(map(len, digests)) != {32}
        or "".join(digests).strip(_HEX)
        or set(map(type, sizes)) != {int} or min(sizes) < 0
    ):
        return None
    paths = list(raw)
    if not all_clean_entry_paths(paths):
        return None
    return dict(zip(paths, map(ManifestEntry, paths, digests, sizes), strict=True))


def parse_entry(path: str, fields: Any, source: str = "manifest") -> ManifestEntry:
    from wbtool.errors import InvalidNameError

    try:
        clean = read_entry_path(path)  # names too long to write out stay readable
    except InvalidNameError as e:
        raise StoreError(f"{source}: refused entry: {e}") from None
    if clean != path:
        raise StoreError(f"{source}: refused entry {path!r}: path is not normalised")
    if not isinstance(fields, dict):
        raise StoreError(f"{source}: entry {path!r} is not an object")
    digest = fields.get("digest")
    size = fields.get("size")
    ref = fields.get("ref")
    extra = fields.get("extra")
    if ref is None and not is_digest(digest):
        raise StoreError(f"{source}: entry {path!r} has an invalid digest {digest!r}")
    if ref is not None and (not isinstance(ref, str) or not isinstance(digest, str)):
        raise StoreError(f"{source}: entry {path!r} has an invalid reference")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise StoreError(f"{source}: entry {path!r} has an invalid size {size!r}")
    if ref is None and size is None:
        raise StoreError(f"{source}: entry {path!r} has no size")
    if extra is not None and not isinstance(extra, dict):
        raise StoreError(f"{source}: entry {path!r} has invalid extra data")
    return ManifestEntry(path, str(digest), size, ref, extra or None)
