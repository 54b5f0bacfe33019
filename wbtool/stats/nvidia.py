"""NVIDIA GPUs through NVML (the ``pynvml`` module of ``nvidia-ml-py``).

Every sample reads, per device ``i`` (all devices, or those named by
``x_stats_gpu_device_ids``):

- ``gpu.{i}.gpu``: utilization of the compute engines, %
- ``gpu.{i}.memory``: memory utilization (time the memory was busy), %
- ``gpu.{i}.memoryAllocated``: memory in use, % of the device's total
- ``gpu.{i}.memoryAllocatedBytes``: memory in use, bytes
- ``gpu.{i}.temp``: die temperature, °C
- ``gpu.{i}.powerWatts``: power draw, W
- ``gpu.{i}.powerPercent``: power draw, % of the enforced power limit
- ``gpu.{i}.smClock``, ``memoryClock``, ``graphicsClock``: clocks, MHz
- ``gpu.{i}.correctedMemoryErrors``, ``unCorrectedMemoryErrors``: ECC errors
  since the driver was loaded
- ``gpu.{i}.encoderUtilization``: video encoder utilization, %

and the same readings again as ``gpu.process.{i}.*`` for each device on which a
process of the monitored tree has a compute or graphics context. NVML names
processes by their pid in the host's pid namespace, so inside a container
that has its own, no process matches and there are no ``gpu.process`` keys.

Memory in use comes from the v2 memory query where the driver has it: the v1
query counts the memory the driver reserves for itself as used, v2 reports it
apart (and matches ``nvidia-smi``).

A query the device or driver cannot answer (not supported, no permission,
function missing) is dropped for that device on its first failure and never
sent again; other errors skip the reading for that sample only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from wbtool.stats.base import Reading, Target

_DRIVER_PATHS = ("/dev/nvidiactl", "/proc/driver/nvidia")

# NVML errors that mean "this query will never work on this device".
_PERMANENT_ERRORS = ("NOT_SUPPORTED", "FUNCTION_NOT_FOUND", "NO_PERMISSION",
                     "ARGUMENT_VERSION_MISMATCH")

_CLOCKS = (("smClock", "NVML_CLOCK_SM"), ("memoryClock", "NVML_CLOCK_MEM"),
           ("graphicsClock", "NVML_CLOCK_GRAPHICS"))
_ECC = (("correctedMemoryErrors", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
        ("unCorrectedMemoryErrors", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED"))


def _wanted(settings: Mapping[str, Any]) -> bool:
    """Whether NVML is worth loading: a driver is there, or the settings say so."""
    gpu_type = settings.get("x_stats_gpu_type")
    if isinstance(gpu_type, str) and "nvidia" in gpu_type.lower():
        return True
    return any(os.path.exists(path) for path in _DRIVER_PATHS)


def probe(settings: Mapping[str, Any], target: Target) -> NvidiaCollector | None:
    if not _wanted(settings):
        return None
    try:
        import pynvml
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no library, no driver, driver/library mismatch …
        return None
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        ids = settings.get("x_stats_gpu_device_ids")
        indices = range(count) if ids is None else [i for i in ids if 0 <= i < count]
        handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in dict.fromkeys(indices)}
    except Exception:
        handles = {}
    if not handles:
        _quietly(pynvml.nvmlShutdown)
        return None
    return NvidiaCollector(pynvml, handles, settings, target)


class NvidiaCollector:
    name = "nvidia"

    def __init__(self, nvml: Any, handles: dict[int, Any], settings: Mapping[str, Any],
                 target: Target) -> None:
        self._nvml = nvml
        self._handles = handles
        self._settings = settings
        self._target = target
        self._off: set[tuple[int, str]] = set()  # (device, query) never to ask again
        self._permanent = {getattr(nvml, "NVML_ERROR_" + name) for name in _PERMANENT_ERRORS
                           if hasattr(nvml, "NVML_ERROR_" + name)}
        self._closed = False

    # -- NVML calls ----------------------------------------------------------------

    def _call(self, index: int, query: str, function: str, *args: Any, **kwargs: Any) -> Any:
        """``pynvml.<function>(*args)``, or None when it failed (remembered if for good)."""
        if (index, query) in self._off:
            return None
        fn = getattr(self._nvml, function, None)
        if fn is None:  # an older nvidia-ml-py
            self._off.add((index, query))
            return None
        try:
            return fn(*args, **kwargs)
        except self._nvml.NVMLError as e:
            if getattr(e, "value", None) in self._permanent:
                self._off.add((index, query))
            return None

    def _memory(self, index: int, handle: Any) -> Any:
        """Memory info, v2 (driver reservations kept apart) when the driver has it."""
        version = getattr(self._nvml, "nvmlMemory_v2", None)
        if version is None:
            self._off.add((index, "memoryV2"))
        if (index, "memoryV2") not in self._off:
            info = self._call(index, "memoryV2", "nvmlDeviceGetMemoryInfo", handle,
                              version=version)
            if info is not None or (index, "memoryV2") not in self._off:
                return info
        return self._call(index, "memory", "nvmlDeviceGetMemoryInfo", handle)

    def _device(self, index: int, handle: Any) -> Reading:
        nvml = self._nvml
        out: Reading = {}
        util = self._call(index, "utilization", "nvmlDeviceGetUtilizationRates", handle)
        if util is not None:
            out["gpu"] = int(util.gpu)
            out["memory"] = int(util.memory)
        memory = self._memory(index, handle)
        if memory is not None and memory.total:
            out["memoryAllocated"] = int(memory.used) / int(memory.total) * 100
            out["memoryAllocatedBytes"] = int(memory.used)
        temp = self._call(index, "temp", "nvmlDeviceGetTemperature", handle,
                          nvml.NVML_TEMPERATURE_GPU)
        if temp is not None:
            out["temp"] = int(temp)
        milliwatts = self._call(index, "power", "nvmlDeviceGetPowerUsage", handle)
        if milliwatts is not None:
            out["powerWatts"] = int(milliwatts) / 1000
            limit = self._call(index, "powerLimit", "nvmlDeviceGetEnforcedPowerLimit", handle)
            if limit:
                out["powerPercent"] = int(milliwatts) / int(limit) * 100
        for key, clock in _CLOCKS:
            mhz = self._call(index, key, "nvmlDeviceGetClockInfo", handle, getattr(nvml, clock))
            if mhz is not None:
                out[key] = int(mhz)
        for key, kind in _ECC:
            errors = self._call(index, key, "nvmlDeviceGetTotalEccErrors", handle,
                                getattr(nvml, kind), nvml.NVML_VOLATILE_ECC)
            if errors is not None:
                out[key] = int(errors)
        encoder = self._call(index, "encoder", "nvmlDeviceGetEncoderUtilization", handle)
        if encoder is not None:
            out["encoderUtilization"] = int(encoder[0])  # (utilization, sampling period µs)
        return out

    def _pids_on(self, index: int, handle: Any) -> set[int]:
        pids: set[int] = set()
        for query, function in (("compute", "nvmlDeviceGetComputeRunningProcesses"),
                                ("graphics", "nvmlDeviceGetGraphicsRunningProcesses")):
            for process in self._call(index, query, function, handle) or ():
                pids.add(int(process.pid))
        return pids

    # -- Collector -----------------------------------------------------------------

    def sample(self) -> Reading:
        out: Reading = {}
        in_use: list[tuple[int, Reading, set[int]]] = []
        for index, handle in self._handles.items():
            reading = self._device(index, handle)
            out.update({f"gpu.{index}.{key}": value for key, value in reading.items()})
            pids = self._pids_on(index, handle)
            if pids:
                in_use.append((index, reading, pids))
        if in_use:  # walk the process tree only when some GPU has processes at all
            mine = set(self._target.pids())
            for index, reading, pids in in_use:
                if pids & mine:
                    out.update({f"gpu.process.{index}.{k}": v for k, v in reading.items()})
        return out

    def inventory(self) -> dict[str, Any]:
        nvml = self._nvml
        architectures = {getattr(nvml, name): name[len("NVML_DEVICE_ARCH_"):].title()
                         for name in dir(nvml) if name.startswith("NVML_DEVICE_ARCH_")
                         and not name.endswith("_UNKNOWN")}
        gpus: list[dict[str, Any]] = []
        for index, handle in self._handles.items():
            name = self._call(index, "name", "nvmlDeviceGetName", handle)
            memory = self._call(index, "memory", "nvmlDeviceGetMemoryInfo", handle)
            gpu: dict[str, Any] = {
                "name": _text(name) if name is not None else None,
                "memory_total": int(memory.total) if memory is not None else None,
            }
            uuid = self._call(index, "uuid", "nvmlDeviceGetUUID", handle)
            if uuid is not None:
                gpu["uuid"] = _text(uuid)
            arch = self._call(index, "architecture", "nvmlDeviceGetArchitecture", handle)
            if arch in architectures:
                gpu["architecture"] = architectures[arch]
            cores = self._call(index, "cores", "nvmlDeviceGetNumGpuCores", handle)
            if cores:
                gpu["cuda_cores"] = int(cores)
            gpus.append(gpu)
        count = self._settings.get("x_stats_gpu_count")
        gpu_type = self._settings.get("x_stats_gpu_type")
        out: dict[str, Any] = {
            "gpu_count": count if count is not None else len(gpus),
            "gpu_type": gpu_type if gpu_type is not None else (gpus[0]["name"] if gpus else None),
            "gpu_nvidia": gpus,
        }
        driver = self._call(-1, "driver", "nvmlSystemGetDriverVersion")
        if driver is not None:
            out["nvidia_driver_version"] = _text(driver)
        cuda = self._call(-1, "cuda", "nvmlSystemGetCudaDriverVersion")
        if cuda:  # e.g. 12040 → "12.4"
            out["cuda_version"] = f"{int(cuda) // 1000}.{int(cuda) % 1000 // 10}"
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _quietly(self._nvml.nvmlShutdown)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:
        pass


PROBES = (probe,)
