"""``wbtool.Api``: read access to what the store holds (the public API's
artifact look-ups, without a server)."""

from __future__ import annotations

from typing import Any

from wbtool.artifacts.artifact import Artifact
from wbtool.context import Context
from wbtool.errors import NotFoundError
from wbtool.names import split_ref


class Api:
    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        from wbtool.settings import Settings

        settings = Settings(**(overrides or {}))
        self._ctx = Context.from_settings(settings)

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """``[project/]name[:version|alias]`` → the logged Artifact."""
        return Artifact._load(name, self._ctx, type=type)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except NotFoundError:
            return False
        return True

    def artifacts(self, type_name: str | None = None, name: str | None = None) -> list[Artifact]:
        """Every logged version, optionally of one type and one ``[project/]name``."""
        project = None
        if name is not None:
            project, name, _ = split_ref(name)
        registry = self._ctx.registry
        return [
            Artifact._from_record(self._ctx, rec)
            for rec in registry.versions(project or self._ctx.project, name)
            if type_name is None or rec.type == type_name
        ]
