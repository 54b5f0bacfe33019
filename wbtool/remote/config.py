"""Named remotes, kept in the store's ``config.yaml``.

    remotes:
      team: {url: s3://bucket/wbtool, options: {endpoint_url: https://minio.example}}
    default_remote: team

Options are the fsspec filesystem's constructor arguments. Credentials are
never kept here: an option whose name looks like one (``key``, ``secret``,
``token``, ``password``, ``connection_string``, ...) is refused, and the
backend finds them in its usual places (environment variables, profiles,
instance roles). Adding a remote checks that its backend is installed but
does not contact it.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wbtool.errors import ConflictError, NotFoundError, StoreError, UsageError
from wbtool.fsutil import is_within
from wbtool.names import validate_name
from wbtool.remote.fs import check_option_types, parse_url, require_backend
from wbtool.store.layout import Store

# Names the general secret patterns miss but that always carry a credential.
_SECRET_OPTIONS = frozenset({"connection_string", "sas", "sas_url", "account_key"})
_OPTION_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# gcsfs's ``token`` also names a way to authenticate, which is no secret.
_TOKEN_MODES = frozenset({"anon", "google_default", "cloud", "cache", "browser"})
HINT = ("keep credentials out of config.yaml: the backend reads them from its usual "
        "sources (AWS_* variables or --option profile=NAME for S3, "
        "GOOGLE_APPLICATION_CREDENTIALS for GCS, AZURE_STORAGE_* variables for Azure)")


@dataclass(frozen=True)
class RemoteSpec:
    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    default: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "options": self.options,
                "default": self.default}


def _is_secret(key: str, value: Any) -> bool:
    from wbtool.runs.redact import is_secret_name

    if key == "token" and value in _TOKEN_MODES:
        return False
    return key.lower() in _SECRET_OPTIONS or is_secret_name(key)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse option names that are no keyword or that look like credentials
    (nested mappings such as ``client_kwargs`` included), and values of a type
    the backends do not take for them (``endpoint_url`` given a number)."""

    def walk(doc: Mapping[str, Any], where: str) -> None:
        for key, value in doc.items():
            if not isinstance(key, str):
                raise UsageError(f"remote option names must be strings, not {key!r}")
            if _is_secret(key, value):
                raise UsageError(f"remote option '{where}{key}' looks like a credential; {HINT}")
            if isinstance(value, Mapping):
                walk(value, f"{where}{key}.")

    for key in options:
        if not isinstance(key, str) or not _OPTION_KEY.fullmatch(key):
            raise UsageError(f"invalid remote option name {key!r}: use letters, digits and '_'")
    walk(options, "")
    check_option_types(options)
    return dict(options)


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to options. A VALUE that is JSON (``true``, ``3``,
    ``{"connect_timeout": 2}``) is decoded; anything else stays a string."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"invalid option {pair!r}: use KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[key] = value
    return check_options(options)


# -- reading and writing config.yaml ----------------------------------------------------------

def _remotes(store: Store) -> dict[str, dict[str, Any]]:
    doc = store.config.get("remotes") or {}
    where = store.path / "config.yaml"
    if not isinstance(doc, dict):
        raise StoreError(f"{where}: 'remotes' must be a mapping")
    for name, entry in doc.items():
        if not isinstance(name, str):
            raise StoreError(f"{where}: remote name {name!r} is not a string")
        if (not isinstance(entry, dict) or not isinstance(entry.get("url"), str)
                or not isinstance(entry.get("options") or {}, dict)):
            raise StoreError(f"{where}: remote {name!r} needs a 'url' and a mapping of 'options'")
        if not _string_keys(entry.get("options") or {}):
            raise StoreError(f"{where}: remote {name!r} has an option name that is not a string")
    return doc


def _string_keys(doc: Any) -> bool:
    """Whether the keys of ``doc`` and of the mappings in it are all strings."""
    return not isinstance(doc, dict) or all(
        isinstance(key, str) and _string_keys(value) for key, value in doc.items())


def _default(store: Store) -> str | None:
    name = store.config.get("default_remote")
    return name if isinstance(name, str) and name else None


@contextlib.contextmanager
def _editing(store: Store) -> Iterator[dict[str, Any]]:
    """Read, change and save config.yaml with no other editor in between.

    The lock is taken on the store folder itself (flock works on a folder's
    descriptor), so no lock file is added to the store.
    """
    fd = os.open(store.path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fresh = Store(store.path)  # another process may have changed it
        doc = dict(fresh.config)
        doc["remotes"] = dict(_remotes(fresh))
        yield doc
        store.save_config(doc)
    finally:
        os.close(fd)


def _spec(store: Store, name: str, entry: Mapping[str, Any]) -> RemoteSpec:
    return RemoteSpec(name=name, url=entry["url"], options=dict(entry.get("options") or {}),
                      default=_default(store) == name)


# -- the service ----------------------------------------------------------------------------

def add(store: Store, name: str, url: str, options: Mapping[str, Any] | None = None,
        default: bool = False) -> RemoteSpec:
    """Record remote ``name``; a name already in use is a ConflictError."""
    validate_name(name, "remote name")
    opts = check_options(options or {})
    parsed = require_backend(url)
    if parsed.is_local and opts:
        raise UsageError("a local remote takes no options")
    _outside_store(store, parsed.url)
    with _editing(store) as doc:
        if name in doc["remotes"]:
            raise ConflictError(f"remote {name!r} exists already "
                                f"({doc['remotes'][name].get('url')}); remove it first")
        doc["remotes"][name] = {"url": parsed.url, "options": opts}
        if default:
            doc["default_remote"] = name
    return _spec(store, name, doc["remotes"][name])


def remove(store: Store, name: str) -> RemoteSpec:
    """Forget remote ``name`` (and stop using it as the default). Touches no remote data."""
    with _editing(store) as doc:
        entry = doc["remotes"].pop(name, None)
        if entry is None:
            raise _not_found(name)
        was_default = doc.get("default_remote") == name
        if was_default:
            doc["default_remote"] = None
    return RemoteSpec(name=name, url=entry["url"], options=dict(entry.get("options") or {}),
                      default=was_default)


def set_default(store: Store, name: str) -> RemoteSpec:
    with _editing(store) as doc:
        if name not in doc["remotes"]:
            raise _not_found(name)
        doc["default_remote"] = name
    return _spec(store, name, doc["remotes"][name])


def _not_found(name: str) -> Exception:
    """What to raise for a remote that is not configured: a usage error for a
    name no remote could have (an empty one), so that it is not reported as
    a missing remote of no name. A configured name is looked up as it is, so
    one written into config.yaml by hand can still be removed."""
    validate_name(name, "remote name")
    return NotFoundError(what="remote", name=name)


def get_default(store: Store) -> RemoteSpec | None:
    name = _default(store)
    entry = _remotes(store).get(name) if name else None
    return _spec(store, name, entry) if name and entry else None


def list(store: Store) -> builtins.list[RemoteSpec]:
    """Every configured remote, sorted by name."""
    remotes = _remotes(store)
    return [_spec(store, name, remotes[name]) for name in sorted(remotes)]


def _looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith(("/", "./", "../", "~")) or text in (".", "..")


def _outside_store(store: Store, url: str) -> str:
    """``url``, unless it is a folder of the store itself (or one inside it):
    a push there writes into the store's own folders, and a remote gc would
    delete the store's objects."""
    parsed = parse_url(url)
    if parsed.is_local and is_within(parsed.root, store.path):
        raise UsageError(f"remote {parsed.url} is inside the store {store.path}: "
                         "a remote needs a folder of its own")
    return url


def resolve(store: Store, name_or_url: str | None = None) -> tuple[str, dict[str, Any]]:
    """``(url, options)`` of a configured remote, of a URL or path given directly
    (a relative path is written ``./path``), or of the default remote for None."""
    remotes = _remotes(store)
    if name_or_url is None:
        name = _default(store)
        if name is None:
            raise NotFoundError("no default remote: give one (NAME or URL) or set it with "
                                "`wbtool remote default NAME`")
        name_or_url = name
    entry = remotes.get(name_or_url)
    if entry is not None:
        return _outside_store(store, entry["url"]), dict(entry.get("options") or {})
    if _looks_like_url(name_or_url):
        return _outside_store(store, parse_url(name_or_url).url), {}
    if not name_or_url.strip():
        raise UsageError(f"invalid remote {name_or_url!r}: give a remote's name, a URL or a path")
    raise NotFoundError(f"remote not found: {name_or_url} (`wbtool remote list` shows the "
                        "remotes; write a relative path as ./PATH)")
