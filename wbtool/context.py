"""What every service needs, built once and passed explicitly: the resolved
settings and the opened store."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from wbtool.settings import Settings, load
from wbtool.store.layout import Store, discover

if TYPE_CHECKING:
    from wbtool.artifacts.registry import Registry

DEFAULT_PROJECT = "uncategorized"


def project_settings(project: str | None) -> Settings | None:
    """The settings a command's ``--project`` option asks for: None where it
    was not given. A name that is empty or invalid is refused, as a usage
    error, rather than read as no project (which would quietly fall back to
    the settings' project or the default one)."""
    if project is None:
        return None
    from wbtool.names import validate_name

    return Settings(project=validate_name(project, "project name"))


def checked_project(settings: Settings) -> str | None:
    """The project the settings name (None where none is set, or it is
    empty, as an empty variable is), refused as a usage error, naming where it
    was set, when it is no valid project name: read as it is, a project such
    as ``a b`` matches nothing, so that listings would print nothing and
    writes would make a project no command can name."""
    project = settings.project
    if not project:
        return None
    from wbtool.errors import InvalidNameError
    from wbtool.names import validate_name

    try:
        return validate_name(project, "project name")
    except InvalidNameError as e:
        source = settings.source("project")
        if source == "argument":
            raise
        raise InvalidNameError(f"{e} (set by {source})", **e.fields) from None


class Context:
    __slots__ = ("settings", "store")

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        store.durable = bool(settings.x_store_fsync)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, create: bool = True,
                      need_project: bool = False) -> Context:
        """The context of the store the settings find (made where ``create``).
        A command that works in the settings' project (``need_project``)
        has an invalid one refused before a store is made."""
        resolved = load(settings)
        if need_project:
            checked_project(resolved)
        store = Store.open(discover(root_dir=resolved.root_dir), create=create)
        return cls(resolved, store)

    @classmethod
    def existing(cls, settings: Settings | None = None, *,
                 need_project: bool = False) -> Context | None:
        """The context of the store the settings find, or None where there is
        no store yet (commands that only look never create one). As for
        :meth:`from_settings`, ``need_project`` refuses an invalid project."""
        resolved = load(settings)
        if need_project:
            checked_project(resolved)
        path = discover(root_dir=resolved.root_dir)
        if not (path / "config.yaml").is_file() and not Store(path).holds_data():
            return None  # (a store that lost its config.yaml is refused by open)
        return cls(resolved, Store.open(path, create=False))

    @property
    def project(self) -> str:
        """The project commands work in: the settings' (checked), else the default."""
        return checked_project(self.settings) or DEFAULT_PROJECT

    @property
    def named_entity(self) -> str | None:
        """The entity the settings name, None where unset. Only a named entity
        makes references in another one not found: without it, scripts that
        name a team's entity (``team/project/name``) read this store's."""
        return str(self.settings.entity) if self.settings.entity else None

    @property
    def entity(self) -> str:
        if self.settings.entity:
            return str(self.settings.entity)
        for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
            if os.environ.get(var):
                return os.environ[var]
        try:
            import pwd

            return pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError, OSError):
            return "local"

    @property
    def registry(self) -> Registry:
        from wbtool.artifacts.registry import Registry

        return Registry(self.store)
