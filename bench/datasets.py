"""Deterministic data sets for the artifact benchmark, generated once and reused.

Each data set is a folder under the root, with a small JSON marker beside it
(``<name>.json``) that records how it was made; a folder without a matching
marker is half-written or stale and is generated again.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.fsutil import remove_tree

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DATASET_KEYS = ("a", "b", "c")
DEFAULT_C_FILES = 100_000
FILES_PER_FOLDER = 100
BIG_CHUNK = 16 * MIB
FORMAT = 1


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set holds: ``files`` files of ``file_size`` bytes in ``folders`` folders."""

    key: str
    files: int
    file_size: int
    folders: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.key}-{self.files}x{format_size(self.file_size).replace(' ', '')}"

    @property
    def label(self) -> str:
        return f"{self.key}: {format_count(self.files)}×{format_size(self.file_size)}"

    @property
    def total_bytes(self) -> int:
        return self.files * self.file_size

    def as_dict(self) -> dict[str, object]:
        return {"format": FORMAT, **asdict(self)}


def spec_for(key: str, files: int | None = None) -> DatasetSpec:
    """The data set called ``key``; ``files`` changes the file count of data set c."""
    if key == "a":
        return DatasetSpec(key="a", files=1, file_size=GIB, folders=0, seed=1)
    if key == "b":
        return DatasetSpec(key="b", files=10_000, file_size=10 * KIB, folders=100, seed=2)
    if key == "c":
        count = files if files is not None else DEFAULT_C_FILES
        folders = max(1, -(-count // FILES_PER_FOLDER))
        return DatasetSpec(key="c", files=count, file_size=KIB, folders=folders, seed=3)
    raise ValueError(f"unknown data set {key!r}; expected one of {', '.join(DATASET_KEYS)}")


def format_size(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def format_count(count: int) -> str:
    for suffix, factor in (("M", 1_000_000), ("k", 1_000)):
        if count >= factor and count % factor == 0:
            return f"{count // factor}{suffix}"
    return str(count)


def ensure(root: Path, spec: DatasetSpec) -> tuple[Path, bool]:
    """Return the data set's folder, generating it first if needed, and whether it was."""
    path = root / spec.name
    marker = root / f"{spec.name}.json"
    if path.is_dir() and _read_marker(marker) == spec.as_dict():
        return path, False
    root.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    remove_tree(path)
    partial = root / f".{spec.name}.partial"
    remove_tree(partial)
    started = time.perf_counter()
    print(f"generating {spec.label} in {path} ...", file=sys.stderr, flush=True)
    partial.mkdir()
    if spec.folders == 0:
        _write_big_files(partial, spec)
    else:
        _write_small_files(partial, spec)
    partial.rename(path)
    marker.write_text(json.dumps(spec.as_dict(), sort_keys=True) + "\n")
    elapsed = time.perf_counter() - started
    print(f"generated {spec.label} in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return path, True


def _read_marker(marker: Path) -> object:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _write_big_files(folder: Path, spec: DatasetSpec) -> None:
    """Large files of seeded pseudo-random bytes; every 16 MiB chunk has its own seed.

    No two chunks are alike at any alignment, so the content cannot be
    deduplicated at 4 MiB (or any other) granularity.
    """
    for index in range(spec.files):
        with open(folder / f"part-{index:04d}.bin", "wb") as handle:
            remaining = spec.file_size
            chunk = 0
            while remaining > 0:
                size = min(BIG_CHUNK, remaining)
                rng = random.Random(_seed(spec.seed, index, chunk))
                handle.write(rng.randbytes(size))
                remaining -= size
                chunk += 1


def _write_small_files(folder: Path, spec: DatasetSpec) -> None:
    """``spec.files`` distinct small files spread evenly over ``spec.folders`` folders."""
    per_folder = -(-spec.files // spec.folders)
    left = spec.files
    for index in range(spec.folders):
        count = min(per_folder, left)
        left -= count
        sub = folder / f"d{index:05d}"
        sub.mkdir()
        block = random.Random(_seed(spec.seed, index, 0)).randbytes(count * spec.file_size)
        view = memoryview(block)
        for number in range(count):
            start = number * spec.file_size
            fd = os.open(sub / f"f{number:04d}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, view[start : start + spec.file_size])
            finally:
                os.close(fd)


def _seed(base: int, index: int, chunk: int) -> int:
    return (base * 1_000_003 + index) * 1_000_003 + chunk
