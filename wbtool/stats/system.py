"""CPU, memory, disk and network of the target process and of the machine.

Keys, as the System Metrics Reference names them: ``cpu``, ``proc.cpu.threads``,
``proc.memory.rssMB``, ``proc.memory.percent``, ``memory_percent``,
``proc.memory.availableMB``, ``disk.{path}.usagePercent``, ``disk.{path}.usageGB``,
``disk.in``, ``disk.out``, ``network.sent`` and ``network.recv``. MB is 2**20
bytes and GB 2**30 bytes; the network counters are bytes.

On Linux every figure comes from /proc: per process of the target, one
``pread`` per sample of ``/proc/<pid>/stat`` through a descriptor held open
between samples (that one line holds the CPU times, the thread count and the
resident set); then one ``pread`` each of ``/proc/meminfo``,
``/proc/diskstats``, ``/proc/net/dev`` and ``/proc/loadavg`` (which tells
whether the process tree must be looked for again), and a ``statvfs`` per
disk path. A held descriptor also keeps a reused pid from passing for the
process that ended. Elsewhere psutil supplies the same figures, more slowly.

``cpu`` is the CPU time the target used since the previous sample over the
time elapsed, in percent of all CPUs (100: every CPU busy; the CPUs are
``x_stats_cpu_logical_count``, else ``os.cpu_count()``). A process seen in
both samples adds the growth of its user + system time; a process seen for
the first time adds all of its time if it started after the previous sample
(a new child), nothing otherwise. So the last moments of a process that ended
between samples are lost, and a process that started and ended between two
samples is not seen at all.

``cpu``, ``disk.in``/``disk.out`` and ``network.*`` count from the moment the
collector is made (the start of the run), so the first sample already covers
the time before it. The disk and network counters add up the growth of each
device separately, so they never go down when a device comes or goes. They
are machine-wide: ``disk.*`` counts the whole disks that stack on no other
device (not partitions, LVM or RAID volumes, loop or RAM disks, which would
count the same bytes twice or no disk at all); ``network.*`` every interface
but the loopback.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from typing import Any

from wbtool.stats.base import Collector, Reading, Target
from wbtool.stats.procfs import (
    _LOOPBACK,
    GB,
    MB,
    Pair,
    Proc,
    _Machine,
    _Processes,
    _ProcfsProcesses,
    _ProcfsSystem,
)


class _PsutilProcesses:
    """The target's processes through psutil, where there is no /proc."""

    def __init__(self, target: Target, psutil: Any) -> None:
        self.root = target.pid
        self.tree = target.tree
        self._psutil = psutil
        self._procs: dict[int, Any] = {}

    slack = 1.0  # psutil may add start times to a boot time in whole seconds

    @staticmethod
    def clock() -> float:
        return time.time()

    def read(self) -> dict[int, Proc]:
        ps = self._psutil
        root = self._procs.get(self.root)
        try:
            if root is None:
                root = ps.Process(self.root)
            procs = [root, *(root.children(recursive=True) if self.tree else ())]
        except ps.Error:
            return {}
        found: dict[int, Proc] = {}
        live: dict[int, Any] = {}
        for new in procs:
            proc = self._procs.get(new.pid, new)
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    found[proc.pid] = (times.user + times.system, proc.num_threads(),
                                       proc.memory_info().rss, proc.create_time())
            except ps.Error:
                continue
            live[proc.pid] = proc
        self._procs = live
        return found

    def close(self) -> None:
        self._procs = {}


class _PsutilSystem:
    def __init__(self, psutil: Any) -> None:
        self._psutil = psutil

    def memory(self) -> Pair:
        vm = self._psutil.virtual_memory()
        return vm.total, vm.available

    def disks(self) -> dict[str, Pair]:
        io = self._psutil.disk_io_counters(perdisk=False)
        return {} if io is None else {"all": (io.read_bytes, io.write_bytes)}

    def nics(self) -> dict[str, Pair]:
        counters = self._psutil.net_io_counters(pernic=True) or {}
        return {name: (c.bytes_sent, c.bytes_recv)
                for name, c in counters.items() if name not in _LOOPBACK}

    def close(self) -> None:
        pass


class _Growth:
    """Two counters per device, summed over the growth of each device since
    it was first seen; a device that restarts its counters counts again from there."""

    def __init__(self, now: dict[str, Pair]) -> None:
        self._last = now
        self.first = 0
        self.second = 0

    def update(self, now: dict[str, Pair]) -> None:
        last = self._last
        for key, (a, b) in now.items():
            before = last.get(key)
            if before is not None:
                self.first += max(0, a - before[0])
                self.second += max(0, b - before[1])
        self._last = now


class SystemCollector:
    """The CPU, memory, disk and network readings of the reference."""

    name = "system"

    def __init__(self, settings: Mapping[str, Any], procs: _Processes, system: _Machine,
                 psutil: Any = None) -> None:
        self._procs = procs
        self._system = system
        self._psutil = psutil
        self._settings = settings
        paths = settings.get("x_stats_disk_paths")
        self._paths = [(str(path), f"disk.{path}.usagePercent", f"disk.{path}.usageGB")
                       for path in (("/",) if paths is None else paths)]
        self._cpus = settings.get("x_stats_cpu_logical_count") or os.cpu_count() or 1
        self._last_at = time.monotonic()
        self._last_clock = procs.clock()
        self._last_cpu = {pid: (p[3], p[0]) for pid, p in procs.read().items()}
        self._disk = _Growth(system.disks())
        self._net = _Growth(system.nics())

    def sample(self) -> Reading:
        at = time.monotonic()
        clock = self._procs.clock()
        procs = self._procs.read()
        total, available = self._system.memory()
        reading: Reading = {}
        if procs:
            reading["cpu"] = self._cpu_percent(procs, at, clock)
            reading["proc.cpu.threads"] = sum(p[1] for p in procs.values())
            rss = sum(p[2] for p in procs.values())
            reading["proc.memory.rssMB"] = rss / MB
            reading["proc.memory.percent"] = 100.0 * rss / total if total else 0.0
        reading["memory_percent"] = 100.0 * (total - available) / total if total else 0.0
        reading["proc.memory.availableMB"] = available / MB
        for path, percent_key, gb_key in self._paths:
            try:
                usage = shutil.disk_usage(path)
            except (OSError, ValueError):
                continue  # not there, or not ours to see
            size = usage.used + usage.free  # what the user can fill, as df reports
            reading[percent_key] = 100.0 * usage.used / size if size else 0.0
            reading[gb_key] = usage.used / GB
        self._disk.update(self._system.disks())
        reading["disk.in"] = self._disk.first / MB
        reading["disk.out"] = self._disk.second / MB
        self._net.update(self._system.nics())
        reading["network.sent"] = self._net.first
        reading["network.recv"] = self._net.second
        return reading

    def _cpu_percent(self, procs: dict[int, Proc], at: float, clock: float) -> float:
        last = self._last_cpu
        since = self._last_clock - self._procs.slack
        used = 0.0
        for pid, (seconds, _threads, _rss, start) in procs.items():
            before = last.get(pid)
            if before is not None and before[0] == start:
                used += max(0.0, seconds - before[1])
            elif start >= since:
                used += seconds
        elapsed = at - self._last_at
        self._last_cpu = {pid: (p[3], p[0]) for pid, p in procs.items()}
        self._last_at = at
        self._last_clock = clock
        return 100.0 * used / elapsed / self._cpus if elapsed > 0 else 0.0

    def inventory(self) -> dict[str, Any]:
        settings = self._settings
        out: dict[str, Any] = {}
        physical = settings.get("x_stats_cpu_count")
        logical = settings.get("x_stats_cpu_logical_count")
        if self._psutil is not None:
            physical = physical or self._psutil.cpu_count(logical=False)
            logical = logical or self._psutil.cpu_count(logical=True)
        logical = logical or os.cpu_count()
        if physical:
            out["cpu_count"] = int(physical)
        if logical:
            out["cpu_count_logical"] = int(logical)
        out["memory"] = {"total": int(self._system.memory()[0])}
        return out

    def close(self) -> None:
        self._procs.close()
        self._system.close()


def _has_procfs() -> bool:
    return sys.platform.startswith("linux") and all(
        os.path.exists(p) for p in ("/proc/self/stat", "/proc/meminfo", "/proc/diskstats",
                                    "/proc/net/dev"))


def probe(settings: Mapping[str, Any], target: Target) -> Collector | None:
    psutil: Any = None
    try:
        import psutil
    except ImportError:
        pass
    procs: _Processes
    system: _Machine
    if _has_procfs():
        procs, system = _ProcfsProcesses(target), _ProcfsSystem()
    elif psutil is not None:
        procs, system = _PsutilProcesses(target, psutil), _PsutilSystem(psutil)
    else:
        return None
    return SystemCollector(settings, procs, system, psutil)


PROBES = (probe,)
