"""Runs as the public API reads them back: ``Api().runs()``, ``Api().run()``,
``artifact.logged_by()`` and ``artifact.used_by()``."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wbtool.errors import InvalidNameError, NotFoundError, UsageError
from wbtool.flags import flag
from wbtool.runs import catalog, query
from wbtool.runs.crashed import caught_up
from wbtool.runs.folder import (
    RunFolder,
    being_born,
    effective_state,
    is_record,
    read_record,
    runtime_shown,
)
from wbtool.runs.history import iter_rows
from wbtool.runs.ids import split_run_path, validate_id

if TYPE_CHECKING:
    from wbtool.artifacts.artifact import Artifact
    from wbtool.context import Context
    from wbtool.runs.files import File


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PublicRun:
    """A run read from the store."""

    def __init__(self, ctx: Context, doc: dict[str, Any],
                 summary: dict[str, Any] | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self._ctx = ctx
        self._doc = doc
        self._folder = RunFolder(ctx.store.path / "runs" / str(doc["id"]))
        self._summary = summary
        self._config = config

    # -- identity -------------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self._doc["id"])

    @property
    def name(self) -> str | None:
        return self._doc.get("name")

    display_name = name

    @property
    def entity(self) -> str:
        return str(self._doc.get("entity") or "")

    @property
    def project(self) -> str:
        return str(self._doc["project"])

    @property
    def path(self) -> list[str]:
        return [self.entity, self.project, self.id]

    @property
    def state(self) -> str:
        return effective_state(self._doc)

    @property
    def group(self) -> str | None:
        return self._doc.get("group")

    @property
    def job_type(self) -> str | None:
        return self._doc.get("job_type")

    @property
    def tags(self) -> list[str]:
        return list(self._doc.get("tags") or [])

    @property
    def notes(self) -> str | None:
        return self._doc.get("notes")

    @property
    def created_at(self) -> str | None:
        return _iso(self._doc.get("created_at"))

    @property
    def heartbeat_at(self) -> str | None:
        return _iso(self._doc.get("heartbeat_at"))

    @property
    def runtime(self) -> float:
        """Seconds the run ran; of a run still running, so far."""
        return runtime_shown(self._doc, self.state)

    @property
    def exit_code(self) -> int | None:
        return self._doc.get("exit_code")

    @property
    def url(self) -> str:
        return self._folder.path.resolve().as_uri()

    @property
    def dir(self) -> str:
        return str(self._folder.path)

    @property
    def record(self) -> dict[str, Any]:
        """``run.json`` as stored."""
        return dict(self._doc)

    @property
    def summary(self) -> dict[str, Any]:
        if self._summary is None:
            doc = self._folder.read_json(self._folder.summary, {})
            self._summary = doc if isinstance(doc, dict) else {}
        return self._summary

    summary_metrics = summary

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = self._folder.read_config()
        return self._config

    @property
    def metadata(self) -> dict[str, Any]:
        doc = self._folder.read_json(self._folder.metadata, {})
        return doc if isinstance(doc, dict) else {}

    def __repr__(self) -> str:
        return f"<Run {'/'.join(self.path)} ({self.state})>"

    def _filter_doc(self) -> dict[str, Any]:
        return query.filter_doc(self._doc, self.state, self.config, self.summary)

    # -- history ----------------------------------------------------------------------
    def scan_history(self, keys: Sequence[str] | None = None, page_size: int = 1000,
                     min_step: int | None = None, max_step: int | None = None,
                     ) -> Iterator[dict[str, Any]]:
        """Every history row, streamed. With ``keys``, only rows holding all of
        them, reduced to those keys, ``_step``, and ``_label`` where the row has
        one: the process of a shared run that logged it (x_label), which no
        row needs in order to be kept, even when ``keys`` names it."""
        wanted = _keys(keys) or None
        min_step, max_step = _step_arg("min_step", min_step), _step_arg("max_step", max_step)
        needed = [k for k in wanted if k != "_label"] if wanted else []
        for row in iter_rows(self._folder.history):
            step = row.get("_step")
            if min_step is not None and (not isinstance(step, int) or step < min_step):
                continue
            if max_step is not None and (not isinstance(step, int) or step >= max_step):
                continue
            if wanted is None:
                yield row
            elif all(k in row for k in needed):
                out = {k: row[k] for k in wanted if k in row}
                out.setdefault("_step", step)
                if "_label" in row:
                    out["_label"] = row["_label"]
                yield out

    def history(self, samples: int = 500, keys: Sequence[str] | None = None,
                x_axis: str = "_step", pandas: bool = True, stream: str = "default") -> Any:
        """Up to ``samples`` rows spread evenly over the run (first and last
        included); a pandas DataFrame when pandas is installed and ``pandas``.
        ``stream``: ``"default"`` (what was logged) or ``"system"`` (system
        metrics; ``"events"`` too, as the W&B public API names them)."""
        if stream not in ("default", "system", "events"):
            raise UsageError(f"stream must be 'default' or 'system', not {stream!r}")
        if isinstance(samples, bool) or not isinstance(samples, int):
            raise TypeError(f"samples must be an int, not {samples!r}")
        pandas = flag(pandas, "pandas")
        keys = _keys(keys)
        source = self._folder.system if stream != "default" else None
        if source is not None:
            rows = list(iter_rows(source))
            if keys:
                rows = [{k: r[k] for k in (*keys, "_timestamp", "_label") if k in r}
                        for r in rows if all(k in r for k in keys if k != "_label")]
        else:
            rows = list(self.scan_history(keys=keys))
        rows = sample_rows(rows, samples)
        if pandas:
            try:
                import pandas as pd
            except ImportError:
                return rows
            return pd.DataFrame.from_records(rows)
        return rows

    def sample_history(self, keys: Sequence[str] | None = None, samples: int = 500
                       ) -> list[dict[str, Any]]:
        """Like ``history`` but always a list of dicts."""
        return list(self.history(samples=samples, keys=keys, pandas=False))

    # -- files and artifacts ---------------------------------------------------------------
    def files(self, names: Sequence[str] | None = None, per_page: int = 50) -> list[File]:
        """The run's saved files (its ``files/`` folder), sorted by name; with
        ``names``, those files, in that order."""
        from wbtool.runs.files import File

        if names is not None:
            return [self.file(n) for n in _keys(names, "names")]
        root = self._folder.files
        out = []
        for dirpath, _dirs, found in os.walk(root):
            for n in found:
                path = os.path.join(dirpath, n)
                out.append(File(os.path.relpath(path, root).replace(os.sep, "/"), path))
        return sorted(out, key=lambda f: f.name)

    def file(self, name: str) -> File:
        from wbtool.names import validate_entry_path
        from wbtool.runs.files import File

        rel = validate_entry_path(name)
        path = self._folder.files / rel
        if not path.is_file():
            raise NotFoundError(what=f"file in run {self.id}", name=name)
        return File(rel, str(path))

    def _artifacts(self, direction: str) -> list[Artifact]:
        from wbtool.artifacts.artifact import Artifact

        registry = self._ctx.registry
        out = []
        for (vid,) in registry.db.execute(
                "SELECT version_id FROM lineage WHERE run_id=? AND direction=?"
                " ORDER BY version_id", (self.id, direction)):
            try:
                out.append(Artifact._from_record(self._ctx, registry.get(vid)))
            except NotFoundError:
                continue  # the version was deleted since
        return out

    def logged_artifacts(self) -> list[Artifact]:
        return self._artifacts("output")

    def used_artifacts(self) -> list[Artifact]:
        return self._artifacts("input")

    def delete(self) -> None:
        delete_run(self._ctx, self.id)


def _keys(keys: Sequence[str] | str | None, what: str = "keys") -> list[str]:
    """History keys (or file names) as a list: one string is one key, not its
    characters, and each must be a string."""
    if keys is None:
        return []
    out = [keys] if isinstance(keys, str) else list(keys)
    for k in out:
        if not isinstance(k, str):
            raise TypeError(f"{what} must be strings, not {type(k).__name__}: {k!r}")
    return out


def _step_arg(what: str, step: int | None) -> int | None:
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"{what} must be an int or None, not {step!r}")
    return step


def sample_rows(rows: list[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    n = len(rows)
    if samples <= 0 or n <= samples:
        return rows
    if samples == 1:
        return [rows[-1]]
    return [rows[round(i * (n - 1) / (samples - 1))] for i in range(samples)]


def get_run(ctx: Context, path: str, *, need_folder: bool = False) -> PublicRun:
    """The run ``path`` names; an entity other than the one the settings
    name is not found (any entity is this store's where none is named).
    ``need_folder``: a run the index lists whose folder is gone, or whose
    run.json cannot be read, is refused too (what reads its files needs them)."""
    _entity, project, run_id = split_run_path(path, ctx.named_entity)
    row = catalog.get(ctx.store.index, run_id)
    if row is not None:
        row = caught_up(ctx, [row])[0]
    folder = RunFolder(ctx.store.path / "runs" / run_id)
    if row is None:
        doc = read_record(folder, name=path)
        if doc.get("id") != run_id:  # a copy of another run's folder: the path names this one
            doc = {**doc, "id": run_id}
        run = PublicRun(ctx, doc)
    else:
        if need_folder:  # the folder, whose run.json the index may outlive
            read_record(folder, indexed=True)
        run = PublicRun(ctx, row.doc, row.summary, row.config)
    if project is not None and run.project != project:
        raise NotFoundError(what="run", name=path)
    return run


def list_runs(ctx: Context, project: str | None = None,
              filters: Mapping[str, Any] | None = None, order: str = "-created_at",
              state: str | None = None) -> list[PublicRun]:
    if filters:
        query.check(filters)
    runs = [PublicRun(ctx, r.doc, r.summary, r.config)
            for r in caught_up(ctx, catalog.select(ctx.store.index, project=project))]
    if state is not None:
        runs = [r for r in runs if r.state == state]
    if filters:
        runs = [r for r in runs if query.matches(r._filter_doc(), filters)]
    key, descending = query.sort_key(order)
    if key != "created_at" or not descending:
        query.sort_runs(runs, PublicRun._filter_doc, order)
    return runs


def unlisted_damaged(ctx: Context, folders: Iterable[str]) -> list[str]:
    """Of the folders in ``runs/`` named ``folders``, the run folders the
    index does not list whose run.json is missing or damaged: no listing
    shows them, and ``runs delete`` removes them. A run being created or
    pulled (:func:`~wbtool.runs.folder.being_born`) is left out."""
    now = time.time()
    listed = catalog.ids(ctx.store.index)
    out = []
    for name in sorted(set(folders) - listed):
        folder = RunFolder(ctx.store.path / "runs" / name)
        try:
            validate_id(name)
        except InvalidNameError:
            continue
        if is_record(folder.read_run()) or being_born(folder, now):
            continue
        out.append(name)
    return out


def delete_run(ctx: Context, run_id: str) -> None:
    import shutil

    from wbtool.fsutil import tmp_name

    folder = RunFolder(ctx.store.path / "runs" / run_id)
    found = catalog.delete(ctx.store.index, run_id)
    if folder.path.exists():
        # Rename first, so a half-deleted folder never looks like a run.
        trash = tmp_name(ctx.store.tmp, f"run-{run_id}")
        os.rename(folder.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
    elif not found:
        raise NotFoundError(what="run", name=run_id)
