"""Where sessions live on disk: the read/write path, the file format, and keeping files healthy.

:class:`SessionStore` is to :class:`~ipysession.session.manager.SessionManager` what IPython's
``HistoryAccessor`` is to its ``HistoryManager``: it works without a shell (the command line uses
it). Inside, highest first: :mod:`.session_store` (the read/write path), :mod:`.maintenance`
(inspect, repair, rekey, share_blobs), :mod:`.reading`, :mod:`.blobs`, :mod:`.retention` and
:mod:`.summaries` (the newest readable generation, large values, what is kept, listings),
:mod:`.disk` (the files of one root under one key), :mod:`.scan` and :mod:`.meta` (listing a
directory, what a file says about itself), :mod:`.files` (safe reads of one file),
:mod:`.fileformat` and :mod:`.migrations` (bytes <-> :class:`~ipysession.model.Session`),
:mod:`.names` (every name on disk), :mod:`.results` and :mod:`.listings` (the records returned:
by the read/write path, and by listings and maintenance).
Plain Python: no IPython here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipysession.store.listings import (
        CheckpointInfo,
        GenerationInfo,
        RekeyReport,
        RepairReport,
        SessionSummary,
    )
    from ipysession.store.results import FileProblem, ReadResult, WriteResult, problems_of
    from ipysession.store.session_store import SessionStore

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

# Imported on first use, not with the package: SessionStore pulls in the whole read/write path
# (the cipher, the file lock, maintenance), and a kernel that loads the extension with no saved
# session needs only store.names (is there a session?) and store.limits. Those submodules are
# imported through this package, so it must stay cheap.
_HOMES = {name: "ipysession.store.results" for name in __all__}
_HOMES.update(
    dict.fromkeys(
        ("CheckpointInfo", "GenerationInfo", "RekeyReport", "RepairReport", "SessionSummary"),
        "ipysession.store.listings",
    )
)
_HOMES["SessionStore"] = "ipysession.store.session_store"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value
