"""``wbtool.Api``: read access to what the store holds (the public API's
artifact look-ups, without a server)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wbtool.artifacts.artifact import Artifact
from wbtool.context import Context
from wbtool.names import split_ref

if TYPE_CHECKING:
    from wbtool.runs.public import PublicRun


def _check_type(arg: str, value: object) -> None:
    """Refuse an artifact type that is not text: compared with the logged
    types, it matched none, so a look-up found nothing without a word."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{arg} must be a string, not {type(value).__name__}: {value!r}")


class Api:
    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        from wbtool.settings import Settings

        settings = Settings(**(overrides or {}))
        self._ctx = Context.from_settings(settings)

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """``[[entity/]project/]name[:version|alias]`` → the logged Artifact
        (an entity other than this store's is not found)."""
        _check_type("type", type)
        return Artifact._load(name, self._ctx, type=type)

    def run(self, path: str) -> PublicRun:
        """``entity/project/id``, ``project/id`` or ``id`` → the run (an
        entity other than the one the settings name is not found)."""
        from wbtool.runs.public import get_run

        return get_run(self._ctx, path)

    def runs(self, path: str | None = None, filters: dict[str, Any] | None = None,
             order: str = "-created_at", per_page: int = 50,
             include_sweeps: bool = True) -> list[PublicRun]:
        """Runs of a project (``project`` or ``entity/project``, where an
        entity other than the one the settings name has none; default: the
        current project), newest first, filtered as the reference's public API
        does (``{"config.lr": {"$gt": 0.01}}``, ``{"state": "finished"}`` …).
        A key's dots step into nested values or, where there are none, name a
        flat key with those dots or with slashes for them:
        ``{"summary_metrics.train.loss": {"$lt": 1}}`` finds ``train/loss``."""
        from wbtool.runs.ids import split_project_path
        from wbtool.runs.public import list_runs

        project = self._ctx.project
        if path:
            _entity, project = split_project_path(path, self._ctx.named_entity)
        return list_runs(self._ctx, project, filters, order)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        """Whether ``[project/]name[:version|alias]`` is logged, here or on the
        default remote (which is asked, not pulled from)."""
        from wbtool.errors import OtherEntityError

        _check_type("type", type)
        from wbtool.remote import fallback

        try:
            project, bare, version = split_ref(name, self._ctx.named_entity)
        except OtherEntityError:  # none of this store's
            return False
        return fallback.exists(self._ctx.registry, project or self._ctx.project, bare, version,
                               type)

    def artifacts(self, type_name: str | None = None, name: str | None = None) -> list[Artifact]:
        """Every logged version, optionally of one type and one ``[project/]name``."""
        _check_type("type_name", type_name)
        project = None
        if name is not None:
            project, name, _ = split_ref(name, self._ctx.named_entity)
        registry = self._ctx.registry
        return [
            Artifact._from_record(self._ctx, rec)
            for rec in registry.versions(project or self._ctx.project, name)
            if type_name is None or rec.type == type_name
        ]
