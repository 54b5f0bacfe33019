"""The storage layer of remotes: a local folder or any object store fsspec reaches.

A remote is a URL: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
``az://container/prefix`` (also ``abfs://``), ``file:///abs/path`` or a plain
path. :func:`open_remote` turns it into a :class:`Remote`, whose methods take
paths relative to the remote's root. Every path is validated before any I/O
(relative POSIX, no ``..``, no absolute part), so nothing read from a manifest
or typed by a user can reach outside the root.

Object stores are reached through fsspec; this is the only module that imports
it, and only inside functions, so ``wbtool --help`` never pays for it. Each
scheme maps to the fsspec implementation that serves it and to the wbtool
extra that installs it (:data:`BACKENDS`); a missing one is a
:class:`~wbtool.errors.MissingExtraError` naming the extra.

Options are passed to the fsspec filesystem's constructor as they are
(``endpoint_url``, ``profile``, ``anon``, ``config_kwargs``, ...). S3 with no
options but those four is served by botocore's own client instead
(:class:`S3Remote`), which s3fs is built on and which starts much faster.
The Azure SDK's retry options (``retry_total``, ``initial_backoff``, ...),
which adlfs would not pass on, go to the service client (:class:`AzureRemote`).
Credentials normally come from each backend's usual sources, never from
wbtool: for S3 the ``AWS_*`` environment variables, ``~/.aws`` profiles or an
instance role; for GCS ``GOOGLE_APPLICATION_CREDENTIALS`` or the gcloud
login; for Azure ``AZURE_STORAGE_*`` variables or the Azure CLI login. Only
code that talks to a test emulator passes ``key``/``secret`` as options.

Errors of a backend (connection refused, time-outs, credentials refused or
not found, a missing bucket) become :class:`~wbtool.errors.RemoteUnreachableError`
with one line of explanation (:func:`describe_backend_error`); a missing key
is a :class:`~wbtool.errors.NotFoundError`.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import errno
import importlib
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from wbtool import fsutil
from wbtool.errors import (
    InvalidNameError,
    MissingExtraError,
    NotFoundError,
    RemoteUnreachableError,
    UsageError,
    WbtoolError,
)
from wbtool.names import validate_entry_path


@dataclass(frozen=True)
class Backend:
    """How one URL scheme is served."""

    module: str  # the fsspec implementation's package, imported on first use
    extra: str  # the wbtool extra that installs it
    protocol: str  # the fsspec protocol name
    # A method of the filesystem that builds its client without a request, so
    # that a bad option is reported when the remote is opened, not mid-transfer.
    prepare: str | None = None
    # Keyword arguments of put_file for large files: parts small enough that
    # an upload holds tens of MiB, not the default hundreds.
    put_options: Mapping[str, Any] = field(default_factory=dict)


_S3_PUT = MappingProxyType({"chunksize": 8 << 20, "max_concurrency": 4})
_GCS_PUT = MappingProxyType({"chunksize": 8 << 20})

BACKENDS: Mapping[str, Backend] = MappingProxyType({
    "s3": Backend("s3fs", "s3", "s3", prepare="connect", put_options=_S3_PUT),
    "s3a": Backend("s3fs", "s3", "s3", prepare="connect", put_options=_S3_PUT),
    "gs": Backend("gcsfs", "gcs", "gcs", put_options=_GCS_PUT),
    "gcs": Backend("gcsfs", "gcs", "gcs", put_options=_GCS_PUT),
    "az": Backend("adlfs", "azure", "az"),
    "abfs": Backend("adlfs", "azure", "abfs"),
    "abfss": Backend("adlfs", "azure", "abfs"),
})

LOCAL = "file"

# Packages whose exceptions mean "the remote could not do it" rather than a bug.
_BACKEND_PACKAGES = frozenset({
    "botocore", "aiobotocore", "boto3", "aiohttp", "s3fs", "gcsfs", "google", "adlfs", "azure",
    "fsspec", "requests", "urllib3",
})
# An error carrying one of these means the bucket (container) itself is missing.
_MISSING_CONTAINER_CODES = frozenset({"NoSuchBucket", "ContainerNotFound"})
_MISSING_CONTAINER_TEXT = ("bucket does not exist", "container does not exist",
                           "no such container")


@dataclass(frozen=True)
class RemoteURL:
    """A parsed remote URL: ``scheme`` is ``"file"`` for a local folder."""

    url: str  # canonical spelling: no trailing slash, local paths absolute
    scheme: str
    root: str  # "bucket/prefix" for object stores, an absolute path for a folder

    @property
    def is_local(self) -> bool:
        return self.scheme == LOCAL


def _supported(backends: Mapping[str, Backend]) -> str:
    return ", ".join(f"{s}://" for s in sorted(backends)) + ", file:// or a path"


def parse_url(url: str, *, backends: Mapping[str, Backend] = BACKENDS) -> RemoteURL:
    """Check the shape of ``url`` (without contacting anything) and canonicalise it."""
    if not isinstance(url, str) or not url.strip() or "\0" in url:
        raise UsageError(f"invalid remote URL {url!r}: give a URL or a path")
    if "://" not in url:
        return _local_url(url)
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == LOCAL:
        if not rest.startswith("/"):
            raise UsageError(f"invalid remote URL {url!r}: use file:///absolute/path")
        return _local_url(rest)
    if scheme not in backends:
        raise UsageError(f"unsupported remote URL {url!r}: use {_supported(backends)}")
    if not rest.strip("/"):
        raise UsageError(f"invalid remote URL {url!r}: name a bucket, as in "
                         f"{scheme}://bucket/prefix")
    try:
        root = validate_entry_path(rest.rstrip("/"))
    except InvalidNameError as e:
        raise UsageError(f"invalid remote URL {url!r}: {e.fields.get('reason', e)}") from None
    return RemoteURL(url=f"{scheme}://{root}", scheme=scheme, root=root)


def _local_url(path: str) -> RemoteURL:
    root = os.path.normpath(os.path.abspath(os.path.expanduser(path)))
    return RemoteURL(url=root, scheme=LOCAL, root=root)


def require_backend(url: str, *, backends: Mapping[str, Backend] = BACKENDS) -> RemoteURL:
    """Parse ``url`` and check that its backend is installed, without importing
    it (and that a local remote, where something exists, is a folder)."""
    parsed = parse_url(url, backends=backends)
    if parsed.is_local and os.path.exists(parsed.root) and not os.path.isdir(parsed.root):
        raise UsageError(f"remote {parsed.url} is not a folder")
    if not parsed.is_local:
        backend = backends[parsed.scheme]
        try:
            found = importlib.util.find_spec(backend.module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtraError(scheme=parsed.scheme, extra=backend.extra)
    return parsed


# Options whose values have one type in every backend that takes them (s3fs
# and botocore, gcsfs, adlfs and the Azure SDK). A value of another type, as
# ``-o profile=123`` gives (the JSON number 123), would fail only at the
# first transfer, with a message of the backend's that names no option.
_TEXT_OPTIONS = frozenset({
    "endpoint_url", "region", "region_name", "profile", "account_name", "account_host",
    "tenant_id", "client_id", "project", "token", "access", "consistency",
    "default_location", "location_mode", "username"})
_FLAG_OPTIONS = frozenset({"anon", "use_ssl", "version_aware", "assume_container_exists"})
_MAPPING_OPTIONS = frozenset({"client_kwargs", "config_kwargs", "s3_additional_kwargs",
                              "session_kwargs"})
_NUMBER_OPTIONS = frozenset({"connection_timeout", "read_timeout", "socket_timeout",
                             "max_concurrency", "blocksize", "default_block_size"})
# Options inside client_kwargs and config_kwargs that are text too.
_NESTED_TEXT_OPTIONS = frozenset({"endpoint_url", "region_name"})


def _kind(value: Any) -> str:
    """What a JSON value is, in words, for messages."""
    if isinstance(value, bool):
        return f"the flag {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if value is None:
        return "null"
    return "a mapping" if isinstance(value, Mapping) else "a list"


def check_option_types(options: Mapping[str, Any]) -> None:
    """Refuse, naming the option, a value whose type no backend takes for it.
    JSON values are decoded from ``-o KEY=VALUE``, so a text option given
    something that reads as JSON must be quoted to stay text."""
    def refuse(name: str, value: Any, wanted: str) -> UsageError:
        hint = ""
        if wanted == "text" and "." not in name and not isinstance(value, (Mapping, list)):
            import json

            hint = (f" (to give the text, quote it as JSON: "
                    f"-o '{name}={json.dumps(json.dumps(value))}')")
        return UsageError(f"remote option '{name}' must be {wanted}, not {_kind(value)}{hint}")

    for key, value in options.items():
        if key in _TEXT_OPTIONS and not isinstance(value, str):
            raise refuse(key, value, "text")
        if key in _FLAG_OPTIONS and not isinstance(value, bool):
            raise refuse(key, value, "true or false")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (key in _NUMBER_OPTIONS or key in _AZURE_RETRY_OPTIONS) and not number:
            raise refuse(key, value, "a number")
        if key in _MAPPING_OPTIONS:
            if not isinstance(value, Mapping):
                raise refuse(key, value, "a mapping (a JSON object)")
            if key in ("client_kwargs", "config_kwargs"):
                for inner, item in value.items():
                    if inner in _NESTED_TEXT_OPTIONS and not isinstance(item, str):
                        raise refuse(f"{key}.{inner}", item, "text")


def open_remote(
    url: str, options: Mapping[str, Any] | None = None, *,
    backends: Mapping[str, Backend] = BACKENDS, create: bool = False,
) -> Remote:
    """The :class:`Remote` at ``url``. Contacts nothing yet.

    A local folder that does not exist is unreachable, as a missing bucket
    is, unless ``create`` (a push): then it reads as an empty remote and the
    first write makes it.
    """
    parsed = require_backend(url, backends=backends)
    if parsed.is_local:
        if options:
            raise UsageError(f"a local remote takes no options (got {', '.join(sorted(options))})")
        return LocalRemote(parsed, create=create)
    backend = backends[parsed.scheme]
    options = dict(options or {})
    try:
        check_option_types(options)  # config.yaml may have been edited by hand
    except UsageError as e:
        raise UsageError(f"remote {parsed.url}: {e}") from None
    if backend.module == "s3fs" and set(options) <= _LIGHT_S3_OPTIONS:
        return S3Remote(parsed, backend, options)
    if backend.module == "adlfs":
        return AzureRemote(parsed, backend, options)
    return FsspecRemote(parsed, backend, options)


def _one_line(exc: BaseException) -> str:
    from wbtool.runs.redact import strip_url_credentials

    text = _SERVER_NOISE.split(str(exc), maxsplit=1)[0]
    text = " ".join(text.split())
    if not text and isinstance(exc, TimeoutError):  # fsspec's FSTimeoutError says nothing
        text = f"no answer within {READ_SECONDS} seconds"
    text = text or type(exc).__name__
    return strip_url_credentials(text)


# What each backend is called in messages, and where it finds credentials.
_SERVICES: Mapping[str, str] = MappingProxyType({"s3fs": "S3", "gcsfs": "GCS", "adlfs": "Azure"})
_CREDENTIAL_SOURCES: Mapping[str, str] = MappingProxyType({
    "s3fs": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE "
            "(or the remote's profile option)",
    "gcsfs": "set GOOGLE_APPLICATION_CREDENTIALS or run "
             "'gcloud auth application-default login'",
    "adlfs": "set AZURE_STORAGE_CONNECTION_STRING, or the account name "
             "(AZURE_STORAGE_ACCOUNT_NAME or the remote's account_name option) with "
             "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or log in with 'az login'",
})
# Where each backend is pointed at its server, for a connection refused there.
_ENDPOINT_SOURCES: Mapping[str, str] = MappingProxyType({
    "s3fs": "set the remote's endpoint_url option to where it runs",
    "gcsfs": "set the remote's endpoint_url option to where it runs",
    "adlfs": "point BlobEndpoint in AZURE_STORAGE_CONNECTION_STRING to where it runs",
})
# Exception class names that mean "no credentials were found at all".
_NO_CREDENTIALS_CLASSES = frozenset({
    "NoCredentialsError",  # botocore
    "DefaultCredentialsError",  # google-auth
    "CredentialUnavailableError",  # azure-identity
})
_NO_CREDENTIALS_TEXT = (
    "must provide either a connection_string or account_name",  # adlfs
    "connection string is either blank or malformed",  # azure-storage-blob
    "defaultazurecredential failed to retrieve a token",  # azure-identity
)
# S3 error codes that refuse the request's credentials whatever its status.
_S3_REFUSED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                         "InvalidToken", "ExpiredToken", "InvalidClientTokenId"})
_HTTP_REFUSED = frozenset({401, 403})
# Where a backend's message turns from words into the server's answer or
# bookkeeping: Azure appends RequestId, Time, ErrorCode and the XML body.
_SERVER_NOISE = re.compile(r"\s*(?:RequestId:|Time:\d|ErrorCode:|Content:|<\?xml)")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from (a wrapper's cause), once each."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _server_code(exc: BaseException) -> tuple[str, int | None]:
    """The server's short error code and HTTP status in ``exc`` or its cause
    (S3's Error.Code, Azure's x-ms-error-code, GCS's status), where it has one."""
    for e in _chain(exc):
        response = getattr(e, "response", None)
        if isinstance(response, Mapping):  # botocore
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return _s3_code(e), status if isinstance(status, int) else None
        code = getattr(e, "error_code", None)
        status = getattr(e, "status_code", None)
        if code is not None or isinstance(status, int):  # azure-core
            code = getattr(code, "value", code)
            return str(code or ""), status if isinstance(status, int) else None
        status = getattr(e, "code", None)
        if type(e).__name__ == "HttpError" and isinstance(status, int):  # gcsfs
            return str(status), status
    return "", None


def _refused_at(exc: BaseException) -> str | None:
    """``host:port`` (else "the endpoint") when ``exc`` says that a connection
    was refused there (nothing listens), or None. The backends wrap the
    ConnectionRefusedError: botocore's EndpointConnectionError names the
    request's URL, aiohttp's ClientConnectorError (GCS, and Azure inside
    azure-core's ServiceRequestError) the host and port."""
    from urllib.parse import urlsplit

    refused, where = False, None
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        refused = refused or isinstance(e, ConnectionRefusedError)
        host, port = getattr(e, "host", None), getattr(e, "port", None)
        kwargs = getattr(e, "kwargs", None)
        url = kwargs.get("endpoint_url") if isinstance(kwargs, Mapping) else None
        if where is None and isinstance(host, str) and host and isinstance(port, int):
            where = f"{host}:{port}"
        elif where is None and isinstance(url, str):
            where = urlsplit(url).netloc.rpartition("@")[2] or None
        todo += [e.__cause__, e.__context__, getattr(e, "inner_exception", None),
                 getattr(e, "os_error", None)]
        if isinstance(kwargs, Mapping):
            todo.append(kwargs.get("error"))
    return (where or "the endpoint") if refused else None


def _credentials_missing(exc: BaseException) -> bool:
    for e in _chain(exc):
        if type(e).__name__ in _NO_CREDENTIALS_CLASSES and _from_backend(e):
            return True
        text = str(e).lower()
        if any(t in text for t in _NO_CREDENTIALS_TEXT):
            return True
    return False


def describe_backend_error(exc: BaseException, module: str, account: str | None = None) -> str:
    """One line a user can act on for what backend ``module`` raised: missing
    or refused credentials said in words, with where credentials come from;
    anything else as the backend says it, without the server's XML or JSON
    body, request ids or time stamps. The server's short code stays."""
    service = _SERVICES.get(module, module)
    sources = _CREDENTIAL_SOURCES.get(module)
    if sources and _credentials_missing(exc):
        return f"no {service} credentials were found: {sources}"
    where = _refused_at(exc)
    if where is not None and module in _ENDPOINT_SOURCES:
        return f"connection to {where} refused: start the server there, or " \
               f"{_ENDPOINT_SOURCES[module]}"
    code, status = _server_code(exc)
    if sources and (status in _HTTP_REFUSED or code in _S3_REFUSED):
        who = f" for account {account}" if account else ""
        why = code if code and code != str(status) else f"HTTP {status}"
        return f"{service} refused the credentials{who} ({why})"
    text = _one_line(exc)
    if code and code not in text:
        text = f"{text} ({code})"
    return text


def unreachable(url: str, detail: str) -> RemoteUnreachableError:
    """``remote URL is unreachable: DETAIL`` (with ``url`` and ``detail`` as fields)."""
    return RemoteUnreachableError(url=url, detail=detail)


def _from_backend(exc: BaseException) -> bool:
    return any(cls.__module__.partition(".")[0] in _BACKEND_PACKAGES
               for cls in type(exc).__mro__)


def _container_missing(exc: BaseException) -> bool:
    for e in (exc, exc.__cause__, exc.__context__):
        if e is None:
            continue
        response = getattr(e, "response", None)
        if isinstance(response, Mapping):
            code = (response.get("Error") or {}).get("Code")
            if code in _MISSING_CONTAINER_CODES:
                return True
        if getattr(e, "error_code", None) in _MISSING_CONTAINER_CODES:  # azure-core
            return True
        text = str(e).lower()
        if any(t in text for t in _MISSING_CONTAINER_TEXT):
            return True
    return False


class Remote(abc.ABC):
    """Files under one root, addressed by relative POSIX paths.

    ``write`` overwrites (meant for immutable, content-addressed objects,
    where a second write of the same name carries the same bytes);
    ``create_exclusive`` is the only way to claim a name that others may race
    for (version numbers, alias events). ``list`` is one listing of the
    store, never a check per key.
    """

    def __init__(self, parsed: RemoteURL) -> None:
        self.url = parsed.url
        self.scheme = parsed.scheme
        self.root = parsed.root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def display(self, path: str) -> str:
        """The URL of ``path`` on this remote, for messages."""
        return f"{self.url.rstrip('/')}/{path}"

    def _not_found(self, path: str) -> NotFoundError:
        return NotFoundError(what="remote file", name=self.display(path))

    def _unreachable(self, exc: BaseException) -> RemoteUnreachableError:
        return unreachable(self.url, _one_line(exc))

    @staticmethod
    def _source(local: str | os.PathLike) -> str:
        """A local file to upload: checked first, so that its absence is not
        mistaken for a problem of the remote."""
        if not os.path.isfile(local):
            raise NotFoundError(what="file", name=os.fspath(local))
        return os.fspath(local)

    @staticmethod
    def _target(local: str | os.PathLike) -> str:
        """A local file to download into: its folder is created first."""
        target = os.path.abspath(os.fspath(local))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return target

    # -- the interface ------------------------------------------------------------------
    @abc.abstractmethod
    def read(self, path: str) -> bytes:
        raise NotImplementedError

    @abc.abstractmethod
    def write(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Publish ``data`` under ``path`` unless it exists: True if this call created it.

        Readers never see a partial record: they find the complete bytes or nothing.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        raise NotImplementedError

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every file under the folder ``prefix`` (all files for ``""``), as sorted
        paths relative to the root. A prefix that holds nothing lists as empty."""
        raise NotImplementedError

    def list_detail(self, prefix: str = "") -> builtins.list[tuple[str, int, float]]:
        """Like :meth:`list`, with each file's size and modification time
        (seconds since the epoch; 0.0 where the backend does not say)."""
        return [(path, size, mtime) for path, size, mtime, _stamp in self.list_stamped(prefix)]

    @abc.abstractmethod
    def list_stamped(self, prefix: str = "") -> builtins.list[tuple[str, int, float, str]]:
        """Like :meth:`list_detail`, with a stamp of each file's contents that
        changes whenever the file is written again ("" where the backend
        gives none): an object store's entity tag or generation, a folder's
        inode and nanosecond time. Times alone miss a rewrite of the same
        size within the second that S3 and Azure list times to."""
        raise NotImplementedError

    def list_folders(self, prefix: str) -> builtins.list[str]:
        """The sorted names of the folders directly under the folder ``prefix``:
        one request per thousand folders, however many files they hold."""
        base = f"{_prefix(prefix)}/".lstrip("/")
        return sorted({p[len(base):].partition("/")[0] for p in self.list(prefix)
                       if p.startswith(base) and "/" in p[len(base):]})

    def listed(self, path: str) -> bool:
        """Whether a listing shows the file ``path`` when it is there: a
        folder remote hides names that its own temp files take."""
        return True

    def leftovers(self) -> builtins.list[tuple[str, float]]:
        """Temp files (path, modification time) that writes killed midway
        left behind: listings hide them, so only garbage collection finds
        them. Object stores write each file in one request and leave none."""
        return []

    @abc.abstractmethod
    def put_file(self, local: str | os.PathLike, path: str) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def get_file(self, path: str, local: str | os.PathLike) -> None:
        """Download ``path`` to ``local``, which appears only once it is complete."""
        raise NotImplementedError

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Remove ``path``; removing what is absent is not an error."""
        raise NotImplementedError


def _prefix(prefix: str) -> str:
    return "" if prefix in ("", ".") else validate_entry_path(prefix)


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _holds_file(folder: str) -> bool:
    """Whether a listing shows a file under ``folder``: a folder left empty
    (its files deleted one by one) is no folder on an object store either."""
    for _here, _dirs, files in os.walk(folder, onerror=_walk_error):
        if any(not _is_tmp(name) for name in files):
            return True
    return False


def _is_folder(fd: int) -> bool:
    import stat

    return stat.S_ISDIR(os.fstat(fd).st_mode)


def _walk_error(exc: OSError) -> None:
    """``onerror`` of ``os.walk``: a folder removed meanwhile holds nothing; any
    other error is raised."""
    if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        raise exc


class LocalRemote(Remote):
    """A folder (local disk or a mounted share). Every file is published by
    rename or hard link, so a crash never leaves a partial file under its name.

    The folder itself plays the part of a bucket: where it does not exist,
    every operation is :class:`~wbtool.errors.RemoteUnreachableError`, so that
    a mistyped path never reads as an empty remote. A remote opened with
    ``create`` (to be pushed to) reads as empty instead, and its first write
    makes the folder, one level only: its parent must exist.
    """

    def __init__(self, parsed: RemoteURL, *, create: bool = False) -> None:
        super().__init__(parsed)
        self.create = create
        self._root_seen = False

    def _full(self, path: str) -> str:
        return os.path.join(self.root, validate_entry_path(path))

    def _root_exists(self) -> bool:
        """Whether the folder exists; raises where its absence is an error."""
        if self._root_seen:
            return True
        import stat

        try:
            mode: int | None = os.stat(self.root).st_mode
        except (FileNotFoundError, NotADirectoryError):
            mode = None
        except OSError as e:
            raise self._unreachable(e) from None
        if mode is not None:
            if not stat.S_ISDIR(mode):
                raise unreachable(self.url, "it is not a folder")
            self._root_seen = True
            return True
        if not self.create:
            raise unreachable(self.url, "the folder does not exist")
        parent = os.path.dirname(self.root)
        if not os.path.isdir(parent):
            raise unreachable(self.url, f"the folder {parent} does not exist")
        return False

    def _make_root(self) -> None:
        """Before a write: make the folder of a remote opened with ``create``."""
        if self._root_exists():
            return
        try:
            os.mkdir(self.root)
        except FileExistsError:
            pass
        except OSError as e:
            raise self._unreachable(e) from None
        self._root_seen = True

    @contextlib.contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self._root_exists()  # a missing folder is no missing file
            raise self._not_found(path) from None
        except OSError as e:
            raise self._unreachable(e) from None

    def _open(self, path: str) -> Any:
        """The file ``path``, open for reading. A symbolic link is not
        followed (wbtool never makes one on a remote, and one there could
        hand a pull any file of this machine): it counts as no file."""
        full = self._full(path)
        with self._errors(path):
            try:
                fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                raise NotFoundError(what="remote file (a symbolic link is not followed)",
                                    name=self.display(path)) from None
            if _is_folder(fd):  # opened, unlike with open(): a folder is no file either
                os.close(fd)
                raise IsADirectoryError(errno.EISDIR, "is a folder", full)
            return os.fdopen(fd, "rb")

    def read(self, path: str) -> bytes:
        with self._open(path) as f, self._errors(path):
            return f.read()

    def write(self, path: str, data: bytes) -> None:
        full = self._full(path)
        self._make_root()
        with self._errors(path):
            os.makedirs(os.path.dirname(full), exist_ok=True)
            fsutil.atomic_write(full, data, fsync=True)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        full = self._full(path)
        folder = os.path.dirname(full)
        self._make_root()
        with self._errors(path):
            os.makedirs(folder, exist_ok=True)
            tmp = fsutil.tmp_name(folder, os.path.basename(full))
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    fsutil.write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, full)  # atomic, and fails if the name exists
                except FileExistsError:
                    return False
                except OSError as e:
                    if e.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                   errno.EMLINK):
                        raise unreachable(self.url, "its filesystem does not support hard "
                                          "links, which exclusive creation needs") from None
                    raise
                fsutil.fsync_dir(folder)
                return True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def exists(self, path: str) -> bool:
        full = self._full(path)
        with self._errors(path):
            if os.path.isfile(full):
                return True
        self._root_exists()
        return False

    def list(self, prefix: str = "") -> list[str]:
        rel = _prefix(prefix)
        base = os.path.join(self.root, rel) if rel else self.root
        found: list[str] = []
        if not self._root_exists():
            return found
        with self._errors(rel):
            if os.path.isfile(base):
                return [rel]
            # A folder that cannot be read fails the listing: a listing with
            # holes would read as a remote without those versions, runs or
            # objects (and a garbage collection would sweep what they use).
            for folder, _dirs, files in os.walk(base, onerror=_walk_error):
                here = os.path.relpath(folder, self.root)
                for name in files:
                    if not _is_tmp(name):
                        found.append(name if here == "." else f"{here}/{name}")
        return sorted(found)

    def listed(self, path: str) -> bool:
        return not _is_tmp(path.rpartition("/")[2])

    def leftovers(self) -> builtins.list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        if not self._root_exists():
            return found
        with self._errors(""):
            for folder, _dirs, files in os.walk(self.root, onerror=_walk_error):
                here = os.path.relpath(folder, self.root)
                for name in files:
                    if _is_tmp(name):
                        try:
                            mtime = os.lstat(os.path.join(folder, name)).st_mtime
                        except FileNotFoundError:
                            continue  # published or removed meanwhile
                        found.append((name if here == "." else f"{here}/{name}", mtime))
        return sorted(found)

    def list_folders(self, prefix: str) -> builtins.list[str]:
        rel = _prefix(prefix)
        if not self._root_exists():
            return []
        with self._errors(rel or "."):
            try:
                with os.scandir(os.path.join(self.root, rel)) as entries:
                    return sorted(e.name for e in entries
                                  if e.is_dir(follow_symlinks=False) and _holds_file(e.path))
            except (FileNotFoundError, NotADirectoryError):
                return []

    def list_stamped(self, prefix: str = "") -> builtins.list[tuple[str, int, float, str]]:
        out = []
        for rel in self.list(prefix):
            try:
                st = os.stat(os.path.join(self.root, rel))
            except FileNotFoundError:
                continue  # removed since the listing
            # Files are published by rename: a rewrite is a new inode.
            out.append((rel, st.st_size, st.st_mtime, f"{st.st_ino}:{st.st_mtime_ns}"))
        return out

    def put_file(self, local: str | os.PathLike, path: str) -> None:
        full = self._full(path)
        source = self._source(local)
        self._make_root()
        with self._errors(path):
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with fsutil.as_atomic(full, fsync=True) as tmp:
                fsutil.copy_into(source, tmp)

    def get_file(self, path: str, local: str | os.PathLike) -> None:
        target = self._target(local)
        src = self._open(path)
        with src, fsutil.as_atomic(target) as tmp, open(tmp, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def delete(self, path: str) -> None:
        full = self._full(path)
        with self._errors(path):
            try:
                os.unlink(full)
            except FileNotFoundError:
                self._root_exists()


def _stamp(info: Mapping[str, Any]) -> str:
    """The stamp of a file's contents in a listing entry of s3fs, gcsfs or
    adlfs (its generation on GCS, else its entity tag), or ""."""
    for key in ("generation", "ETag", "etag"):
        value = info.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def _mtime(info: Mapping[str, Any]) -> float:
    """Seconds since the epoch from a listing entry of s3fs, gcsfs or adlfs."""
    import datetime

    for key in ("LastModified", "last_modified", "updated", "mtime", "timeCreated"):
        value = info.get(key)
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


# How long a request may wait for a server before it counts as unreachable,
# unless the remote's options say otherwise. The backends' own defaults let
# a server that accepts connections but never answers hold a command for 5
# minutes (S3) to over half an hour (GCS, Azure), silently; these end each
# request in about a minute and a half (GCS, which retries six times: three
# and a half), with the error a user can act on. A wait is the time between
# two bytes, never the length of a whole transfer. They hold for every
# request: listings and existence checks as much as uploads and downloads.
CONNECT_SECONDS = 10
READ_SECONDS = 30
ATTEMPTS = 3  # tries of a request in all (S3: botocore's "standard" retries; Azure)


def _s3_config(given: Mapping[str, Any]) -> dict[str, Any]:
    """botocore ``Config`` arguments: ``given`` over wbtool's time limits."""
    return {"connect_timeout": CONNECT_SECONDS, "read_timeout": READ_SECONDS,
            "retries": {"mode": "standard", "total_max_attempts": ATTEMPTS}, **given}


def _with_time_limits(module: str, options: dict[str, Any]) -> dict[str, Any]:
    """The filesystem's options with wbtool's time limits where they set none."""
    out = dict(options)
    if module == "s3fs" and isinstance(out.get("config_kwargs", {}), Mapping):
        out["config_kwargs"] = _s3_config(out.get("config_kwargs") or {})
    elif module == "gcsfs" and "requests_timeout" not in out:
        import aiohttp

        out["requests_timeout"] = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS)
    elif module == "adlfs":
        out.setdefault("connection_timeout", CONNECT_SECONDS)
        out.setdefault("read_timeout", READ_SECONDS)
        for key in _AZURE_RETRY_OPTIONS:  # for the service client, never adlfs's credentials
            out.pop(key, None)
    return out


# Options of the Azure SDK's clients that adlfs takes but passes to no client.
_AZURE_RETRY_OPTIONS = ("retry_total", "retry_connect", "retry_read", "retry_status",
                        "initial_backoff", "increment_base", "random_jitter_range")


def _azure_limits(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of an Azure storage client: the remote's options over
    wbtool's time limits. Retries wait seconds, not the SDK's 18 to 42."""
    limits: dict[str, Any] = {
        "connection_timeout": CONNECT_SECONDS, "read_timeout": READ_SECONDS,
        "retry_total": ATTEMPTS - 1, "initial_backoff": 1, "increment_base": 2,
        "random_jitter_range": 1}
    limits.update((key, options[key]) for key in ("connection_timeout", "read_timeout",
                                                 *_AZURE_RETRY_OPTIONS) if key in options)
    return limits


def _bound_azure_requests(filesystem: Any, options: Mapping[str, Any]) -> None:
    """Make every request of the adlfs ``filesystem`` keep to :func:`_azure_limits`.

    adlfs gives its time limits to uploads and downloads only, and builds its
    service client without them, so that listings and existence checks wait
    the SDK's 20 seconds to connect and 60 between two bytes, and retry
    three times after waits of up to 42 seconds. Its service client is made
    again, for the same endpoint and credentials, with the limits: every
    container and blob client it hands out shares the new one's transport
    and retry policy.
    """
    old = filesystem.service_client
    client = type(old)(old.url, credential=old.credential,
                       secondary_hostname=old.secondary_hostname, **_azure_limits(options))
    client.location_mode = old.location_mode
    filesystem.service_client = client


def _check_gcs_endpoint(filesystem: Any, options: Mapping[str, Any]) -> None:
    """Raise ConnectionRefusedError, naming the host and port, when nothing
    listens at the GCS server a remote is pointed at (its endpoint_url or
    ``STORAGE_EMULATOR_HOST``).

    gcsfs retries a refused connection six times, backing off for some 30
    seconds in all, before it gives up; one connection tried first ends such
    a command at once. Google's own endpoint is not tried: it listens.
    """
    import socket
    from urllib.parse import urlsplit

    if not options.get("endpoint_url") and os.environ.get(
            "STORAGE_EMULATOR_HOST", "default") in ("", "default"):
        return
    location = urlsplit(str(getattr(filesystem, "_location", "")))
    try:
        host, port = location.hostname, location.port
    except ValueError:  # a port out of range: the backend's requests say so
        return
    if not host:
        return
    port = port or (443 if location.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except ConnectionRefusedError as e:
        e.host, e.port = host, port  # type: ignore[attr-defined]  # read by _refused_at
        raise
    except OSError:
        return  # a name that does not resolve, a time-out: the backend tells


# s3fs options that mean the same to a plain botocore client.
_LIGHT_S3_OPTIONS = frozenset({"endpoint_url", "config_kwargs", "profile", "anon"})

_BACKEND_LOGGERS = ("gcsfs", "adlfs", "s3fs", "azure", "aiobotocore", "botocore", "fsspec")


def _quiet_backend_logs() -> None:
    """Keep the backends' own log records (gcsfs logs a traceback before it
    gives up retrying) off stderr when the program has not set up logging:
    wbtool reports the failure itself, in one line."""
    import logging

    if logging.getLogger().handlers:
        return
    for name in _BACKEND_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
            logger.propagate = False


class FsspecRemote(Remote):
    """An object store reached through an fsspec filesystem."""

    def __init__(self, parsed: RemoteURL, backend: Backend, options: dict[str, Any]) -> None:
        super().__init__(parsed)
        self.backend = backend
        self._options = options
        self._fs: Any = None
        self._container_seen = False

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, built on first use."""
        if self._fs is None:
            self._fs = self._connect()
        return self._fs

    def _connect(self) -> Any:
        _quiet_backend_logs()
        # aiobotocore imports httpx, whose package imports its command-line
        # tool and with it click, rich's console and pygments: a fifth of the
        # time s3fs takes to import, for nothing a transfer uses. Hidden while
        # the backend imports (httpx then keeps a stub of it), importable after.
        hide = "httpx" not in sys.modules and "httpx._main" not in sys.modules
        if hide:
            sys.modules["httpx._main"] = None  # type: ignore[assignment]
        try:
            importlib.import_module(self.backend.module)
        except ImportError:
            raise MissingExtraError(scheme=self.scheme, extra=self.backend.extra) from None
        finally:
            if hide and sys.modules.get("httpx._main", 0) is None:
                del sys.modules["httpx._main"]
        import fsspec

        # Listings are never cached (another machine may have written since),
        # and every Remote gets its own filesystem instance.
        kwargs = {"skip_instance_cache": True, "use_listings_cache": False,
                  **_with_time_limits(self.backend.module, self._options)}
        try:
            filesystem = fsspec.filesystem(self.backend.protocol, **kwargs)
            if self.backend.prepare:
                getattr(filesystem, self.backend.prepare)()
            if self.backend.module == "gcsfs":
                _check_gcs_endpoint(filesystem, self._options)
            return filesystem
        except (TypeError, ValueError, AttributeError) as e:
            if _credentials_missing(e):  # adlfs says so with a ValueError
                raise self._unreachable(e) from None
            raise UsageError(f"remote {self.url}: invalid option for {self.backend.module}: "
                             f"{_one_line(e)}") from None
        except Exception as e:
            if isinstance(e, OSError) or _from_backend(e):
                raise self._unreachable(e) from None
            raise

    def _unreachable(self, exc: BaseException) -> RemoteUnreachableError:
        return unreachable(self.url, describe_backend_error(exc, self.backend.module,
                                                            self._account()))

    def _account(self) -> str | None:
        """The Azure storage account the filesystem signs in to, for messages."""
        client = getattr(self._fs, "service_client", None)
        name = getattr(client, "account_name", None) or getattr(self._fs, "account_name", None)
        return name if isinstance(name, str) and name else None

    def _full(self, path: str) -> str:
        return f"{self.root}/{validate_entry_path(path)}"

    def _check_container(self) -> None:
        """Raise if the bucket is missing. Some backends answer a request under a
        missing bucket with the same "not found" as a missing key (GCS) or with
        an empty listing (Azure), so a miss is checked once against the bucket."""
        if self._container_seen:
            return
        try:
            self._look_at_container()
        except WbtoolError:
            raise
        except Exception as e:
            if (isinstance(e, FileNotFoundError) or _s3_code(e) in _S3_MISSING_KEY
                    or _container_missing(e)):
                raise self._no_container() from None
            if isinstance(e, OSError) or _from_backend(e):
                raise self._unreachable(e) from None
            raise
        self._container_seen = True

    def _look_at_container(self) -> None:
        """One request about the bucket itself; raises if it is missing."""
        self.fs.info(self.root.partition("/")[0])

    def _no_container(self) -> RemoteUnreachableError:
        return unreachable(self.url, f"bucket {self.root.partition('/')[0]!r} does not exist")

    @contextlib.contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except WbtoolError:
            raise
        except Exception as e:
            if _container_missing(e):
                raise self._no_container() from None
            if isinstance(e, FileNotFoundError) or _s3_code(e) in _S3_MISSING_KEY:
                self._check_container()
                raise self._not_found(path) from None
            if isinstance(e, OSError) or _from_backend(e):
                raise self._unreachable(e) from None
            raise

    def translate_errors(self, path: str) -> contextlib.AbstractContextManager[None]:
        """Map what the backend raises while working on ``path`` (relative to the
        root) as this class's own methods do: a missing key becomes NotFoundError,
        a missing bucket or any failure to reach the store RemoteUnreachableError.
        For callers that use :attr:`fs` directly (references to objects)."""
        return self._errors(path)

    def read(self, path: str) -> bytes:
        full = self._full(path)
        with self._errors(path):
            data: bytes = self.fs.cat_file(full)
            return data

    def write(self, path: str, data: bytes) -> None:
        full = self._full(path)
        with self._errors(path):
            self.fs.pipe_file(full, data)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        # A conditional write on the server (S3 If-None-Match, GCS generation 0,
        # Azure no-overwrite): the loser gets FileExistsError.
        full = self._full(path)
        with self._errors(path):
            try:
                self.fs.pipe_file(full, data, mode="create")
            except FileExistsError:
                return False
            return True

    def exists(self, path: str) -> bool:
        full = self._full(path)
        with self._errors(path):
            # info() rather than isfile(), which answers False when the server
            # cannot be reached.
            try:
                info = self.fs.info(full)
            except FileNotFoundError as e:
                if _container_missing(e):
                    raise
                self._check_container()
                return False
            return bool(info.get("type") == "file")

    def _find(self, base: str, detail: bool) -> Any:
        """``fs.find(base, detail=detail)``: every file under the full path
        ``base``, or named ``base``."""
        return self.fs.find(base, detail=detail)

    def list(self, prefix: str = "") -> list[str]:
        rel = _prefix(prefix)
        base = f"{self.root}/{rel}" if rel else self.root
        with self._errors(rel or "."):
            found = self._find(base, detail=False)
            if not found:
                self._check_container()
        start = len(self.root) + 1
        out: list[str] = []
        for full in found:
            full = full.rstrip("/")
            if full.startswith(self.root + "/") and (not rel or full == base
                                                     or full.startswith(base + "/")):
                out.append(full[start:])
        return sorted(out)

    def list_folders(self, prefix: str) -> builtins.list[str]:
        rel = _prefix(prefix)
        with self._errors(rel or "."):
            try:
                found = self.fs.ls(f"{self.root}/{rel}" if rel else self.root, detail=True)
            except FileNotFoundError:
                found = []
            if not found:
                self._check_container()
        return sorted(str(info["name"]).rstrip("/").rpartition("/")[2] for info in found
                      if info.get("type") == "directory")

    def list_stamped(self, prefix: str = "") -> builtins.list[tuple[str, int, float, str]]:
        rel = _prefix(prefix)
        base = f"{self.root}/{rel}" if rel else self.root
        with self._errors(rel or "."):
            found = self._find(base, detail=True)
            if not found:
                self._check_container()
        start = len(self.root) + 1
        out: builtins.list[tuple[str, int, float, str]] = []
        for full, info in found.items():
            full = full.rstrip("/")
            if info.get("type", "file") != "file":
                continue
            if full.startswith(self.root + "/") and (not rel or full == base
                                                     or full.startswith(base + "/")):
                out.append((full[start:], int(info.get("size") or 0), _mtime(info),
                            _stamp(info)))
        return sorted(out)

    def put_file(self, local: str | os.PathLike, path: str) -> None:
        full = self._full(path)
        source = self._source(local)
        with self._errors(path):
            self.fs.put_file(source, full, **self.backend.put_options)

    def get_file(self, path: str, local: str | os.PathLike) -> None:
        full = self._full(path)
        target = self._target(local)
        with self._errors(path), fsutil.as_atomic(target) as tmp:
            self.fs.get_file(full, tmp)

    def delete(self, path: str) -> None:
        full = self._full(path)
        with self._errors(path):
            try:
                self.fs.rm_file(full)
            except FileNotFoundError as e:
                if _container_missing(e):
                    raise
                self._check_container()


class AzureRemote(FsspecRemote):
    """Azure Blob through adlfs, with wbtool's time limits on every request
    (:func:`_bound_azure_requests`), and listings of one request per 5,000
    blobs. adlfs's ``find`` first asks whether the folder is itself a blob
    and takes any failure of that request for "no": a server that never
    answers would hold every listing for the time limits twice."""

    def _connect(self) -> Any:
        filesystem = super()._connect()
        _bound_azure_requests(filesystem, self._options)
        return filesystem

    def _find(self, base: str, detail: bool) -> Any:
        from fsspec.asyn import sync

        container, _, key = base.partition("/")
        found: dict[str, dict[str, Any]] = sync(self.fs.loop, self._list_blobs, container, key)
        return found if detail else sorted(found)

    async def _list_blobs(self, container: str, key: str) -> dict[str, dict[str, Any]]:
        """The blobs of ``container`` named ``key`` or under the folder ``key``,
        by full path, as adlfs describes files (folder markers left out)."""
        out: dict[str, dict[str, Any]] = {}
        key = key.rstrip("/")
        under = key + "/"
        async with self.fs.service_client.get_container_client(container) as client:
            async for blob in client.list_blobs(name_starts_with=key or None,
                                                include=["metadata"]):
                if key and blob.name != key and not blob.name.startswith(under):
                    continue  # "runs/ab" is no folder of "runs/abc/…"
                if not _azure_folder(blob.name, blob.metadata or {}):
                    name = f"{container}/{blob.name}"
                    out[name] = {"name": name, "type": "file", "size": blob.size,
                                 "last_modified": blob.last_modified, "etag": blob.etag}
        return out


def _azure_folder(name: str, metadata: Mapping[str, str]) -> bool:
    """Whether a blob stands for a folder: adlfs's and Data Lake's markers."""
    marks = {key.lower(): value for key, value in metadata.items()}
    return name.endswith("/") or "true" in (marks.get("is_directory"), marks.get("hdi_isfolder"))


# Answers of S3 that mean "no such key" or, for the bucket, "no such bucket"
# (a HEAD has no body, so no code name).
_S3_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
# A conditional write that lost: the name exists, or another write of it is
# under way.
_S3_LOST_RACE = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})


def _s3_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str((response.get("Error") or {}).get("Code") or "")
    return ""


def _checksums_sent(session: Any, config: dict[str, Any]) -> bool:
    """Whether a botocore client made with ``config`` sends a checksum with
    every upload, and nobody asked about payload signing (in ``config`` or
    the AWS profile): the setting may come from either, or the environment."""
    calculation = (config.get("request_checksum_calculation")
                   or session.get_config_variable("request_checksum_calculation") or "")
    profile_s3 = session.get_scoped_config().get("s3") or {}
    asked = "payload_signing_enabled" in (config.get("s3") or {}) or (
        isinstance(profile_s3, dict) and "payload_signing_enabled" in profile_s3)
    return str(calculation).lower() != "when_required" and not asked


class S3Remote(FsspecRemote):
    """S3 through botocore's own blocking client, for the options botocore takes
    as they are (:data:`_LIGHT_S3_OPTIONS`: endpoint, profile, anonymous
    access, client configuration).

    One client, safe to share between the transfer threads, serves every
    request: a push or pull never imports s3fs and its asynchronous stack,
    which costs more than half a second before the first request. Large files
    go up in parts from several threads (:mod:`wbtool.remote.s3parts`).
    :attr:`fs` (s3fs, for references to objects) is still there, built on
    first use.
    """

    def __init__(self, parsed: RemoteURL, backend: Backend, options: dict[str, Any]) -> None:
        super().__init__(parsed, backend, options)
        self._client: Any = None
        self.bucket, _, prefix = self.root.partition("/")
        self._prefix = f"{prefix}/" if prefix else ""

    @property
    def client(self) -> Any:
        """botocore's S3 client for this remote, built on first use."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        _quiet_backend_logs()
        try:
            import botocore.session
            from botocore.config import Config
        except ImportError:
            raise MissingExtraError(scheme=self.scheme, extra=self.backend.extra) from None
        try:
            given = _s3_config(dict(self._options.get("config_kwargs") or {}))
            # Enough connections for the transfer threads and the parts of
            # large files they send at once.
            given.setdefault("max_pool_connections", 32)
            session = botocore.session.Session(profile=self._options.get("profile"))
            if _checksums_sent(session, given):
                # Every upload carries a CRC32 that the server checks, so the
                # body need not also be signed with SHA-256, which botocore
                # does over plain http (a core's whole time at 200 MiB/s
                # here); AWS's own clients make the same trade over https.
                given["s3"] = {"payload_signing_enabled": False, **(given.get("s3") or {})}
            config = Config(**given)
            if self._options.get("anon"):
                from botocore import UNSIGNED

                config = config.merge(Config(signature_version=UNSIGNED))
            return session.create_client(
                "s3", endpoint_url=self._options.get("endpoint_url"), config=config)
        except (TypeError, ValueError) as e:
            raise UsageError(f"remote {self.url}: invalid option for {self.backend.module}: "
                             f"{_one_line(e)}") from None
        except Exception as e:
            if _from_backend(e):  # an unknown profile, a malformed endpoint
                raise UsageError(f"remote {self.url}: {_one_line(e)}") from None
            raise

    def _key(self, path: str) -> str:
        return self._prefix + validate_entry_path(path)

    def _look_at_container(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def read(self, path: str) -> bytes:
        key = self._key(path)
        with self._errors(path):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
            return data

    def write(self, path: str, data: bytes) -> None:
        key = self._key(path)
        with self._errors(path):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        key = self._key(path)
        with self._errors(path):
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
            except Exception as e:
                if _s3_code(e) in _S3_LOST_RACE:
                    return False
                raise
            return True

    def exists(self, path: str) -> bool:
        key = self._key(path)
        with self._errors(path):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as e:
                if _s3_code(e) not in _S3_MISSING_KEY:
                    raise
                self._check_container()
                return False
            return True

    def _walk(self, prefix: str) -> Iterator[tuple[str, int, float, str]]:
        """(path relative to the root, size, mtime, stamp) of every key under ``prefix``
        (a relative path), taken as a folder or as the name of one key."""
        rel = _prefix(prefix)
        key = self._prefix + rel
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=key)
        start = len(self._prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                name = item["Key"]
                if name.endswith("/") or not (not rel or name == key
                                              or name.startswith(key + "/")):
                    continue
                yield name[start:], int(item.get("Size") or 0), _mtime(item), _stamp(item)

    def list(self, prefix: str = "") -> builtins.list[str]:
        with self._errors(_prefix(prefix) or "."):
            return sorted(entry[0] for entry in self._walk(prefix))

    def list_folders(self, prefix: str) -> builtins.list[str]:
        rel = _prefix(prefix)
        key = f"{self._prefix}{rel}/" if rel else self._prefix
        with self._errors(rel or "."):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key, Delimiter="/")
            return sorted(str(item["Prefix"])[len(key):].rstrip("/") for page in pages
                          for item in page.get("CommonPrefixes", ()))

    def list_stamped(self, prefix: str = "") -> builtins.list[tuple[str, int, float, str]]:
        with self._errors(_prefix(prefix) or "."):
            return sorted(self._walk(prefix))

    def put_file(self, local: str | os.PathLike, path: str) -> None:
        from wbtool.remote import s3parts

        key = self._key(path)
        source = self._source(local)
        with self._errors(path):
            if os.path.getsize(source) >= s3parts.THRESHOLD:
                s3parts.upload(self.client, source, self.bucket, key)
                return
            with open(source, "rb") as f:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=f)

    def get_file(self, path: str, local: str | os.PathLike) -> None:
        key = self._key(path)
        target = self._target(local)
        with self._errors(path):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with contextlib.closing(body), fsutil.as_atomic(target) as tmp, \
                    open(tmp, "xb") as out:
                for chunk in body.iter_chunks(1 << 20):
                    out.write(chunk)

    def delete(self, path: str) -> None:
        key = self._key(path)
        with self._errors(path):
            self.client.delete_object(Bucket=self.bucket, Key=key)
