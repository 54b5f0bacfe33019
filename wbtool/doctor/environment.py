"""``wbtool doctor``'s look at what wbtool runs with: versions, settings,
optional backends, NVML."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from wbtool.doctor.check import FAIL, OK, WARN, Check, plural
from wbtool.errors import WbtoolError

if TYPE_CHECKING:
    from wbtool.settings import Settings


def settings() -> tuple[Settings, Check | None]:
    from wbtool.settings import Settings, load

    try:
        return load(), None
    except WbtoolError as e:
        return Settings(), Check("environment", "settings", FAIL, str(e),
                                 "fix it where it is set: a WBTOOL_* variable, "
                                 ".wbtool/settings.yaml or the system settings file")


def checks(settings: Settings) -> Iterator[Check]:
    import platform

    from wbtool._version import __version__

    yield Check("environment", "wbtool", OK, f"wbtool {__version__}",
                data={"version": __version__})
    yield Check("environment", "python", OK,
                f"Python {platform.python_version()} at {sys.executable}",
                data={"version": platform.python_version(), "executable": sys.executable})
    yield _backends()
    yield _nvml(settings)


def _backends() -> Check:
    """Which optional remote backends import (importing them is the test:
    a package can be installed and still fail to import)."""
    import importlib

    from wbtool.remote.fs import BACKENDS

    extras = {b.module: b.extra for b in BACKENDS.values()}
    found: dict[str, str | None] = {}
    parts, status = [], OK
    for module, extra in extras.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            found[module] = None
            parts.append(f"{module} not installed (pip install 'wbtool[{extra}]')")
            continue
        except Exception as e:  # installed, but broken
            found[module] = None
            status = WARN
            parts.append(f"{module} fails to import ({type(e).__name__}: {e})")
            continue
        found[module] = str(getattr(mod, "__version__", "?"))
        parts.append(f"{module} {found[module]}")
    return Check("environment", "backends", status, "; ".join(parts),
                 None if status == OK else "reinstall the extra named",
                 data={"modules": found})


def _nvml(settings: Settings) -> Check:
    """NVML as the system metrics see it (through their own probe)."""
    from wbtool.stats import nvidia
    from wbtool.stats.base import Target

    try:
        collector = nvidia.probe(settings.to_dict(), Target())
    except Exception as e:  # a probe never should; say so rather than stop
        return Check("environment", "nvml", WARN, f"NVML probe failed: {e}")
    if collector is None:
        return Check("environment", "nvml", OK,
                     "not usable here (no NVIDIA driver or no pynvml): no GPU metrics",
                     data={"usable": False, "gpus": 0})
    try:
        gpus = collector.inventory().get("gpu_nvidia") or []
    finally:
        collector.close()
    names = sorted({str(g.get("name")) for g in gpus})
    return Check("environment", "nvml", OK,
                 f"usable: {plural(len(gpus), 'GPU')}" + (f" ({', '.join(names)})" if names
                                                          else ""),
                 data={"usable": True, "gpus": len(gpus), "names": names})
