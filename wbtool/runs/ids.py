"""Run identity: ids, display names and run paths."""

from __future__ import annotations

import os

from wbtool.errors import InvalidNameError
from wbtool.lazyre import lazy_compile

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# User-given ids may also use capitals, '-' and '_' (as the reference allows);
# they name a folder, so nothing else.
_ID_RE = lazy_compile(r"[A-Za-z0-9_-]{1,64}")

_ADJECTIVES = (
    "amber", "brisk", "calm", "crisp", "daring", "eager", "fancy", "gentle", "glad",
    "golden", "hardy", "icy", "jolly", "keen", "lively", "lucky", "misty", "noble",
    "polar", "proud", "quiet", "rapid", "rosy", "silent", "snowy", "solar", "stellar",
    "sunny", "swift", "tidy", "vivid", "wild", "witty", "young", "zesty", "fluent",
)
_NOUNS = (
    "aurora", "breeze", "canyon", "cloud", "comet", "dawn", "delta", "dune", "ember",
    "field", "forest", "galaxy", "glade", "harbor", "haze", "lake", "leaf", "meadow",
    "moon", "nebula", "ocean", "pine", "planet", "river", "shadow", "sky", "snow",
    "spark", "star", "storm", "sun", "thunder", "valley", "wave", "wind", "sea",
)


def _pick(options: str | tuple[str, ...]) -> str:
    # 36 options per pick, so the modulo bias of one random 32-bit word is nil.
    return options[int.from_bytes(os.urandom(4), "little") % len(options)]


def new_id() -> str:
    """Eight random lowercase alphanumerics, like the reference's run ids."""
    return "".join(_pick(_ALPHABET) for _ in range(8))


def random_name() -> str:
    """A friendly two-word-number display name ("misty-river-7")."""
    number = int.from_bytes(os.urandom(2), "little") % 100 + 1
    return f"{_pick(_ADJECTIVES)}-{_pick(_NOUNS)}-{number}"


def validate_id(value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidNameError(
            what="run id", value=value,
            reason="use 1 to 64 letters, digits, '-' or '_'",
        )
    return value


def split_run_path(path: str, store_entity: str | None = None
                   ) -> tuple[str | None, str | None, str]:
    """``entity/project/id``, ``project/id`` or ``id`` → (entity, project, id).

    The ``runs/`` segment of the reference's ``entity/project/runs/id`` form
    is accepted too. An entity other than ``store_entity`` (the one the
    settings name, if any) is not found (OtherEntityError).
    """
    parts = [p for p in path.strip().strip("/").split("/") if p] if isinstance(path, str) else []
    if len(parts) >= 2 and parts[-2] == "runs":
        del parts[-2]
    if not parts or len(parts) > 3:
        raise InvalidNameError(what="run path", value=path,
                               reason="expected entity/project/id, project/id or id")
    run_id = validate_id(parts[-1])
    project = parts[-2] if len(parts) >= 2 else None
    entity = parts[-3] if len(parts) == 3 else None
    if entity is not None:
        from wbtool.names import check_entity

        check_entity(entity, store_entity, path)
    return entity, project, run_id


def split_project_path(path: str, store_entity: str | None = None) -> tuple[str | None, str]:
    """``entity/project`` or ``project`` → (entity, project), for a listing
    of runs; an entity other than ``store_entity`` is not found, as above."""
    from wbtool.names import check_entity, validate_name

    parts = [p for p in path.strip().strip("/").split("/") if p] if isinstance(path, str) else []
    if not parts or len(parts) > 2:
        raise InvalidNameError(what="project path", value=path,
                               reason="expected entity/project or project")
    project = validate_name(parts[-1], "project name")
    if len(parts) == 2:
        check_entity(parts[0], store_entity, path)
    return (parts[0] if len(parts) == 2 else None), project


def parse_moment(value: str) -> tuple[str, int]:
    """``"<run_id>?_step=<N>"`` → (run_id, N), the reference's RunMoment form."""
    run_id, sep, query = value.partition("?")
    key, eq, number = query.partition("=")
    if not sep or not eq or key != "_step":
        raise InvalidNameError(what="run moment", value=value,
                               reason="expected '<run_id>?_step=<N>' (only _step is supported)")
    try:
        step = int(number)
    except ValueError:
        raise InvalidNameError(what="run moment", value=value,
                               reason="the step must be a whole number") from None
    if step < 0:
        raise InvalidNameError(what="run moment", value=value, reason="the step must be >= 0")
    return validate_id(run_id), step
