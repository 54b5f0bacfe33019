"""The Apple silicon GPU collector.

Off a Mac the probe must say "absent"; the parsers run on output recorded on
real Macs (``tests/fixtures/apple``), fed in place of running the tools.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from wbtool.stats import apple
from wbtool.stats.base import Target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "apple"
IOREG_M1_PRO = "ioreg_m1pro_stats_issue_1094.txt"
SIXTEEN_GIB = 16 << 30


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the probe off a Mac")
def test_probe_is_none_off_a_mac() -> None:
    start = time.perf_counter()
    assert apple.probe({}, Target()) is None
    assert time.perf_counter() - start < 0.05


def test_parse_ioreg() -> None:
    gpu = apple.parse_ioreg(fixture(IOREG_M1_PRO))
    assert gpu is not None
    assert gpu["statistics"]["Device Utilization %"] == 2
    assert gpu["statistics"]["In use system memory"] == 340983808
    assert gpu["statistics"]["Alloc system memory"] == 1214005248
    assert (gpu["model"], gpu["cores"]) == (None, None)  # not in the recorded excerpt
    assert apple.readings(gpu, SIXTEEN_GIB) == {
        "gpu.0.gpu": 2.0,
        "gpu.0.memoryAllocated": pytest.approx(340983808 / SIXTEEN_GIB * 100),
    }
    assert apple.readings(gpu, None) == {"gpu.0.gpu": 2.0}


def test_parse_ioreg_without_the_figure() -> None:
    assert apple.parse_ioreg(None) is None
    assert apple.parse_ioreg("") is None
    # An accelerator whose statistics lack the device figure is not used.
    recorded = fixture(IOREG_M1_PRO)
    assert apple.parse_ioreg(recorded.replace('"Device Utilization %"=2,', "")) is None


def test_parse_powermetrics() -> None:
    assert apple.parse_powermetrics(
        fixture("powermetrics_gpu_power_m1pro_applegpuinfo_7.txt")) == pytest.approx(0.014)
    assert apple.parse_powermetrics(
        fixture("powermetrics_m2air_applegpuinfo_6.txt")) == pytest.approx(0.004)
    assert apple.parse_powermetrics(fixture(IOREG_M1_PRO)) is None
    assert apple.parse_powermetrics(None) is None


def fake_mac(monkeypatch: pytest.MonkeyPatch, *, root: bool) -> list[tuple[str, ...]]:
    ran: list[tuple[str, ...]] = []
    outputs = {apple.IOREG: fixture(IOREG_M1_PRO),
               apple.POWERMETRICS: fixture("powermetrics_gpu_power_m1pro_applegpuinfo_7.txt")}

    def run(command: tuple[str, ...]) -> str | None:
        ran.append(command)
        return outputs[command]

    monkeypatch.setattr(apple, "is_apple_silicon", lambda: True)
    monkeypatch.setattr(apple, "is_root", lambda: root)
    monkeypatch.setattr(apple.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(apple, "physical_memory", lambda: SIXTEEN_GIB)
    monkeypatch.setattr(apple, "run", run)
    return ran


def test_sample_as_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake_mac(monkeypatch, root=False)
    collector = apple.probe({}, Target())
    assert collector is not None
    assert collector.sample() == {
        "gpu.0.gpu": 2.0,
        "gpu.0.memoryAllocated": pytest.approx(340983808 / SIXTEEN_GIB * 100),
    }
    assert apple.POWERMETRICS not in ran
    assert collector.inventory() == {"gpu_count": 1, "gpu_type": None,
                                     "gpu_apple": {"name": None}}


def test_sample_as_root_adds_power(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mac(monkeypatch, root=True)
    collector = apple.probe({"x_stats_gpu_type": "Apple M1 Pro"}, Target())
    assert collector is not None
    row = collector.sample()
    assert set(row) == {"gpu.0.gpu", "gpu.0.memoryAllocated", "gpu.0.powerWatts"}
    assert row["gpu.0.powerWatts"] == pytest.approx(0.014)
    assert collector.inventory()["gpu_type"] == "Apple M1 Pro"


def test_probe_without_ioreg_output_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mac(monkeypatch, root=False)
    monkeypatch.setattr(apple, "run", lambda command: None)
    assert apple.probe({}, Target()) is None


def test_run_failures_are_none(tmp_path: Path) -> None:
    assert apple.run((str(tmp_path / "missing"),)) is None
    assert apple.run(("false",)) is None
    assert apple.run(("echo", "ok")) == "ok\n"
