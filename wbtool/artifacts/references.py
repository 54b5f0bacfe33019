"""References to files that stay where they are: object stores and http(s).

``Artifact.add_reference`` with ``checksum=True`` records, for each object,
its size and what the store says identifies its content, without copying a
byte into the local store:

- S3: the ETag, and the version id when the bucket is versioned;
- GCS: the MD5 hash (else the ETag) and the generation;
- Azure Blob (``az://`` or ``https://ACCOUNT.blob.core.windows.net/...``):
  the ETag, the Content-MD5 when the blob has one, and the version id when
  the account keeps versions;
- http(s): the ETag of one HEAD request, or, when the server gives none, the
  digest of the body (streamed, never held in memory).

The entry's digest is derived from that identity (``xxh3("etag:" + ETag)``,
``xxh3("md5:" + hex)``, or the content digest for http without an ETag) and
the identity itself goes into the entry's ``extra``, so that a download can
fetch exactly the recorded version where the store keeps versions, and can
otherwise tell that an object changed since it was logged.

A URI naming a prefix ("folder") is listed once; each object becomes an
entry named by its key relative to the prefix. Keys that do not make a clean
relative path (``..`` segments, empty segments, a key that is also a folder
of another key) are refused: nothing read from a bucket can name a file
outside the download root.

Object stores are reached through :mod:`wbtool.remote.fs` (the only module
that imports fsspec). Credentials and endpoints come from each backend's
usual environment (``AWS_*`` including ``AWS_ENDPOINT_URL``,
``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``...); when the
store's ``config.yaml`` has a remote in the same bucket, that remote's options
(an ``endpoint_url``, a profile) are used too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import stat as stat_mod
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from wbtool import fsutil
from wbtool.errors import (
    InvalidNameError,
    NotFoundError,
    UsageError,
    VerificationError,
)
from wbtool.hashing import hash_bytes, hash_file, new_hasher
from wbtool.manifest import ManifestEntry
from wbtool.names import validate_entry_path
from wbtool.remote.fs import BACKENDS, FsspecRemote, open_remote, unreachable

if TYPE_CHECKING:
    from wbtool.store.layout import Store

HTTP_TIMEOUT = 60  # seconds without a byte from the server
CHUNK = 1 << 20
AZURE_HOST = ".blob.core.windows.net"
HTTP_SCHEMES = ("http", "https")
# Schemes that name the same service, so that a remote configured as s3://
# also serves references written s3a://.
_FAMILY = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs",
           "az": "az", "abfs": "az", "abfss": "az"}
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ObjectURI:
    """An object (or prefix) in a bucket: ``scheme://bucket/key``."""

    uri: str  # as the user wrote it
    scheme: str  # a key of BACKENDS ("az" for an https Azure URL)
    bucket: str  # bucket or container
    key: str  # "" for the whole bucket; no leading slash
    account: str | None = None  # from https://ACCOUNT.blob.core.windows.net/...

    @property
    def family(self) -> str:
        return _FAMILY[self.scheme]

    @property
    def full(self) -> str:
        """The fsspec path: ``bucket/key``."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def child(self, key: str) -> str:
        """The URI of the object ``key`` in the same bucket, spelt like this one."""
        if self.account is not None:
            return (f"https://{self.account}{AZURE_HOST}/{quote(self.bucket)}/"
                    f"{quote(key)}")
        return f"{self.scheme}://{self.bucket}/{key}"


def parse_object_uri(uri: str) -> ObjectURI | None:
    """The bucket and key of an object-store URI; None for anything else.

    Keys are taken as written (``s3://b/a b#1`` is the key ``a b#1``), as the
    stores' own tools do; an https Azure URL is a real URL, so its path is
    percent-decoded.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    if scheme in HTTP_SCHEMES:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        if scheme != "https" or not host.endswith(AZURE_HOST) or parts.query:
            return None
        account = host[: -len(AZURE_HOST)]
        container, _, key = unquote(parts.path).lstrip("/").partition("/")
        if not account or not container:
            raise UsageError(f"{uri!r} names no container: use "
                             f"https://ACCOUNT{AZURE_HOST}/CONTAINER/PATH")
        return ObjectURI(uri, "az", container, key, account)
    if scheme not in BACKENDS:
        return None
    bucket, _, key = rest.partition("/")
    if not bucket or "\0" in uri:
        raise UsageError(f"invalid reference {uri!r}: name a bucket, as in "
                         f"{scheme}://bucket/path")
    return ObjectURI(uri, scheme, bucket, key)


def is_http(uri: str) -> bool:
    return uri.partition("://")[0].lower() in HTTP_SCHEMES


def handles(uri: str) -> bool:
    """Whether this module checksums and downloads ``uri``."""
    return is_http(uri) or parse_object_uri(uri) is not None


def default_name(uri: str) -> str:
    """The entry name of a single-object reference: the last part of its path."""
    loc = parse_object_uri(uri)
    if loc is not None:
        return loc.key.rstrip("/").rsplit("/", 1)[-1] or loc.bucket
    parts = urlsplit(uri)
    return parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.netloc


# -- identities: what an object store says about an object ----------------------------


def _unquote_etag(etag: Any) -> str | None:
    if not isinstance(etag, str) or not etag:
        return None
    return etag[1:-1] if len(etag) >= 2 and etag[0] == etag[-1] == '"' else etag


def _identity(family: str, info: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(digest, extra) of one object, from its ``info``/listing record."""
    extra: dict[str, Any] = {}
    md5: str | None = None
    if family == "s3":
        etag = _unquote_etag(info.get("ETag"))
        version = info.get("VersionId")
        if version and version != "null":
            extra["version_id"] = str(version)
    elif family == "gs":
        etag = _unquote_etag(info.get("etag"))
        if info.get("md5Hash"):
            md5 = base64.b64decode(info["md5Hash"]).hex()
        if info.get("generation"):
            extra["generation"] = str(info["generation"])
    else:  # az
        etag = _unquote_etag(info.get("etag"))
        raw_md5 = (info.get("content_settings") or {}).get("content_md5")
        if raw_md5:
            md5 = bytes(raw_md5).hex()
        if info.get("version_id"):
            extra["version_id"] = str(info["version_id"])
    if etag:
        extra["etag"] = etag
    if md5:
        extra["md5"] = md5
        return hash_bytes(f"md5:{md5}".encode()), extra
    if not etag:
        raise UsageError(f"{info.get('name')}: the store reports no ETag or hash for it; "
                         "pass checksum=False to track the URI only")
    return hash_bytes(f"etag:{etag}".encode()), extra


class Buckets:
    """Filesystems for the buckets that references live in, built once each.

    Options come from a remote configured in ``store``'s config.yaml for the
    same bucket (its ``endpoint_url``, a profile...), else from nothing: the
    backend then reads its usual environment.
    """

    def __init__(self, store: Store | None) -> None:
        self._store = store
        self._remotes: list[tuple[str, str, dict[str, Any]]] | None = None
        self._open: dict[tuple[str, str | None, str], FsspecRemote] = {}
        self._lock = threading.Lock()

    def _configured(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(family, root, options) of each configured object-store remote."""
        if self._remotes is None:
            found = []
            if self._store is not None:
                from wbtool.remote import config
                from wbtool.remote.fs import parse_url

                for spec in config.list(self._store):
                    parsed = parse_url(spec.url)
                    if not parsed.is_local:
                        found.append((_FAMILY[parsed.scheme], parsed.root, spec.options))
            self._remotes = found
        return self._remotes

    def options_for(self, loc: ObjectURI) -> dict[str, Any]:
        """The options of the configured remote that best matches ``loc``'s bucket:
        the one whose URL is the longest prefix of the reference, else any in
        the same bucket."""
        best: tuple[int, dict[str, Any]] | None = None
        path = loc.full
        for family, root, options in self._configured():
            if family != loc.family or root.partition("/")[0] != loc.bucket:
                continue
            if loc.account is not None and options.get("account_name") != loc.account:
                continue
            score = len(root) if path == root or path.startswith(root + "/") else 0
            if best is None or score > best[0]:
                best = (score, options)
        options = dict(best[1]) if best else {}
        if loc.family == "az":
            options.setdefault("version_aware", True)  # so that version ids are reported
            if loc.account is not None:
                _check_azure_account(loc)
                options.setdefault("account_name", loc.account)
        return options

    def remote(self, loc: ObjectURI) -> FsspecRemote:
        """The bucket's remote, connected.

        Building a client costs a few hundred milliseconds, so clients are kept
        for the life of the process (listings are never cached, as for every
        remote) and shared by later references to the same bucket, as long as
        the options and what the backend reads from the environment
        (``AWS_*``...) are the same.
        """
        key = (loc.family, loc.account, loc.bucket)
        with self._lock:
            remote = self._open.get(key)
            if remote is None:
                url = f"{'az' if loc.account else loc.scheme}://{loc.bucket}"
                options = self.options_for(loc)
                client = (url, repr(sorted(options.items())), _environment(loc.family))
                with _CLIENTS_LOCK:
                    remote = _CLIENTS.get(client)
                    if remote is None:
                        remote = _CLIENTS[client] = _open(url, options)
                self._open[key] = remote
        return remote


_CLIENTS: dict[tuple[str, str, int], FsspecRemote] = {}
_CLIENTS_LOCK = threading.Lock()


def _open(url: str, options: dict[str, Any]) -> FsspecRemote:
    remote = open_remote(url, options)
    assert isinstance(remote, FsspecRemote)
    remote.fs  # noqa: B018 - connect now: a bad option is reported here
    return remote


_ENVIRONMENT = {"s3": ("AWS_",), "gs": ("GOOGLE_", "GCSFS_", "STORAGE_EMULATOR_HOST"),
                "az": ("AZURE_",)}


def _environment(family: str) -> int:
    """What the backend reads from the environment (credentials, endpoints), hashed."""
    prefixes = _ENVIRONMENT[family]
    return hash(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(prefixes))))


def _check_azure_account(loc: ObjectURI) -> None:
    """adlfs prefers AZURE_STORAGE_CONNECTION_STRING over an account name: refuse
    a URL of another account rather than read the wrong one."""
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if not conn:
        return
    fields = dict(part.partition("=")[::2] for part in conn.split(";") if "=" in part)
    named = fields.get("AccountName")
    if named and named.lower() != loc.account:
        raise UsageError(f"{loc.uri} is in storage account {loc.account!r}, but "
                         f"AZURE_STORAGE_CONNECTION_STRING names {named!r}")


# -- adding references ------------------------------------------------------------------


def collect(uri: str, name: str | None, *, store: Store | None, limit: int) -> list[ManifestEntry]:
    """The entries for ``add_reference(uri, name, checksum=True)``."""
    loc = parse_object_uri(uri)
    if loc is not None:
        return _collect_objects(loc, name, Buckets(store), limit)
    if is_http(uri):
        entry_name = validate_entry_path(name or default_name(uri))
        return [_http_entry(uri, entry_name)]
    raise UsageError(f"no checksummed references to {uri!r}")  # pragma: no cover


def _collect_objects(loc: ObjectURI, name: str | None, buckets: Buckets,
                     limit: int) -> list[ManifestEntry]:
    remote = buckets.remote(loc)
    fs = remote.fs
    with remote.translate_errors(loc.key or "."):
        info = None
        if loc.key and not loc.key.endswith("/"):
            try:
                info = fs.info(loc.full)
            except FileNotFoundError:
                info = None
        if info is not None and info.get("type") == "file":
            digest, extra = _identity(loc.family, info)
            entry_name = validate_entry_path(name or default_name(loc.uri))
            return [ManifestEntry(entry_name, digest, int(info["size"]), loc.uri, extra)]
        base = loc.full.rstrip("/")
        listing = fs.find(base, detail=True)
        if isinstance(listing, list):  # some backends answer a list for a single file
            listing = {p: fs.info(p) for p in listing}
        objects = {p: i for p, i in listing.items()
                   if i.get("type") == "file" and not p.endswith("/")}
        if not objects:
            # no object and no prefix: report it as the backend's own "not found"
            # (which also tells a missing bucket apart from a missing key)
            raise FileNotFoundError(loc.full)
    if len(objects) > limit:
        raise UsageError(f"{loc.uri} holds {len(objects)} objects, more than "
                         f"max_objects={limit}")
    prefix = validate_entry_path(name) if name else ""
    entries = []
    for full in sorted(objects):
        rel = _relative_key(loc, base, full)
        digest, extra = _identity(loc.family, objects[full])
        ref = loc.child(full[len(loc.bucket) + 1:])
        entries.append(ManifestEntry(f"{prefix}/{rel}" if prefix else rel, digest,
                                     int(objects[full]["size"]), ref, extra))
    _refuse_file_folder_clashes(loc, entries)
    return entries


def _relative_key(loc: ObjectURI, base: str, full: str) -> str:
    """The entry path of object ``full`` listed under ``base``, refused unless clean."""
    if not full.startswith(base + "/"):
        raise UsageError(f"{loc.uri}: the listing returned {full!r}, which is not under it")
    rel = full[len(base) + 1:]
    try:
        clean = validate_entry_path(rel)
    except InvalidNameError as e:
        raise UsageError(f"refused object {loc.child(full[len(loc.bucket) + 1:])!r}: "
                         f"its key is no safe file name ({e.fields.get('reason', e)})") from None
    if clean != rel:
        raise UsageError(f"refused object {loc.child(full[len(loc.bucket) + 1:])!r}: "
                         "its key has empty or '.' segments, so it is no safe file name")
    return rel


def _refuse_file_folder_clashes(loc: ObjectURI, entries: list[ManifestEntry]) -> None:
    """``a`` and ``a/b`` can both be keys, but not both files in a folder."""
    paths = {e.path for e in entries}
    for e in entries:
        parent = e.path.rpartition("/")[0]
        while parent:
            if parent in paths:
                raise UsageError(f"{loc.uri}: {parent!r} is both an object and a folder of "
                                 f"{e.path!r}; reference them separately")
            parent = parent.rpartition("/")[0]


# -- http(s) ----------------------------------------------------------------------------


def _open_http(uri: str, method: str) -> Any:
    """The response to ``method uri``; errors become NotFoundError / RemoteUnreachableError."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(uri, method=method)
    try:
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in (404, 410):
            raise NotFoundError(what="referenced URL", name=uri) from None
        if method == "HEAD" and e.code in (400, 403, 405, 501):
            return None  # HEAD not allowed here: the caller falls back to GET
        raise unreachable(uri, f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise unreachable(uri, " ".join(str(reason).split()) or type(e).__name__) from None


def _content_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _http_entry(uri: str, entry_name: str) -> ManifestEntry:
    """One HEAD (a GET where HEAD is refused): size and ETag; with no ETag (or no
    length) the body is streamed and hashed."""
    response = _open_http(uri, "HEAD")
    if response is not None:
        with response:
            etag = response.headers.get("ETag")
            size = _content_length(response)
        if etag and size is not None:
            return ManifestEntry(entry_name, hash_bytes(f"etag:{etag}".encode()), size, uri,
                                 {"etag": etag})
    with _open_http(uri, "GET") as response:
        etag = response.headers.get("ETag")
        size = _content_length(response)
        if etag and size is not None:
            return ManifestEntry(entry_name, hash_bytes(f"etag:{etag}".encode()), size, uri,
                                 {"etag": etag})
        hasher = new_hasher()
        total = 0
        while chunk := _read(uri, response):
            hasher.update(chunk)
            total += len(chunk)
    return ManifestEntry(entry_name, hasher.hexdigest(), total, uri)


def _read(uri: str, response: Any) -> bytes:
    """The next chunk of a response body (b"" at its end)."""
    import http.client

    try:
        data: bytes = response.read(CHUNK)
    except (OSError, http.client.HTTPException) as e:
        raise unreachable(uri, f"reading the body failed: {e!r}") from None
    return data


def _fetch_http(entry: ManifestEntry, target: str) -> int:
    uri = entry.ref
    assert uri is not None
    expected_etag = (entry.extra or {}).get("etag")
    content_digest = entry.size is not None and not expected_etag
    with _open_http(uri, "GET") as response:
        etag = response.headers.get("ETag")
        if expected_etag and etag and etag != expected_etag:
            raise _changed(uri, f"ETag {expected_etag}, now {etag}")
        length = _content_length(response)
        if entry.size is not None and length is not None and length != entry.size:
            raise _changed(uri, f"size {entry.size}, now {length}")
        hasher = new_hasher()
        total = 0
        with open(target, "xb") as out:
            while chunk := _read(uri, response):
                out.write(chunk)
                if content_digest:
                    hasher.update(chunk)
                total += len(chunk)
    if entry.size is not None and total != entry.size:
        raise _changed(uri, f"size {entry.size}, now {total}")
    if content_digest and hasher.hexdigest() != entry.digest:
        raise _changed(uri, "its content differs")
    return total


# -- downloading references ------------------------------------------------------------


def _changed(uri: str, detail: str) -> VerificationError:
    return VerificationError(message=f"{uri} changed since it was logged ({detail}); "
                             "log a new version to track the new content")


class Fetcher:
    """Places reference entries under a download root. One per download: it
    keeps one filesystem per bucket, shared by the worker threads."""

    def __init__(self, store: Store | None) -> None:
        self._buckets = Buckets(store)

    @staticmethod
    def handles(entry: ManifestEntry) -> bool:
        return entry.ref is not None and handles(entry.ref)

    def place(self, entry: ManifestEntry, dest: Path, *, check_existing: bool,
              replace: bool) -> tuple[str, int]:
        """Fetch ``entry``'s object to ``dest`` (atomically): ("written", bytes),
        or ("unchanged", 0) when ``dest`` already holds it. A missing object is
        a NotFoundError, one that changed since it was logged a VerificationError."""
        if check_existing:
            try:
                st = os.lstat(dest)
            except FileNotFoundError:
                st = None
            if st is not None and stat_mod.S_ISDIR(st.st_mode):
                if not replace:
                    raise UsageError(f"{dest} is a folder where the artifact has a file")
                shutil.rmtree(dest)
            elif (st is not None and stat_mod.S_ISREG(st.st_mode) and st.st_size == entry.size
                  and _holds(dest, entry)):
                return "unchanged", 0
        with fsutil.as_atomic(dest) as tmp:
            if is_http(entry.ref or ""):
                size = _fetch_http(entry, tmp)
            else:
                size = self._fetch_object(entry, tmp)
            os.chmod(tmp, 0o644)
        return "written", size

    def _fetch_object(self, entry: ManifestEntry, target: str) -> int:
        assert entry.ref is not None
        loc = parse_object_uri(entry.ref)
        assert loc is not None
        if not loc.key or loc.key.endswith("/"):
            raise NotFoundError(what="referenced object", name=f"{entry.ref} (a prefix)")
        remote = self._buckets.remote(loc)
        fs = remote.fs
        extra = entry.extra or {}
        path, kwargs = loc.full, {}
        pinned = False
        if loc.family == "s3" and extra.get("version_id"):
            kwargs, pinned = {"version_id": extra["version_id"]}, True
        elif loc.family == "gs" and extra.get("generation"):
            kwargs, pinned = {"generation": extra["generation"]}, True
        elif loc.family == "az" and extra.get("version_id"):
            path, pinned = f"{loc.full}?versionid={extra['version_id']}", True
        with remote.translate_errors(loc.key):
            if not pinned and (extra or entry.size is not None):
                info = fs.info(path)
                if info.get("type") != "file":
                    raise FileNotFoundError(loc.full)
                self._check_same(entry, info)
            try:
                fs.get_file(path, target, **kwargs)
            except FileNotFoundError:
                if pinned and _is_file(fs, loc.full):
                    version = extra.get("version_id") or extra.get("generation")
                    raise _changed(entry.ref, f"version {version} is gone and the store "
                                   "keeps no copy of it") from None
                raise
        size = os.path.getsize(target)
        if entry.size is not None and size != entry.size:
            raise _changed(entry.ref, f"size {entry.size}, now {size}")
        return size

    @staticmethod
    def _check_same(entry: ManifestEntry, info: Mapping[str, Any]) -> None:
        """Compare the current object with what was recorded (one HEAD, no body)."""
        assert entry.ref is not None
        loc = parse_object_uri(entry.ref)
        assert loc is not None
        if entry.size is not None and int(info.get("size") or 0) != entry.size:
            raise _changed(entry.ref, f"size {entry.size}, now {info.get('size')}")
        if entry.extra:
            _digest, now = _identity(loc.family, info)
            for field in ("etag", "md5"):
                was = entry.extra.get(field)
                if was and now.get(field) and was != now[field]:
                    raise _changed(entry.ref, f"{field} {was}, now {now[field]}")


def _is_file(fs: Any, full: str) -> bool:
    try:
        return bool(fs.info(full).get("type") == "file")
    except FileNotFoundError:
        return False


def _holds(path: Path, entry: ManifestEntry) -> bool:
    """Whether the local file ``path`` has ``entry``'s content, by a hash the
    entry records (xxh3 for http without an ETag, else an MD5), without a request."""
    extra = entry.extra or {}
    if entry.ref is not None and is_http(entry.ref) and not extra.get("etag"):
        return entry.size is not None and hash_file(path)[0] == entry.digest
    md5 = extra.get("md5")
    etag = extra.get("etag")
    if not md5 and isinstance(etag, str) and _MD5_HEX.fullmatch(etag) and entry.ref is not None:
        loc = parse_object_uri(entry.ref)
        if loc is not None and loc.family == "s3":
            md5 = etag  # a single-part upload's ETag is its MD5
    if not md5:
        return False
    h = hashlib.md5(usedforsecurity=False)
    with contextlib.suppress(OSError), open(path, "rb") as f:
        for chunk in _chunks(f):
            h.update(chunk)
        return bool(h.hexdigest() == md5)
    return False


def _chunks(f: Any) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk

