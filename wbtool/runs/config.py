"""``run.config``: dict-like, with attribute access, as in the reference.

Changing the value of a key that is already set raises unless
``allow_val_change`` is given (for the call, or as a setting), so a typo in
a sweep or a script cannot silently rewrite what a run was started with.
"""

from __future__ import annotations

import os
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import Any

from wbtool.errors import UsageError
from wbtool.flags import optional_flag


class ConfigError(UsageError):
    """{message}"""


def load_config_source(value: Any) -> dict[str, Any]:
    """A dict from what ``init(config=...)`` accepts: a mapping, a dataclass,
    a pydantic model, an argparse Namespace (or any object with
    ``__dict__``), a YAML file path, or None."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (str, os.PathLike)):
        return read_yaml_file(os.fspath(value))
    from wbtool.runs.values import record_fields

    fields = record_fields(value)
    if fields is not None:
        return fields
    if isinstance(value, type) and callable(getattr(value, "model_dump", None)):
        raise ConfigError(f"config must be a {value.__name__} instance, not the class itself")
    if hasattr(value, "__dict__"):  # argparse.Namespace, simple objects
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    raise ConfigError("config must be a dict, a dataclass, an argparse Namespace or a YAML "
                      f"file path, not {type(value).__name__}")


def read_yaml_file(path: str) -> dict[str, Any]:
    from wbtool import yamltext

    try:
        doc = yamltext.load_file(path)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ConfigError(f"config file {path} is {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    # The reference's config.yaml nests each value as {"value": ..., "desc": ...}.
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "wandb_version" or k == "_wandb":
            continue
        if isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc"}:
            v = v["value"]
        out[str(k)] = v
    return out


def key_list(arg: str, value: Any) -> list[str] | None:
    """The config keys that ``arg`` names: one string is one key, as for tags
    (iterating it would name its letters)."""
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    try:
        keys = list(value)
    except TypeError:
        keys = [None]
    if not all(isinstance(key, str) for key in keys):
        raise ConfigError(f"{arg} must be a list of config key names, not {value!r}")
    return keys


def select_keys(data: dict[str, Any], include: Iterable[str] | None,
                exclude: Iterable[str] | None) -> dict[str, Any]:
    if include:
        keep = set(include)
        data = {k: v for k, v in data.items() if k in keep}
    if exclude:
        drop = set(exclude)
        data = {k: v for k, v in data.items() if k not in drop}
    return data


class Config(MutableMapping[str, Any]):
    """The run's configuration. ``on_change`` is called after every change."""

    __slots__ = ("_allow_val_change", "_dropped", "_items", "_locked", "_on_change",
                 "_touched")

    def __init__(self, *, allow_val_change: bool = False,
                 on_change: Callable[[], None] | None = None) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_allow_val_change", allow_val_change)
        object.__setattr__(self, "_on_change", on_change or (lambda: None))
        object.__setattr__(self, "_locked", False)
        # The keys set and deleted since take_changes(): what a process that
        # shares the run's config.yaml with others writes into it.
        object.__setattr__(self, "_touched", set())
        object.__setattr__(self, "_dropped", set())

    def _set(self, key: str, value: Any, allow_val_change: bool | None) -> bool:
        changed, value = self._check(key, value, allow_val_change)
        if changed:
            self._items[key] = value
            self.touch((key,))
        return changed

    def _check(self, key: str, value: Any, allow_val_change: bool | None) -> tuple[bool, Any]:
        """Whether setting ``key`` changes the config, and the value it would
        hold; raises for a change that is refused."""
        from wbtool.runs.values import normalise

        if not isinstance(key, str) or not key:
            raise ConfigError(f"config keys must be non-empty strings, not {key!r}")
        if self._locked:
            raise ConfigError("this run is finished: its config can no longer change")
        value = normalise(value, key, lenient=True)
        allow = self._allow_val_change if allow_val_change is None else allow_val_change
        if key in self._items:
            old = self._items[key]
            if old == value or (old != old and value != value):  # NaN equals NaN here
                return False, old
            if not allow:
                raise ConfigError(
                    f"config key {key!r} is already {old!r}; refusing to change it to "
                    f"{value!r} (pass allow_val_change=True to change it)"
                )
        return True, value

    def __setitem__(self, key: str, value: Any) -> None:
        if self._set(key, value, None):
            self._on_change()

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __delitem__(self, key: str) -> None:
        if self._locked:
            raise ConfigError("this run is finished: its config can no longer change")
        del self._items[key]
        self._touched.discard(key)
        self._dropped.add(key)
        self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def update(self, d: Any = None, allow_val_change: bool | None = None,  # type: ignore[override]
               **kwargs: Any) -> None:
        allow_val_change = optional_flag(allow_val_change, "allow_val_change")
        items = load_config_source(d) if d is not None else {}
        items.update(kwargs)
        self._apply(items, allow_val_change)

    def setdefaults(self, d: Mapping[str, Any]) -> None:
        items = load_config_source(d)
        self._apply({k: v for k, v in items.items() if k not in self._items}, None)

    def _apply(self, items: Mapping[str, Any], allow_val_change: bool | None) -> None:
        """Set every key of ``items``, or none of them when one is refused."""
        changes = {}
        for key, value in items.items():
            changed, value = self._check(key, value, allow_val_change)
            if changed:
                changes[key] = value
        if changes:
            self._items.update(changes)
            self.touch(changes)
            self._on_change()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self._items:
            self[key] = default
        return self._items[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def touch(self, keys: Iterable[str]) -> None:
        """Count ``keys`` as set by this process (for :meth:`take_changes`)."""
        self._touched.update(keys)
        self._dropped.difference_update(keys)

    def take_changes(self) -> tuple[dict[str, Any], set[str]]:
        """The keys set (with their values) and the keys deleted since the
        last call: all that a process may write into a config that others
        write too; its copy of the other keys may be older than theirs."""
        items = self._items
        changes = {k: items[k] for k in self._touched if k in items}
        dropped = set(self._dropped)
        self._touched.clear()
        self._dropped.clear()
        return changes, dropped

    def keys(self) -> KeysView[str]:
        return self._items.keys()

    def items(self) -> ItemsView[str, Any]:
        return self._items.items()

    def values(self) -> ValuesView[Any]:
        return self._items.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def _lock(self) -> None:
        object.__setattr__(self, "_locked", True)

    def __repr__(self) -> str:
        return f"Config({self._items!r})"
