"""The NVIDIA collector against NVML results recorded on a real H100.

The fixtures (``tests/fixtures/nvml``) hold what each ``pynvml`` call returned
or raised. A stand-in ``pynvml`` module answers the same calls from them, and
raises the real ``pynvml.NVMLError`` subclasses for the recorded errors, so
everything above the ``pynvml`` call boundary runs for real.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pynvml
import pytest

from wbtool.stats import nvidia
from wbtool.stats.base import Target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvml"

DEVICE_KEYS = {
    "gpu", "memory", "memoryAllocated", "memoryAllocatedBytes", "temp", "powerWatts",
    "powerPercent", "smClock", "memoryClock", "graphicsClock", "correctedMemoryErrors",
    "unCorrectedMemoryErrors", "encoderUtilization",
}


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _value(value: Any) -> Any:
    """JSON back into the shapes pynvml returns: structs and process entries have attributes."""
    if isinstance(value, dict):
        return types.SimpleNamespace(**{k: _value(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def _answer(record: dict[str, Any]) -> Any:
    if "error" in record:
        raise pynvml.NVMLError(record["code"])
    return _value(record["ok"])


class FakeNVML(types.ModuleType):
    """A ``pynvml`` that replays one recorded snapshot and counts the calls made."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        super().__init__("pynvml")
        self.calls: Counter[str] = Counter()
        for name in dir(pynvml):  # constants and the real error classes
            if name.startswith(("NVML_", "NVMLError", "nvmlMemory_v")):
                setattr(self, name, getattr(pynvml, name))
        self._devices = {d["index"]: d["calls"] for d in snapshot["devices"]}
        # call key → (function, positional constants, keyword constants)
        self._keys: dict[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]], str] = {}
        names = set()
        for calls in self._devices.values():
            for key in calls:
                function, args, kwargs = self._parse(key)
                self._keys[(function, args, kwargs)] = key
                names.add(function)
        for function in names - {"nvmlDeviceGetHandleByIndex"}:
            setattr(self, function, self._device_call(function))
        self.nvmlInit = self._fixed("nvmlInit", snapshot["init"])
        self.nvmlShutdown = self._fixed("nvmlShutdown", snapshot["shutdown"])
        for function, record in snapshot["system_calls"].items():
            setattr(self, function, self._fixed(function, record))

    @staticmethod
    def _parse(key: str) -> tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]:
        function, _, rest = key.partition("(")
        args: list[Any] = []
        kwargs: list[tuple[str, Any]] = []
        for token in filter(None, rest.rstrip(")").split(",")):
            if "=" in token:
                name, _, constant = token.partition("=")
                kwargs.append((name, getattr(pynvml, constant)))
            else:
                args.append(getattr(pynvml, token))
        return function, tuple(args), tuple(sorted(kwargs))

    def _fixed(self, function: str, record: dict[str, Any]) -> Any:
        def call() -> Any:
            self.calls[function] += 1
            return _answer(record)
        return call

    def _device_call(self, function: str) -> Any:
        def call(handle: int, *args: Any, **kwargs: Any) -> Any:
            key = self._keys[(function, args, tuple(sorted(kwargs.items())))]
            self.calls[key] += 1
            return _answer(self._devices[handle][key])
        return call

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self.calls["nvmlDeviceGetHandleByIndex"] += 1
        _answer(self._devices[index]["nvmlDeviceGetHandleByIndex"])
        return index  # handles are opaque; the index finds the device's records


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine that looks like it has the NVIDIA driver."""
    monkeypatch.setattr(nvidia, "_DRIVER_PATHS", (str(Path(__file__)),))


def install(monkeypatch: pytest.MonkeyPatch, snapshot: dict[str, Any]) -> FakeNVML:
    fake = FakeNVML(snapshot)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def expected(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Readings of device 0, worked out from the recorded values by hand."""
    calls = snapshot["devices"][0]["calls"]

    def ok(key: str) -> Any:
        return calls[key]["ok"]

    memory = ok("nvmlDeviceGetMemoryInfo(version=nvmlMemory_v2)")
    power = ok("nvmlDeviceGetPowerUsage")
    return {
        "gpu.0.gpu": ok("nvmlDeviceGetUtilizationRates")["gpu"],
        "gpu.0.memory": ok("nvmlDeviceGetUtilizationRates")["memory"],
        "gpu.0.memoryAllocated": memory["used"] / memory["total"] * 100,
        "gpu.0.memoryAllocatedBytes": memory["used"],
        "gpu.0.temp": ok("nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)"),
        "gpu.0.powerWatts": power / 1000,
        "gpu.0.powerPercent": power / ok("nvmlDeviceGetEnforcedPowerLimit") * 100,
        "gpu.0.smClock": ok("nvmlDeviceGetClockInfo(NVML_CLOCK_SM)"),
        "gpu.0.memoryClock": ok("nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)"),
        "gpu.0.graphicsClock": ok("nvmlDeviceGetClockInfo(NVML_CLOCK_GRAPHICS)"),
        "gpu.0.correctedMemoryErrors": ok(
            "nvmlDeviceGetTotalEccErrors(NVML_MEMORY_ERROR_TYPE_CORRECTED,NVML_VOLATILE_ECC)"),
        "gpu.0.unCorrectedMemoryErrors": ok(
            "nvmlDeviceGetTotalEccErrors(NVML_MEMORY_ERROR_TYPE_UNCORRECTED,NVML_VOLATILE_ECC)"),
        "gpu.0.encoderUtilization": ok("nvmlDeviceGetEncoderUtilization")[0],
    }


@pytest.mark.usefixtures("driver")
def test_idle_h100(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_idle.json")
    install(monkeypatch, snapshot)
    collector = nvidia.probe({}, Target(snapshot["recorder"]["pid"]))
    assert collector is not None
    row = collector.sample()
    assert row == expected(snapshot)
    assert set(row) == {f"gpu.0.{key}" for key in DEVICE_KEYS}
    # Spot checks against the raw numbers, so a shared mistake in expected() shows.
    assert row["gpu.0.temp"] == 40
    assert row["gpu.0.powerWatts"] == pytest.approx(119.013)
    assert row["gpu.0.powerPercent"] == pytest.approx(119013 / 700000 * 100)
    assert (row["gpu.0.gpu"], row["gpu.0.memory"]) == (0, 0)
    # v2 memory: the 480 MiB the driver reserves is not "allocated".
    assert (row["gpu.0.memoryAllocatedBytes"], row["gpu.0.memoryAllocated"]) == (0, 0.0)
    collector.close()


@pytest.mark.usefixtures("driver")
def test_busy_h100_with_our_process(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_busy.json")
    install(monkeypatch, snapshot)
    load_pid = snapshot["load_process"]["pid"]
    target = Target(snapshot["load_process"]["ppid"], tree=True)
    monkeypatch.setattr(target, "pids", lambda: [target.pid, load_pid])
    collector = nvidia.probe({}, target)
    assert collector is not None
    row = collector.sample()
    device = expected(snapshot)
    assert row == {**device, **{k.replace("gpu.", "gpu.process.", 1): v
                                for k, v in device.items()}}
    assert row["gpu.0.gpu"] == 99
    assert row["gpu.0.memoryAllocatedBytes"] == 1626144768
    assert row["gpu.0.memoryAllocated"] == pytest.approx(1626144768 / 85520809984 * 100)
    assert row["gpu.0.smClock"] == 1980
    assert row["gpu.process.0.powerWatts"] == pytest.approx(369.391)


@pytest.mark.usefixtures("driver")
def test_busy_h100_without_our_process(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_busy.json")
    install(monkeypatch, snapshot)
    collector = nvidia.probe({}, Target(snapshot["recorder"]["pid"]))
    assert collector is not None
    row = collector.sample()
    assert row == expected(snapshot)
    assert not any(key.startswith("gpu.process.") for key in row)


@pytest.mark.usefixtures("driver")
def test_unsupported_queries_are_dropped_once(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_idle.json")
    calls = snapshot["devices"][0]["calls"]
    # A passively cooled card: fan speed is really unsupported, and nothing breaks.
    assert calls["nvmlDeviceGetFanSpeed"]["error"] == "NVMLError_NotSupported"
    with pytest.raises(pynvml.NVMLError_NotSupported):
        FakeNVML(snapshot).nvmlDeviceGetFanSpeed(0)
    # A card without ECC or an encoder answers those queries with the same error.
    unsupported = copy.deepcopy(calls["nvmlDeviceGetFanSpeed"])
    for key in list(calls):
        if key.startswith(("nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetEncoderUtilization")):
            calls[key] = unsupported
    fake = install(monkeypatch, snapshot)
    collector = nvidia.probe({}, Target())
    assert collector is not None
    rows = [collector.sample() for _ in range(3)]
    gone = {"gpu.0.correctedMemoryErrors", "gpu.0.unCorrectedMemoryErrors",
            "gpu.0.encoderUtilization"}
    for row in rows:
        assert set(row) == {f"gpu.0.{key}" for key in DEVICE_KEYS} - gone
        assert "gpu.0.fanSpeed" not in row
    ecc = "nvmlDeviceGetTotalEccErrors(NVML_MEMORY_ERROR_TYPE_CORRECTED,NVML_VOLATILE_ECC)"
    assert fake.calls[ecc] == 1
    assert fake.calls["nvmlDeviceGetEncoderUtilization"] == 1
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 3


@pytest.mark.usefixtures("driver")
def test_falls_back_to_memory_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_busy.json")
    calls = snapshot["devices"][0]["calls"]
    calls["nvmlDeviceGetMemoryInfo(version=nvmlMemory_v2)"] = {
        "error": "NVMLError_FunctionNotFound", "code": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND}
    fake = install(monkeypatch, snapshot)
    collector = nvidia.probe({}, Target())
    assert collector is not None
    v1 = calls["nvmlDeviceGetMemoryInfo"]["ok"]
    for _ in range(2):
        row = collector.sample()
        assert row["gpu.0.memoryAllocatedBytes"] == v1["used"]
        assert row["gpu.0.memoryAllocated"] == pytest.approx(v1["used"] / v1["total"] * 100)
    assert fake.calls["nvmlDeviceGetMemoryInfo(version=nvmlMemory_v2)"] == 1


@pytest.mark.usefixtures("driver")
def test_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_idle.json")
    install(monkeypatch, snapshot)
    collector = nvidia.probe({}, Target())
    assert collector is not None
    assert collector.inventory() == {
        "gpu_count": 1,
        "gpu_type": "NVIDIA H100 80GB HBM3",
        "gpu_nvidia": [{
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total": 85520809984,
            "uuid": "GPU-1881f1a3-6038-fc4b-70ec-aa66a504eb55",
            "architecture": "Hopper",  # nvmlDeviceGetArchitecture → 9
        }],
        "nvidia_driver_version": "580.159.04",
        "cuda_version": "13.0",
    }
    overridden = nvidia.probe({"x_stats_gpu_count": 8, "x_stats_gpu_type": "H100 SXM"},
                              Target())
    assert overridden is not None
    inventory = overridden.inventory()
    assert (inventory["gpu_count"], inventory["gpu_type"]) == (8, "H100 SXM")


@pytest.mark.usefixtures("driver")
def test_device_ids_select_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_idle.json")
    install(monkeypatch, snapshot)
    assert nvidia.probe({"x_stats_gpu_device_ids": [3]}, Target()) is None
    collector = nvidia.probe({"x_stats_gpu_device_ids": [0]}, Target())
    assert collector is not None
    assert set(collector.sample()) == {f"gpu.0.{key}" for key in DEVICE_KEYS}


@pytest.mark.usefixtures("driver")
def test_close_shuts_nvml_down_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, load("h100_idle.json"))
    collector = nvidia.probe({}, Target())
    assert collector is not None
    collector.close()
    collector.close()
    assert (fake.calls["nvmlInit"], fake.calls["nvmlShutdown"]) == (1, 1)


@pytest.mark.usefixtures("driver")
def test_nvml_that_will_not_start_means_no_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = load("h100_idle.json")
    snapshot["init"] = {"error": "NVMLError_LibraryNotFound",
                        "code": pynvml.NVML_ERROR_LIBRARY_NOT_FOUND}
    install(monkeypatch, snapshot)
    assert nvidia.probe({}, Target()) is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed
    assert nvidia.probe({}, Target()) is None


def test_no_driver_here_is_none_and_fast() -> None:
    """Without an NVIDIA driver the probe answers without loading NVML."""
    if nvidia._wanted({}):
        pytest.skip("this machine has an NVIDIA driver")
    start = time.perf_counter()
    assert nvidia.probe({}, Target()) is None
    assert time.perf_counter() - start < 0.05


def test_real_nvml_without_a_gpu_is_none() -> None:
    """Asked for NVIDIA anyway, the real pynvml finds no library or driver here."""
    if nvidia._wanted({}):
        pytest.skip("this machine has an NVIDIA driver")
    assert nvidia.probe({"x_stats_gpu_type": "nvidia"}, Target()) is None
