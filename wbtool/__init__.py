"""wbtool: local-first experiment tracking and artifact versioning.

Heavy modules load on first use, so ``import wbtool`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wbtool._version import __version__

if TYPE_CHECKING:
    from wbtool import plot
    from wbtool.api import Api
    from wbtool.artifacts.artifact import Artifact
    from wbtool.errors import WbtoolError
    from wbtool.errors import WbtoolError as Error
    from wbtool.media import Audio, Histogram, Html, Image, Object3D, Table, Video
    from wbtool.runs.init import init
    from wbtool.runs.run import Run
    from wbtool.runs.toplevel import (
        alert,
        define_metric,
        finish,
        link_model,
        log,
        log_artifact,
        log_model,
        mark_preempting,
        restore,
        save,
        unwatch,
        use_artifact,
        use_model,
        watch,
    )
    from wbtool.settings import Settings
    from wbtool.startup import login, require, setup, teardown
    from wbtool.term import termerror, termlog, termwarn

__all__ = [
    "Api", "Artifact", "Audio", "Error", "Histogram", "Html", "Image", "Object3D", "Run",
    "Settings", "Table", "Video", "WbtoolError",
    "__version__", "alert",
    "define_metric", "finish", "init", "link_model", "log", "log_artifact", "log_model",
    "login", "mark_preempting", "plot", "require", "restore", "save", "setup", "teardown",
    "termerror", "termlog", "termwarn", "unwatch", "use_artifact", "use_model", "watch",
]

_TOPLEVEL = "wbtool.runs.toplevel"
_LAZY = {
    "Api": "wbtool.api",
    "Artifact": "wbtool.artifacts.artifact",
    "Error": "wbtool.errors",
    "Audio": "wbtool.media",
    "Histogram": "wbtool.media",
    "Html": "wbtool.media",
    "Image": "wbtool.media",
    "Object3D": "wbtool.media",
    "Table": "wbtool.media",
    "Video": "wbtool.media",
    "Settings": "wbtool.settings",
    "WbtoolError": "wbtool.errors",
    "Run": "wbtool.runs.run",
    "init": "wbtool.runs.init",
    "plot": "wbtool.plot",  # a module: the value is the module itself
    "_attach": "wbtool.runs.attach",  # the reference's, for a run of another process
    **{name: "wbtool.startup" for name in ("login", "require", "setup", "teardown")},
    **{name: "wbtool.term" for name in ("termerror", "termlog", "termwarn")},
    **{name: _TOPLEVEL for name in (
        "alert", "define_metric", "finish", "link_model", "log", "log_artifact", "log_model",
        "mark_preempting", "restore", "save", "unwatch", "use_artifact", "use_model", "watch",
    )},
}
# Names of the reference for what wbtool calls otherwise: ``except wandb.Error``.
_ALIASES = {"Error": "WbtoolError", "_attach": "attach"}
# Attributes that follow the current run, so they are looked up on each access.
_DYNAMIC = {"config": "current_config", "summary": "current_summary"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _DYNAMIC:
        return getattr(importlib.import_module(_TOPLEVEL), _DYNAMIC[name])()
    if name == "run":
        return importlib.import_module("wbtool.runs.current").current()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wbtool' has no attribute {name!r}")
    value = importlib.import_module(module)
    if module != f"{__name__}.{name}":
        value = getattr(value, _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_DYNAMIC) | {"run"})
