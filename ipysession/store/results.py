"""What the session store hands back on its read/write path: the records of a write and a read.

The records of a listing and of maintenance are in :mod:`.listings`, apart so that a kernel that
only restores and saves does not create their classes (dataclass creation is most of what
importing a module of records costs).

Records are plain data; the command line and the ``%session`` magic render them (through the
presentation module), never the store. :class:`~ipysession.errors.FileProblem` and
:class:`~ipysession.errors.ProblemKind` are defined in :mod:`ipysession.errors` (errors carry
them, and errors are the lowest layer) and re-exported here with the other records.

Variable counts mean one thing everywhere: ``variables`` counts the variables whose value was
saved, ``skipped`` those the file lists with the reason they could not be saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipysession.errors import FileProblem, ProblemKind, StoreError
from ipysession.model import Session, VariableRecord

__all__ = [
    "FileProblem",
    "ProblemKind",
    "ReadResult",
    "Rollback",
    "WriteResult",
    "problems_of",
]


def problems_of(error: BaseException) -> list[FileProblem]:
    """The files an error raised by :meth:`SessionStore.read` could not use (empty for others)."""
    return list(error.problems) if isinstance(error, StoreError) else []


@dataclass(frozen=True)
class WriteResult:
    generation: int
    path: Path
    bytes_written: int
    blobs_written: int
    merged: bool
    #: Variables whose value now lives in a blob, with the blob's id: a caller holding the
    #: serialized bytes can drop them and keep the reference.
    blobs: dict[str, str] = field(default_factory=dict)
    #: Variables whose value or out-of-band buffers now live in blobs, with the record as it
    #: was sealed (only blob references): a caller holding the bytes can take it instead.
    stored: dict[str, VariableRecord] = field(default_factory=dict)
    #: Variables that referred to a blob no longer on disk, with that blob's id: they were
    #: written as skipped, and a caller holding the live value should capture it again.
    lost_blobs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rollback:
    """The session's newest generations are not what its head record says was written.

    ``head`` is the newest generation the head record names (``None`` when the head record is
    missing although the session was written in format 2 or later, so a rollback cannot be
    ruled out); ``used`` is the generation read instead of it; ``message`` says what happened,
    to which files, and what to do.
    """

    head: int | None
    used: int
    message: str


@dataclass(frozen=True)
class ReadResult:
    """A session as read. ``generation`` is ``None`` for a checkpoint.

    Variables larger than the blob threshold keep their ``blob`` reference; fetch their bytes
    with :meth:`SessionStore.read_blob`. ``problems`` lists newer files that were skipped.
    ``rollback`` is set when the newest generation read is older than, or not the file, the
    session's head record names: newer generations were deleted or an older copy put back.
    """

    session: Session
    generation: int | None
    path: Path
    problems: list[FileProblem] = field(default_factory=list)
    rollback: Rollback | None = None
