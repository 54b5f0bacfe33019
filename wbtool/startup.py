"""``wbtool.login``, ``setup``, ``require`` and ``teardown``: the reference's
process-wide calls, as far as they mean something without a server.

Framework integrations (a training library's logger or callback) make these
calls before or after a run; with no server there is nothing to log in to
and no service process to require, so they succeed without asking anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wbtool.errors import UsageError

# What ``wandb.require`` accepts: each names a choice of the reference's
# background service process, which wbtool does not have.
REQUIREMENTS = ("core", "legacy-service", "service")
_ANONYMOUS = (None, "allow", "must", "never")


def login(anonymous: str | None = None, key: str | None = None, relogin: bool | None = None,
          host: str | None = None, force: bool | None = None, timeout: int | None = None,
          verify: bool = False, referrer: str | None = None) -> bool:
    """Return True: there is no server to log in to. Never prompts, and a
    ``key`` given is neither checked nor stored anywhere."""
    if anonymous not in _ANONYMOUS:
        raise UsageError("wbtool.login: anonymous must be 'allow', 'must' or 'never', "
                         f"not {anonymous!r}")
    return True


def setup(settings: Any = None) -> None:
    """Make ``settings`` (a :class:`wbtool.Settings` or a dict) the defaults of
    every later ``wbtool.init`` in this process; ``init``'s own arguments and
    settings still win. Each call replaces what the previous one set."""
    from wbtool.runs import current
    from wbtool.settings import Settings

    if settings is None:
        values: dict[str, Any] = {}
    elif isinstance(settings, Settings):
        values = settings.explicit()
    elif isinstance(settings, dict):
        values = Settings(**settings).explicit()  # an unknown or invalid one is refused here
    else:
        raise UsageError("wbtool.setup: settings must be a wbtool.Settings or a dict, not "
                         f"{type(settings).__name__}")
    current.set_defaults(values)


def require(requirement: str | Iterable[str] | None = None,
            experiment: str | Iterable[str] | None = None) -> None:
    """Accept the reference's requirements (``"service"``, ``"core"``,
    ``"legacy-service"``), which choose its background process and mean
    nothing here; refuse any other name."""
    for wanted in (requirement, experiment):
        try:
            names = [wanted] if isinstance(wanted, str) else list(wanted or ())
        except TypeError:
            raise UsageError("wbtool.require: a requirement is a name or a list of names, "
                             f"not {type(wanted).__name__}") from None
        for name in names:
            if name not in REQUIREMENTS:
                raise UsageError(f"wbtool.require: unsupported requirement {name!r} "
                                 f"(known: {', '.join(REQUIREMENTS)})")


def teardown(exit_code: int | None = None) -> None:
    """Finish every run of this process that is still active, most recent first."""
    from wbtool.runs import current

    for run in reversed(current.active()):
        run.finish(exit_code)
