"""``wbtool.Run``: one experiment — config, history, summary, files, lineage.

Everything a run writes lives in its folder (see :mod:`wbtool.runs.folder`).
``log`` only builds a row and appends it to a buffer; a writer thread turns
buffered rows into whole JSON lines about every second (and at finish), and
sends the heartbeat that lets readers tell a crashed run from a live one.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbtool.errors import SettingsError, UsageError, WbtoolError
from wbtool.flags import optional_flag
from wbtool.fsutil import append_to
from wbtool.runs import catalog
from wbtool.runs.config import Config
from wbtool.runs.folder import RunFolder, hostname
from wbtool.runs.history import LineWriter
from wbtool.runs.summary import Metric, MetricTable, Summary
from wbtool.runs.values import (
    JSON_SAFE,
    MAX_STEP,
    PLAIN,
    RESERVED_KEYS,
    LogTarget,
    flatten_into,
    logged_twice,
    reserved_warning,
    storable,
)

if TYPE_CHECKING:
    from wbtool.artifacts.artifact import Artifact
    from wbtool.context import Context
    from wbtool.settings import Settings

_PLAIN_SUPERSET = PLAIN.issuperset
_STR_SUPERSET = frozenset((str,)).issuperset
FLUSH_SECONDS = 1.0
# A buffer this long wakes the writer before its second is up, so a fast
# loop hands rows over in steady batches instead of one burst at finish.
WAKE_ROWS = 20_000
# Past that many rows waiting, a loop that logs faster than they can be written
# waits for the writer once the oldest of them is this old: what a SIGKILL
# loses stays about the last second of rows, not a growing backlog.
MAX_LAG_SECONDS = 0.5
ALERT_LEVELS = ("INFO", "WARN", "ERROR")
# The keys every history row carries. In a summary that processes of a shared
# run write together, the highest of each stays (their steps count apart).
ROW_TIMES = ("_step", "_runtime", "_timestamp")


def alert_line(level: str, title: str, text: str) -> str:
    """How an alert is printed: control characters (escape sequences among
    them) shown, not sent to the terminal, as its text and title come from
    whatever the program read or caught; the title on the alert's first line
    (a newline in it shown as ``\\n``, as in a run's name), the text on as
    many as it holds."""
    from wbtool.text import printable, printable_lines

    return f"wbtool: ALERT [{level}] {printable(title)}: {printable_lines(text)}"


class RunFinishedError(UsageError):
    """run {run_id} is finished: start a new one with wbtool.init()"""


class Run:
    """A run, as returned by :func:`wbtool.init`."""

    def __init__(
        self, ctx: Context | None, settings: Settings, folder: RunFolder | None,
        doc: dict[str, Any], *, config: dict[str, Any], summary: dict[str, Any] | None = None,
        summary_user: list[str] | None = None, summary_counts: dict[str, Any] | None = None,
        metrics: list[dict[str, Any]] | None = None, step: int = 0, runtime_offset: float = 0.0,
        row_step: int | None = None,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._folder = folder
        self._doc = doc
        self._disabled = folder is None
        self._lock = threading.RLock()
        # Held by each run.log call while it builds and commits its row: calls
        # from several threads take turns (else one could take another's row).
        # Taken before self._lock where both are (finish), never after it.
        self._log_lock = threading.RLock()
        self._config_dirty = False
        self._summary_dirty = False
        self._metrics = MetricTable()
        if metrics:
            self._metrics.load(metrics)
        self._sync_metrics = False
        self._step_metric_names: set[str] = set()
        self._refresh_step_metrics()
        self._step_values: dict[str, Any] = {}
        self._config = Config(allow_val_change=bool(settings.allow_val_change),
                              on_change=self._config_changed)
        self._config.update(config, allow_val_change=True)
        self._config.take_changes()  # what it starts with is no change
        self._config_dirty = False
        self._summary = Summary(self._metrics, on_change=self._summary_changed,
                                media=lambda: self._media_target(None), warn=self._warn_once)
        if summary:
            self._summary.load(summary, summary_user, summary_counts)
            self._step_values = _last_step_values(self._step_metric_names, summary)
        self._step = step
        self._row_step = row_step  # the step of the last row committed (None before any)
        self._pending: dict[str, Any] | None = None
        # _runtime = time.time() - _t0_wall: one clock read per committed row.
        self._t0_wall = time.time() - runtime_offset
        self._start_time = float(doc["started_at"])
        self._runtime_offset = runtime_offset
        self._finished = False
        self._pid = os.getpid()
        self._warned: dict[str, int] = {}
        self._alerts: dict[str, float] = {}
        self._saves: dict[str, tuple[str, str, tuple[int, int] | None]] = {}
        self._history: LineWriter | None = None
        # None: this process alone writes the run. "owner": a launcher whose
        # program may attach; "attached": a program inside a launched run, or
        # a secondary process of a run in mode="shared"; "primary": the
        # process of a shared run that secondaries join. Shared runs merge
        # their writes of run.json, summary and config.
        self._shared: str | None = None
        # Of a secondary process of a shared run: its label (x_label, else
        # host:pid), written as ``_label`` into each history row it commits.
        self._row_label: str | None = None
        # Of a shared run: the fields of run.json this process set since its
        # last write (the others' may have changed them since), and the tags
        # it joined with, which add to the others' rather than replace them.
        self._doc_changed: set[str] = set()
        self._join_tags: tuple[str, ...] = ()
        # The metrics this process defined: all of run.json's "metrics" that
        # it writes when others write them too.
        self._metrics_defined: set[str] = set()
        # A metric defined since run.json was last written: the next flush
        # writes it, so that a run killed soon after still summarises it so
        # when it is resumed (the heartbeat comes only every 30 s).
        self._metrics_unsaved = False
        self._command: list[str] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._console: Any = None
        self._sampler: Any = None
        self._system: LineWriter | None = None
        self._metadata_thread: threading.Thread | None = None
        self._metadata_result: Any = None
        self._on_finish: list[Callable[[Run], None]] = []
        self._last_beat = time.monotonic()
        self._last_summary_write = 0.0
        if folder is not None:
            # Its lag is read from each row's _runtime: a _timestamp may be the user's.
            self._history = LineWriter(folder.history, started=self._t0_wall)

    # -- identity ----------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self._doc["id"])

    @property
    def name(self) -> str | None:
        return self._doc.get("name")

    @name.setter
    def name(self, value: str) -> None:
        from wbtool.settings import _validate

        name = _validate("run_name", value)  # as init(name=...) is checked
        if name is None:  # it was kept as the name "None"
            raise SettingsError(name="run_name", reason="None: expected a string")
        self._set_doc("name", name)

    @property
    def notes(self) -> str | None:
        return self._doc.get("notes")

    @notes.setter
    def notes(self, value: str | None) -> None:
        from wbtool.settings import _validate

        self._set_doc("notes", _validate("run_notes", value))

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._doc.get("tags") or ())

    @tags.setter
    def tags(self, value: Sequence[str]) -> None:
        from wbtool.settings import _validate

        if not isinstance(value, (str, Mapping)) and isinstance(value, Iterable):
            value = tuple(value)  # a string is read as init(tags=...) reads it
        self._set_doc("tags", list(_validate("run_tags", value) or ()))

    @property
    def group(self) -> str | None:
        return self._doc.get("group")

    @property
    def job_type(self) -> str | None:
        return self._doc.get("job_type")

    @property
    def project(self) -> str:
        return str(self._doc["project"])

    @property
    def entity(self) -> str:
        return str(self._doc["entity"])

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"

    @property
    def dir(self) -> str:
        if self._folder is None:
            return os.path.join(os.getcwd(), ".wbtool-disabled")
        return str(self._folder.files)

    @property
    def url(self) -> str | None:
        return None if self._folder is None else self._folder.path.resolve().as_uri()

    @property
    def project_url(self) -> str | None:
        return None

    @property
    def sweep_id(self) -> str | None:
        return None

    @property
    def sweep_url(self) -> str | None:
        return None

    @property
    def start_time(self) -> float:
        return self._start_time

    @property
    def resumed(self) -> bool:
        return bool(self._doc.get("resumed"))

    @property
    def offline(self) -> bool:
        return self._settings.mode != "online"

    @property
    def disabled(self) -> bool:
        return self._disabled

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def config(self) -> Config:
        return self._config

    @property
    def config_static(self) -> Mapping[str, Any]:
        import types

        return types.MappingProxyType(self._config.as_dict())

    @property
    def summary(self) -> Summary:
        return self._summary

    @property
    def step(self) -> int:
        return self._step

    def _history_step(self) -> int | None:
        """The step of the run's latest history row: the one being built,
        else the last committed (None before any), as an artifact the run
        logs records it."""
        return self._step if self._pending is not None else self._row_step

    @property
    def state(self) -> str:
        return str(self._doc["state"])

    def __repr__(self) -> str:
        return f"<Run {self.path} ({self.state})>"

    @property
    def _attach_id(self) -> str | None:
        """What another process passes to ``wbtool._attach`` to join this run
        (which becomes a shared run); None for a run that writes nothing."""
        from wbtool.runs.attach import attach_id

        return attach_id(self)

    def __copy__(self) -> Run:
        """A run is one: a copy of an object that holds it (a logger, a
        config tree) holds the same run, as in the reference."""
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Run:
        return self

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled (into a ``multiprocessing`` worker), a run is its handle:
        unpickling joins it, as ``wbtool._attach`` does."""
        handle = self._attach_id
        if handle is None:
            raise TypeError(f"run {self.id} cannot be handed to another process: "
                            + ("it is finished" if self._finished else "it writes nothing"))
        from wbtool.runs.attach import reattach

        return reattach, (handle,)

    # -- logging -------------------------------------------------------------------
    def log(self, data: Mapping[str, Any], step: int | None = None,
            commit: bool | None = None) -> None:
        """Log a dict of values to the current (or the given) step.

        Without ``step`` each call commits a row and advances the step unless
        ``commit=False``. With ``step``, data accumulates into that step
        (``commit`` defaults to False) and a later step commits it; a step
        lower than the current one is refused with a warning. ``wbtool.Image``,
        ``Table``, ``Audio``, ``Video``, ``Html`` and ``Object3D`` values write
        their files into the run's ``media/`` folder, named by their key and step.
        Calls from several threads take turns, each row whole.
        """
        with self._log_lock:
            if step is None and commit is None and self._pending is None and type(data) is dict \
                    and not self._finished and self._step <= MAX_STEP:
                # The common call, one flat dict of plain values: no per-key loop.
                row = data.copy()
                if _PLAIN_SUPERSET(map(type, row.values())) and _STR_SUPERSET(map(type, row)) \
                        and "" not in row:  # an empty key: refused below
                    self._pending = row
                    self._commit()
                    return
            if self._finished:
                raise RunFinishedError(run_id=self.id)
            if not isinstance(data, Mapping):
                raise ValueError(f"run.log takes a dict, not {type(data).__name__}")
            commit = optional_flag(commit, "commit")
            if step is not None:
                try:
                    if isinstance(step, bool):
                        raise TypeError
                    step = operator.index(step)  # numpy integers too
                except TypeError:
                    raise ValueError(f"step must be an integer, not {step!r}") from None
                if step > MAX_STEP:  # what a history's readers (and SQLite) hold
                    raise ValueError(f"step must be at most {MAX_STEP}, not {step}")
            elif self._step > MAX_STEP:  # a row was committed at the highest step
                raise ValueError(f"step must be at most {MAX_STEP}: the run has a row at that "
                                 "step, so there is no next step to log to")
            # The whole call is checked before any of it is kept: a refused value
            # leaves nothing behind for the next step.
            plain = PLAIN
            values: dict[str, Any] = {}
            media = None
            for key, value in data.items():
                if type(value) in plain and type(key) is str and key:
                    if key in values:  # also under a nested dict before it
                        raise logged_twice(key)
                    values[key] = value
                else:
                    if media is None:  # where logged images and tables write their files
                        media = self._media_target(step)
                    flatten_into(values, {key: value}, media=media)
            if step is not None:
                if step < self._step:
                    self._warn("step", f"tried to log to step {step}, which is lower than the "
                               f"current step {self._step}; steps must increase, so this data "
                               "was dropped")
                    return
                if step > self._step:
                    if self._pending is not None:
                        self._commit()
                    self._step = step
                if commit is None:
                    commit = False
            elif commit is None:
                commit = True
            if self._pending is None:
                self._pending = values
            else:
                self._pending.update(values)
            if commit:
                self._commit()

    def _media_target(self, step: int | None) -> LogTarget:
        """Where the media of this call's row go: the run folder and the row's
        step (none for a run that keeps nothing, or for a step to be dropped)."""
        at = self._step if step is None else step
        keep = self._folder is not None and at >= self._step
        return LogTarget(str(self._folder.path) if keep and self._folder else None, at)

    def _commit(self) -> None:
        row = self._pending
        self._pending = None
        if row is None:
            row = {}
        # Four lookups: faster than any set operation on a row of many keys.
        if "_step" in row or "_runtime" in row or "_timestamp" in row or "_label" in row:
            given = self._drop_reserved(row)
        else:
            given = None
        if self._sync_metrics:
            self._sync_step_metrics(row)
        now = time.time()
        row["_step"] = self._row_step = self._step
        row["_runtime"] = now - self._t0_wall
        row["_timestamp"] = now if given is None else given
        self._step += 1
        history = self._history
        if history is not None:
            rows = history._rows
            # which process of a shared run logged it (not a metric: not in the summary)
            rows.append(row if self._row_label is None else {**row, "_label": self._row_label})
            n = len(rows)
            if n == WAKE_ROWS:
                self._wake.set()
            elif n > WAKE_ROWS and not n & 1023:
                self._keep_up(history, now)
        self._summary.observe(row)
        self._summary_dirty = True

    def _drop_reserved(self, row: dict[str, Any]) -> float | None:
        """Drop the keys of ``row`` that wbtool sets itself; warn once a run
        for each (a row copied from another run's history holds them all).
        A ``_timestamp`` that is a finite number is the row's time, as in W&B
        (a replay of old logs keeps their times): it is returned, no warning."""
        given = None
        for key in RESERVED_KEYS:
            if key not in row:
                continue
            value = row.pop(key)
            if key == "_timestamp" and type(value) in (int, float):
                try:
                    if math.isfinite(value):
                        given = value
                        continue
                except OverflowError:  # an integer of more digits than a float holds
                    pass
            self._warn_once(f"reserved {key}", reserved_warning("run.log", key))
        return given

    def _keep_up(self, history: LineWriter, now: float) -> None:
        """Wait while the oldest row not yet written was logged more than
        :data:`MAX_LAG_SECONDS` ago (and the writer is there to write it)."""
        writer = self._writer
        while history.lag(now) > MAX_LAG_SECONDS and writer is not None \
                and writer.is_alive() and not self._stop.is_set() and not self._finished:
            self._wake.set()
            time.sleep(0.005)
            now = time.time()

    def _sync_step_metrics(self, row: dict[str, Any]) -> None:
        lookup = self._metrics.lookup
        values = self._step_values
        for key in list(row):
            metric = lookup(key)
            if metric is not None and metric.step_metric and metric.step_sync:
                sm = metric.step_metric
                if sm not in row and sm in values:
                    row[sm] = values[sm]
        for key in self._step_metric_names:
            if key in row:
                values[key] = row[key]

    def define_metric(
        self, name: str, step_metric: str | Metric | None = None, step_sync: bool | None = None,
        hidden: bool | None = None, summary: str | None = None, goal: str | None = None,
        overwrite: bool | None = None,
    ) -> Metric:
        """Customise how a metric (or a glob of them, ``"train/*"``) is summarised
        and which metric is its x axis."""
        if self._finished:
            raise RunFinishedError(run_id=self.id)
        if isinstance(step_metric, Metric):
            step_metric = step_metric.name
        metric = self._metrics.define(name, step_metric, step_sync, hidden, summary, goal,
                                      overwrite)
        self._metrics_defined.add(metric.name)
        self._refresh_step_metrics()
        self._summary_dirty = True
        self._metrics_unsaved = True
        return metric

    def _refresh_step_metrics(self) -> None:
        names = {m.step_metric for m in self._metrics.defs.values() if m.step_metric}
        self._step_metric_names = names
        self._sync_metrics = bool(names)

    def _config_changed(self) -> None:
        self._config_dirty = True

    def _summary_changed(self) -> None:
        self._summary_dirty = True

    def _warn(self, kind: str, message: str) -> None:
        count = self._warned.get(kind, 0)
        self._warned[kind] = count + 1
        if count < 5 and self._settings.show_warnings and not self._settings.silent:
            print(f"wbtool: WARNING {message}", file=sys.stderr)
        elif count == 5 and self._settings.show_warnings and not self._settings.silent:
            print(f"wbtool: WARNING (more {kind} warnings are not shown)", file=sys.stderr)

    def _warn_once(self, kind: str, message: str) -> None:
        """:meth:`_warn`, but only the first time this run meets ``kind``."""
        if kind not in self._warned:
            self._warn(kind, message)

    def _info(self, message: str) -> None:
        s = self._settings
        if s.show_info and not s.quiet and not s.silent:
            from wbtool.text import printable  # a run's name may hold escape sequences

            print(f"wbtool: {printable(message)}", file=sys.stderr)

    def _set_doc(self, key: str, value: Any) -> None:
        if self._finished:
            raise RunFinishedError(run_id=self.id)
        with self._lock:
            self._doc[key] = value
            self._doc_changed.add(key)
            if self._folder is not None and not self._finished:
                self._write_record()

    # -- the writer thread ------------------------------------------------------------
    def _start_writer(self) -> None:
        if self._folder is None:
            return
        self._writer = threading.Thread(target=self._writer_loop, name="wbtool-run-writer",
                                        daemon=True)
        self._writer.start()

    def _writer_loop(self) -> None:
        beat = max(1.0, float(self._settings.heartbeat_seconds))
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._flush()
                now = time.monotonic()
                if now - self._last_beat >= beat and self._shared != "attached":
                    self._last_beat = now
                    self._heartbeat()
            except Exception as e:  # keep training; say what went wrong once
                self._warn("writer", f"could not write run {self.id}: {e}")

    def _flush(self) -> None:
        """Make what was logged so far durable against a crash of this process."""
        if self._history is not None:
            self._history.flush()
        if self._system is not None:
            self._system.flush()
        if self._console is not None:
            self._console.flush()
        if self._folder is None:
            return
        if self._config_dirty:
            self._config_dirty = False
            self._write_config()
        if self._metrics_unsaved:
            self._metrics_unsaved = False
            with self._lock:
                if not self._finished:
                    self._write_record()
        if self._saves:
            from wbtool.runs import files

            files.copy_live(self)
        if self._summary_dirty and time.monotonic() - self._last_summary_write >= 5.0:
            self._write_summary()

    def _write_summary(self) -> None:
        folder = self._folder
        assert folder is not None
        self._summary_dirty = False
        self._last_summary_write = time.monotonic()
        if self._shared is None:
            folder.write_json(folder.summary, storable(self._summary.as_dict()))
        else:
            with folder.lock():
                folder.merge_json(folder.summary, storable(self._summary.changes()),
                                  drop=self._summary.take_deleted(), highest=ROW_TIMES)

    def _write_config(self) -> None:
        folder = self._folder
        assert folder is not None
        if self._shared is None:
            folder.write_config(self._config_on_disk())
        else:
            with folder.lock():
                self._merge_config()

    def _merge_config(self) -> dict[str, Any]:
        """With the folder locked: write into the config.yaml that other
        processes write too the keys this process set or deleted since its
        last write (the others' stay as they wrote them); what it holds."""
        from wbtool.runs.redact import redact_mapping

        folder = self._folder
        assert folder is not None
        changes, dropped = self._config.take_changes()
        changes = storable(changes)
        stored = folder.read_config()
        if not changes and not dropped:
            return stored
        merged = {k: v for k, v in stored.items() if k not in dropped}
        merged.update(redact_mapping(changes))
        folder.write_config(merged)
        return merged

    def _heartbeat(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._doc["heartbeat_at"] = time.time()
            self._doc["runtime"] = self._runtime()
            self._write_record(summary=True)

    def _runtime(self) -> float:
        return time.time() - self._t0_wall

    def _write_record(self, *, summary: bool = False, config: bool = False,
                      fsync: bool = False) -> None:
        """run.json, then the index row (the folder is the record)."""
        if self._folder is None or self._ctx is None:
            return
        folder = self._folder
        doc = self._doc
        doc["updated_at"] = time.time()
        if self._shared != "owner":
            doc["metrics"] = self._metrics.to_json()
            doc["summary_user_keys"] = self._summary.user_keys
            counts = self._summary.mean_counts
            if counts:
                doc["summary_counts"] = counts
            else:
                doc.pop("summary_counts", None)
        summary_doc = None
        if summary:
            summary_doc = storable(self._summary.as_dict() if self._shared is None
                                   else self._summary.changes())  # merged with the others' below
        config_doc = self._config_on_disk() if config else None
        if self._shared is None:
            folder.write_json(folder.run_json, doc, fsync=fsync)
        else:
            from wbtool.runs.folder import OWNER_FIELDS

            owner = self._shared == "owner"
            own = OWNER_FIELDS if owner or self._shared == "primary" else ()
            changed = self._doc_changed
            with folder.lock():
                disk = folder.read_run()
                if disk is None:  # the first write of the run: all of it
                    disk = dict(doc)
                fields = {k: v for k, v in doc.items()
                          if k in own or k in changed or k == "updated_at"}
                if not owner:
                    fields.update(self._merged_computed(disk))
                if self._join_tags:
                    tags = [*(disk.get("tags") or ()), *self._join_tags]
                    fields["tags"] = list(dict.fromkeys(tags))
                disk.update(fields)
                folder.write_json(folder.run_json, disk, fsync=fsync)
                self._join_tags = ()
                changed.clear()
                self._doc = doc = disk
                if summary:
                    summary_doc = folder.merge_json(folder.summary, summary_doc or {},
                                                    drop=self._summary.take_deleted(),
                                                    highest=ROW_TIMES)
                if config:
                    config_doc = self._merge_config()
        catalog.put(self._ctx.store.index, doc, summary_doc, config_doc)

    def _merged_computed(self, disk: dict[str, Any]) -> dict[str, Any]:
        """run.json's metrics, summary_user_keys and summary_counts, when other
        processes write them too (every writer of a shared run but its
        launcher computes them from its own state): the metrics they defined
        and the summary keys they set by hand stay, with this process's own
        on top (its copy of theirs may be older)."""
        mine = [m for m in self._metrics.to_json() if m["name"] in self._metrics_defined]
        names = {m["name"] for m in mine}
        stored = disk.get("metrics")
        metrics = [m for m in (stored if isinstance(stored, list) else ())
                   if isinstance(m, dict) and m.get("name") not in names]
        user_keys, counts = self._summary.merge_record(disk.get("summary_user_keys"),
                                                       disk.get("summary_counts"))
        fields: dict[str, Any] = {"metrics": [*metrics, *mine],
                                  "summary_user_keys": user_keys}
        if counts:
            fields["summary_counts"] = counts
        else:
            disk.pop("summary_counts", None)
        return fields

    def _config_on_disk(self) -> dict[str, Any]:
        """The config as files and the index keep it: secret-looking keys redacted."""
        from wbtool.runs.redact import redact_mapping

        return redact_mapping(storable(self._config.as_dict()))

    # -- state ----------------------------------------------------------------------
    def mark_preempting(self) -> None:
        """Record that this run is being preempted (it may be resumed later)."""
        with self._lock:
            if self._finished:
                return
            self._doc["state"] = "preempting"
            self._flush()
            self._write_record(summary=True)
        self._event({"type": "state", "state": "preempting"})

    def _label(self, code: str | None = None, repo: str | None = None,
               code_version: str | None = None, **kwargs: str) -> None:
        """Accept the reference's integration label (transformers' Trainer calls
        ``run._label(code="transformers_trainer")``) and keep nothing: it is
        usage telemetry for a server."""

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "step": self._step, "synced": False,
                "history_rows": 0 if self._history is None else self._history.rows_written}

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Finish the run: flush everything, record the final state.

        ``exit_code`` 0 or None → finished; anything else → failed. It is a
        process exit status: an int from 0 to 255 (TypeError, ValueError if not).
        """
        quiet = optional_flag(quiet, "quiet")
        if exit_code is not None:
            if isinstance(exit_code, bool) or not hasattr(exit_code, "__index__"):
                raise TypeError(f"exit_code must be an int from 0 to 255, "
                                f"not {type(exit_code).__name__}")
            exit_code = exit_code.__index__()  # numpy integers
            if not 0 <= exit_code <= 255:
                raise UsageError(f"exit_code must be an int from 0 to 255, not {exit_code}")
        state = "finished" if not exit_code else "failed"
        self._finish(state, exit_code or 0, quiet)

    def _after_fork(self) -> None:
        """In a forked child (a multiprocessing worker): this copy of the run
        is its parent's, which logs to it and records how it ends. The copy
        neither logs nor ends it: the rows it holds, not yet written, would be
        written twice, and its end would end the run under the parent. What
        writes straight to the store (artifacts, alerts) works as before."""
        self._lock = threading.RLock()  # the parent's may be held by a thread that is gone
        self._log_lock = threading.RLock()
        self._pending = None
        for writer in (self._history, self._system):
            if writer is not None:  # its helper's pipe: the parent's finish waits for its end
                writer.after_fork()

        def told(call: str) -> Callable[..., None]:
            def ignored(*args: Any, **kwargs: Any) -> None:
                self._warn("fork", f"{call} ignored: run {self.id} belongs to process "
                                   f"{self._pid}, not to this one ({os.getpid()}); call "
                                   "wbtool.init() in this process to log from it")
            return ignored

        def silent(*args: Any, **kwargs: Any) -> None:
            pass

        # Instance attributes: the methods stay as fast as they are for everyone else.
        self.__dict__.update(
            log=told("run.log"), finish=told("run.finish"),
            mark_preempting=told("run.mark_preempting"),
            _finish=silent, _flush=silent, _commit=silent)

    def _finish(self, state: str, exit_code: int, quiet: bool | None = None,
                error: str | None = None) -> None:
        """Record how the run ended. ``error``, the traceback of an exception
        that ends a ``with`` block, is added to the console log: Python prints
        it only after the block, when the console is no longer captured."""
        with self._log_lock, self._lock:  # after a log call in progress, in this order
            if self._finished:
                return
            # Finished first: the last row's commit holds this lock, which the
            # writer's heartbeat needs, so it must not wait for the writer (_keep_up).
            self._finished = True
            if self._pending is not None:
                self._commit()
        self._stop.set()
        self._wake.set()
        if self._sampler is not None:
            self._sampler.stop()
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join()
        try:
            for hook in self._on_finish:
                with contextlib.suppress(Exception):
                    hook(self)
            if self._folder is not None:
                try:
                    self._finish_files(state, exit_code, error)
                except FileNotFoundError:
                    if self._folder.path.exists():
                        raise
                    # deleted while it ran (runs delete --force): nothing to record into
                    self._warn("finish", "the run was deleted while it ran; how it ended "
                               "was not recorded")
        finally:
            self._config._lock()
            self._summary._lock()
            from wbtool.runs import current

            current.forget(self)
        if self._folder is not None and self._shared in (None, "primary") \
                and not (quiet or self._settings.quiet):
            self._info(f"run {self.name} ({self.id}) {state}: "
                       f"{self._history.rows_written if self._history else 0} history rows "
                       f"in {self._folder.path}")

    def _finish_files(self, state: str, exit_code: int, error: str | None = None) -> None:
        folder = self._folder
        assert folder is not None
        if self._saves:
            from wbtool.runs import files

            files.copy_at_end(self)
        if self._console is not None:
            with contextlib.suppress(Exception):
                self._console.stop()
            if error:
                with contextlib.suppress(OSError):
                    append_to(folder.output, error.encode("utf-8", JSON_SAFE), 0o666)
        assert self._history is not None
        try:
            self._history.close(fsync=bool(self._settings.x_store_fsync))
        finally:
            if self._system is not None:
                self._system.close()
        if self._history.error:
            self._warn("writer", self._history.error)
        self._collect_metadata()
        self._write_config()
        self._write_summary()
        self._doc.update(
            state=state, exit_code=exit_code, finished_at=time.time(),
            heartbeat_at=time.time(), runtime=self._runtime(),
        )
        self._write_record(summary=True, config=True, fsync=bool(self._settings.x_store_fsync))
        if self._shared != "attached":  # the launcher records how the run ended
            self._event({"type": "state", "state": state, "exit_code": exit_code})
            if self._settings.mode == "online":
                self._push_online()

    def _push_online(self) -> None:
        """``mode="online"``: push this run and its project's artifacts to the
        default remote from a detached ``wbtool sync``, so that finishing never
        waits for the network. Its output goes to ``.wbtool/logs/sync-<id>.log``."""
        import subprocess

        from wbtool.remote import config as remote_config

        ctx = self._ctx
        assert ctx is not None
        if remote_config.get_default(ctx.store) is None:
            self._warn("online", "mode is online but no default remote is set "
                       "(wbtool remote add NAME URL --default): nothing was pushed")
            return
        logs = ctx.store.path / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"sync-{self.id}.log", "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "wbtool", "sync", "--project", self.project, self.id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                start_new_session=True,
                env={**os.environ, "WBTOOL_DIR": str(ctx.store.path.resolve())},
            )

    def _start_stats(self, pid: int | None = None, *, tree: bool | None = None,
                     label: str | None = None) -> None:
        """Sample system metrics of ``pid`` (default: this process) into
        system.jsonl; with ``label``, each sample says so in ``_label`` (the
        processes of a shared run sample into one file)."""
        settings = self._settings
        if self._folder is None or settings.x_disable_stats or self._sampler is not None:
            return
        from wbtool.stats.base import Target
        from wbtool.stats.sampler import Sampler, probe_all

        target = Target(settings.x_stats_pid or pid,
                        tree=bool(settings.x_stats_track_process_tree if tree is None else tree))
        self._system = LineWriter(self._folder.system, offload=False)
        values = settings.to_dict()

        def warn(message: str) -> None:
            self._warn("stats", message)
            self._event({"type": "warning", "message": message})

        emit = self._system.append
        if label is not None:
            append = emit

            def emit(row: dict[str, Any]) -> None:
                row["_label"] = label
                append(row)

        self._sampler = Sampler([], emit, interval=float(settings.x_stats_sampling_interval),
                                started=self._t0_wall, warn=warn)
        self._sampler.start(find=lambda: probe_all(values, target, warn))

    def _collect_metadata(self) -> None:
        thread = self._metadata_thread
        if thread is not None:
            thread.join()
        result = self._metadata_result
        folder = self._folder
        if result is None or folder is None:
            return
        if isinstance(result, BaseException):
            self._warn("metadata", f"could not gather run metadata: {result}")
            return
        sampler = self._sampler
        if sampler is not None and sampler.found.is_set():
            result.doc.update(sampler.inventory())
        folder.write_json(folder.metadata, result.doc)
        if result.requirements:
            (folder.files / "requirements.txt").write_text(result.requirements,
                                                            encoding="utf-8")
        if result.diff_patch:
            (folder.files / "diff.patch").write_text(result.diff_patch, encoding="utf-8")

    def _event(self, event: dict[str, Any]) -> None:
        if self._folder is None:
            return
        event.setdefault("time", time.time())
        event.setdefault("step", self._step)
        with contextlib.suppress(OSError):
            self._folder.append_event(event)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self._finish("killed", 130)
        elif issubclass(exc_type, SystemExit):  # sys.exit(code): the status it exits with
            from wbtool.runs.current import exit_status

            status = exit_status(exc.code)
            self._finish("finished" if status == 0 else "failed", status)
        else:
            import traceback

            self._finish("failed", 1, error="".join(traceback.format_exception(exc_type, exc, tb)))

    # -- alerts -------------------------------------------------------------------------
    def alert(self, title: str, text: str, level: str | Any = None,
              wait_duration: int | float | Any = None) -> None:
        """Record an alert in the run's events and print it; an alert with the
        same title within ``wait_duration`` seconds of the last is skipped."""
        self._require_open()
        if not isinstance(title, str) or not title:
            raise ValueError("alert title must be a non-empty string")
        if len(title) > 64:
            raise ValueError(f"alert title must be at most 64 characters, not {len(title)}")
        level_name = str(getattr(level, "value", level) or "INFO").upper()
        if level_name not in ALERT_LEVELS:
            raise ValueError(f"alert level must be one of {', '.join(ALERT_LEVELS)}")
        wait = _wait_seconds(wait_duration)
        now = time.monotonic()
        last = self._alerts.get(title)
        if last is not None and wait is not None and now - last < wait:
            return
        self._alerts[title] = now
        self._event({"type": "alert", "title": title, "text": str(text), "level": level_name})
        if not self._settings.silent:
            print(alert_line(level_name, title, str(text)), file=sys.stderr)

    # -- files (wbtool.runs.files) ------------------------------------------------------
    def save(self, glob_str: str | os.PathLike, base_path: str | os.PathLike | None = None,
             policy: str = "live") -> list[str]:
        self._require_open()
        from wbtool.runs import files

        return files.save(self, glob_str, base_path, policy)

    def restore(self, name: str, run_path: str | None = None, replace: bool = False,
                root: str | None = None) -> Any:
        from wbtool.runs import files

        return files.restore(self, name, run_path, replace, root)

    def log_code(self, root: str | None = ".", name: str | None = None,
                 include_fn: Callable[..., bool] | None = None,
                 exclude_fn: Callable[..., bool] | None = None) -> Artifact | None:
        self._require_open()
        from wbtool.runs import files

        return files.log_code(self, root, name, include_fn, exclude_fn)

    # -- lineage (wbtool.runs.lineage) ---------------------------------------------------
    def log_artifact(self, artifact_or_path: Artifact | str | os.PathLike,
                     name: str | None = None, type: str | None = None,
                     aliases: list[str] | None = None,
                     tags: list[str] | None = None) -> Artifact:
        self._require_open()
        from wbtool.runs import lineage

        return lineage.log_artifact(self, artifact_or_path, name, type, aliases, tags)

    def use_artifact(self, artifact_or_name: str | Artifact, type: str | None = None,
                     aliases: list[str] | None = None, use_as: str | None = None) -> Artifact:
        self._require_open()
        from wbtool.runs import lineage

        return lineage.use_artifact(self, artifact_or_name, type, aliases)

    def log_model(self, path: str | os.PathLike, name: str | None = None,
                  aliases: list[str] | None = None) -> None:
        self._require_open()
        from wbtool.runs import lineage

        lineage.log_artifact(self, path, name, "model", aliases, None)

    def use_model(self, name: str) -> str:
        self._require_open()
        from wbtool.runs import lineage

        return lineage.use_model(self, name)

    def link_artifact(self, artifact: Artifact, target_path: str,
                      aliases: list[str] | None = None) -> Artifact:
        self._require_open()
        return artifact.link(target_path, aliases)

    def link_model(self, path: str | os.PathLike, registered_model_name: str,
                   name: str | None = None, aliases: list[str] | None = None) -> Artifact:
        self._require_open()
        from wbtool.runs import lineage

        return lineage.link_model(self, path, registered_model_name, name, aliases)

    def upsert_artifact(self, artifact_or_path: Artifact | str, name: str | None = None,
                        type: str | None = None, aliases: list[str] | None = None,
                        distributed_id: str | None = None) -> Artifact:
        self._require_open()
        from wbtool.runs import lineage

        return lineage.upsert_artifact(self, artifact_or_path, name, type, aliases,
                                       distributed_id)

    def finish_artifact(self, artifact_or_path: Artifact | str, name: str | None = None,
                        type: str | None = None, aliases: list[str] | None = None,
                        distributed_id: str | None = None) -> Artifact:
        self._require_open()
        from wbtool.runs import lineage

        return lineage.finish_artifact(self, artifact_or_path, name, type, aliases,
                                       distributed_id)

    # -- optional integrations ------------------------------------------------------------
    def watch(self, models: Any, criterion: Any = None, log: str | None = "gradients",
              log_freq: int = 1000, idx: int | None = None, log_graph: bool = False) -> None:
        from wbtool.runs import watch

        watch.watch(self, models, log, log_freq)

    def unwatch(self, models: Any = None) -> None:
        from wbtool.runs import watch

        watch.unwatch(self, models)

    def display(self, height: int = 420, hidden: bool = False) -> bool:
        return False

    def _require_open(self) -> None:
        """Refuse what would change a run after its end was recorded (and,
        online, after it was pushed)."""
        if self._finished:
            raise RunFinishedError(run_id=self.id)

    def _require_store(self, action: str) -> Context:
        if self._ctx is None:
            raise WbtoolError(f"{action} is not available in a disabled run")
        return self._ctx


def _last_step_values(names: set[str], summary: dict[str, Any]) -> dict[str, Any]:
    """The last value of each step metric, as a resumed or forked run's summary
    holds it, for ``step_sync`` to go on inserting into rows."""
    values = {}
    for name in names:
        value = summary.get(name)
        if isinstance(value, dict):  # an aggregated summary: its last, or a rising step's max
            value = value.get("last", value.get("max"))
        if value is not None:
            values[name] = value
    return values


def _wait_seconds(value: Any) -> float | None:
    """``alert``'s wait_duration in seconds, checked on every call: a bad
    value given to the first alert of a title would otherwise pass unseen."""
    if value is None:
        return None
    if hasattr(value, "total_seconds"):  # datetime.timedelta
        value = value.total_seconds()
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not seconds >= 0:  # NaN too
        raise ValueError(f"alert wait_duration must be a number of seconds from 0, "
                         f"not {value!r}")
    return seconds


def runs_root(ctx: Context) -> Path:
    return ctx.store.path / "runs"


__all__ = ["Run", "RunFinishedError", "hostname"]
