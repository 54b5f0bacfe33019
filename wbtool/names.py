"""Validation of names at every boundary: no crap in, no crap out.

Artifact names and types, project names, aliases, tags and entry paths are
checked here on the way in *and* whenever they are read back from disk or
from another store, before a byte is written anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex

from wbtool.errors import InvalidNameError, OtherEntityError

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_ALIAS_RE = re.compile(r"[A-Za-z0-9_.\-]+")
# A version is v and a number without leading zeros (ASCII digits: \d takes
# every Unicode digit). Every v and digits (v007 too) is kept from aliases,
# so that no alias can look like a version it is not.
_VERSION_RE = re.compile(r"v(0|[1-9][0-9]*)")
_VERSION_LIKE = re.compile(r"v[0-9]+")
RESERVED_TYPES = ("job",)
RESERVED_TYPE_PREFIXES = ("wbtool-", "wandb-")
MAX_NAME = 128
MAX_PATH = 4096
# Bytes of UTF-8 in one file or folder name: NAME_MAX of the common filesystems.
# A path with a shorter length in characters fits whatever they are.
MAX_COMPONENT = 255
_ANY_FITS = MAX_COMPONENT // 4
MAX_VERSION = 2**63 - 1  # the largest number a store can hold (SQLite's INTEGER)


def name_list(value: str | Iterable[str] | None) -> list[str]:
    """Aliases or tags as a list: one string is one name, not its characters."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"expected a string or a list of strings, not "
                        f"{type(value).__name__}: {value!r}") from None


class CheckedList(list[str]):
    """A list of aliases or tags that checks each one as it comes in (made,
    appended, inserted, extended, ``+=``, assigned to an item or a slice),
    so that an invalid one is refused at once, not by a later save, and the
    list stays as it was."""

    __slots__ = ("_check",)

    def __init__(self, values: Iterable[str] = (), check: Callable[[str], str] = str) -> None:
        self._check = check
        super().__init__([check(v) for v in name_list(values)])

    def append(self, value: str) -> None:
        super().append(self._check(value))

    def insert(self, index: SupportsIndex, value: str) -> None:
        super().insert(index, self._check(value))

    def extend(self, values: Iterable[str]) -> None:
        super().extend([self._check(v) for v in name_list(values)])

    def __iadd__(self, values: Iterable[str]) -> Any:  # type: ignore[override, misc]
        self.extend(values)
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            value = [self._check(v) for v in name_list(value)]
        else:
            value = self._check(value)
        super().__setitem__(index, value)


def check_alias(value: str) -> str:
    """An alias a version can be given: ``latest`` (which always names the
    newest version) or a valid alias."""
    return value if value == "latest" else validate_alias(value)


def validate_name(value: str, what: str = "artifact name") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidNameError(what=what, value=value, reason="must be a non-empty string")
    if len(value) > MAX_NAME:
        raise InvalidNameError(what=what, value=value, reason=f"longer than {MAX_NAME} characters")
    if not _NAME_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidNameError(
            what=what, value=value,
            reason="use only letters, digits, '_', '-' and '.'",
        )
    return value


def validate_type(value: str) -> str:
    validate_name(value, "artifact type")
    if value in RESERVED_TYPES or value.startswith(RESERVED_TYPE_PREFIXES):
        raise InvalidNameError(
            what="artifact type", value=value, reason="this type is reserved for internal use"
        )
    return value


def validate_alias(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise InvalidNameError(what="alias", value=value, reason="must be 1-128 characters")
    if not _ALIAS_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidNameError(
            what="alias", value=value, reason="use only letters, digits, '_', '-' and '.'"
        )
    if _VERSION_LIKE.fullmatch(value):
        raise InvalidNameError(
            what="alias", value=value, reason="names of the form vN are version numbers"
        )
    return value


def validate_lookup(value: str) -> str:
    """A version or alias to look up: what :func:`validate_alias` accepts, or
    ``v`` and digits. Such a name that is no version (``v007``: a version
    number has no leading zeros) is an alias no version can hold, so looking
    it up finds nothing."""
    if isinstance(value, str) and _VERSION_LIKE.fullmatch(value):
        return value
    return validate_alias(value)


def validate_tag(value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidNameError(what="tag", value=value, reason="must be 1-64 characters")
    if any(c < " " or c == "\x7f" for c in value):  # tabs and escapes break listings
        raise InvalidNameError(what="tag", value=value, reason="no control characters")
    return value


def is_clean_entry_path(value: object) -> bool:
    """True for a path that :func:`validate_entry_path` returns unchanged
    (a quick test; False may still be a valid path that needs normalising)."""
    return (
        type(value) is str and 0 < (n := len(value)) <= MAX_PATH and value[0] != "/"
        and value[-1] != "/" and "\0" not in value and "\\" not in value
        and "//" not in value and ".." not in value and "/./" not in value
        and not value.startswith("./") and not value.endswith("/.") and value != "."
        and value[1:2] != ":"
        and (n <= _ANY_FITS or (n <= MAX_COMPONENT and value.isascii()) or names_fit(value))
        and is_utf8(value)
    )


def is_utf8(text: str) -> bool:
    """False for text holding a lone surrogate: a file name whose bytes are
    not UTF-8 (as Python decodes it), or an escape in JSON read from a
    remote. Manifests are UTF-8, so no entry path may hold one."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def names_fit(path: str) -> bool:
    """True when no file or folder name in ``path`` is longer than
    :data:`MAX_COMPONENT` bytes of UTF-8."""
    if path.isascii():
        return len(path) <= MAX_COMPONENT or max(map(len, path.split("/"))) <= MAX_COMPONENT
    return max(map(len, path.encode("utf-8", "surrogatepass").split(b"/"))) <= MAX_COMPONENT


_DRIVE_IN_FRAMED = re.compile(r"\0.:", re.DOTALL)


def all_clean_entry_paths(paths: list[str]) -> bool:
    """:func:`is_clean_entry_path` of every path at once, as a few scans of
    one string (for manifests of 10^5 entries and more): the paths joined
    and framed by NUL, which no clean path holds, so that every rule about
    a path's start or end becomes a search for NUL beside something."""
    if not paths:
        return True
    if set(map(type, paths)) != {str}:
        return False
    framed = "\0" + "\0".join(paths) + "\0"
    longest = max(map(len, paths))
    return (
        framed.count("\0") == len(paths) + 1  # no NUL inside a path
        and longest <= MAX_PATH
        and "\0\0" not in framed  # empty
        and "\\" not in framed and "//" not in framed and ".." not in framed
        and "/./" not in framed
        and "\0/" not in framed and "/\0" not in framed  # absolute, trailing slash
        and "\0./" not in framed and "/.\0" not in framed and "\0.\0" not in framed
        and (":" not in framed or _DRIVE_IN_FRAMED.search(framed) is None)
        and (longest <= _ANY_FITS or (longest <= MAX_COMPONENT and framed.isascii())
             or all(map(names_fit, paths)))
        and is_utf8(framed)
    )


def validate_entry_path(value: str) -> str:
    """Return the normalised relative POSIX path, or raise InvalidNameError.

    Refuses empty paths, absolute paths, drive letters, backslashes, NUL,
    any ``..`` component, and names longer than :data:`MAX_COMPONENT` bytes
    (no file could be written out under them). ``.`` components and repeated
    slashes are normalised away.
    """
    if is_clean_entry_path(value):  # the common case, called for every file
        return value
    path = read_entry_path(value)
    if not names_fit(path):
        raise InvalidNameError(
            what="entry path", value=value,
            reason=f"a file or folder name in it is longer than {MAX_COMPONENT} bytes",
        )
    return path


def read_entry_path(value: str) -> str:
    """:func:`validate_entry_path` for a path read back from a manifest, which
    an older wbtool may have written with a name longer than MAX_COMPONENT:
    such a path is kept (still relative, with no ``..``), so that the version
    stays readable and its objects stay alive; writing it out will fail."""
    if not isinstance(value, str) or not value:
        raise InvalidNameError(what="entry path", value=value, reason="must be a non-empty string")
    if "\0" in value:
        raise InvalidNameError(what="entry path", value=value, reason="contains NUL")
    if not is_utf8(value):
        raise InvalidNameError(what="entry path", value=value,
                               reason="is not valid UTF-8 (a file name in another encoding?)")
    if "\\" in value:
        raise InvalidNameError(what="entry path", value=value, reason="use '/' as separator")
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise InvalidNameError(what="entry path", value=value, reason="must be relative")
    if len(value) > MAX_PATH:
        raise InvalidNameError(what="entry path", value=value, reason="too long")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not parts:
        raise InvalidNameError(what="entry path", value=value, reason="names no file")
    if ".." in parts:
        raise InvalidNameError(what="entry path", value=value, reason="contains '..'")
    return "/".join(parts)


def parse_version(value: str) -> int | None:
    """``"v3"`` → 3; anything else (``"v03"`` too) → None.

    A number past :data:`MAX_VERSION`, which no version can have, comes back
    as ``MAX_VERSION + 1`` (however many digits it has)."""
    m = _VERSION_RE.fullmatch(value)
    if m is None:
        return None
    digits = m.group(1)
    return min(int(digits), MAX_VERSION + 1) if len(digits) <= 19 else MAX_VERSION + 1


def split_ref(ref: str, entity: str | None = None) -> tuple[str | None, str, str | None]:
    """Split ``[[entity/]project/]name[:alias|vN]`` into (project, name,
    version-or-alias).

    A store has one entity, ``entity``: a reference naming another is
    refused (OtherEntityError, a not-found), never read as one of this
    store's. Without ``entity`` only the form is checked.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidNameError(what="artifact reference", value=ref,
                               reason="must be a non-empty string")
    body, _, version = ref.partition(":")
    parts = body.split("/")
    if len(parts) > 3:
        raise InvalidNameError(
            what="artifact reference", value=ref,
            reason="use name[:alias], project/name[:alias] or entity/project/name[:alias]",
        )
    name = validate_name(parts[-1])
    project = validate_name(parts[-2], "project name") if len(parts) >= 2 else None
    if len(parts) == 3:
        check_entity(parts[0], entity, ref)
    if ref.endswith(":"):
        raise InvalidNameError(what="artifact reference", value=ref, reason="empty version")
    if version:
        validate_lookup(version)
    return project, name, version or None


def check_entity(named: str, own: str | None, ref: str) -> None:
    """Refuse the entity part ``named`` of ``ref`` unless it is this store's
    entity ``own`` (unchecked where ``own`` is None)."""
    if not named:
        raise InvalidNameError(what="artifact reference", value=ref, reason="empty entity")
    if own is not None and named != own:
        raise OtherEntityError(entity=named, ref=ref, own=own)
