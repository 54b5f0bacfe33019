"""The sampler: every ``x_stats_sampling_interval`` seconds, one row of every
available collector's readings, with ``_timestamp`` and ``_runtime``.

A collector that raises is disabled with one warning; the run never fails
because of a metric.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from wbtool.stats.base import Collector, Target

# Collector modules, each with ``probe(settings, target)``; imported lazily.
PROBES = (
    "wbtool.stats.system",
    "wbtool.stats.nvidia",
    "wbtool.stats.amd",
    "wbtool.stats.apple",
    "wbtool.stats.accelerators",
    "wbtool.stats.openmetrics",
)


def probe_all(settings: Mapping[str, Any], target: Target,
              warn: Callable[[str], None]) -> list[Collector]:
    import importlib

    found: list[Collector] = []
    for name in PROBES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for probe in getattr(module, "PROBES", ()):
            try:
                collector = probe(settings, target)
            except Exception as e:  # a broken probe must not stop the run
                warn(f"system metrics: {name} is off ({e})")
                continue
            if collector is not None:
                found.append(collector)
    return found


class Sampler:
    """Samples ``collectors`` on a daemon thread and hands rows to ``emit``."""

    def __init__(self, collectors: list[Collector], emit: Callable[[dict[str, Any]], None],
                 *, interval: float, started: float,
                 warn: Callable[[str], None] = lambda message: None) -> None:
        self.collectors = list(collectors)
        self.emit = emit
        # A longer wait than the platform's clock can count is refused by Event.wait.
        self.interval = min(max(0.01, float(interval)), threading.TIMEOUT_MAX)
        self.started = started
        self.warn = warn
        self.cpu_seconds = 0.0  # the sampler's own CPU time, for the benchmark
        self.samples = 0
        self._stop = threading.Event()
        self.found = threading.Event()
        self._thread: threading.Thread | None = None

    def inventory(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in list(self.collectors):
            try:
                out.update(c.inventory())
            except Exception as e:
                self.warn(f"system metrics: no inventory from {c.name} ({e})")
        return out

    def sample_once(self) -> dict[str, Any]:
        start = time.thread_time()
        row: dict[str, Any] = {}
        for c in list(self.collectors):
            try:
                row.update(c.sample())
            except Exception as e:
                self.collectors.remove(c)
                self.warn(f"system metrics: {c.name} stopped ({type(e).__name__}: {e})")
                with contextlib.suppress(Exception):
                    c.close()
        now = time.time()
        row["_timestamp"] = now
        row["_runtime"] = now - self.started
        self.cpu_seconds += time.thread_time() - start
        self.samples += 1
        return row

    def start(self, find: Callable[[], list[Collector]] | None = None) -> None:
        """Sample on a daemon thread. With ``find``, collectors are looked for
        on that thread, once the first interval (at most a second) has passed:
        a short run never pays for probing hardware."""
        if not self.collectors and find is None:
            return
        self._thread = threading.Thread(target=self._loop, args=(find,), name="wbtool-stats",
                                        daemon=True)
        self._thread.start()

    def _loop(self, find: Callable[[], list[Collector]] | None) -> None:
        if find is not None:
            if self._stop.wait(min(self.interval, 1.0)):
                return
            try:
                self.collectors.extend(find())
            except Exception as e:
                self.warn(f"system metrics are off ({e})")
                return
            self.found.set()
            if not self.collectors:
                return
        while not self._stop.wait(self.interval):
            row = self.sample_once()
            if len(row) > 2 and not self._stop.is_set():
                try:
                    self.emit(row)
                except Exception as e:
                    self.warn(f"system metrics: cannot write a sample ({e})")
                    return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for c in self.collectors:
            with contextlib.suppress(Exception):
                c.close()
