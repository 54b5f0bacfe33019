"""``wbtool.Artifact``: the reference's Artifact, on the local store.

Files are hashed and placed in the store when they are added (so a later
change to the user's file cannot change what is logged); ``save()`` or a
run's ``log_artifact`` commits the manifest as the next version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

from wbtool.artifacts import ingest, materialize
from wbtool.artifacts.metadata import check_description, check_metadata
from wbtool.artifacts.registry import INCREMENTAL_WAIT_SECONDS, Based
from wbtool.bulk import gc_paused
from wbtool.context import Context
from wbtool.errors import (
    ArtifactFinalizedError,
    ArtifactNotLoggedError,
    EntryNotFoundError,
    LatestMovedError,
    NotFoundError,
    UsageError,
)
from wbtool.flags import flag, optional_flag
from wbtool.hashing import hash_bytes, hash_file
from wbtool.manifest import Manifest, ManifestEntry, thawed
from wbtool.names import (
    CheckedList,
    check_alias,
    check_entity,
    name_list,
    split_ref,
    validate_entry_path,
    validate_name,
    validate_tag,
    validate_type,
)

DEFAULT_MAX_OBJECTS = 10_000_000


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # not a time a date can show
        return str(ts)


def _check_policy(policy: str | None) -> bool:
    if policy not in (None, "mutable", "immutable"):
        raise UsageError('policy must be "mutable" or "immutable"')
    return policy == "immutable"


class ArtifactCollection:
    """The named sequence (or portfolio) that versions belong to."""

    def __init__(self, project: str, name: str, type: str, kind: str) -> None:
        self.project, self.name, self.type, self.kind = project, name, type, kind

    @property
    def is_sequence(self) -> bool:
        return self.kind == "sequence"

    def __repr__(self) -> str:
        return f"ArtifactCollection({self.project}/{self.name}, type={self.type!r})"


class Artifact:
    """A versioned, deduplicated set of files (and references)."""

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
    ) -> None:
        self._collection_name = validate_name(name)
        self._type = validate_type(type)
        self._description = check_description(description)
        self._metadata = check_metadata(metadata)
        self._incremental = flag(incremental, "incremental")
        self._use_as = use_as
        self._aliases = CheckedList(check=check_alias)
        self._tags = CheckedList(check=validate_tag)
        self._ttl: dt.timedelta | None = None
        self._manifest = Manifest()
        self._rec: Any = None  # VersionRecord once logged
        self._final = False
        self._deleted = False
        self._ctx: Context | None = None
        self._project: str | None = None
        self._local_names: dict[str, str] = {}
        self._dir_added: set[str] = set()

    # -- construction from the store -----------------------------------------
    @classmethod
    def _from_record(cls, ctx: Context, rec: Any) -> Artifact:
        a = cls(rec.name, rec.type)
        a._ctx = ctx
        a._manifest = ctx.registry.load_manifest(rec)
        a._load_record(rec)
        return a

    def _load_record(self, rec: Any) -> None:
        self._rec = rec
        self._collection_name = rec.name
        self._project = rec.project
        self._description = rec.description
        self._metadata = dict(rec.metadata)
        self._aliases = CheckedList([a for a in rec.aliases if a != "latest"] + (
            ["latest"] if "latest" in rec.aliases else []), check_alias)
        self._tags = CheckedList(rec.tags, validate_tag)
        self._ttl = None if rec.ttl is None else dt.timedelta(seconds=rec.ttl)
        self._final = True
        self._manifest.freeze(self.name)  # a logged version's files never change

    @classmethod
    def _load(cls, ref: str, ctx: Context | None = None, type: str | None = None) -> Artifact:
        ctx = ctx or Context.from_settings()
        project, name, version = split_ref(ref, ctx.named_entity)
        from wbtool.remote import fallback

        rec = fallback.resolve(ctx.registry, project or ctx.project, name, version)
        if type is not None and rec.type != type:
            raise UsageError(f"{ref} has type {rec.type!r}, not {type!r}")
        return cls._from_record(ctx, rec)

    def _context(self) -> Context:
        if self._ctx is None:
            self._ctx = Context.from_settings()
        return self._ctx

    # -- state helpers -------------------------------------------------------
    def _ensure_draft(self) -> None:
        if self._final:
            raise ArtifactFinalizedError(name=self.name)

    def _ensure_logged(self, action: str) -> Any:
        if self._rec is None or self._deleted:
            raise ArtifactNotLoggedError(name=self._collection_name, action=action)
        return self._rec

    # -- properties ------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._rec is None:
            return self._collection_name
        return f"{self._collection_name}:{self._rec.version}"

    @property
    def type(self) -> str:
        return self._type

    @property
    def version(self) -> str:
        return str(self._ensure_logged("version").version)

    @property
    def id(self) -> str | None:
        return None if self._rec is None else str(self._rec.id)

    @property
    def project(self) -> str:
        return self._project or self._context().project

    @property
    def entity(self) -> str:
        return self._context().entity

    @property
    def qualified_name(self) -> str:
        return f"{self.entity}/{self.project}/{self.name}"

    @property
    def description(self) -> str | None:
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        self._description = check_description(value)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = check_metadata(value)

    @property
    def aliases(self) -> list[str]:
        """The aliases, saved by ``save()``; an invalid one is refused as it
        is added to this list (InvalidNameError, a ValueError), so that the
        list never holds one that a save would refuse."""
        return self._aliases

    @aliases.setter
    def aliases(self, value: list[str]) -> None:
        self._aliases = CheckedList(value, check_alias)

    @property
    def tags(self) -> list[str]:
        """The tags, saved by ``save()``; checked as they come in, as aliases are."""
        return self._tags

    @tags.setter
    def tags(self, value: list[str]) -> None:
        self._tags = CheckedList(value, validate_tag)

    @property
    def ttl(self) -> dt.timedelta | None:
        """The time-to-live set on this version, or None.

        There is no team default here, so a TTL is never inherited and a
        draft gives its own (None unless set) where W&B raises
        ArtifactNotLoggedError. The TTL is recorded with the version, but
        nothing deletes a version when it passes: there is no server to."""
        return self._ttl

    @ttl.setter
    def ttl(self, value: dt.timedelta | None) -> None:
        if value is not None and not isinstance(value, dt.timedelta):
            raise UsageError("ttl must be a datetime.timedelta or None")
        if value is not None and value.total_seconds() <= 0:
            raise UsageError(f"ttl must be positive, not {value}")
        self._ttl = value

    @property
    def manifest(self) -> Manifest:
        """The entries; read-only once the artifact is logged or finalized
        (a change raises ArtifactFinalizedError)."""
        return self._manifest

    @property
    def digest(self) -> str:
        return self._manifest.digest()

    @property
    def size(self) -> int:
        return self._manifest.size

    @property
    def file_count(self) -> int:
        return len(self._manifest)

    @property
    def state(self) -> str:
        if self._deleted:
            return "DELETED"
        return "PENDING" if self._rec is None else "COMMITTED"

    @property
    def created_at(self) -> str | None:
        """When the version was committed (ISO 8601, UTC); None for a draft."""
        return None if self._rec is None else _iso(self._rec.created_at)

    @property
    def updated_at(self) -> str | None:
        return None if self._rec is None else _iso(self._rec.updated_at)

    @property
    def commit_hash(self) -> str:
        return str(self._ensure_logged("commit_hash").manifest[:12])

    @property
    def history_step(self) -> int | None:
        return None if self._rec is None else self._rec.history_step

    @property
    def url(self) -> str:
        return self._context().store.path.as_uri() + f"#{self.project}/{self.name}"

    @property
    def use_as(self) -> str | None:
        return self._use_as

    @property
    def is_link(self) -> bool:
        return bool(self._rec is not None and self._rec.is_link)

    @property
    def collection(self) -> ArtifactCollection:
        kind = self._rec.kind if self._rec is not None else "sequence"
        return ArtifactCollection(self.project, self._collection_name, self._type, kind)

    @property
    def source_artifact(self) -> Artifact:
        if self._rec is None or not self._rec.is_link:
            return self
        ctx = self._context()
        return Artifact._from_record(ctx, ctx.registry.get(self._rec.source_id))

    @property
    def source_collection(self) -> ArtifactCollection:
        return self.source_artifact.collection

    @property
    def source_name(self) -> str:
        return self.source_artifact.name

    @property
    def source_version(self) -> str:
        return self.source_artifact.version

    @property
    def source_project(self) -> str:
        return self.source_artifact.project

    @property
    def source_entity(self) -> str:
        return self.source_artifact.entity

    @property
    def source_qualified_name(self) -> str:
        return self.source_artifact.qualified_name

    @property
    def linked_artifacts(self) -> list[Artifact]:
        if self._rec is None or self._rec.is_link:
            return []
        ctx = self._context()
        return [Artifact._from_record(ctx, r) for r in ctx.registry.links_of(self._rec)[:500]]

    # -- adding content -----------------------------------------------------------
    def _put(self, entries: list[ManifestEntry], *, overwrite: bool, merge_dir: bool = False,
             from_dir: bool = False) -> None:
        """Add ``entries``, all or none: every clash is checked before the first
        entry is added, so a refused call leaves the artifact as it was."""
        for e in entries:
            old = self._manifest.get(e.path)
            if old is not None and not old.same_content(e) and not overwrite:
                if from_dir:
                    if not merge_dir:
                        raise UsageError(
                            f"{e.path!r} was already added with different content; "
                            "pass merge=True to overwrite it"
                        )
                else:
                    raise UsageError(
                        f"{e.path!r} is already in the artifact with different content; "
                        "pass overwrite=True to replace it"
                    )
        for e in entries:
            self._manifest.add(e)
            if e.local_path:
                self._local_names[os.path.abspath(e.local_path)] = e.path

    def add_file(
        self,
        local_path: str,
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Add one local file (hashed and stored now)."""
        self._ensure_draft()
        is_tmp, overwrite = optional_flag(is_tmp, "is_tmp"), flag(overwrite, "overwrite")
        skip_cache = optional_flag(skip_cache, "skip_cache")
        immutable = _check_policy(policy)
        path = os.fspath(local_path)
        if not os.path.isfile(path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"no such file: {path}")
            hint = "a folder: use add_dir" if os.path.isdir(path) else "a pipe, socket or device"
            raise UsageError(f"{path} is not a regular file ({hint})")
        entry_name = validate_entry_path(name if name is not None else os.path.basename(path))
        ctx = self._context()
        entries, _ = ingest.ingest(
            ctx.store, [(path, entry_name)], immutable=immutable, skip_cache=bool(skip_cache)
        )
        entry = entries[0]
        if is_tmp:  # the digest goes into the file name, never into a folder's
            folder, slash, base_name = entry_name.rpartition("/")
            stem, dot, ext = base_name.rpartition(".")
            base = stem if dot else base_name
            entry.path = (f"{folder}{slash}{base}.{entry.digest[:20]}"
                          + (f".{ext}" if dot else ""))
        self._put([entry], overwrite=overwrite)
        return ArtifactManifestEntry.of(entry, self)

    @gc_paused
    def add_dir(
        self,
        local_path: str,
        name: str | None = None,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        merge: bool = False,
    ) -> None:
        """Add every file under a folder, at the root or under ``name``."""
        self._ensure_draft()
        skip_cache, merge = optional_flag(skip_cache, "skip_cache"), flag(merge, "merge")
        immutable = _check_policy(policy)
        path = os.fspath(local_path)
        if not os.path.isdir(path):
            if os.path.exists(path):
                raise NotADirectoryError(f"{path} is not a folder: use add_file for a file")
            raise NotADirectoryError(f"no such folder: {path}")
        prefix = validate_entry_path(name) if name else ""
        ctx = self._context()
        walked = ingest.walk_dir(path, prefix, store=ctx.store.path)
        self.skipped = walked.skipped
        entries, _ = ingest.ingest(
            ctx.store, walked.files, immutable=immutable, skip_cache=bool(skip_cache),
            validated=True,
            stats=walked.stats,
        )
        self._put(entries, overwrite=False, merge_dir=merge, from_dir=True)

    def add_reference(
        self,
        uri: ManifestEntry | str,
        name: str | None = None,
        checksum: bool = True,
        max_objects: int | None = None,
    ) -> list[ArtifactManifestEntry]:
        """Track files that stay where they are: file://, s3://, gs://, az:// (and
        https Azure blob URLs), http(s)://. Nothing is copied into the store.
        A file:// folder is walked as ``add_dir`` walks one: a symbolic link to
        a file inside it is tracked, other links (to folders, out of the
        folder, dangling) are skipped with a warning."""
        self._ensure_draft()
        checksum = flag(checksum, "checksum")
        return [ArtifactManifestEntry.of(e, self)
                for e in self._add_reference(uri, name, checksum, max_objects)]

    def _add_reference(self, uri: ManifestEntry | str, name: str | None, checksum: bool,
                       max_objects: int | None) -> list[ManifestEntry]:
        if isinstance(uri, ManifestEntry):
            entry = ManifestEntry(
                validate_entry_path(name or uri.path), uri.digest, uri.size, uri.ref,
                thawed(uri.extra),  # a logged artifact's entry's extra is read-only
            )
            self._put([entry], overwrite=False)
            return [entry]
        if not isinstance(uri, str):
            raise UsageError(f"a reference is a URI string or a manifest entry, not "
                             f"{type(uri).__name__} {uri!r}")
        entries, _skipped = self._reference_entries(uri, name, checksum, max_objects)
        self._put(entries, overwrite=False)
        return entries

    def _reference_entries(
        self, uri: str, name: str | None, checksum: bool = True,
        max_objects: int | None = None, *, warn: bool = True,
    ) -> tuple[list[ManifestEntry], list[tuple[str, str]]]:
        """The entries :meth:`add_reference` adds for ``uri``, and what a walk
        of a file:// folder skipped (logged as warnings with ``warn``; the
        command line, which notes them itself, passes False)."""
        from urllib.parse import quote, unquote, urlparse

        parsed = urlparse(uri)
        scheme = parsed.scheme
        limit = DEFAULT_MAX_OBJECTS if max_objects is None else max_objects
        if type(limit) is not int:
            raise TypeError(f"max_objects must be an int, not {type(limit).__name__}: "
                            f"{limit!r}")
        if scheme == "file":
            local = unquote(parsed.path)
            if os.path.isdir(local):
                if not checksum:
                    entry = ManifestEntry(
                        validate_entry_path(name or os.path.basename(local.rstrip("/"))),
                        hash_bytes(uri.encode()), None, uri)
                    return [entry], []
                walked = ingest.walk_dir(local, validate_entry_path(name) if name else "",
                                         store=self._context().store.path, warn=warn)
                if len(walked.files) > limit:
                    raise UsageError(
                        f"{uri} holds {len(walked.files)} files, more than max_objects={limit}"
                    )
                entries = []
                for fpath, rel in walked.files:
                    digest, size = hash_file(fpath)
                    ref = "file://" + quote(os.path.abspath(fpath))
                    entries.append(ManifestEntry(rel, digest, size, ref))
                return entries, walked.skipped
            if not os.path.isfile(local):
                raise FileNotFoundError(f"no such file or folder: {local}")
            entry_name = validate_entry_path(name or os.path.basename(local))
            if checksum:
                digest, size = hash_file(local)
            else:
                digest, size = hash_bytes(uri.encode()), os.path.getsize(local)
            return [ManifestEntry(entry_name, digest, size, uri)], []
        if not scheme:
            raise UsageError(f"{uri!r} is not a URI; use file:///absolute/path or add_file")
        if name:
            validate_entry_path(name)  # before any request
        from wbtool.artifacts import references

        if checksum and references.handles(uri):
            return references.collect(uri, name, store=self._context().store, limit=limit), []
        # checksum=False, or a scheme nothing can read: the digest is the URI's
        entry_name = validate_entry_path(name or references.default_name(uri))
        return [ManifestEntry(entry_name, hash_bytes(uri.encode()), None, uri)], []

    def add(self, obj: Any, name: str, overwrite: bool = False) -> ArtifactManifestEntry:
        """Add a media object (anything with ``to_json()``) as a JSON file."""
        self._ensure_draft()
        overwrite = flag(overwrite, "overwrite")
        to_json = getattr(obj, "to_json", None)
        if not callable(to_json):
            raise TypeError(
                f"cannot add a {type(obj).__name__}: expected a media object with to_json()"
            )
        kind = getattr(obj, "_log_type", type(obj).__name__.lower())
        entry_name = name if name.endswith(".json") else f"{name}.{kind}.json"
        try:
            doc = to_json(self)
        except TypeError:
            doc = to_json()
        with self.new_file(entry_name, mode="w" if overwrite else "x", encoding="utf-8") as f:
            json.dump(doc, f, sort_keys=True)
        return self.get_entry(entry_name)

    @contextlib.contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None,
    ) -> Iterator[IO[Any]]:
        """Open a new file; when closed it is added to the artifact as ``name``.

        As with ``open``: mode ``"x"`` (the default) refuses a name the
        artifact has (ValueError), ``"w"`` replaces that entry, and ``"a"``
        appends to its content; add ``"b"`` to write bytes."""
        self._ensure_draft()
        if "r" in mode or sum(c in mode for c in "wxa") != 1:
            raise UsageError(f"new_file opens a file to write: mode {mode!r} does not write "
                             '(use "x", "w" or "a", with "b" for bytes)')
        entry_name = validate_entry_path(name)
        old = self._manifest.get(entry_name)
        if old is not None and "x" in mode:
            raise UsageError(f"{entry_name!r} is already in the artifact: mode 'x' makes a "
                             "new file (mode 'w' replaces it)")
        if old is not None and "a" in mode and old.ref is not None:
            raise UsageError(f"{entry_name!r} is a reference to {old.ref}: mode 'a' appends "
                             "to a file kept in the store (mode 'w' replaces it)")
        binary = "b" in mode
        ctx = self._context()
        ctx.store.tmp.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=ctx.store.tmp, prefix=".new-file-")
        os.close(fd)
        try:
            if old is not None and "a" in mode:
                Path(tmp).write_bytes(ctx.store.objects.read_bytes(old.digest))
            open_mode = ("a" if "a" in mode else "w") + ("b" if binary else "")
            with open(tmp, open_mode, encoding=None if binary else (encoding or "utf-8")) as f:
                yield f
            entries, _ = ingest.ingest(ctx.store, [(tmp, entry_name)], skip_cache=True)
            entries[0].local_path = None
            self._put(entries, overwrite=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def remove(self, item: str | ManifestEntry) -> None:
        """Remove a file, or every file under a folder path."""
        self._ensure_draft()
        path = item.path if isinstance(item, ManifestEntry) else validate_entry_path(str(item))
        if path in self._manifest:
            self._manifest.remove(path)
            return
        under = [p for p in self._manifest.entries if p.startswith(path + "/")]
        if not under:
            raise FileNotFoundError(f"{path!r} is not in the artifact")
        for p in under:
            self._manifest.remove(p)

    def get_entry(self, name: str) -> ArtifactManifestEntry:
        """The entry at ``name``; KeyError (EntryNotFoundError) if there is none.

        Unlike W&B, a draft's entries can be read too (its files are in the
        local store from the moment they are added); only the entry's
        ``download`` needs a logged version."""
        entry = self._manifest.get(validate_entry_path(str(name)))
        if entry is None:
            raise EntryNotFoundError(name=str(name))
        return ArtifactManifestEntry.of(entry, self)

    def get_path(self, name: str) -> ArtifactManifestEntry:
        """Deprecated: use get_entry."""
        import warnings

        warnings.warn("Artifact.get_path is deprecated: use get_entry", DeprecationWarning,
                      stacklevel=2)
        return self.get_entry(name)

    def get(self, name: str) -> Any:
        """The media object added at ``name``: a ``wbtool.Table``, ``Image``,
        ``Histogram``, ``Audio``, ``Video``, ``Html`` or ``Object3D`` for theirs,
        else the JSON document stored (None if absent)."""
        self._ensure_logged("get")
        for candidate in (name, *[p for p in self._manifest.entries
                                  if p.startswith(name + ".") and p.endswith(".json")]):
            entry = self._manifest.get(candidate)
            if entry is not None and entry.ref is None:
                doc = json.loads(self._context().store.objects.read_bytes(entry.digest))
                from wbtool.media.documents import MEDIA_DOCUMENTS, from_document

                if isinstance(doc, dict) and doc.get("_type") in MEDIA_DOCUMENTS:

                    return from_document(doc, self._read_entry)
                return doc
        return None

    def _read_entry(self, name: str) -> bytes:
        """The bytes of a file of the artifact (stored in the store, not a reference)."""
        entry = self._manifest.get(validate_entry_path(name))
        if entry is None or entry.ref is not None:
            raise EntryNotFoundError(name=name)
        return self._context().store.objects.read_bytes(entry.digest)

    def get_added_local_path_name(self, local_path: str) -> str | None:
        return self._local_names.get(os.path.abspath(local_path))

    # -- reading content -----------------------------------------------------------
    def _default_root(self) -> str:
        return os.path.join(".", "artifacts", self.name)

    def _root(self, root: str | os.PathLike[str] | None, action: str) -> str:
        """The folder ``root`` names (default: :meth:`_default_root`). An empty
        one, as an unset variable gives, is refused: it was read as the
        current folder, where a download writes over files of the same names."""
        if root is None:
            return self._default_root()
        target = os.fspath(root)
        if target == "":
            raise UsageError(f"name the folder to {action}: root is empty")
        return target

    def download(
        self,
        root: str | None = None,
        allow_missing_references: bool = False,
        skip_cache: bool | None = None,
        path_prefix: str | None = None,
        multipart: bool | None = None,
        *,
        link: str = "auto",
    ) -> str:
        """Write the files under ``root`` (default ``./artifacts/<name>:<version>``).

        Files under ``root`` that the artifact lacks are left alone. The
        files come from the local store (or the default remote for objects
        it lacks), so ``skip_cache`` and ``multipart`` are accepted and have
        no effect."""
        self._ensure_logged("download")
        allow_missing_references = flag(allow_missing_references, "allow_missing_references")
        target = self._root(root, "download into")
        self._write_out(self._manifest, target, path_prefix=path_prefix, link=link,
                        allow_missing_references=allow_missing_references)
        return str(Path(target).absolute())

    def _write_out(self, manifest: Manifest, target: str, **options: Any) -> None:
        """materialize ``manifest`` under ``target``, fetching from the default
        remote any object this store lacks."""
        from wbtool.remote import fallback

        ctx = self._context()
        fallback.with_objects(ctx.registry, manifest, lambda: materialize.materialize(
            ctx.store, manifest, target, **options))

    def file(self, root: str | None = None) -> str:
        """Download a single-file artifact; return the file's path."""
        self._ensure_logged("file")
        if len(self._manifest) != 1:
            raise UsageError(f"{self.name} holds {len(self._manifest)} files, not exactly one")
        folder = self.download(root)
        return os.path.join(folder, next(iter(self._manifest)).path)

    def files(
        self, names: list[str] | None = None, per_page: int = 50
    ) -> list[ArtifactManifestEntry]:
        """The entries, sorted by path (all at once: ``per_page`` has no
        effect); with ``names``, those entries, in that order, and KeyError
        for a name the artifact lacks. Each entry has the ``name``, ``size``
        and ``download`` that W&B's File objects have."""
        self._ensure_logged("files")
        if names is None:
            entries = self._manifest.entries
            return [ArtifactManifestEntry.of(entries[p], self) for p in sorted(entries)]
        return [self.get_entry(n) for n in names]

    def checkout(self, root: str | None = None, *, link: str = "auto",
                 force: bool = False) -> str:
        """Make ``root`` hold exactly this artifact: files there that it lacks
        are deleted. Files that no version of this collection has are deleted
        only with ``force``: without it, a folder holding any is refused
        (ConflictError) and nothing is deleted. The filesystem's root and the
        home folder are always refused."""
        self._ensure_logged("checkout")
        force = flag(force, "force")
        target = self._root(root, "check out into")
        materialize.refuse_dangerous_root(target)
        ctx = self._context()
        materialize.store_under(ctx.store, target)  # refused before anything is made
        Path(target).mkdir(parents=True, exist_ok=True)
        check = None
        if not force:
            assert self._rec is not None  # logged
            check = materialize.only_versions_files(ctx.registry, self._rec, target,
                                                    "pass force=True to delete them")
        materialize.remove_extras(ctx.store, target, self._manifest, check=check)
        from wbtool.remote import fallback

        fallback.with_objects(ctx.registry, self._manifest, lambda: materialize.materialize(
            ctx.store, self._manifest, target, link=link, replace=True,
        ))
        return str(Path(target).absolute())

    def verify(self, root: str | None = None) -> None:
        """Raise ValueError unless ``root`` matches the manifest exactly."""
        self._ensure_logged("verify")
        target = self._root(root, "verify")
        if root is None and not os.path.isdir(target):
            self.download(target)
        materialize.verify_tree(self._manifest, target, self._context().store)

    # -- committing -------------------------------------------------------------------
    def is_draft(self) -> bool:
        return self._rec is None

    def finalize(self) -> None:
        """Refuse changes to the files from now on, as after logging."""
        self._final = True
        self._manifest.freeze(self.name)

    def new_draft(self) -> Artifact:
        """A draft holding this version's entries, to log an incremental version
        (of the source's collection, for a link: a portfolio only holds links)."""
        self._ensure_logged("new_draft")
        source = self.source_artifact
        draft = Artifact(source._collection_name, source._type, source._description,
                         dict(source._metadata))
        draft._ctx = self._ctx
        draft._project = source._project
        draft._manifest = source._manifest.copy()
        return draft

    def save(self, project: str | None = None, settings: Any = None) -> None:
        """Commit a draft as the next version, or persist changed aliases, tags,
        ttl, description and metadata of a logged one.

        A draft saved while a run is current (and writes to the same store)
        is logged by that run, as ``run.log_artifact`` would (a disabled
        run logs nothing: the artifact stays a draft). Outside a run
        the version is committed with no producing run: unlike W&B, no run
        of type "auto" is created for it, so ``logged_by()`` gives None."""
        if self._rec is None and settings is None:
            run = self._current_run()
            if run is not None:
                if project is not None:
                    self._project = validate_name(project, "project name")
                run.log_artifact(self)
                return
        if settings is not None and self._ctx is None:
            self._ctx = Context.from_settings(settings)
        ctx = self._context()
        check_metadata(self._metadata)
        if self._rec is not None:
            rec = ctx.registry.update(
                self._rec, aliases=self._aliases, tags=self._tags,
                description=self._description or "", metadata=self._metadata,
                ttl=None if self._ttl is None else self._ttl.total_seconds(),
            )
            self._load_record(rec)
            return
        self._commit(ctx, project=project)

    def _current_run(self) -> Any:
        """The current, open run writing to this artifact's store (or writing
        nothing: a disabled run), or None."""
        from wbtool.runs.current import current

        run = current()
        if run is None or run._finished:
            return None
        if run._ctx is None:
            return run
        if self._ctx is not None and (os.path.realpath(self._ctx.store.path)
                                      != os.path.realpath(run._ctx.store.path)):
            return None
        return run

    @gc_paused
    def _commit(
        self, ctx: Context, *, project: str | None = None, aliases: list[str] | None = None,
        run_id: str | None = None, history_step: int | None = None,
        check_only: Collection[str] | None = None, on_top_of: Based | None = None,
    ) -> Artifact:
        self._project = project or self._project or ctx.project
        validate_name(self._project, "project name")
        check_metadata(self._metadata)
        if self._incremental and on_top_of is None:
            return self._commit_incremental(ctx, aliases, run_id, history_step, check_only)
        rec = ctx.registry.commit(
            self._project, self._collection_name, self._type, self._manifest,
            description=self._description, metadata=self._metadata,
            aliases=[*self._aliases, *(aliases or [])], tags=self._tags,
            ttl=None if self._ttl is None else self._ttl.total_seconds(),
            run_id=run_id, history_step=history_step,
            check_only=check_only, on_top_of=on_top_of,
        )
        self.noop = rec.noop  # same digest as the latest version: same entries
        self._load_record(rec)
        return self

    def _commit_incremental(
        self, ctx: Context, aliases: list[str] | None, run_id: str | None,
        history_step: int | None, check_only: Collection[str] | None,
    ) -> Artifact:
        """``incremental=True``: this draft's entries on top of the files of
        the latest version (as of the moment the version is recorded).

        A version logged meanwhile is a try lost to a writer that has
        finished, so trying again makes progress; only a collection that
        others keep growing for INCREMENTAL_WAIT_SECONDS wears it out.
        Until a try succeeds the draft holds only its own entries: a failed
        save, tried again, goes on top of the latest version then, without
        the files of the one that was latest before.
        """
        assert self._project is not None
        mine = self._manifest
        deadline = time.monotonic() + INCREMENTAL_WAIT_SECONDS
        while True:
            with ctx.store.lock(exclusive=False):  # the latest's objects stay
                self._manifest, based = ctx.registry.latest_files(
                    self._project, self._collection_name)
                for entry in mine:
                    self._manifest.add(entry)
                try:
                    return self._commit(ctx, aliases=aliases, run_id=run_id,
                                        history_step=history_step, check_only=check_only,
                                        on_top_of=based)
                except LatestMovedError:
                    self._manifest = mine
                    if time.monotonic() > deadline:
                        raise
                except BaseException:
                    self._manifest = mine
                    raise

    def wait(self, timeout: int | None = None) -> Artifact:
        """Return this artifact: saving and logging finish before they return,
        so there is nothing to wait for."""
        return self

    def delete(self, delete_aliases: bool = False) -> None:
        delete_aliases = flag(delete_aliases, "delete_aliases")  # "False" would delete it
        rec = self._ensure_logged("delete")
        self._context().registry.delete(rec, delete_aliases=delete_aliases)
        self._deleted = True

    def link(self, target_path: str, aliases: list[str] | None = None) -> Artifact:
        """Link this version into a portfolio: ``portfolio``, ``project/portfolio``,
        ``entity/project/portfolio`` or ``model-registry/<name>``. A store has
        one entity: where the ``entity`` setting names it, a target in another
        is not found (OtherEntityError), and nothing is linked."""
        rec = self._ensure_logged("link")
        parts = target_path.strip("/").split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise UsageError(f"invalid link target {target_path!r}")
        portfolio = parts[-1]
        project = parts[-2] if len(parts) >= 2 else self.project
        ctx = self._context()
        if len(parts) == 3:
            validate_name(project, "project name")
            validate_name(portfolio, "portfolio name")
            check_entity(parts[0], ctx.named_entity, target_path)
        linked = ctx.registry.link(rec, project, portfolio, name_list(aliases))
        return Artifact._from_record(ctx, linked)

    def unlink(self) -> None:
        rec = self._ensure_logged("unlink")
        if not rec.is_link:
            raise UsageError(f"{self.name} is not a link in a portfolio collection")
        self._context().registry.delete(rec)
        self._deleted = True

    def logged_by(self) -> Any:
        """The run that logged this version, or None."""
        from wbtool.runs.public import get_run

        rec = self._ensure_logged("logged_by")
        if rec.run_id is None:
            return None
        try:
            return get_run(self._context(), rec.run_id)
        except NotFoundError:
            return None

    def used_by(self) -> list[Any]:
        """The runs that used this version as an input."""
        from wbtool.runs.public import get_run

        rec = self._ensure_logged("used_by")
        out = []
        for run_id in self._context().registry.runs_of(rec, "input"):
            try:
                out.append(get_run(self._context(), run_id))
            except NotFoundError:
                continue
        return out

    def json_encode(self) -> dict[str, Any]:
        return {
            "_type": "artifactVersion" if self._rec is not None else "artifact",
            "id": self.id,
            "name": self.name,
            "type": self._type,
            "project": self.project,
            "entity": self.entity,
            "version": None if self._rec is None else self._rec.version,
            "digest": self.digest,
            "size": self.size,
            "file_count": self.file_count,
            "state": self.state,
            "aliases": list(self._aliases),
            "tags": list(self._tags),
            "description": self._description,
            "metadata": self._metadata,
        }

    def __repr__(self) -> str:
        return f"<Artifact {self.name} type={self._type} files={self.file_count}>"


class ArtifactManifestEntry(ManifestEntry):
    """An entry of an artifact, as ``get_entry`` and ``files`` give it: it
    can write its one file out (``download``) and name what it references."""

    __slots__ = ("_artifact",)
    _artifact: Artifact

    @property
    def name(self) -> str:
        """The entry's path in the artifact (what W&B's File objects call name)."""
        return self.path

    @classmethod
    def of(cls, entry: ManifestEntry, artifact: Artifact) -> ArtifactManifestEntry:
        bound = cls(entry.path, entry.digest, entry.size, entry.ref, entry.extra,
                    entry.local_path)
        bound._artifact = artifact
        return bound

    def download(self, root: str | None = None, skip_cache: bool | None = None) -> str:
        """Write this file under ``root`` (default: where the artifact's
        ``download`` writes) at its path in the artifact; return that path."""
        art = self._artifact
        art._ensure_logged("download")
        target = art._root(root, "download into")
        art._write_out(Manifest([ManifestEntry(self.path, self.digest, self.size, self.ref,
                                               self.extra)]), target)
        return str(Path(target).absolute() / self.path)

    def ref_target(self) -> str:
        """The URI this entry references; ValueError for a file kept in the store."""
        if self.ref is None:
            raise ValueError(f"{self.path!r} is not a reference: its file is in the store")
        return self.ref
