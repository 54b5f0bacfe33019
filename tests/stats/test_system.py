"""The system collector against the real machine: real child processes that
spin, allocate and fork, a real file read past the page cache."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wbtool.settings import Settings
from wbtool.stats import system
from wbtool.stats.base import Collector, Target
from wbtool.stats.sampler import Sampler

NCPU = os.cpu_count() or 1
ONE_CORE = 100.0 / NCPU  # ``cpu`` of a process that keeps one core busy
WINDOW_S = 1.0

# Children that tell their own CPU seconds (rusage, not /proc) on SIGUSR1.
SPIN = """\
import os, signal
def report(*_):
    t = os.times()
    print(t.user + t.system, flush=True)
signal.signal(signal.SIGUSR1, report)
print('ready', flush=True)
while True:
    pass
"""
ALLOCATE = """\
import sys
print('ready', flush=True)
sys.stdin.readline()
block = b'\\x01' * (200 << 20)  # written, so resident
print('ready', flush=True)
sys.stdin.readline()
"""
# Three busy workers on a line; on SIGUSR1 it stops them and tells their CPU seconds.
FORK_WORKERS = """\
import os, signal, sys, time
workers = []
def report(*_):
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    t = os.times()
    print(t.children_user + t.children_system, flush=True)
signal.signal(signal.SIGUSR1, report)
print('ready', flush=True)
sys.stdin.readline()
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        while True:
            pass
    workers.append(pid)
print('ready', flush=True)
while True:
    time.sleep(60)
"""
# Two sleeping children, and one more for each line read; it says their pids.
SLEEPERS = """\
import os, signal, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended children go at once
def fork():
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return pid
pids = [fork(), fork()]
print('ready', *pids, flush=True)
for line in sys.stdin:
    pids.append(fork())
    print('ready', *pids, flush=True)
"""

PROCESS_KEYS = {
    "cpu": float,
    "proc.cpu.threads": int,
    "proc.memory.rssMB": float,
    "proc.memory.percent": float,
}
SYSTEM_KEYS = {
    "memory_percent": float,
    "proc.memory.availableMB": float,
    "disk./.usagePercent": float,
    "disk./.usageGB": float,
    "disk.in": float,
    "disk.out": float,
    "network.sent": int,
    "network.recv": int,
}


class Child:
    """A Python child in its own process group, driven line by line."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.pid = self.proc.pid
        self.ready()

    def ready(self) -> list[int]:
        """Wait for the child's "ready" line; the numbers that follow it."""
        assert self.proc.stdout is not None
        word, *numbers = self.proc.stdout.readline().split()
        assert word == "ready"
        return [int(number) for number in numbers]

    def step(self) -> list[int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.ready()

    def cpu_seconds(self) -> float:
        """The CPU seconds the child reports on SIGUSR1."""
        assert self.proc.stdout is not None
        os.kill(self.pid, signal.SIGUSR1)
        return float(self.proc.stdout.readline())

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator[Callable[[str], Child]]:
    children: list[Child] = []

    def start(code: str) -> Child:
        child = Child(code)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


def collect(pid: int | None = None, *, tree: bool = False, **settings: Any) -> Collector:
    collector = system.probe(Settings(**settings).to_dict(), Target(pid, tree=tree))
    assert collector is not None
    return collector


# The ways to find the processes of a tree, each run wherever it can be.
def _walk(target: Target) -> system.SystemCollector:
    if not system._has_procfs():
        pytest.skip("no /proc here")
    try:
        procs = system._ProcfsProcesses(target, find="walk")
    except ValueError as e:
        pytest.skip(str(e))
    return system.SystemCollector({}, procs, system._ProcfsSystem())


def _scan(target: Target) -> system.SystemCollector:
    if not system._has_procfs():
        pytest.skip("no /proc here")
    procs = system._ProcfsProcesses(target, find="scan")
    return system.SystemCollector({}, procs, system._ProcfsSystem())


def _psutil(target: Target) -> system.SystemCollector:
    import psutil

    return system.SystemCollector({}, system._PsutilProcesses(target, psutil),
                                  system._PsutilSystem(psutil), psutil)


def _chosen(target: Target) -> Collector:
    return collect(target.pid, tree=target.tree)


READERS = pytest.mark.parametrize("make", [_walk, _scan, _psutil], ids=["walk", "scan", "psutil"])


def test_every_key_is_present_with_its_type() -> None:
    collector = collect()
    try:
        reading = collector.sample()
    finally:
        collector.close()
    expected = {**PROCESS_KEYS, **SYSTEM_KEYS}
    assert set(reading) == set(expected)
    for key, kind in expected.items():
        assert type(reading[key]) is kind, key
        assert reading[key] >= 0, key
    for key in ("proc.memory.percent", "memory_percent", "disk./.usagePercent"):
        assert reading[key] <= 100, key
    assert reading["proc.cpu.threads"] >= 1
    assert reading["proc.memory.rssMB"] > 5  # this Python, at least


@READERS
def test_every_reader_gives_the_same_keys(make: Callable[[Target], Collector]) -> None:
    collector = make(Target(tree=True))
    try:
        reading = collector.sample()
    finally:
        collector.close()
    assert set(reading) == set(PROCESS_KEYS) | set(SYSTEM_KEYS)


def test_one_busy_core(spawn: Callable[[str], Child]) -> None:
    child = spawn(SPIN)
    began = time.monotonic()
    used = child.cpu_seconds()
    collector = collect(child.pid)
    time.sleep(WINDOW_S)
    cpu = collector.sample()["cpu"]
    used = child.cpu_seconds() - used
    elapsed = time.monotonic() - began
    collector.close()
    own = 100 * used / elapsed / NCPU  # what the child says it got
    assert abs(cpu - own) <= 0.1 * ONE_CORE
    assert cpu <= 1.3 * ONE_CORE
    if own >= 0.8 * ONE_CORE:  # a busy shared machine may not give it a whole core
        assert cpu >= 0.7 * ONE_CORE


def test_first_sample_counts_from_creation(spawn: Callable[[str], Child]) -> None:
    child = spawn(SPIN)
    time.sleep(0.5)  # CPU time the collector must not count
    collector = collect(child.pid)
    time.sleep(0.3)
    cpu = collector.sample()["cpu"]
    collector.close()
    assert cpu <= 1.3 * ONE_CORE


def test_resident_memory_of_an_allocation(spawn: Callable[[str], Child]) -> None:
    child = spawn(ALLOCATE)
    collector = collect(child.pid)
    before = collector.sample()
    child.step()
    after = collector.sample()
    collector.close()
    assert after["proc.memory.rssMB"] - before["proc.memory.rssMB"] >= 150
    assert after["proc.memory.percent"] > before["proc.memory.percent"]


@READERS
def test_the_tree_counts_forked_workers(make: Callable[[Target], Collector],
                                        spawn: Callable[[str], Child]) -> None:
    parent = spawn(FORK_WORKERS)
    began = time.monotonic()
    tracked = make(Target(parent.pid, tree=True))
    alone = make(Target(parent.pid, tree=False))
    parent.step()  # the workers start after the collectors: new processes count in full
    time.sleep(WINDOW_S)
    tree, root = tracked.sample(), alone.sample()
    used = parent.cpu_seconds()  # the workers' own account, up to now
    elapsed = time.monotonic() - began
    tracked.close()
    alone.close()
    # A shared machine may give the workers less than min(3, NCPU) cores; the
    # reading must match what they got.
    assert abs(tree["cpu"] - root["cpu"] - 100 * used / elapsed / NCPU) <= 0.15 * ONE_CORE
    assert tree["cpu"] - root["cpu"] >= 0.25 * ONE_CORE
    assert root["cpu"] <= 0.1 * ONE_CORE
    assert tree["proc.cpu.threads"] == root["proc.cpu.threads"] + 3
    assert tree["proc.memory.rssMB"] >= root["proc.memory.rssMB"] + 3
    assert tree["proc.memory.percent"] > root["proc.memory.percent"]


@pytest.mark.parametrize("make", [_chosen, _walk, _scan, _psutil],
                         ids=["chosen", "walk", "scan", "psutil"])
def test_the_tree_follows_processes_that_come_and_go(make: Callable[[Target], Collector],
                                                     spawn: Callable[[str], Child]) -> None:
    parent = spawn(SLEEPERS)
    collector = make(Target(parent.pid, tree=True))
    threads = [collector.sample()["proc.cpu.threads"]]
    pids = parent.step()
    threads.append(collector.sample()["proc.cpu.threads"])
    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pids[0], 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    threads.append(collector.sample()["proc.cpu.threads"])
    threads.append(collector.sample()["proc.cpu.threads"])  # members read again
    collector.close()
    assert threads == [3, 4, 3, 3]


def test_a_target_that_ended_gives_machine_readings_only() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    collector = collect(proc.pid, tree=True)
    reading = collector.sample()
    collector.close()
    assert not set(PROCESS_KEYS) & set(reading)
    assert set(SYSTEM_KEYS) <= set(reading)


def test_disk_paths_as_given_and_missing_ones_skipped(tmp_path: Path) -> None:
    collector = collect(x_stats_disk_paths=("/", str(tmp_path), "/no/such/folder"))
    reading = collector.sample()
    collector.close()
    for path in ("/", str(tmp_path)):
        assert 0 < reading[f"disk.{path}.usagePercent"] <= 100
        assert reading[f"disk.{path}.usageGB"] > 0
    assert not [key for key in reading if "no/such" in key]


def _block_device_under(path: Path) -> bool:
    """Whether reads of ``path`` reach a disk that ``disk.in`` counts."""
    st = os.stat(path)
    node = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not node.exists():  # tmpfs, overlay, a network file system
        return False
    return not node.resolve().name.startswith(("loop", "ram", "zram"))


def _drop_cache(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _read_past_the_cache(path: Path, size: int) -> None:
    """Read ``path`` from the disk: O_DIRECT, else after dropping its cached pages."""
    chunk = 1 << 20
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
        direct = True
    except OSError:
        fd = os.open(path, os.O_RDONLY)
        direct = False
    try:
        buffer = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT wants
        offset = 0
        while offset < size:
            try:
                got = os.preadv(fd, [buffer], offset)
            except OSError:
                if not direct:
                    raise
                os.close(fd)  # the file system refuses O_DIRECT: drop the cache instead
                fd = os.open(path, os.O_RDONLY)
                _drop_cache(fd)
                direct = False
                continue
            if not got:
                break
            offset += got
    finally:
        os.close(fd)


def test_disk_counters_see_a_file_written_and_read(tmp_path: Path) -> None:
    size = 100 << 20
    path = tmp_path / "block"
    collector = collect()
    start = collector.sample()
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(path, "wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    written = collector.sample()
    fd = os.open(path, os.O_RDONLY)
    _drop_cache(fd)
    os.close(fd)
    _read_past_the_cache(path, size)
    read = collector.sample()
    collector.close()
    # System-wide block-device counters: other I/O only adds to them.
    for key in ("disk.in", "disk.out"):
        assert 0 <= start[key] <= written[key] <= read[key]
    if sys.platform.startswith("linux") and _block_device_under(tmp_path):
        assert written["disk.out"] - start["disk.out"] >= 80
        assert read["disk.in"] - written["disk.in"] >= 80


def test_network_counters_never_go_down() -> None:
    collector = collect()
    first = collector.sample()
    time.sleep(0.1)
    second = collector.sample()
    collector.close()
    for key in ("network.sent", "network.recv"):
        assert type(first[key]) is int
        assert 0 <= first[key] <= second[key]


def test_inventory_and_its_overrides() -> None:
    collector = collect()
    found = collector.inventory()
    collector.close()
    assert found["cpu_count_logical"] == NCPU
    assert 1 <= found["cpu_count"] <= NCPU
    assert found["memory"]["total"] > 0
    collector = collect(x_stats_cpu_count=3, x_stats_cpu_logical_count=6)
    found = collector.inventory()
    collector.close()
    assert (found["cpu_count"], found["cpu_count_logical"]) == (3, 6)


def test_the_sampler_takes_the_probe() -> None:
    (probe,) = system.PROBES
    collector = probe(Settings().to_dict(), Target())
    assert collector is not None
    sampler = Sampler([collector], lambda row: None, interval=1.0, started=time.time())
    row = sampler.sample_once()
    sampler.stop()
    assert set(PROCESS_KEYS) | set(SYSTEM_KEYS) <= set(row)
    assert sampler.collectors == [collector]


def test_importing_the_collector_leaves_psutil_out() -> None:
    code = "import sys, wbtool.stats.system; print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
