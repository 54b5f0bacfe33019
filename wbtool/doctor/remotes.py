"""``wbtool doctor``'s look at remotes: each one listed, and contacted only
when asked, with a time limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from wbtool.doctor.check import FAIL, OK, WARN, Check
from wbtool.errors import StoreError, WbtoolError

if TYPE_CHECKING:
    from wbtool.context import Context

REMOTE_TIMEOUT = 15.0  # seconds a remote has to answer


def targets(ctx: Context, remote: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, url, options) of each remote to contact: none, one, or ``all``."""
    from wbtool.remote import config

    if remote is None:
        return []
    if remote == "all":
        return [(s.name, s.url, s.options) for s in config.list(ctx.store)]
    url, options = config.resolve(ctx.store, remote)
    return [(remote, url, options)]


def checks(ctx: Context, targets: list[tuple[str, str, dict[str, Any]]]) -> Iterator[Check]:
    from wbtool.remote import config
    from wbtool.remote.fs import require_backend

    try:
        specs = config.list(ctx.store)
    except StoreError as e:
        yield Check("remotes", "remotes", FAIL, str(e),
                    "fix the remotes in config.yaml (`wbtool remote remove NAME`, then "
                    "`wbtool remote add`)")
        return
    contact = {label: (url, options) for label, url, options in targets}
    if not specs and not contact:
        yield Check("remotes", "remotes", OK, "no remotes configured")
    for spec in specs:
        name = f"remote {spec.name}"
        about = spec.url + (" (default)" if spec.default else "")
        data: dict[str, Any] = {"name": spec.name, "url": spec.url, "default": spec.default}
        try:
            require_backend(spec.url)
        except WbtoolError as e:  # a failure where it was to be contacted
            asked = contact.pop(spec.name, None) is not None
            yield Check("remotes", name, FAIL if asked else WARN, f"{about}: {e}",
                        "install the extra named", data=data, remote=True)
            continue
        if spec.name not in contact:
            yield Check("remotes", name, OK, f"{about} (not contacted; --remote checks it)",
                        data=data)
            continue
        url, options = contact.pop(spec.name)
        yield _reach(name, about, url, options, data)
    for label, (url, options) in contact.items():  # a URL given directly
        yield _reach(f"remote {label}", url, url, options, {"url": url})


def _reach(name: str, about: str, url: str, options: dict[str, Any],
           data: dict[str, Any]) -> Check:
    """Whether the remote answers one request for a key (and, on a miss, one
    about its bucket) within :data:`REMOTE_TIMEOUT` seconds."""
    from wbtool.remote.fs import open_remote

    outcome: list[str | None] = []

    def probe() -> None:
        try:
            open_remote(url, options).exists("projects")
            outcome.append(None)
        except WbtoolError as e:
            outcome.append(str(e))
        except Exception as e:  # whatever a backend raises: told, never a traceback
            outcome.append(f"{type(e).__name__}: {e}")

    started = time.monotonic()
    worker = threading.Thread(target=probe, name="wbtool-doctor-remote", daemon=True)
    worker.start()
    worker.join(REMOTE_TIMEOUT)
    took = time.monotonic() - started
    data = {**data, "reachable": bool(outcome) and outcome[0] is None, "seconds": round(took, 3)}
    hint = "check the URL, the network and the credentials (`wbtool remote list`)"
    if not outcome:
        return Check("remotes", name, FAIL,
                     f"{about}: no answer within {REMOTE_TIMEOUT:.0f} s", hint, data=data,
                     remote=True)
    if outcome[0] is not None:
        return Check("remotes", name, FAIL, f"{about}: {outcome[0]}", hint, data=data,
                     remote=True)
    return Check("remotes", name, OK, f"{about}: reachable ({took:.1f} s)", data=data)
