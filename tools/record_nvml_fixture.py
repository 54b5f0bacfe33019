#!/usr/bin/env python3
"""Record raw NVML query results as a JSON fixture.

The GPU metrics collector talks to NVML through ``pynvml`` (the
``nvidia-ml-py`` package).  This script calls every NVML query the collector
relies on, for every device, and writes what each call returned -- or the
error it raised -- to one JSON document.  Unit tests replay these documents at
the NVML call boundary, so GPU code paths can be tested on machines without a
GPU.

Every call is recorded independently: a query that is not supported on a
device (or missing from the installed ``pynvml``) is recorded as an error and
the script moves on.

Usage::

    python3 tools/record_nvml_fixture.py [OUTPUT] [--label NAME] [--load-pid PID]

OUTPUT defaults to stdout.  ``--load-pid`` names a process that is using the
GPU while the snapshot is taken; its pid, parent pid and command line are
stored next to the NVML results so that tests can match NVML's process list
against a process tree.

Only the standard library and ``pynvml`` are used.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pynvml

FORMAT_VERSION = 1

# Placeholder recorded for device handles: they are opaque pointers whose
# value means nothing outside the recording process.
HANDLE_PLACEHOLDER = "<nvmlDevice_t>"

Record = dict[str, Any]


def to_json(value: Any) -> Any:
    """Convert a pynvml return value into plain JSON data."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, ctypes.Structure | ctypes.Union):
        # pynvml structures decode char arrays to str in __getattribute__.
        return {field[0]: to_json(getattr(value, field[0])) for field in value._fields_}
    if isinstance(value, ctypes.Array):
        return [to_json(item) for item in value]
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, ctypes.c_int | ctypes.c_uint | ctypes.c_long | ctypes.c_ulonglong):
        return to_json(value.value)
    if hasattr(value, "__dict__"):
        # pynvml.nvmlFriendlyObject (process info entries and similar).
        return {key: to_json(item) for key, item in vars(value).items() if not key.startswith("_")}
    return repr(value)


def error_record(exc: BaseException) -> Record:
    """Describe an exception raised by a query."""
    record: Record = {"error": type(exc).__name__}
    if isinstance(exc, pynvml.NVMLError):
        record["code"] = exc.value
    try:
        record["message"] = str(exc)
    except Exception:  # str() of an NVML error may call into NVML
        record["message"] = repr(exc)
    return record


def call(
    name: str,
    *args: Any,
    convert: Callable[[Any], Any] = to_json,
    **kwargs: Any,
) -> tuple[Record, Any]:
    """Call ``pynvml.<name>`` and return (record, raw result or None)."""
    func = getattr(pynvml, name, None)
    if func is None:
        return {"error": "AttributeError", "message": f"pynvml has no {name}"}, None
    try:
        result = func(*args, **kwargs)
    except Exception as exc:  # every failure is recorded, never fatal
        return error_record(exc), None
    try:
        return {"ok": convert(result)}, result
    except Exception as exc:
        return {"error": "ConversionError", "message": f"{type(exc).__name__}: {exc}"}, None


def constant(name: str) -> int | None:
    value = getattr(pynvml, name, None)
    return value if isinstance(value, int) else None


def call_key(name: str, arg_names: Sequence[str]) -> str:
    """Key under which a call is stored, e.g. ``nvmlDeviceGetClockInfo(NVML_CLOCK_SM)``."""
    return f"{name}({','.join(arg_names)})" if arg_names else name


# Per-device queries taking only the handle.
HANDLE_QUERIES: tuple[str, ...] = (
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetEncoderUtilization",
    "nvmlDeviceGetDecoderUtilization",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetGraphicsRunningProcesses",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetArchitecture",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetFanSpeed",
    "nvmlDeviceGetPerformanceState",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetBrand",
)

# Per-device queries taking the handle plus named pynvml constants.
CONSTANT_ARG_QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",)),
    ("nvmlDeviceGetClockInfo", ("NVML_CLOCK_SM",)),
    ("nvmlDeviceGetClockInfo", ("NVML_CLOCK_MEM",)),
    ("nvmlDeviceGetClockInfo", ("NVML_CLOCK_GRAPHICS",)),
    ("nvmlDeviceGetMaxClockInfo", ("NVML_CLOCK_SM",)),
    ("nvmlDeviceGetMaxClockInfo", ("NVML_CLOCK_MEM",)),
    ("nvmlDeviceGetMaxClockInfo", ("NVML_CLOCK_GRAPHICS",)),
    ("nvmlDeviceGetTotalEccErrors", ("NVML_MEMORY_ERROR_TYPE_CORRECTED", "NVML_VOLATILE_ECC")),
    ("nvmlDeviceGetTotalEccErrors", ("NVML_MEMORY_ERROR_TYPE_CORRECTED", "NVML_AGGREGATE_ECC")),
    ("nvmlDeviceGetTotalEccErrors", ("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", "NVML_VOLATILE_ECC")),
    ("nvmlDeviceGetTotalEccErrors", ("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", "NVML_AGGREGATE_ECC")),
)


def record_device(index: int) -> Record:
    calls: dict[str, Record] = {}
    record, handle = call(
        "nvmlDeviceGetHandleByIndex", index, convert=lambda _handle: HANDLE_PLACEHOLDER
    )
    calls["nvmlDeviceGetHandleByIndex"] = record
    if "error" in record:
        return {"index": index, "calls": calls}

    for name in HANDLE_QUERIES:
        calls[name], _ = call(name, handle)

    memory_v2 = constant("nvmlMemory_v2")
    v2_key = "nvmlDeviceGetMemoryInfo(version=nvmlMemory_v2)"
    if memory_v2 is None:
        calls[v2_key] = {"error": "AttributeError", "message": "pynvml has no nvmlMemory_v2"}
    else:
        calls[v2_key], _ = call("nvmlDeviceGetMemoryInfo", handle, version=memory_v2)

    for name, arg_names in CONSTANT_ARG_QUERIES:
        key = call_key(name, arg_names)
        values = [constant(arg) for arg in arg_names]
        missing = [arg for arg, value in zip(arg_names, values, strict=True) if value is None]
        if missing:
            calls[key] = {"error": "AttributeError", "message": f"pynvml has no {missing}"}
        else:
            calls[key], _ = call(name, handle, *values)

    return {"index": index, "calls": calls}


def describe_process(pid: int) -> Record:
    """Pid, parent pid and command line of a running process, read from /proc."""
    info: Record = {"pid": pid}
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        # Fields after the parenthesised command name: state, ppid, ...
        info["comm"] = stat[stat.index("(") + 1 : stat.rindex(")")]
        info["ppid"] = int(stat[stat.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError) as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"
        return info
    try:
        raw = (proc / "cmdline").read_bytes()
        info["cmdline"] = [
            part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part
        ]
    except OSError as exc:
        info["cmdline_error"] = f"{type(exc).__name__}: {exc}"
    return info


def package_version() -> str | None:
    try:
        return importlib.metadata.version("nvidia-ml-py")
    except importlib.metadata.PackageNotFoundError:
        return None


def record_snapshot(label: str | None, load_pid: int | None) -> Record:
    document: Record = {
        "format": FORMAT_VERSION,
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "label": label,
        "pynvml_version": package_version(),
        "recorder": {"pid": os.getpid(), "ppid": os.getppid()},
        "load_process": describe_process(load_pid) if load_pid is not None else None,
        "host": {"nvml_version": None, "driver_version": None, "cuda_driver_version": None},
        "system_calls": {},
        "devices": [],
    }

    init, _ = call("nvmlInit", convert=lambda _result: None)
    document["init"] = init
    if "error" in init:
        return document

    try:
        system_calls: dict[str, Record] = document["system_calls"]
        host: Record = document["host"]
        for host_key, name in (
            ("nvml_version", "nvmlSystemGetNVMLVersion"),
            ("driver_version", "nvmlSystemGetDriverVersion"),
            ("cuda_driver_version", "nvmlSystemGetCudaDriverVersion"),
        ):
            system_calls[name], _ = call(name)
            host[host_key] = system_calls[name].get("ok")

        system_calls["nvmlDeviceGetCount"], count = call("nvmlDeviceGetCount")
        if isinstance(count, int):
            document["devices"] = [record_device(index) for index in range(count)]
    finally:
        document["shutdown"], _ = call("nvmlShutdown", convert=lambda _result: None)

    return document


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", default="-", help="output path (default: stdout)")
    parser.add_argument("--label", help="free-form name of the snapshot, e.g. idle or busy")
    parser.add_argument(
        "--load-pid",
        type=int,
        help="pid of a process using the GPU; its pid, ppid and command line are recorded",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    document = record_snapshot(args.label, args.load_pid)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
