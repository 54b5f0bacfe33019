"""The one exception tree of wbtool.

Every error wbtool raises on purpose derives from :class:`WbtoolError`. Each
class's docstring is its message template (``str.format`` fields taken from
keyword arguments) and each class declares the process exit code that the
command line maps it to. Only the CLI entry point turns errors into exit
codes; nothing else calls ``sys.exit``.

Some classes also derive from the builtin exception that the W&B reference
names for the same situation (``ValueError`` for a failed verification,
``KeyError`` for a missing entry), so code written against that API keeps
working.
"""

from __future__ import annotations

from typing import Any

# Exit codes, documented in README.md ("Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_VERIFY_FAILED = 4
EXIT_CONFLICT = 5
EXIT_REMOTE_UNREACHABLE = 6
EXIT_STORE = 7
EXIT_INTERRUPTED = 130


class WbtoolError(Exception):
    """{message}"""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        if message is None:
            template = (type(self).__doc__ or "{message}").strip().splitlines()[0]
            try:
                message = template.format(**fields)
            except (KeyError, IndexError):
                message = template
        self.fields = fields
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class UsageError(WbtoolError, ValueError):
    """{message}"""

    exit_code = EXIT_USAGE


class InvalidNameError(UsageError):
    """invalid {what} {value!r}: {reason}"""


class SettingsError(UsageError):
    """invalid setting {name!r}: {reason}"""


class MissingExtraError(WbtoolError):
    """{scheme}:// needs the optional backend: pip install 'wbtool[{extra}]'"""

    exit_code = EXIT_USAGE


class NotFoundError(WbtoolError):
    """{what} not found: {name}"""

    exit_code = EXIT_NOT_FOUND


class OtherEntityError(NotFoundError):
    """{ref}: entity {entity!r} not found: this store's entity is {own!r}"""


class EntryNotFoundError(NotFoundError, KeyError):
    """no entry {name!r} in the artifact"""

    def __str__(self) -> str:  # KeyError would quote the message
        return WbtoolError.__str__(self)


class VerificationError(WbtoolError, ValueError):
    """verification failed: {message}"""

    exit_code = EXIT_VERIFY_FAILED


class ConflictError(WbtoolError):
    """{message}"""

    exit_code = EXIT_CONFLICT


class StoreLockedError(ConflictError):
    """the store at {path} is busy ({message}); try again when it is done"""


class LatestMovedError(ConflictError):
    """the latest version of {project}/{name} changed from {base} to {newest} while this was made"""


class MissingObjectsError(ConflictError):
    """{message}"""


class AliasedVersionError(ConflictError):
    """{ref} has aliases {aliases}; pass {option} to delete it anyway"""


class OutputError(WbtoolError):
    """cannot write to standard output: {reason}"""


class StoreError(WbtoolError):
    """{message}"""

    exit_code = EXIT_STORE


class StoreNotWritableError(StoreError):
    """the store at {path} cannot be written here ({reason}): {what} needs write access to it"""


class StoreFormatError(StoreError):
    """{path}: store format {found!r} is not supported by this wbtool (supports {supported})"""


class RunRecordDamagedError(StoreError):
    """{path} {what}; `wbtool runs delete {run_id} --yes` removes the run's folder"""


class CorruptObjectError(StoreError):
    """object {digest} is corrupt or missing in {path}"""


class ArtifactNotLoggedError(WbtoolError):
    """artifact {name!r} is not logged yet: {action} needs a logged version"""


class ArtifactFinalizedError(WbtoolError):
    """artifact {name!r} is finalized: log a new version (new_draft()) to change it"""


class RemoteUnreachableError(WbtoolError):
    """remote {url} is unreachable: {detail}"""

    exit_code = EXIT_REMOTE_UNREACHABLE
