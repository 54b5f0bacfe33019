"""The GPU of an Apple silicon Mac (macOS on arm64 only).

Sources, both tools that ship with macOS:

``ioreg -r -d 1 -w 0 -c IOAccelerator`` (any user)
    The GPU driver's ``PerformanceStatistics`` dictionary in the I/O Registry:
    ``"Device Utilization %"`` → ``gpu.0.gpu``, and ``"In use system memory"``
    (bytes of unified memory the GPU is using) as a percentage of the
    machine's physical memory, which the GPU shares → ``gpu.0.memoryAllocated``.
    ioreg prints the registry in a stable one-property-per-line text form.

``powermetrics --samplers gpu_power`` (root only)
    "GPU Power: N mW", averaged over a 200 ms window → ``gpu.0.powerWatts``.
    powermetrics refuses to run for other users, so this reading is only there
    when the run itself is root.

Not provided: ``gpu.0.temp`` and ``gpu.0.powerPercent``. Apple documents no
source for the GPU's temperature (tools that show one read undocumented SMC
keys or HID sensor names that change between chips and macOS releases), and
publishes no power limit for its GPUs, so a power percentage has nothing to
be a percentage of.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from wbtool.stats.base import Reading, Target

TIMEOUT_S = 5.0
IOREG = ("ioreg", "-r", "-d", "1", "-w", "0", "-c", "IOAccelerator")
POWERMETRICS = ("powermetrics", "--samplers", "gpu_power", "-i", "200", "-n", "1")

_STATISTICS = re.compile(r'"PerformanceStatistics"\s*=\s*\{([^}]*)\}')
_ENTRY_NUMBER = re.compile(r'"([^"]+)"\s*=\s*(-?\d+(?:\.\d+)?)\s*(?=,|$)')
_MODEL = re.compile(r'"model"\s*=\s*"([^"]*)"')
_CORES = re.compile(r'"gpu-core-count"\s*=\s*(\d+)')
_GPU_POWER = re.compile(r"^GPU Power:\s*(\d+(?:\.\d+)?)\s*mW\s*$", re.MULTILINE)


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run(command: tuple[str, ...]) -> str | None:
    """stdout of a command, or None when it could not run or failed."""
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def physical_memory() -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def parse_ioreg(text: str | None) -> dict[str, Any] | None:
    """The accelerator entry that reports "Device Utilization %", as numbers.

    ``{"statistics": {name: number}, "model": str | None, "cores": int | None}``;
    None when no entry has the figure (an Intel Mac's GPUs, or no output).
    """
    if not text:
        return None
    entries = re.split(r"^\+-o ", text, flags=re.MULTILINE)
    for entry in entries:
        match = _STATISTICS.search(entry)
        if match is None:
            continue
        statistics = {name: float(value) for name, value in
                      _ENTRY_NUMBER.findall(match.group(1))}
        if "Device Utilization %" not in statistics:
            continue
        model = _MODEL.search(entry)
        cores = _CORES.search(entry)
        return {"statistics": statistics,
                "model": model.group(1) if model else None,
                "cores": int(cores.group(1)) if cores else None}
    return None


def parse_powermetrics(text: str | None) -> float | None:
    """GPU power in watts from powermetrics' text, or None."""
    found = _GPU_POWER.findall(text or "")
    return float(found[-1]) / 1000 if found else None


def readings(gpu: Mapping[str, Any] | None, memory_total: int | None) -> Reading:
    out: Reading = {}
    if gpu is None:
        return out
    statistics = gpu["statistics"]
    out["gpu.0.gpu"] = statistics["Device Utilization %"]
    in_use = statistics.get("In use system memory")
    if in_use is not None and memory_total:
        out["gpu.0.memoryAllocated"] = in_use / memory_total * 100
    return out


def probe(settings: Mapping[str, Any], target: Target) -> AppleCollector | None:
    if not is_apple_silicon():
        return None
    first = parse_ioreg(run(IOREG))
    if first is None:
        return None
    with_power = is_root() and shutil.which(POWERMETRICS[0]) is not None
    return AppleCollector(settings, first, physical_memory(), with_power)


class AppleCollector:
    name = "apple"

    def __init__(self, settings: Mapping[str, Any], first: dict[str, Any],
                 memory_total: int | None, with_power: bool) -> None:
        self._settings = settings
        self._first = first
        self._memory_total = memory_total
        self._with_power = with_power

    def sample(self) -> Reading:
        out = readings(parse_ioreg(run(IOREG)), self._memory_total)
        if self._with_power:
            watts = parse_powermetrics(run(POWERMETRICS))
            if watts is not None:
                out["gpu.0.powerWatts"] = watts
        return out

    def inventory(self) -> dict[str, Any]:
        gpu: dict[str, Any] = {"name": self._first.get("model")}
        if self._first.get("cores"):
            gpu["cores"] = self._first["cores"]
        count = self._settings.get("x_stats_gpu_count")
        gpu_type = self._settings.get("x_stats_gpu_type")
        return {
            "gpu_count": count if count is not None else 1,
            "gpu_type": gpu_type if gpu_type is not None else gpu["name"],
            "gpu_apple": gpu,
        }

    def close(self) -> None:
        pass


PROBES = (probe,)
