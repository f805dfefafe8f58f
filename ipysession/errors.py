"""The exception hierarchy of ipysession.

Every error says what happened, which file or connection it concerns, and what the user can
do about it. The extension catches ``SessionError`` at its boundary, so a session problem never
kills a kernel or breaks a user's cell.

::

    SessionError
    ├── StoreError
    │   ├── SessionNotFound (LookupError)
    │   ├── AmbiguousName
    │   ├── LockTimeout (TimeoutError)
    │   ├── StoreWriteError (OSError)
    │   ├── WriteConflict
    │   ├── SessionInUse
    │   ├── SessionExists
    │   └── FileFormatError (ValueError)
    │       ├── CorruptFile
    │       │   └── SubstitutedFile
    │       ├── WrongKey
    │       └── NewerFormat
    ├── KeyStoreError
    │   ├── KeyUnavailable
    │   └── KeyringTimeout (TimeoutError)
    ├── ModelError (ValueError)
    ├── CaptureError
    ├── UnsafeFile (OSError)
    └── ConnectionSetupError
        ├── BackendNotFound (LookupError)
        ├── InvalidSpec (ValueError)
        ├── ConnectFailed
        └── ConnectionLost (ConnectionError)
        └── ConnectionNotReady

Messages never contain secrets: backends redact before they raise.

A :class:`StoreError` that comes from reading several files carries one :class:`FileProblem` per
file it could not use (:attr:`StoreError.problems`). The record lives here, not in
:mod:`ipysession.store`, because this module is the lowest layer and imports nothing of the
package: an error must be able to hold it without ``errors`` importing the store that raises it.
:mod:`ipysession.store` re-exports both names; its ``problems_of()`` is the accessor callers use.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AmbiguousName",
    "BackendNotFound",
    "CaptureError",
    "ConnectFailed",
    "ConnectionLost",
    "ConnectionNotReady",
    "ConnectionSetupError",
    "CorruptFile",
    "FileFormatError",
    "FileProblem",
    "InvalidSpec",
    "KeyStoreError",
    "KeyUnavailable",
    "KeyringTimeout",
    "LockTimeout",
    "ModelError",
    "NewerFormat",
    "ProblemKind",
    "SessionError",
    "SessionExists",
    "SessionInUse",
    "SessionNotFound",
    "StoreError",
    "StoreWriteError",
    "SubstitutedFile",
    "UnsafeFile",
    "WriteConflict",
    "WrongKey",
]


class SessionError(Exception):
    """Root of every error ipysession raises on purpose.

    ``what`` says what happened, ``path`` names the file (or ``target`` the connection), and
    ``hint`` says what the user can do. ``str(error)`` joins them into one readable message.
    """

    def __init__(
        self,
        what: str,
        *,
        path: str | os.PathLike[str] | None = None,
        target: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.path = Path(path) if path is not None else None
        self.target = target
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.what]
        if self.path is not None:
            parts.append(f"(file: {self.path})")
        if self.target is not None:
            parts.append(f"(connection: {self.target})")
        message = " ".join(parts)
        if self.hint:
            message = f"{message}. {self.hint}"
        return message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor arguments do not survive the default pickling of exceptions;
        # the instance dictionary carries what was set after construction (``problems``).
        return (_rebuild, (type(self), self.what, self.path, self.target, self.hint), self.__dict__)


def _rebuild(
    cls: type[SessionError], what: str, path: Path | None, target: str | None, hint: str | None
) -> SessionError:
    error = cls.__new__(cls)
    SessionError.__init__(error, what, path=path, target=target, hint=hint)
    return error


class ProblemKind(str, enum.Enum):
    """Why a session file could not be used. The values are what ``ipysession`` prints (and
    writes in its JSON output), so they never change."""

    #: Failed authentication or validation: moved to quarantine.
    CORRUPT = "corrupt"
    #: Sealed under another key (or passphrase): intact, left in place.
    WRONG_KEY = "wrong-key"
    #: Written by a newer ipysession: intact, left in place.
    NEWER_FORMAT = "newer-format"
    #: The operating system refused to read it: left in place.
    UNREADABLE = "unreadable"

    def __str__(self) -> str:
        # The value, not "ProblemKind.CORRUPT", in messages and f-strings on every Python.
        return self.value

    @classmethod
    def of(cls, error: BaseException) -> ProblemKind:
        """The kind of problem an error raised while reading a file stands for."""
        if isinstance(error, NewerFormat):
            return cls.NEWER_FORMAT
        if isinstance(error, WrongKey):
            return cls.WRONG_KEY
        if isinstance(error, (CorruptFile, ModelError)):
            return cls.CORRUPT
        return cls.UNREADABLE


@dataclass(frozen=True)
class FileProblem:
    """One file that could not be used, and why (see :class:`ProblemKind`).

    ``quarantined_to`` is where a corrupt file was moved; ``None`` when it was left in place.
    """

    path: Path
    kind: ProblemKind
    message: str
    quarantined_to: Path | None = None


class StoreError(SessionError):
    """Something went wrong reading or writing session files.

    ``problems`` lists the files that were tried and could not be used, when the error comes
    from reading a session (empty otherwise).
    """

    problems: tuple[FileProblem, ...] = ()


class SessionNotFound(StoreError, LookupError):
    """No session of that name (or no such generation or checkpoint) exists."""


class AmbiguousName(StoreError):
    """A name typed for a session is the suffix of several sessions; ``matches`` lists them."""

    matches: tuple[str, ...] = ()


class LockTimeout(StoreError, TimeoutError):
    """Another process held the session's write lock for too long."""


class StoreWriteError(StoreError, OSError):
    """A write failed (disk full, permission denied, read-only directory, ...).

    The previous generation is untouched when this is raised.
    """

    def __init__(
        self,
        what: str,
        *,
        path: str | os.PathLike[str] | None = None,
        hint: str | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(what, path=path, hint=hint)
        self.errno = errno


class WriteConflict(StoreError):
    """Another writer advanced the session since it was read, and no merge was possible."""


class SessionInUse(StoreError):
    """Another live kernel holds the session, and this kernel opened it read-only."""


class SessionExists(StoreError):
    """A session of that name exists already, and the operation never overwrites one."""


class FileFormatError(StoreError, ValueError):
    """A session file could not be read as a session."""


class CorruptFile(FileFormatError):
    """The file is truncated, not an ipysession file, or failed authentication."""


class SubstitutedFile(CorruptFile):
    """The file is authentic but is not the one its name and place say: an older generation
    copied over a newer one or renamed, a checkpoint put in place of a generation, a file of
    another session. A rollback or a substitution; like damage, it is moved to quarantine."""


class WrongKey(FileFormatError):
    """The file is intact but was sealed with a different key (or passphrase)."""


class NewerFormat(FileFormatError):
    """The file was written by a newer ipysession, in a format this one cannot read."""

    def __init__(
        self, *, found: int, supported: int, path: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__(
            f"Session file format version {found} is newer than the newest this ipysession "
            f"reads (version {supported})",
            path=path,
            hint="Upgrade ipysession (pip install -U ipysession) to read it; the file is kept",
        )
        self.found = found
        self.supported = supported

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_newer, (self.found, self.supported, self.path), self.__dict__)


def _rebuild_newer(found: int, supported: int, path: Path | None) -> NewerFormat:
    return NewerFormat(found=found, supported=supported, path=path)


class KeyStoreError(SessionError):
    """The master key could not be obtained."""


class KeyUnavailable(KeyStoreError):
    """The key exists but cannot be read now (keyring locked, prompt dismissed, ...).

    Raised instead of creating a new key, which would orphan every existing session.
    """


class KeyringTimeout(KeyUnavailable, TimeoutError):
    """The OS keyring did not answer in time."""


class ModelError(SessionError, ValueError):
    """A session document does not have the shape a session must have."""


class CaptureError(SessionError):
    """Capturing part of the workspace failed."""


class UnsafeFile(SessionError, OSError):
    """A file ipysession refuses to open: not a regular file (a FIFO, a device, a socket, a
    directory), reached through a symbolic link where none may be, or larger than its limit.

    ``path`` is the file, or the directory on the way that is a link (see
    :mod:`ipysession.safe_open`).
    """


class ConnectionSetupError(SessionError):
    """A connection could not be described, opened or checked."""


class BackendNotFound(ConnectionSetupError, LookupError):
    """No backend is registered under that kind."""


class InvalidSpec(ConnectionSetupError, ValueError):
    """A connection spec could not be understood by its backend."""


class ConnectFailed(ConnectionSetupError):
    """The backend could not connect (target unreachable, refused, timed out)."""


class ConnectionLost(ConnectionSetupError, ConnectionError):
    """A live connection stopped answering while the user's code waited on it (a remote kernel
    that missed its heartbeat, a server that closed the socket), instead of hanging for ever."""


class ConnectionNotReady(ConnectionSetupError):
    """A cell named a connection that was still connecting (or retrying) when its wait ran out,
    or that has failed: the cell did not run. The message names the state, the last error and
    the command to run."""
