"""AMD GPUs through ``rocm-smi -a --json``.

Per card ``i`` (``card{i}`` in rocm-smi's output; all cards, or those named by
``x_stats_gpu_device_ids``):

- ``gpu.{i}.gpu``: "GPU use (%)"
- ``gpu.{i}.memoryAllocated``: VRAM in use, % of the card's VRAM (see below)
- ``gpu.{i}.temp``: die temperature, °C: the edge sensor, or the junction
  (hotspot) sensor on cards without one (MI300), else the memory sensor
- ``gpu.{i}.powerWatts``: "Average Graphics Package Power (W)", or "Current
  Socket Graphics Package Power (W)" where rocm-smi reports that instead
- ``gpu.{i}.powerPercent``: power, % of "Max Graphics Package Power (W)"

The two output formats differ in how memory is reported. ROCm 6.x prints "GPU
Memory Allocated (VRAM%)" (VRAM in use) beside "GPU Memory Read/Write Activity
(%)". ROCm 5.x prints only "GPU memory use (%)", which is the memory
controller's busy percentage: it is used only when neither the 6.x figure nor
the VRAM byte counts ("VRAM Total Used Memory (B)" / "VRAM Total Memory (B)")
are in the output, as ``-a`` on 5.x has nothing closer to an allocation figure.

Values rocm-smi cannot read ("N/A", "N/A (Secondary die)" on the second die of
an MI250) are left out. rocm-smi is a Python program that takes a second or
more; it runs with a timeout, and a run that fails or times out gives an
empty sample.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from wbtool.stats.base import Reading, Target

TIMEOUT_S = 5.0

_CARD = re.compile(r"card(\d+)")
_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*%?\s*")

_TEMPERATURES = ("Temperature (Sensor edge) (C)", "Temperature (Sensor junction) (C)",
                 "Temperature (Sensor memory) (C)")
_POWERS = ("Average Graphics Package Power (W)", "Current Socket Graphics Package Power (W)")


def find_rocm_smi() -> str | None:
    """rocm-smi's path, when it is installed and the amdgpu driver is loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:  # without the driver, rocm-smi only spends seconds saying so
        with open("/sys/module/amdgpu/initstate", encoding="ascii") as f:
            if "live" not in f.read():
                return None
    except OSError:
        return None
    return shutil.which("rocm-smi") or shutil.which("/opt/rocm/bin/rocm-smi")


def run_rocm_smi(path: str) -> str | None:
    """stdout of ``rocm-smi -a --json``, or None when it could not run."""
    try:
        proc = subprocess.run([path, "-a", "--json"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout  # it exits non-zero when some field is unsupported; the JSON is good


def parse(text: str | None) -> dict[int, dict[str, Any]]:
    """Cards by index from rocm-smi's JSON; warnings printed before it are skipped."""
    if not text:
        return {}
    start = text.find("{")
    if start < 0:
        return {}
    try:
        data, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    cards = {}
    for key, value in data.items():
        match = _CARD.fullmatch(key)
        if match and isinstance(value, dict):
            cards[int(match.group(1))] = value
    return dict(sorted(cards.items()))


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = _NUMBER.fullmatch(value)
        if match:
            return float(match.group(1))
    return None


def _first(card: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = _number(card.get(key))
        if value is not None:
            return value
    return None


def _memory_allocated(card: Mapping[str, Any]) -> float | None:
    percent = _number(card.get("GPU Memory Allocated (VRAM%)"))
    if percent is not None:
        return percent
    used = _number(card.get("VRAM Total Used Memory (B)"))
    total = _number(card.get("VRAM Total Memory (B)"))
    if used is not None and total:
        return used / total * 100
    return _number(card.get("GPU memory use (%)"))


def readings(card: Mapping[str, Any]) -> Reading:
    """The metrics of one card, keyed without the ``gpu.{i}.`` prefix."""
    out: Reading = {}
    use = _number(card.get("GPU use (%)"))
    if use is not None:
        out["gpu"] = use
    memory = _memory_allocated(card)
    if memory is not None:
        out["memoryAllocated"] = memory
    temp = _first(card, _TEMPERATURES)
    if temp is not None:
        out["temp"] = temp
    watts = _first(card, _POWERS)
    if watts is not None:
        out["powerWatts"] = watts
        limit = _number(card.get("Max Graphics Package Power (W)"))
        if limit:
            out["powerPercent"] = watts / limit * 100
    return out


def probe(settings: Mapping[str, Any], target: Target) -> AmdCollector | None:
    path = find_rocm_smi()
    if path is None:
        return None
    cards = parse(run_rocm_smi(path))
    collector = AmdCollector(path, settings, cards)
    return collector if collector.cards(cards) else None


class AmdCollector:
    name = "amd"

    def __init__(self, path: str, settings: Mapping[str, Any],
                 first: dict[int, dict[str, Any]]) -> None:
        self._path = path
        self._settings = settings
        self._ids = settings.get("x_stats_gpu_device_ids")
        self._first = first  # the probe's run, for the inventory

    def cards(self, cards: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        if self._ids is None:
            return cards
        return {i: card for i, card in cards.items() if i in self._ids}

    def sample(self) -> Reading:
        out: Reading = {}
        for index, card in self.cards(parse(run_rocm_smi(self._path))).items():
            out.update({f"gpu.{index}.{k}": v for k, v in readings(card).items()})
        return out

    def inventory(self) -> dict[str, Any]:
        gpus = []
        for index, card in self.cards(self._first).items():
            gpu: dict[str, Any] = {"id": index}
            for field, keys in (("name", ("Card Series", "Card series", "Device Name")),
                                ("device_id", ("Device ID", "GPU ID")),
                                ("unique_id", ("Unique ID",)),
                                ("vbios_version", ("VBIOS version",)),
                                ("vendor", ("Card Vendor", "Card vendor")),
                                ("sku", ("Card SKU",)),
                                ("max_power_watts", ("Max Graphics Package Power (W)",))):
                value = next((card[k] for k in keys if k in card), None)
                if isinstance(value, str) and value and not value.startswith("N/A"):
                    gpu[field] = _number(value) if field == "max_power_watts" else value
            gpus.append(gpu)
        count = self._settings.get("x_stats_gpu_count")
        gpu_type = self._settings.get("x_stats_gpu_type")
        return {
            "gpu_count": count if count is not None else len(gpus),
            "gpu_type": gpu_type if gpu_type is not None else
            (gpus[0].get("name") if gpus else None),
            "gpu_amd": gpus,
        }

    def close(self) -> None:
        pass


PROBES = (probe,)
