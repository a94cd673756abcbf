"""Exception types of the persistence package (all subclass :class:`sage_core.SageError`)."""

from __future__ import annotations

import os

from sage_core import SageError


class SessionError(SageError):
    """Base class of the errors the session store raises on purpose."""


class SessionNotFoundError(SessionError, LookupError):
    """No session (or no such checkpoint) with that id in the store."""


class SessionExistsError(SessionError):
    """``create`` was given a session id that is already taken."""


class SessionLockedError(SessionError):
    """Another writer (process or thread) holds the session's lock."""


class SnapshotError(SessionError, ValueError):
    """A snapshot handed to ``checkpoint`` cannot be stored (bad tensor, meta or name).

    Raised before anything is written: the session on disk is untouched.
    """


class SessionCorruptError(SessionError, ValueError):
    """A session file is corrupt, truncated, hostile or does not match its manifest.

    The one exception type loads raise for bad files. ``path`` names the file (or directory)
    and ``reason`` says what is wrong with it; ``str()`` gives both on one line.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SessionVersionError(SessionCorruptError):
    """The session was written with a newer schema than this sage-irp reads (upgrade it)."""


__all__ = [
    "SessionCorruptError", "SessionError", "SessionExistsError", "SessionLockedError",
    "SessionNotFoundError", "SessionVersionError", "SnapshotError",
]
