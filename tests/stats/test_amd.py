"""The AMD collector on rocm-smi output recorded on real machines.

Only the boundary is faked: ``run_rocm_smi`` returns a fixture's text instead
of running rocm-smi, and ``find_rocm_smi`` pretends the tool is installed.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from wbtool.stats import amd
from wbtool.stats.base import Target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rocm"
KEYS = {"gpu", "memoryAllocated", "temp", "powerWatts", "powerPercent"}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def fake_rocm_smi(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    ran: list[str] = []
    text = fixture(name)

    def run(path: str) -> str:
        ran.append(path)
        return text

    monkeypatch.setattr(amd, "find_rocm_smi", lambda: "/opt/rocm/bin/rocm-smi")
    monkeypatch.setattr(amd, "run_rocm_smi", run)
    return ran


def collect(monkeypatch: pytest.MonkeyPatch, name: str,
            **settings: object) -> tuple[amd.AmdCollector, dict[str, float | int]]:
    fake_rocm_smi(monkeypatch, name)
    collector = amd.probe(settings, Target())
    assert collector is not None
    return collector, collector.sample()


def test_rocm5_format(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, row = collect(monkeypatch, "rocm5_mi250_a_json.json")
    assert row == {
        "gpu.0.gpu": 0.0,
        "gpu.0.memoryAllocated": 0.0,  # "GPU memory use (%)": the only memory figure in 5.x -a
        "gpu.0.temp": 32.0,  # edge sensor
        "gpu.0.powerWatts": 89.0,
        "gpu.0.powerPercent": pytest.approx(89.0 / 560.0 * 100),
    }
    assert collector.inventory() == {
        "gpu_count": 1,
        "gpu_type": "AMD INSTINCT MI250 (MCM) OAM AC MBA",
        "gpu_amd": [{
            "id": 0, "name": "AMD INSTINCT MI250 (MCM) OAM AC MBA", "device_id": "0x740c",
            "unique_id": "0x719d230578348e8c", "vbios_version": "113-D65209-073",
            "vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "sku": "D65209",
            "max_power_watts": 560.0,
        }],
    }


def test_rocm6_format(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, row = collect(monkeypatch, "rocm6_mi250_a_json.json")
    assert row == {
        "gpu.0.gpu": 0.0,
        "gpu.0.memoryAllocated": 0.0,  # "GPU Memory Allocated (VRAM%)"
        "gpu.0.temp": 43.0,
        "gpu.0.powerWatts": 91.0,
        "gpu.0.powerPercent": pytest.approx(91.0 / 560.0 * 100),
    }
    inventory = collector.inventory()
    assert inventory["gpu_type"] == "AMD INSTINCT MI250 (MCM) OAM AC MBA"
    assert inventory["gpu_amd"][0]["device_id"] == "0x740c"
    assert inventory["gpu_amd"][0]["unique_id"] == "0x1f9de0957d137942"


def test_rocm6_consumer_card_prefers_the_vram_percentage(monkeypatch: pytest.MonkeyPatch) -> None:
    _, row = collect(monkeypatch, "rocm612_rx6700xt_telegraf.json")
    assert row == {
        "gpu.0.gpu": 0.0,
        "gpu.0.memoryAllocated": 12.0,
        "gpu.0.temp": 45.0,
        "gpu.0.powerWatts": 6.0,
        "gpu.0.powerPercent": pytest.approx(6.0 / 211.0 * 100),
    }


def test_four_cards_with_vram_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, row = collect(monkeypatch, "rocm602_mi100x4_telegraf.json")
    assert set(row) == {f"gpu.{i}.{key}" for i in range(4) for key in KEYS}
    # "GPU memory use (%)" is 0 (memory busy); the byte counts give the allocation.
    for i in range(4):
        assert row[f"gpu.{i}.memoryAllocated"] == pytest.approx(6750208 / 34342961152 * 100)
    assert [row[f"gpu.{i}.temp"] for i in range(4)] == [53.0, 55.0, 54.0, 51.0]
    assert [row[f"gpu.{i}.powerWatts"] for i in range(4)] == [36.0, 44.0, 43.0, 39.0]
    assert row["gpu.1.powerPercent"] == pytest.approx(44.0 / 290.0 * 100)
    assert collector.inventory()["gpu_count"] == 4


def test_device_ids_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, row = collect(monkeypatch, "rocm602_mi100x4_telegraf.json",
                             x_stats_gpu_device_ids=[1, 3], x_stats_gpu_type="MI100")
    assert {key.split(".")[1] for key in row} == {"1", "3"}
    inventory = collector.inventory()
    assert [gpu["id"] for gpu in inventory["gpu_amd"]] == [1, 3]
    assert (inventory["gpu_count"], inventory["gpu_type"]) == (2, "MI100")


def test_each_sample_runs_rocm_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake_rocm_smi(monkeypatch, "rocm6_mi250_a_json.json")
    collector = amd.probe({}, Target())
    assert collector is not None
    collector.sample()
    collector.sample()
    assert ran == ["/opt/rocm/bin/rocm-smi"] * 3  # the probe's run, then one per sample


def test_values_rocm_smi_cannot_read_are_left_out() -> None:
    # The second die of an MI250 (ROCm/rocm_smi_lib#149, #160) and an MI300X-style card.
    secondary = {"GPU use (%)": "0", "Average Graphics Package Power (W)": "N/A (Secondary die)",
                 "Max Graphics Package Power (W)": "0.0", "Temperature (Sensor edge) (C)": "N/A",
                 "Temperature (Sensor junction) (C)": "41.0"}
    assert amd.readings(secondary) == {"gpu": 0.0, "temp": 41.0}
    socket = {"Current Socket Graphics Package Power (W)": "133.0",
              "Max Graphics Package Power (W)": "750.0"}
    assert amd.readings(socket) == {"powerWatts": 133.0,
                                    "powerPercent": pytest.approx(133 / 750 * 100)}


def test_no_gpus() -> None:
    # Printed by rocm-smi on a host with no AMD GPU (wandb/wandb#7319).
    assert amd.parse('WARNING: No AMD GPUs specified\n{"system": {"Driver version": "6.3.6"}}\n'
                     ) == {}
    assert amd.parse("") == amd.parse(None) == amd.parse("not json {") == {}


def test_probe_without_gpus_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amd, "find_rocm_smi", lambda: "/opt/rocm/bin/rocm-smi")
    monkeypatch.setattr(amd, "run_rocm_smi", lambda path: None)
    assert amd.probe({}, Target()) is None


def test_no_rocm_smi_here() -> None:
    if amd.find_rocm_smi() is not None:
        pytest.skip("this machine has rocm-smi and the amdgpu driver")
    start = time.perf_counter()
    assert amd.probe({}, Target()) is None
    assert time.perf_counter() - start < 0.05


def test_run_rocm_smi_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = tmp_path / "rocm-smi"
    slow.write_text("#!/bin/sh\nexec sleep 10\n")
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(amd, "TIMEOUT_S", 0.2)
    start = time.perf_counter()
    assert amd.run_rocm_smi(str(slow)) is None
    assert time.perf_counter() - start < 5
    assert amd.run_rocm_smi(str(tmp_path / "missing")) is None
