"""Reading processes and the machine from Linux's /proc, for the system
collector (:mod:`wbtool.stats.system`), which documents what is measured."""

from __future__ import annotations

import os
import time
from typing import Protocol

from wbtool.stats.base import Target

MB = 1024 * 1024
GB = 1024 * MB
# CPU seconds, threads, resident bytes, start time (on the reader's clock).
Proc = tuple[float, int, int, float]
Pair = tuple[int, int]

_SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size
_KEEP_OPEN = 256  # at most this many /proc/<pid>/stat descriptors are held between samples
_STAT_BYTES = 4096
_READ_BYTES = 65536
_WALK_COST = 5  # reading a children file costs about what listing 5 /proc entries does
_VIRTUAL_DISKS = ("loop", "ram", "zram")  # their I/O lands on another device, or on none
_LOOPBACK = ("lo", "lo0")  # traffic that never leaves the machine


class _Processes(Protocol):
    slack: float  # how much earlier than the truth a start time may read

    def clock(self) -> float: ...

    def read(self) -> dict[int, Proc]: ...

    def close(self) -> None: ...


class _Machine(Protocol):
    def memory(self) -> Pair: ...

    def disks(self) -> dict[str, Pair]: ...

    def nics(self) -> dict[str, Pair]: ...

    def close(self) -> None: ...


def _pread_all(fd: int) -> bytes:
    """A /proc file from its start: a read that does not fill the buffer is the end."""
    chunks = [os.pread(fd, _READ_BYTES, 0)]
    while len(chunks[-1]) == _READ_BYTES:
        chunks.append(os.pread(fd, _READ_BYTES, _READ_BYTES * len(chunks)))
    return b"".join(chunks)


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return _pread_all(fd)
    finally:
        os.close(fd)


class _ProcFile:
    """A file of /proc held open and read again from its start at each sample."""

    def __init__(self, path: str, prefix: bytes = b"") -> None:
        self.path = path
        self._prefix = prefix  # what the file starts with, to know it is still ours
        self._fd: int | None = None

    def read(self) -> bytes:
        if self._fd is not None:
            try:
                data = _pread_all(self._fd)
            except OSError:
                data = b""
            if data.startswith(self._prefix) and data:
                return data
            # Closed behind our back, the number naming another file now: leave it.
            self._fd = None
        self._fd = os.open(self.path, os.O_RDONLY)
        return _pread_all(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class _ProcfsProcesses:
    """The target's processes, from /proc.

    Finding the processes of a tree costs more than reading them, so it is
    done only when a process or thread was made since the last time: the
    last pid handed out, in ``/proc/loadavg``, tells. In between, the tree
    can only have lost processes and its known members are read again.

    To find them, either ``/proc/<pid>/task/<tid>/children`` is followed
    from the target (one read per thread of the tree), or ``/proc`` is
    listed and only the entries not seen before are read (one listing, then
    one read per new process): whichever costs less on this machine. A
    process outside the tree stays outside: its parent can change only to a
    reaper, and a reaper inside the tree would have had it inside already.
    (A pid of the outside that ends and is reused by a new child between two
    listings would be missed; pids are handed out in turn, so that takes a
    wrap of pid_max.) Between two findings, a member whose parent ends
    counts on even if it was handed to a reaper outside the tree.
    """

    slack = 0.02  # start times are whole clock ticks

    def __init__(self, target: Target, find: str = "cheaper", *, again: bool = True) -> None:
        """``find``: "walk" (follow children files), "scan" (list /proc) or
        "cheaper"; ``again``: read the members again while no pid is handed out
        (else find the tree at every sample)."""
        self.root = target.pid
        self.tree = target.tree
        self._hz = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._fds: dict[int, int] = {}
        me = os.getpid()
        walks = os.path.exists(f"/proc/{me}/task/{me}/children")
        if find == "walk" and not walks:
            raise ValueError("this kernel has no /proc/<pid>/task/<tid>/children")
        self._find = find if walks else "scan"
        self._again_ok = again
        self._loadavg = _ProcFile("/proc/loadavg")
        self._handed: bytes | None = None  # the last pid handed out when the tree was found
        self._members: list[int] = []
        self._threads = 1  # of the tree, when it was last found
        self._entries = 0  # of /proc, when it was last listed
        self._outside: set[str] = set()  # /proc entries known not to be in the tree

    @staticmethod
    def clock() -> float:
        """The clock of a process's start time in /proc/<pid>/stat."""
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def read(self) -> dict[int, Proc]:
        if not self.tree:
            got = self._stat(self.root)
            return {} if got is None else {self.root: got[1]}
        try:
            handed: bytes | None = self._loadavg.read().rsplit(None, 1)[-1]
        except (OSError, IndexError):
            handed = None
        if self._again_ok and handed is not None and handed == self._handed:
            found = self._again()
        elif self._find == "walk" or (
                self._find == "cheaper" and _WALK_COST * self._threads < self._entries):
            found = self._walk()
        else:
            found = self._scan()
        self._handed = handed
        self._members = list(found)
        self._threads = sum(proc[1] for proc in found.values())
        return found

    def close(self) -> None:
        for pid in list(self._fds):
            self._close(pid)
        self._loadavg.close()

    def _again(self) -> dict[int, Proc]:
        found: dict[int, Proc] = {}
        for pid in self._members:
            got = self._stat(pid)
            if got is not None:
                found[pid] = got[1]
        return found

    def _walk(self) -> dict[int, Proc]:
        self._outside.clear()  # it would go stale
        found: dict[int, Proc] = {}
        todo = [self.root]
        while todo:
            pid = todo.pop()
            if pid in found:
                continue
            got = self._stat(pid)
            if got is None:
                continue
            found[pid] = proc = got[1]
            try:
                tids = [str(pid)] if proc[1] == 1 else os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    todo.extend(map(int, _read(f"/proc/{pid}/task/{tid}/children").split()))
                except (OSError, ValueError):
                    continue
        for pid in self._fds.keys() - found.keys():
            self._close(pid)
        return found

    def _scan(self) -> dict[int, Proc]:
        names = set(os.listdir("/proc"))
        self._entries = len(names)
        self._outside &= names
        read: dict[int, tuple[int, Proc]] = {}
        for name in names - self._outside:
            if not name.isdigit():  # "self", "meminfo", ...
                self._outside.add(name)
                continue
            got = self._stat(int(name))
            if got is not None:
                read[int(name)] = got
        inside = {self.root: self.root in read}
        for pid in read:
            chain = []
            parent = pid
            while parent not in inside:
                got = read.get(parent)
                if got is None:  # not read: outside the tree, or gone
                    inside[parent] = False
                    break
                chain.append(parent)
                parent = got[0]
            for link in chain:
                inside[link] = inside[parent]
        found: dict[int, Proc] = {}
        for pid, (_parent, proc) in read.items():
            if inside[pid]:
                found[pid] = proc
            else:
                self._outside.add(str(pid))
                self._close(pid)
        for pid in self._fds.keys() - found.keys():
            self._close(pid)
        return found

    def _stat(self, pid: int) -> tuple[int, Proc] | None:
        """(parent pid, reading) of ``pid``, or None when it is gone."""
        data = self._pread(pid)
        if data is None:
            return None
        # Fields after the command name: state ppid ... utime(11) stime(12) ...
        # num_threads(17) itrealvalue starttime(19) vsize rss(21).
        f = data[data.rfind(b")") + 2 :].split(None, 22)
        try:
            hz = self._hz
            return int(f[1]), ((int(f[11]) + int(f[12])) / hz, int(f[17]),
                               int(f[21]) * self._page, int(f[19]) / hz)
        except (IndexError, ValueError):
            return None

    def _pread(self, pid: int) -> bytes | None:
        fd = self._fds.get(pid)
        if fd is not None:
            try:
                data = os.pread(fd, _STAT_BYTES, 0)
            except ProcessLookupError:  # the process ended
                self._close(pid)
                return None
            except OSError:
                data = b""
            if data.startswith(b"%d (" % pid):
                return data
            # Not our descriptor any more: the program closed it and the
            # number now names another file. Leave that file alone.
            del self._fds[pid]
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.pread(fd, _STAT_BYTES, 0)
        except OSError:
            os.close(fd)
            return None
        if len(self._fds) < _KEEP_OPEN:
            self._fds[pid] = fd
        else:
            os.close(fd)
        return data

    def _close(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class _ProcfsSystem:
    """Memory, disk and network counters of the machine, from /proc."""

    def __init__(self) -> None:
        self._counted: dict[str, bool] = {}
        self._meminfo = _ProcFile("/proc/meminfo", b"MemTotal:")
        self._diskstats = _ProcFile("/proc/diskstats")
        self._netdev = _ProcFile("/proc/net/dev", b"Inter-|")

    def memory(self) -> Pair:
        """Total and available bytes."""
        values: dict[bytes, int] = {}
        for line in self._meminfo.read().split(b"\n", 5)[:5]:
            name, _, rest = line.partition(b":")
            values[name] = int(rest.split()[0]) * 1024
        available = values.get(b"MemAvailable")
        if available is None:  # kernels before 3.14
            available = sum(values.get(k, 0) for k in (b"MemFree", b"Buffers", b"Cached"))
        return values[b"MemTotal"], available

    def disks(self) -> dict[str, Pair]:
        """Bytes read and written, per physical disk."""
        out: dict[str, Pair] = {}
        for line in self._diskstats.read().splitlines():
            f = line.split()
            if len(f) < 10:
                continue
            name = f[2].decode(errors="replace")
            counted = self._counted.get(name)
            if counted is None:
                counted = self._counted[name] = self._physical(name)
            if counted:
                out[name] = (int(f[5]) * _SECTOR, int(f[9]) * _SECTOR)
        return out

    @staticmethod
    def _physical(name: str) -> bool:
        """Whether I/O on ``name`` is counted: whole disks that stack on nothing.

        Partitions and the devices built on others (LVM, RAID, dm-crypt) would
        count the same bytes twice. Without /sys/block to tell, every device
        but the virtual ones counts.
        """
        if name.startswith(_VIRTUAL_DISKS):
            return False
        try:
            return not os.listdir(f"/sys/block/{name}/slaves")
        except FileNotFoundError:
            return not os.path.isdir("/sys/block")
        except OSError:
            return False

    def nics(self) -> dict[str, Pair]:
        """Bytes sent and received, per network interface but the loopback."""
        out: dict[str, Pair] = {}
        for line in self._netdev.read().splitlines()[2:]:
            name, _, rest = line.partition(b":")
            key = name.strip().decode(errors="replace")
            f = rest.split()
            if key in _LOOPBACK or len(f) < 9:
                continue
            out[key] = (int(f[8]), int(f[0]))
        return out

    def close(self) -> None:
        for file in (self._meminfo, self._diskstats, self._netdev):
            file.close()
