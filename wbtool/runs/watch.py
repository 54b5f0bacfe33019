"""``run.watch``: gradient and parameter histograms of PyTorch models.

PyTorch is optional; nothing here imports it until ``watch`` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wbtool.errors import UsageError

if TYPE_CHECKING:
    from wbtool.runs.run import Run

LOGS = ("gradients", "parameters", "all", None)


def _models(models: Any) -> list[Any]:
    try:
        import torch
    except ImportError:
        raise UsageError("run.watch needs PyTorch: pip install torch") from None
    items = list(models) if isinstance(models, (list, tuple)) else [models]
    for m in items:
        if not isinstance(m, torch.nn.Module):
            raise ValueError(f"run.watch takes torch.nn.Module objects, not {type(m).__name__}")
    return items


def watch(run: Run, models: Any, log: str | None, log_freq: int) -> None:
    if log not in LOGS:
        raise ValueError("log must be 'gradients', 'parameters', 'all' or None")
    items = _models(models)
    if log is None:
        return
    handles = run.__dict__.setdefault("_watch_handles", {})
    for index, model in enumerate(items):
        prefix = f"{type(model).__name__}_{index}" if len(items) > 1 else ""
        state = {"calls": 0}

        def hook(module: Any, args: Any, output: Any, model: Any = model,
                 prefix: str = prefix, state: dict[str, int] = state) -> None:
            state["calls"] += 1
            if state["calls"] % max(1, log_freq):
                return
            row: dict[str, Any] = {}
            for pname, param in model.named_parameters():
                key = f"{prefix}/{pname}" if prefix else pname
                if log in ("parameters", "all"):
                    row[f"parameters/{key}"] = param.detach()
                if log in ("gradients", "all") and param.grad is not None:
                    row[f"gradients/{key}"] = param.grad.detach()
            if row and not run._finished:
                run.log(row, commit=False)

        handles[id(model)] = model.register_forward_hook(hook)


def unwatch(run: Run, models: Any = None) -> None:
    handles: dict[int, Any] = run.__dict__.get("_watch_handles", {})
    targets = None if models is None else {id(m) for m in _models(models)}
    for key in list(handles):
        if targets is None or key in targets:
            handles.pop(key).remove()
