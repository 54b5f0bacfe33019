"""Graphcore IPU, Google TPU and AWS Trainium readings, from recorded tool output."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from wbtool.settings import Settings
from wbtool.stats import accelerators, neuron
from wbtool.stats.accelerators import IPU, ipu_readings, parse_ipu_metric, tpu_readings
from wbtool.stats.base import Target
from wbtool.stats.neuron import NeuronMonitor, neuron_readings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def gc_info_attributes(name: str) -> dict[str, str]:
    """A device's attributes as gcipuinfo returns them, from ``gc-info`` output."""
    attrs = {}
    for line in (FIXTURES / "ipu" / name).read_text().splitlines():
        if line.startswith("  "):
            key, _, value = line.strip().partition(": ")
            attrs[key] = value
    return attrs


def trn_report() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "neuron" / "trn1_2xlarge.json").read_text()))


# -- Graphcore IPU -------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "parsed"), [
    ("average board temp", "36.2 C", ("average board temp (C)", 36.2)),
    ("average die temp", "39C", ("average die temp (C)", 39)),
    ("clock", "1300MHz", ("clock (MHz)", 1300)),
    ("ipu power", "120W", ("ipu power (W)", 120)),
    ("total board power", "99.5 W", ("total board power (W)", 99.5)),
    ("ipu utilisation", "99.96%", ("ipu utilisation (%)", 99.96)),
    ("ipu utilisation (session)", "0.00%", ("ipu utilisation (session) (%)", 0.0)),
    ("link speed", "8 GT/s", ("link speed (GT/s)", 8)),
    ("hexoatt total size (bytes)", "17045651456", ("hexoatt total size (bytes)", 17045651456)),
    ("ipu power", "N/A", None),
    ("board serial number", "0340.0004.919062", None),
    ("firmware version", "1.4.14", None),
    ("pci id", "0000:1a:00.0", None),
    ("process start time", "20211122T224648Z", None),
    ("ipu architecture", "ipu21", None),
])
def test_parse_ipu_metric(key: str, value: str, parsed: Any) -> None:
    assert parse_ipu_metric(key, value) == parsed


def test_ipu_readings_from_a_busy_c2() -> None:
    c2, c600 = gc_info_attributes("c2_gc_info.txt"), gc_info_attributes("c600_gc_info.txt")
    seen: dict[str, dict[str, str]] = {}
    first = ipu_readings([c2, c600], [38641], seen)
    assert first == {
        "ipu.0.average board temp (C)": 36.2,
        "ipu.0.average die temp (C)": 33.4,
        "ipu.0.board ipu index": 1,
        "ipu.0.clock (MHz)": 1300,
        "ipu.0.hexoatt active size (bytes)": 0,
        "ipu.0.hexoatt total size (bytes)": 17045651456,
        "ipu.0.hexopt active size (bytes)": 134217728,
        "ipu.0.hexopt total size (bytes)": 134217728,
        "ipu.0.ipu utilisation (%)": 99.96,
        "ipu.0.ipu utilisation (session) (%)": 99.98,
        "ipu.0.link correctable error count": 0,
        "ipu.0.link speed (GT/s)": 8,
        "ipu.0.link width": 8,
        "ipu.0.numa node": 0,
        "ipu.0.parity initialised": 1,
        "ipu.0.pcie physical slot": 3,
        "ipu.0.remote buffers supported": 1,
        "ipu.0.sysfs file id": 0,
        "ipu.0.total board power (W)": 99.5,
    }
    # later samples: what varies, and what changed
    c2 = {**c2, "ipu utilisation": "97.10%", "link correctable error count": "2"}
    assert ipu_readings([c2, c600], [38641], seen) == {
        "ipu.0.average board temp (C)": 36.2,
        "ipu.0.average die temp (C)": 33.4,
        "ipu.0.clock (MHz)": 1300,
        "ipu.0.ipu utilisation (%)": 97.10,
        "ipu.0.ipu utilisation (session) (%)": 99.98,
        "ipu.0.link correctable error count": 2,
    }


def test_ipu_readings_from_an_idle_c600() -> None:
    c600 = gc_info_attributes("c600_gc_info.txt")
    reading = ipu_readings([c600], {1262065, 7}, {})
    assert reading["ipu.0.clock (MHz)"] == 20
    assert reading["ipu.0.ipu utilisation (%)"] == 0.0
    assert reading["ipu.0.link speed (GT/s)"] == 16.0
    assert reading["ipu.0.parity error threshold interval (seconds)"] == 7776000
    assert not any("ipu power" in key for key in reading)  # "N/A"
    assert "ipu.0.id" not in reading and "ipu.0.user process id" not in reading
    assert ipu_readings([c600], [38641], {}) == {}  # another process's IPU


def test_ipu_collector_and_inventory() -> None:
    class Info:  # stands in for the gcipuinfo object: the one call the collector makes
        def getDevices(self) -> list[dict[str, str]]:
            return [gc_info_attributes("c2_gc_info.txt")]

    collector = IPU(Info(), Target(38641))
    assert collector.sample()["ipu.0.clock (MHz)"] == 1300
    assert collector.inventory() == {"ipu": {"vendor": "Graphcore", "device_count": 1,
                                             "devices": [{"id": "0", "board ipu index": "1",
                                                          "board type": "C2"}]}}


# -- Google Cloud TPU ----------------------------------------------------------------


class Usage(NamedTuple):  # tpu_info.metrics.Usage's fields
    device_id: int
    memory_usage: int
    total_memory: int
    duty_cycle_pct: float


def test_tpu_readings_from_usage_records() -> None:
    doc = json.loads((FIXTURES / "tpu" / "usage_v6e_schema.json").read_text())
    usages = [Usage(**u) for u in doc["usage"]]
    reading = tpu_readings(usages)
    assert reading["tpu.0.memoryUsageBytes"] == 19810536653
    assert reading["tpu.0.memoryUsage"] == pytest.approx(18.45 / 31.25 * 100, abs=1e-6)
    assert reading["tpu.0.dutyCycle"] == 100.0
    assert reading["tpu.2.dutyCycle"] == 37.5
    assert reading["tpu.3.memoryUsageBytes"] == 0 and reading["tpu.3.memoryUsage"] == 0
    assert len(reading) == 12
    assert tpu_readings([tuple(u) for u in usages]) == reading  # plain tuples read the same
    assert tpu_readings([(5, 10, 0, 1.0)]) == {"tpu.5.memoryUsageBytes": 10,
                                               "tpu.5.dutyCycle": 1.0}


def test_tpu_chips_are_found_on_the_pci_bus(tmp_path: Path) -> None:
    def device(name: str, vendor: str, device: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "vendor").write_text(vendor + "\n")
        (tmp_path / name / "device").write_text(device + "\n")

    device("0000:00:04.0", "0x1ae0", "0x0042")  # gVNIC: Google's, not a TPU
    device("0000:00:05.0", "0x10de", "0x2330")  # an NVIDIA H100
    assert accelerators.tpu_chip_count(str(tmp_path)) == 0
    device("0000:00:06.0", "0x1ae0", "0x0063")  # v5e
    device("0000:00:07.0", "0x1ae0", "0x0063")
    (tmp_path / "0000:00:08.0").mkdir()  # unreadable entries are passed over
    assert accelerators.tpu_chip_count(str(tmp_path)) == 2


# -- AWS Trainium ----------------------------------------------------------------------

TRN_EXPECTED = {
    "trn.0.neuroncore_utilization": 1.3560819560861623,
    "trn.1.neuroncore_utilization": 0.0,
    "trn.host_total_memory_usage": 611491840,
    "trn.host_total_memory_usage.application_memory": 610443264,
    "trn.host_total_memory_usage.constants": 0,
    "trn.host_total_memory_usage.dma_buffers": 1048576,
    "trn.host_total_memory_usage.tensors": 0,
    "trn.neuron_device_total_memory_usage": 101876188,
    "trn.0.neuroncore_memory_usage.constants": 196608,
    "trn.0.neuroncore_memory_usage.model_code": 101125344,
    "trn.0.neuroncore_memory_usage.model_shared_scratchpad": 0,
    "trn.0.neuroncore_memory_usage.runtime_memory": 0,
    "trn.0.neuroncore_memory_usage.tensors": 521468,
    "trn.1.neuroncore_memory_usage.constants": 0,
    "trn.1.neuroncore_memory_usage.model_code": 32768,
    "trn.1.neuroncore_memory_usage.model_shared_scratchpad": 0,
    "trn.1.neuroncore_memory_usage.runtime_memory": 0,
    "trn.1.neuroncore_memory_usage.tensors": 0,
}


def test_neuron_readings_from_a_trn1_report() -> None:
    reading = neuron_readings(trn_report(), {16851})
    assert reading == TRN_EXPECTED
    assert isinstance(reading["trn.1.neuroncore_utilization"], float)
    # the totals are the sums of their breakdowns
    parts = [k for k in reading if k.startswith("trn.host_total_memory_usage.")]
    assert sum(reading[k] for k in parts) == reading["trn.host_total_memory_usage"]
    cores = [k for k in reading if ".neuroncore_memory_usage." in k]
    assert sum(reading[k] for k in cores) == reading["trn.neuron_device_total_memory_usage"]


def test_neuron_readings_only_for_the_measured_processes() -> None:
    report = trn_report()
    assert neuron_readings(report, {1}) == {}
    other = json.loads(json.dumps(report["neuron_runtime_data"][0]))
    other["pid"] = 17000
    report["neuron_runtime_data"].append(other)
    both = neuron_readings(report, {16851, 17000})  # a process tree: memory adds up
    assert both["trn.host_total_memory_usage"] == 2 * 611491840
    assert both["trn.0.neuroncore_memory_usage.tensors"] == 2 * 521468
    assert both["trn.0.neuroncore_utilization"] == 1.3560819560861623
    assert neuron_readings({"neuron_runtime_data": [{"pid": 16851, "report": {
        "neuroncore_counters": {"error": "not available"}}}]}, {16851}) == {}


FAKE_MONITOR = textwrap.dedent("""
    import json, sys, time
    assert sys.argv[1] == "-c"
    config = json.load(open(sys.argv[2]))
    report = json.load(open(sys.argv[3]))
    report["neuron_runtime_data"][0]["pid"] = int(sys.argv[4])
    print("neuron-monitor: starting", flush=True)  # not a report: passed over
    for _ in range(int(sys.argv[5])):
        print(json.dumps(report), flush=True)
        time.sleep(0.05)
""")


def _wait(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def _monitor(tmp_path: Path, reports: int) -> NeuronMonitor:
    script = tmp_path / "neuron-monitor.py"
    script.write_text(FAKE_MONITOR)
    config = tmp_path / "monitor.json"
    neuron.write_config(str(config))
    command = [sys.executable, str(script), "-c", str(config),
               str(FIXTURES / "neuron" / "trn1_2xlarge.json"), str(os.getpid()), str(reports)]
    return NeuronMonitor(command, Target(), cleanup=str(config))


def test_neuron_monitor_process_is_read_on_a_thread(tmp_path: Path) -> None:
    collector = _monitor(tmp_path, reports=1000)
    try:
        assert _wait(collector.sample) == TRN_EXPECTED
        assert collector.inventory() == {"trainium": {"neuron_device_count": 1,
                                                      "neuroncore_per_device_count": 2}}
    finally:
        started = time.monotonic()
        collector.close()
    assert time.monotonic() - started < 3
    assert not (tmp_path / "monitor.json").exists()  # the temporary config is removed


def test_neuron_monitor_exit_stops_the_collector(tmp_path: Path) -> None:
    collector = _monitor(tmp_path, reports=1)
    try:
        assert _wait(collector.sample) == TRN_EXPECTED
        with pytest.raises(RuntimeError, match="exited with code 0"):
            _wait(collector.sample)
    finally:
        collector.close()


def test_default_neuron_monitor_config(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "neuron.json"
    neuron.write_config(str(path))
    config = json.loads(path.read_text())
    assert config["period"] == "1s"
    kinds = {m["type"] for m in config["neuron_runtimes"][0]["metrics"]}
    assert {"neuroncore_counters", "memory_used"} <= kinds


# -- absent hardware -------------------------------------------------------------------


def test_probes_find_nothing_here_and_fast() -> None:
    if (shutil.which("neuron-monitor") and glob.glob("/dev/neuron[0-9]*")) \
            or accelerators.tpu_chip_count():
        pytest.skip("this machine has an accelerator these probes look for")
    values = Settings(x_stats_neuron_monitor_config_path="/nonexistent/neuron.json").to_dict()
    started = time.perf_counter()
    for probe in accelerators.PROBES:
        assert probe(values, Target()) is None
    assert time.perf_counter() - started < 0.5
    assert not os.path.exists("/nonexistent/neuron.json")
