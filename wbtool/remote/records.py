"""What a remote holds for artifacts: paths, version records, alias events,
lineage records and link events.

    objects/ab/cd…                                        immutable, named by digest
    manifests/<digest>.json                               the canonical manifest bytes
    projects/<p>/artifacts/<name>/versions/v<N>.json      a version record, created exclusively
    projects/<p>/artifacts/<name>/aliases/<seq>.json      an alias event, created exclusively
    projects/<p>/lineage/<name>/v<N>/<dir>-<run>.json     run <run> used (dir ``input``) or
                                                          logged (``output``) version v<N>;
                                                          created exclusively, never changed
    projects/<p>/links/<portfolio>/<seq>.json             a link event, created exclusively

Records are canonical JSON carrying a format number. Everything read back
is validated before it is used: a record that cannot be parsed (truncated,
not JSON) is :class:`UnreadableRecordError`, one whose fields have the wrong
type or shape is :class:`BadRecordError`. Alias events form an append-only
log per collection; the event with the highest sequence number wins for its
alias, and an event whose ``version`` is null removes the alias. ``latest``
is never recorded: it always names the highest version.

A lineage record states one fact, whole in its path (its content repeats
it): the same fact pushed from two stores is the same file. Link events form
an append-only log per portfolio collection, as alias events do: each names
a source version (project, name and its version number on the remote) and
the aliases its link carries in the portfolio from then on, or null: the
link was removed. An alias names one link of a portfolio at a time, so an
event that gives a link an alias takes it from any other. Lineage records
and link events live outside ``artifacts/``: a reader that knows nothing of
them (an older wbtool) never lists them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wbtool.artifacts.metadata import check_metadata
from wbtool.errors import InvalidNameError, StoreError, UsageError
from wbtool.hashing import is_digest
from wbtool.names import MAX_VERSION, validate_alias, validate_name, validate_tag

RECORD_FORMAT = 1
SEQ_WIDTH = 10
_VERSION_FILE = re.compile(r"v(0|[1-9][0-9]{0,17})\.json")
_ALIAS_FILE = re.compile(r"([0-9]{" + str(SEQ_WIDTH) + r",18})\.json")
_VERSION_DIR = re.compile(r"v(0|[1-9][0-9]{0,17})")
_LINEAGE_FILE = re.compile(r"(input|output)-([A-Za-z0-9_-]{1,64})\.json")
DIRECTIONS = ("input", "output")


class UnreadableRecordError(StoreError):
    """{path}: unreadable record ({reason})"""


class BadRecordError(StoreError):
    """{path}: refused record ({reason})"""


# -- paths --------------------------------------------------------------------------------------

def object_path(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest[2:]}"


def manifest_path(digest: str) -> str:
    return f"manifests/{digest}.json"


def project_prefix(project: str) -> str:
    return f"projects/{validate_name(project, 'project name')}/artifacts"


def collection_prefix(project: str, name: str) -> str:
    return f"{project_prefix(project)}/{validate_name(name)}"


def version_path(project: str, name: str, idx: int) -> str:
    return f"{collection_prefix(project, name)}/versions/v{idx}.json"


def alias_path(project: str, name: str, seq: int) -> str:
    return f"{collection_prefix(project, name)}/aliases/{seq:0{SEQ_WIDTH}d}.json"


def lineage_prefix(project: str, name: str | None = None) -> str:
    base = f"projects/{validate_name(project, 'project name')}/lineage"
    return base if name is None else f"{base}/{validate_name(name)}"


def lineage_path(project: str, name: str, idx: int, direction: str, run_id: str) -> str:
    return f"{lineage_prefix(project, name)}/v{idx}/{direction}-{run_id}.json"


def links_prefix(project: str, portfolio: str | None = None) -> str:
    base = f"projects/{validate_name(project, 'project name')}/links"
    return base if portfolio is None else f"{base}/{validate_name(portfolio)}"


def link_path(project: str, portfolio: str, seq: int) -> str:
    return f"{links_prefix(project, portfolio)}/{seq:0{SEQ_WIDTH}d}.json"


def digest_of_object_path(path: str) -> str | None:
    """``objects/ab/cd…`` → ``abcd…`` (None for anything else)."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "objects" and len(parts[1]) == 2:
        digest = parts[1] + parts[2]
        return digest if is_digest(digest) else None
    return None


def digest_of_manifest_path(path: str) -> str | None:
    if path.startswith("manifests/") and path.endswith(".json"):
        digest = path[len("manifests/"):-len(".json")]
        return digest if is_digest(digest) else None
    return None


@dataclass
class CollectionListing:
    """The version numbers and alias event numbers present for one collection."""

    project: str
    name: str
    versions: set[int] = field(default_factory=set)
    aliases: set[int] = field(default_factory=set)

    def next_version(self) -> int:
        return max(self.versions) + 1 if self.versions else 0

    def next_seq(self) -> int:
        return max(self.aliases) + 1 if self.aliases else 0


def parse_listing(project: str, paths: Iterable[str]) -> tuple[dict[str, CollectionListing],
                                                                list[str]]:
    """Group a listing of ``projects/<project>/artifacts`` by collection.

    Returns the collections and what was ignored, for warnings: stray files,
    and each folder whose name is no collection name once (as ``<folder>/``).
    """
    base = project_prefix(project) + "/"
    out: dict[str, CollectionListing] = {}
    ignored: dict[str, None] = {}  # in order, once each
    for path in paths:
        if not path.startswith(base):
            ignored[path] = None
            continue
        parts = path[len(base):].split("/")
        if len(parts) > 1 and not is_valid_name(parts[0]):
            ignored[f"{base}{parts[0]}/"] = None
            continue
        if len(parts) != 3:
            ignored[path] = None
            continue
        name, kind, leaf = parts
        coll = out.setdefault(name, CollectionListing(project, name))
        if kind == "versions" and (m := _VERSION_FILE.fullmatch(leaf)):
            coll.versions.add(int(m.group(1)))
        elif kind == "aliases" and (m := _ALIAS_FILE.fullmatch(leaf)):
            coll.aliases.add(int(m.group(1)))
        else:
            ignored[path] = None
    return out, list(ignored)


LineageKey = tuple[str, int, str, str]  # name, remote version number, direction, run id


def parse_lineage_listing(project: str, paths: Iterable[str]) -> tuple[list[LineageKey],
                                                                        list[str]]:
    """The lineage records of a listing of ``projects/<project>/lineage``, and
    what was ignored (for warnings), as :func:`parse_listing` does."""
    base = lineage_prefix(project) + "/"
    out: list[LineageKey] = []
    ignored: dict[str, None] = {}
    for path in paths:
        parts = path[len(base):].split("/") if path.startswith(base) else []
        if len(parts) > 1 and not is_valid_name(parts[0]):
            ignored[f"{base}{parts[0]}/"] = None
        elif (len(parts) == 3 and (v := _VERSION_DIR.fullmatch(parts[1]))
                and (m := _LINEAGE_FILE.fullmatch(parts[2]))):
            out.append((parts[0], int(v.group(1)), m.group(1), m.group(2)))
        else:
            ignored[path] = None
    return out, list(ignored)


def parse_links_listing(project: str, paths: Iterable[str]) -> tuple[dict[str, set[int]],
                                                                      list[str]]:
    """portfolio → the sequence numbers of its link events, from a listing of
    ``projects/<project>/links``, and what was ignored (for warnings)."""
    base = links_prefix(project) + "/"
    out: dict[str, set[int]] = {}
    ignored: dict[str, None] = {}
    for path in paths:
        parts = path[len(base):].split("/") if path.startswith(base) else []
        if len(parts) > 1 and not is_valid_name(parts[0]):
            ignored[f"{base}{parts[0]}/"] = None
        elif len(parts) == 2 and (m := _ALIAS_FILE.fullmatch(parts[1])):
            out.setdefault(parts[0], set()).add(int(m.group(1)))
        else:
            ignored[path] = None
    return out, list(ignored)


def ignored_warning(display: str) -> str:
    """The warning for a path of a listing that :func:`parse_listing` (or a
    caller like it) ignored; ``display`` is its URL, a folder's ending in ``/``."""
    if display.endswith("/"):
        return f"ignored unexpected remote folder {display} (not a valid name)"
    return f"ignored unexpected remote file {display}"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` (a folder found on a remote) is a valid project or artifact name."""
    try:
        validate_name(name)
    except InvalidNameError:
        return False
    return True


def is_version_record_path(path: str) -> bool:
    """Whether ``path`` is shaped like ``…/artifacts/<name>/versions/v<N>.json``."""
    parts = path.split("/")
    return (len(parts) >= 4 and parts[-4] == "artifacts" and parts[-2] == "versions"
            and _VERSION_FILE.fullmatch(parts[-1]) is not None)


# -- records ------------------------------------------------------------------------------------

def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load(data: bytes, path: str, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableRecordError(path=path, reason=f"not valid JSON: {e}") from None
    except RecursionError:
        raise UnreadableRecordError(path=path, reason="not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadRecordError(path=path, reason="not a JSON object")
    if doc.get("format") != RECORD_FORMAT:
        raise BadRecordError(path=path, reason=f"unsupported format {doc.get('format')!r}")
    if doc.get("kind") != kind:
        raise BadRecordError(path=path, reason=f"not an {kind} record")
    return doc


def _is_int(value: Any) -> bool:
    """A count, size or version number that a store can hold (SQLite's INTEGER)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_VERSION


LATEST_TIME = 253402300800  # 10000-01-01T00:00:00Z: the end of what a date can show


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _event_time(value: Any, path: str) -> float:
    """An event's ``time`` as a float; a value that is none is refused."""
    try:
        if _is_number(value):
            return float(value)
    except OverflowError:  # an integer of more digits than a float holds
        pass
    raise BadRecordError(path=path, reason="time is not a number")


@dataclass(frozen=True)
class VersionRecordDoc:
    """One version of a collection on a remote."""

    project: str
    name: str
    version: int
    digest: str  # the artifact digest (of the canonical entries)
    manifest: str  # the digest of the canonical manifest bytes
    size: int
    file_count: int
    type: str
    description: str | None
    metadata: dict[str, Any]
    created_at: float
    run_id: str | None = None
    tags: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        return _canonical({
            "format": RECORD_FORMAT, "kind": "artifact-version",
            "project": self.project, "name": self.name, "version": self.version,
            "digest": self.digest, "manifest": self.manifest, "size": self.size,
            "file_count": self.file_count, "type": self.type,
            "description": self.description, "metadata": self.metadata,
            "created_at": self.created_at, "run_id": self.run_id, "tags": list(self.tags),
        })

    @classmethod
    def from_bytes(cls, data: bytes, path: str, project: str, name: str,
                   version: int) -> VersionRecordDoc:
        """Parse and validate the record found at ``path`` (which names project,
        name and version: the record must agree with them)."""
        doc = _load(data, path, "artifact-version")

        def bad(reason: str) -> BadRecordError:
            return BadRecordError(path=path, reason=reason)

        if (doc.get("project"), doc.get("name"), doc.get("version")) != (project, name, version):
            raise bad("its project, name or version disagrees with its path")
        for key in ("digest", "manifest"):
            if not is_digest(doc.get(key)):
                raise bad(f"{key} is not a digest")
        for key in ("size", "file_count"):
            if not _is_int(doc.get(key)):
                raise bad(f"{key} is not an integer from 0 to {MAX_VERSION}")
        try:
            validate_name(doc.get("type"), "artifact type")  # type: ignore[arg-type]
            tags = doc.get("tags", [])
            if not isinstance(tags, list):
                raise bad("tags is not a list")
            for t in tags:
                validate_tag(t)
        except InvalidNameError as e:
            raise bad(str(e)) from None
        description = doc.get("description")
        if description is not None and not isinstance(description, str):
            raise bad("description is not a string")
        metadata = doc.get("metadata", {})
        if not isinstance(metadata, dict):
            raise bad("metadata is not an object")
        try:
            metadata = check_metadata(metadata)
        except UsageError as e:
            raise bad(str(e)) from None
        if not _is_number(doc.get("created_at")):
            raise bad("created_at is not a number")
        if not 0 <= doc["created_at"] < LATEST_TIME:  # NaN fails too
            raise bad("created_at is not a time between 1970 and 9999")
        run_id = doc.get("run_id")
        if run_id is not None:
            from wbtool.runs.ids import validate_id

            try:
                validate_id(run_id)
            except InvalidNameError as e:
                raise bad(str(e)) from None
        return cls(project=project, name=name, version=version, digest=doc["digest"],
                   manifest=doc["manifest"], size=doc["size"], file_count=doc["file_count"],
                   type=doc["type"], description=description, metadata=metadata,
                   created_at=float(doc["created_at"]), run_id=run_id, tags=tuple(tags))


@dataclass(frozen=True)
class AliasEvent:
    """``alias`` now names ``version`` (None: the alias was removed)."""

    alias: str
    version: int | None
    time: float

    def to_bytes(self) -> bytes:
        return _canonical({"format": RECORD_FORMAT, "kind": "artifact-alias",
                           "alias": self.alias, "version": self.version, "time": self.time})

    @classmethod
    def from_bytes(cls, data: bytes, path: str) -> AliasEvent:
        doc = _load(data, path, "artifact-alias")
        alias, version, time = doc.get("alias"), doc.get("version"), doc.get("time")
        try:
            validate_alias(alias)  # type: ignore[arg-type]
        except InvalidNameError as e:
            raise BadRecordError(path=path, reason=str(e)) from None
        if version is not None and not _is_int(version):
            raise BadRecordError(path=path,
                                 reason=f"version is not an integer from 0 to {MAX_VERSION}")
        return cls(alias=alias, version=version,  # type: ignore[arg-type]
                   time=_event_time(time, path))


def alias_state(events: Iterable[tuple[int, AliasEvent]]) -> dict[str, int]:
    """alias → version after replaying ``(seq, event)`` pairs in sequence order."""
    state: dict[str, int | None] = {}
    for _seq, event in sorted(events, key=lambda pair: pair[0]):
        state[event.alias] = event.version
    return {alias: v for alias, v in state.items() if v is not None}


@dataclass(frozen=True)
class LineageRecord:
    """Run ``run_id`` used (``input``) or logged (``output``) version ``version``."""

    project: str
    name: str
    version: int
    direction: str
    run_id: str

    def to_bytes(self) -> bytes:
        return _canonical({"format": RECORD_FORMAT, "kind": "artifact-lineage",
                           "project": self.project, "name": self.name,
                           "version": self.version, "direction": self.direction,
                           "run_id": self.run_id})

    @classmethod
    def from_bytes(cls, data: bytes, path: str, project: str, name: str, version: int,
                   direction: str, run_id: str) -> LineageRecord:
        """Parse the record found at ``path``, which must agree with what its path says."""
        doc = _load(data, path, "artifact-lineage")
        found = (doc.get("project"), doc.get("name"), doc.get("version"),
                 doc.get("direction"), doc.get("run_id"))
        if found != (project, name, version, direction, run_id):
            raise BadRecordError(path=path, reason="its fields disagree with its path")
        return cls(project, name, version, direction, run_id)


SourceKey = tuple[str, str, int]  # project, name, remote version number


@dataclass(frozen=True)
class LinkEvent:
    """The link to ``source`` now carries ``aliases`` in its portfolio (None:
    the link was removed)."""

    source: SourceKey
    aliases: tuple[str, ...] | None
    time: float

    def to_bytes(self) -> bytes:
        project, name, version = self.source
        return _canonical({
            "format": RECORD_FORMAT, "kind": "artifact-link",
            "source": {"project": project, "name": name, "version": version},
            "aliases": None if self.aliases is None else sorted(self.aliases),
            "time": self.time})

    @classmethod
    def from_bytes(cls, data: bytes, path: str) -> LinkEvent:
        doc = _load(data, path, "artifact-link")

        def bad(reason: str) -> BadRecordError:
            return BadRecordError(path=path, reason=reason)

        source, aliases, time = doc.get("source"), doc.get("aliases"), doc.get("time")
        if not isinstance(source, dict):
            raise bad("source is not an object")
        project, name, version = source.get("project"), source.get("name"), source.get("version")
        try:
            validate_name(project, "project name")  # type: ignore[arg-type]
            validate_name(name)  # type: ignore[arg-type]
            if aliases is not None:
                if not isinstance(aliases, list):
                    raise bad("aliases is not a list")
                for a in aliases:
                    validate_alias(a)
        except InvalidNameError as e:
            raise bad(str(e)) from None
        if not _is_int(version):
            raise bad(f"source version is not an integer from 0 to {MAX_VERSION}")
        return cls(source=(project, name, version),  # type: ignore[arg-type]
                   aliases=None if aliases is None else tuple(sorted(set(aliases))),
                   time=_event_time(time, path))


def link_state(events: Iterable[tuple[int, LinkEvent]]) -> dict[SourceKey, tuple[str, ...]]:
    """source → the aliases of its link, after replaying ``(seq, event)`` pairs
    in sequence order (a source left out has no link)."""
    state: dict[SourceKey, tuple[str, ...]] = {}
    for _seq, event in sorted(events, key=lambda pair: pair[0]):
        if event.aliases is None:
            state.pop(event.source, None)
            continue
        taken = set(event.aliases)
        for other, names in state.items():
            if other != event.source and taken & set(names):
                state[other] = tuple(a for a in names if a not in taken)
        state[event.source] = event.aliases
    return state
