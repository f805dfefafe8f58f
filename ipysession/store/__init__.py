"""Where sessions live on disk: the read/write path, the file format, and keeping files healthy.

:class:`SessionStore` is to :class:`~ipysession.session.manager.SessionManager` what IPython's
``HistoryAccessor`` is to its ``HistoryManager``: it works without a shell (the command line uses
it). Inside: :mod:`.names` (every name on disk), :mod:`.scan` (listing a directory),
:mod:`.files` (safe reads and writes of one file), :mod:`.meta` (what a file says about itself),
:mod:`.fileformat` and :mod:`.migrations` (bytes <-> :class:`~ipysession.model.Session`).
Plain Python: no IPython here.
"""

from __future__ import annotations

from ipysession.store.session_store import (
    CheckpointInfo,
    FileProblem,
    GenerationInfo,
    ReadResult,
    RekeyReport,
    RepairReport,
    SessionStore,
    SessionSummary,
    WriteResult,
    problems_of,
)

__all__ = [
    "CheckpointInfo",
    "FileProblem",
    "GenerationInfo",
    "ReadResult",
    "RekeyReport",
    "RepairReport",
    "SessionStore",
    "SessionSummary",
    "WriteResult",
    "problems_of",
]
