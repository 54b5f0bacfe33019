"""Graphcore IPU, Google Cloud TPU and AWS Trainium readings.

Graphcore IPU, through the ``gcipuinfo`` library when it is importable, for
the IPUs the measured process uses (their ``user process id``)::

    ipu.{device_id}.{metric_key}

``metric_key`` is gcipuinfo's attribute name, with the unit its value carried
in parentheses: ``"average board temp": "36.2 C"`` becomes
``ipu.0.average board temp (C)`` = 36.2; likewise ``clock (MHz)``,
``ipu power (W)``, ``ipu utilisation (%)``, ``ipu utilisation (session) (%)``
and ``link speed (GT/s)``. Attributes that are not numbers (serial numbers,
versions, ``N/A``) are left out. A device's first sample holds every numeric
attribute; later ones hold the attributes that vary (temperatures, clock,
power, utilisation) and any other whose value changed.

Google Cloud TPU, when the machine has TPU chips on its PCI bus and the
``tpu-info`` package (Google's client of the libtpu runtime metrics service
on ``localhost:8431``) is importable::

    tpu.{i}.memoryUsageBytes   High Bandwidth Memory in use, bytes
    tpu.{i}.memoryUsage        the same, percent of the device's HBM
    tpu.{i}.dutyCycle          TensorCore duty cycle, percent

While no program has started the TPU runtime there are no TPU readings.

AWS Trainium: see :mod:`wbtool.stats.neuron`.
"""

from __future__ import annotations

import glob
import importlib
import os
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from wbtool.lazyre import lazy_compile
from wbtool.stats.base import Collector, Reading, Target

# -- Graphcore IPU -------------------------------------------------------------------

# Attributes that change while a program runs: in every sample.
IPU_VARYING = frozenset({"average board temp", "average die temp", "clock", "ipu power",
                         "ipu utilisation", "ipu utilisation (session)"})
# How a device is told apart, not something measured.
IPU_IDENTITY = frozenset({"id", "user process id"})
_IPU_VALUE = lazy_compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%/]+)?\Z")


def parse_ipu_metric(key: str, value: str) -> tuple[str, float | int] | None:
    """``("clock", "1300MHz")`` → ``("clock (MHz)", 1300)``; None for non-numbers."""
    m = _IPU_VALUE.match(str(value).strip())
    if m is None:
        return None
    number, unit = m.groups()
    parsed: float | int = float(number) if any(c in number for c in ".eE") else int(number)
    return (f"{key} ({unit})" if unit else key), parsed


def ipu_readings(devices: Iterable[Mapping[str, str]], pids: Iterable[int],
                 seen: MutableMapping[str, dict[str, str]]) -> Reading:
    """Readings of the ``devices`` used by ``pids``; ``seen`` holds each device's
    attributes from the previous call and is updated."""
    wanted = {str(pid) for pid in pids}
    out: Reading = {}
    for device in devices:
        attrs = {str(k): str(v) for k, v in dict(device).items()}
        if attrs.get("user process id", "").strip() not in wanted:
            continue
        device_id = attrs.get("id", "").strip()
        before = seen.get(device_id)
        for key, value in attrs.items():
            if key in IPU_IDENTITY:
                continue
            if before is not None and key not in IPU_VARYING and before.get(key) == value:
                continue
            parsed = parse_ipu_metric(key, value)
            if parsed is not None:
                out[f"ipu.{device_id}.{parsed[0]}"] = parsed[1]
        seen[device_id] = attrs
    return out


class IPU:
    name = "ipu"

    def __init__(self, info: Any, target: Target) -> None:
        self.info = info
        self.target = target
        self.seen: dict[str, dict[str, str]] = {}

    def sample(self) -> Reading:
        return ipu_readings(self.info.getDevices(), self.target.pids(), self.seen)

    def inventory(self) -> dict[str, Any]:
        devices = [dict(d) for d in self.info.getDevices()]
        return {"ipu": {"vendor": "Graphcore", "device_count": len(devices), "devices": [
            {"id": d.get("id", str(i)), "board ipu index": d.get("board ipu index"),
             "board type": d.get("board type", "unknown")} for i, d in enumerate(devices)]}}

    def close(self) -> None:
        pass


def probe_ipu(settings: Mapping[str, Any], target: Target) -> Collector | None:
    try:
        gcipuinfo = importlib.import_module("gcipuinfo")
    except ImportError:
        return None
    try:
        info = gcipuinfo.gcipuinfo()
        info.setUpdateMode(True)  # fresh attributes on every call
        if not info.getDevices():
            return None
    except Exception:  # the library without a driver or devices
        return None
    return IPU(info, target)


# -- Google Cloud TPU ----------------------------------------------------------------

GOOGLE_PCI_VENDOR = "0x1ae0"
# PCI device IDs of TPU chips (v2/v3, v4, v5p, v5e, v6e, 7x); Google's other
# devices (the gVNIC network card) share the vendor ID.
TPU_PCI_DEVICES = frozenset({"0x0027", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076"})


def tpu_chip_count(root: str = "/sys/bus/pci/devices") -> int:
    count = 0
    for path in glob.glob(os.path.join(root, "*")):
        try:
            with open(os.path.join(path, "vendor")) as f:
                if f.read().strip() != GOOGLE_PCI_VENDOR:
                    continue
            with open(os.path.join(path, "device")) as f:
                count += f.read().strip() in TPU_PCI_DEVICES
        except OSError:
            continue
    return count


def _field(usage: Any, name: str, index: int) -> Any:
    return getattr(usage, name) if hasattr(usage, name) else usage[index]


def tpu_readings(usages: Iterable[Any]) -> Reading:
    """Readings from tpu-info ``Usage`` records (``device_id``, ``memory_usage``,
    ``total_memory``, ``duty_cycle_pct``; tuples in that order also do)."""
    out: Reading = {}
    for usage in usages:
        device = int(_field(usage, "device_id", 0))
        used = int(_field(usage, "memory_usage", 1))
        total = int(_field(usage, "total_memory", 2))
        out[f"tpu.{device}.memoryUsageBytes"] = used
        if total > 0:
            out[f"tpu.{device}.memoryUsage"] = used / total * 100
        out[f"tpu.{device}.dutyCycle"] = float(_field(usage, "duty_cycle_pct", 3))
    return out


class TPU:
    name = "tpu"

    def __init__(self, chip_type: Any, count: int, metrics: Any) -> None:
        grpc = importlib.import_module("grpc")  # present wherever tpu-info is

        self.chip_type = chip_type
        self.count = count
        self.metrics = metrics
        self.unavailable = (grpc.RpcError, AssertionError)  # runtime not started, or partial

    def sample(self) -> Reading:
        try:
            usages = self.metrics.get_chip_usage(self.chip_type)
        except self.unavailable:
            return {}
        return tpu_readings(usages)

    def inventory(self) -> dict[str, Any]:
        info = getattr(self.chip_type, "value", None)
        return {"tpu": {"name": str(getattr(info, "name", self.chip_type)), "count": self.count,
                        "hbmGib": getattr(info, "hbm_gib", None),
                        "devicesPerChip": getattr(info, "devices_per_chip", None)}}

    def close(self) -> None:
        pass


def probe_tpu(settings: Mapping[str, Any], target: Target) -> Collector | None:
    if tpu_chip_count() == 0:
        return None
    try:
        device = importlib.import_module("tpu_info.device")
        metrics = importlib.import_module("tpu_info.metrics")
        chip_type, count = device.get_local_chips()
        if chip_type is None or not count:
            return None
        return TPU(chip_type, count, metrics)
    except ImportError:
        return None


# -- AWS Trainium ----------------------------------------------------------------------


def probe_trainium(settings: Mapping[str, Any], target: Target) -> Collector | None:
    from wbtool.stats.neuron import probe

    return probe(settings, target)


PROBES = (probe_ipu, probe_tpu, probe_trainium)
