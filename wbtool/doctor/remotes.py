"""``wbtool doctor``'s look at remotes: each one listed, and contacted only
when asked, with a time limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from wbtool.doctor.check import FAIL, OK, WARN, Check
from wbtool.errors import RemoteUnreachableError, StoreError, WbtoolError

if TYPE_CHECKING:
    from wbtool.context import Context

REMOTE_TIMEOUT = 15.0  # seconds a remote has to answer


def targets(ctx: Context, remote: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, url, options) of each remote to contact: none, one, or ``all``."""
    from wbtool.remote import config

    if remote is None:
        return []
    try:
        if remote == "all":
            return [(s.name, s.url, s.options) for s in config.list(ctx.store)]
        url, options = config.resolve(ctx.store, remote)
    except StoreError:  # remotes that config.yaml cannot describe: told by checks()
        return []
    return [(remote, url, options)]


def checks(ctx: Context, contacted: list[tuple[str, str, dict[str, Any]]]) -> Iterator[Check]:
    from wbtool.remote import config
    from wbtool.remote.fs import require_backend

    try:
        specs = config.list(ctx.store)
    except StoreError as e:
        yield Check("remotes", "remotes", FAIL, str(e),
                    "fix the remotes in config.yaml (`wbtool remote remove NAME`, then "
                    "`wbtool remote add`)")
        return
    # Every remote asked about is contacted at once: one that does not
    # answer costs the time limit once, not once per remote.
    probes = {label: _Probe(url, options) for label, url, options in contacted}
    if not specs and not probes:
        yield Check("remotes", "remotes", OK, "no remotes configured")
    for spec in specs:
        name = f"remote {spec.name}"
        about = spec.url + (" (default)" if spec.default else "")
        data: dict[str, Any] = {"name": spec.name, "url": spec.url, "default": spec.default}
        probe = probes.pop(spec.name, None)
        try:
            require_backend(spec.url)
        except WbtoolError as e:  # a failure where it was to be contacted
            yield Check("remotes", name, WARN if probe is None else FAIL, f"{about}: {e}",
                        "install the extra named", data=data, remote=True)
            continue
        if probe is None:
            yield Check("remotes", name, OK, f"{about} (not contacted; --remote checks it)",
                        data=data)
        else:
            yield probe.check(name, about, data)
    for label, probe in probes.items():  # a URL given directly
        yield probe.check(f"remote {label}", probe.url, {"url": probe.url})


class _Probe:
    """Whether a remote answers one request for a key (and, on a miss, one
    about its bucket) within :data:`REMOTE_TIMEOUT` seconds, asked on a
    thread of its own from the moment this is made."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.options = options
        self.outcome: list[str | None] = []
        self.started = time.monotonic()
        self.took = 0.0
        self.worker = threading.Thread(target=self._ask, name="wbtool-doctor-remote",
                                       daemon=True)
        self.worker.start()

    def _ask(self) -> None:
        from wbtool.remote.fs import open_remote

        problem: str | None = None
        try:
            open_remote(self.url, self.options).exists("projects")
        except RemoteUnreachableError as e:  # the line names the remote already
            problem = f"unreachable: {e.fields.get('detail') or e}"
        except WbtoolError as e:
            problem = str(e)
        except Exception as e:  # whatever a backend raises: told, never a traceback
            problem = f"{type(e).__name__}: {e}"
        self.took = time.monotonic() - self.started
        self.outcome.append(problem)

    def check(self, name: str, about: str, data: dict[str, Any]) -> Check:
        self.worker.join(max(0.0, self.started + REMOTE_TIMEOUT - time.monotonic()))
        answered = bool(self.outcome)
        reachable = answered and self.outcome[0] is None
        took = self.took if answered else time.monotonic() - self.started
        data = {**data, "reachable": reachable, "seconds": round(took, 3)}
        hint = "check the URL, the network and the credentials (`wbtool remote list`)"
        if not answered:
            return Check("remotes", name, FAIL,
                         f"{about}: no answer within {REMOTE_TIMEOUT:.0f} s", hint, data=data,
                         remote=True)
        if not reachable:
            return Check("remotes", name, FAIL, f"{about}: {self.outcome[0]}", hint,
                         data=data, remote=True)
        return Check("remotes", name, OK, f"{about}: reachable ({took:.1f} s)", data=data)
