"""AWS Trainium (and Inferentia) readings from ``neuron-monitor``.

``neuron-monitor`` runs for the whole run, started with ``-c`` and the file
named by ``x_stats_neuron_monitor_config_path`` (written with
:data:`DEFAULT_CONFIG` first when it does not exist) or a temporary file with
that configuration. It prints one JSON report a line every period; a thread
keeps the latest, and each sample reads the report that came since the last
sample (none: no readings). The Neuron runtimes of the measured process (its
``pid``, and its descendants' when the tree is tracked) give::

    trn.{core}.neuroncore_utilization                  percent
    trn.host_total_memory_usage                        bytes, host memory
    trn.host_total_memory_usage.{part}                 application_memory,
                                                       constants, dma_buffers, tensors
    trn.neuron_device_total_memory_usage               bytes, device memory
    trn.{core}.neuroncore_memory_usage.{part}          constants, model_code,
                                                       model_shared_scratchpad,
                                                       runtime_memory, tensors

Memory is summed over the process's runtimes. When ``neuron-monitor`` exits,
the collector stops with a warning.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from wbtool.stats.base import Collector, Reading, Target

DEFAULT_CONFIG: dict[str, Any] = {
    "period": "1s",
    "neuron_runtimes": [{
        "tag_filter": ".*",
        "metrics": [{"type": "neuroncore_counters"}, {"type": "memory_used"},
                    {"type": "neuron_runtime_vcpu_usage"}],
    }],
    "system_metrics": [{"type": "vcpu_usage"}, {"type": "memory_info"},
                       {"type": "neuron_hw_counters"}],
}
FALLBACK_PATH = "/opt/aws/neuron/bin/neuron-monitor"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _add(out: Reading, key: str, value: Any) -> None:
    if _number(value):
        out[key] = out.get(key, 0) + value


def neuron_readings(report: Mapping[str, Any], pids: Collection[int]) -> Reading:
    """``trn.*`` readings from one neuron-monitor report, for the runtimes of ``pids``."""
    out: Reading = {}
    for entry in report.get("neuron_runtime_data") or ():
        try:
            if int(entry.get("pid")) not in pids:
                continue
        except (TypeError, ValueError):
            continue
        data = entry.get("report") or {}
        cores = (data.get("neuroncore_counters") or {}).get("neuroncores_in_use") or {}
        for core, counters in cores.items():
            utilization: Any = (counters or {}).get("neuroncore_utilization")
            if _number(utilization):
                out[f"trn.{core}.neuroncore_utilization"] = float(utilization)
        used = (data.get("memory_used") or {}).get("neuron_runtime_used_bytes") or {}
        _add(out, "trn.host_total_memory_usage", used.get("host"))
        _add(out, "trn.neuron_device_total_memory_usage", used.get("neuron_device"))
        breakdown = used.get("usage_breakdown") or {}
        for part, value in (breakdown.get("host") or {}).items():
            _add(out, f"trn.host_total_memory_usage.{part}", value)
        for core, parts in (breakdown.get("neuroncore_memory_usage") or {}).items():
            for part, value in (parts or {}).items():
                _add(out, f"trn.{core}.neuroncore_memory_usage.{part}", value)
    return out


class NeuronMonitor:
    """Runs ``command`` (neuron-monitor) and reads its reports on a thread."""

    name = "trainium"

    def __init__(self, command: Sequence[str], target: Target, *,
                 cleanup: str | None = None) -> None:
        self.target = target
        self.cleanup = cleanup
        self.hardware: dict[str, Any] = {}
        self._latest: bytes | None = None
        self._lock = threading.Lock()
        # A session of its own: a Ctrl-C meant for the program does not stop it
        # first. Should this process die, its next write fails and it ends too.
        self._proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        self._thread = threading.Thread(target=self._read, name="wbtool-neuron-monitor",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in stdout:
                if line.strip():
                    with self._lock:
                        self._latest = line

    def sample(self) -> Reading:
        with self._lock:
            line, self._latest = self._latest, None
        if line is None:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"neuron-monitor exited with code {code}")
            return {}
        try:
            report = json.loads(line)
        except ValueError:  # not a report: a message the tool printed
            return {}
        if not isinstance(report, dict):
            return {}
        if not self.hardware:
            info = dict(report.get("neuron_hardware_info") or {})
            info.pop("error", None)
            self.hardware = info
        return neuron_readings(report, set(self.target.pids()))

    def inventory(self) -> dict[str, Any]:
        return {"trainium": dict(self.hardware)} if self.hardware else {}

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._thread.join(timeout=2)  # the pipe is at its end once the process is gone
        if self._proc.stdout is not None and not self._thread.is_alive():
            self._proc.stdout.close()
        if self.cleanup is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.cleanup)


def find_neuron_monitor() -> str | None:
    found = shutil.which("neuron-monitor")
    if found is None and os.access(FALLBACK_PATH, os.X_OK):
        found = FALLBACK_PATH
    return found


def write_config(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(DEFAULT_CONFIG, f, indent=2)


def probe(settings: Mapping[str, Any], target: Target) -> Collector | None:
    """A collector when neuron-monitor is installed and the machine has Neuron
    devices (the driver's ``/dev/neuron*``); None otherwise."""
    executable = find_neuron_monitor()
    if executable is None or not glob.glob("/dev/neuron[0-9]*"):
        return None
    path = settings.get("x_stats_neuron_monitor_config_path")
    cleanup = None
    if path:
        path = os.fspath(path)
        if not os.path.exists(path):
            write_config(path)
    else:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="wbtool-neuron-monitor-", suffix=".json")
        os.close(fd)
        write_config(path)
        cleanup = path
    try:
        return NeuronMonitor([executable, "-c", path], target, cleanup=cleanup)
    except OSError:
        if cleanup is not None:
            os.unlink(cleanup)
        raise
