"""wbtool: local-first experiment tracking and artifact versioning.

Heavy modules load on first use, so ``import wbtool`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wbtool._version import __version__

if TYPE_CHECKING:
    from wbtool.api import Api
    from wbtool.artifacts.artifact import Artifact
    from wbtool.errors import WbtoolError
    from wbtool.settings import Settings

__all__ = ["Api", "Artifact", "Settings", "WbtoolError", "__version__"]

_LAZY = {
    "Api": "wbtool.api",
    "Artifact": "wbtool.artifacts.artifact",
    "Settings": "wbtool.settings",
    "WbtoolError": "wbtool.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wbtool' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
