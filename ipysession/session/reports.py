"""What the manager tells the faces: reports of a restore and a save, and the session's status.

Plain dataclasses with no IPython and no traitlets, so the presentation module (shared by the
magic and the command line) can build its views from them without importing a shell.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from ipysession.model import ConnectionRecord
from ipysession.session.budgets import Budgets
from ipysession.session.lease import LeaseHolder

__all__ = [
    "RESTORE_PARTS",
    "ReplayOutcome",
    "ReplayState",
    "RestoreReport",
    "RestoreTimes",
    "SaveReport",
    "Status",
    "TimedPart",
    "TravelReport",
    "restore_parts",
]

# The parts of a session, in the order a restore applies them.
RESTORE_PARTS = ("preferences", "cwd", "imports", "variables", "history", "layout", "connections")


#: The parts of a restore's time the summary names.
TimedPart = Literal["imports", "data", "replay", "connections"]


@dataclass
class RestoreTimes:
    """Where a restore's seconds went, so a slow start says whether it was re-importing heavy
    libraries (torch, CUDA initialisation), reading and unpickling the data, replaying cells, or
    setting up connections. What is left of ``RestoreReport.seconds`` (the lease, settings,
    history) is small and not named."""

    #: Re-importing the session's imports (those imported in the background: only handing
    #: them over; see ``RestoreReport.importing``).
    imports: float = 0.0
    #: Reading, authenticating and decrypting the snapshot, reading blobs, unpickling values.
    data: float = 0.0
    #: Re-running the cells that rebuild what could not be pickled (0 until replay exists).
    replay: float = 0.0
    #: Loading connection records and scheduling reconnection (connecting is in the background).
    connections: float = 0.0

    @contextmanager
    def timing(self, part: TimedPart) -> Iterator[None]:
        """Add the time the ``with`` block takes to ``part``, even when it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, part, getattr(self, part) + time.perf_counter() - started)


class ReplayState(str, enum.Enum):
    """What became of values rebuilt by replaying their cells (see session/replay.py)."""

    REBUILT = "rebuilt"
    FAILED = "failed"
    #: Its cells have side effects: run only with consent (`%session replay NAME --yes`).
    WAITING = "waiting for consent"
    #: SessionManager.replay is 'never' (or 'ask' at start): `%session replay NAME` runs it.
    OFF = "not replayed"
    #: No cell that binds it is left in the history.
    UNAVAILABLE = "cannot be rebuilt"


@dataclass(frozen=True)
class ReplayOutcome:
    """One group of names rebuilt together: the cells (execution counts) and what happened."""

    names: tuple[str, ...]
    cells: tuple[int, ...]
    state: ReplayState
    seconds: float = 0.0
    reason: str = ""
    #: Later cells that used a name with side effects: never replayed (count, what they do).
    left_out: tuple[tuple[int, str], ...] = ()
    #: Each name's type, as the skipped record named it.
    types: tuple[str, ...] = ()


@dataclass
class RestoreReport:
    """What a restore brought back, what it skipped and why."""

    session: str
    generation: int | None = None
    checkpoint: str | None = None
    path: str | None = None
    seconds: float = 0.0
    variables: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    cwd: str | None = None
    history: int = 0
    layout: bool = False
    connections: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # (variables, what): tensors restored on another device than they were saved on, and why.
    placed: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    found: bool = True
    # This kernel's own fork, saved after its last save to this session (see
    # Sharing.newer_own_fork): merged into what was restored, or (when the restore could not
    # take it in) only named, with how to get it.
    merged_fork: str | None = None
    merged_fork_variables: list[str] = field(default_factory=list)
    newer_fork: str | None = None
    # When nothing was found: saved sessions whose notebook no longer exists (renamed or moved),
    # newest first, that `%session adopt NAME` could bring here.
    orphans: list[str] = field(default_factory=list)
    #: How ``seconds`` splits: imports, data, replay, connections.
    times: RestoreTimes = field(default_factory=RestoreTimes)
    # Values that could not be saved, rebuilt (or not) by replaying their cells.
    replay: list[ReplayOutcome] = field(default_factory=list)
    # Large values handed to the background at kernel start (see session/loading.py): bound
    # between cells as they arrive; one that fails is added to ``skipped`` then.
    loading: list[str] = field(default_factory=list)
    # Imports handed to the background at kernel start (see session/imports_loading.py): added
    # to ``imports`` (or ``skipped``) as they are bound between cells.
    importing: list[str] = field(default_factory=list)


@dataclass
class TravelReport:
    """What `%session undo` / `checkout` did: the state gone to and the names changed."""

    target: str
    session: str = ""
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: Names left as they are, with why (a value that cannot be saved has no past copy).
    left: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class SaveReport:
    session: str
    generation: int | None
    path: str | None
    variables: int
    skipped: list[tuple[str, str]]
    checkpoint: str | None = None
    error: str | None = None


@dataclass
class Status:
    session: str
    root: str
    key: str
    autosave: bool
    autosave_interval: float
    last_save: float | None
    last_generation: int | None
    last_error: str | None
    pending: bool
    variables: int
    skipped: list[tuple[str, str]]
    history: int
    restore: RestoreReport | None
    disabled: str | None
    # Copies of the records (secrets stay inside; the views redact) and their live states.
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    connection_states: dict[str, str] = field(default_factory=dict)
    # The newest notices (time, text), oldest first: what a kernel did not show under a cell.
    notices: list[tuple[float, str]] = field(default_factory=list)
    # (name, progress) of each value still loading in the background.
    loading: list[tuple[str, str]] = field(default_factory=list)
    lease_holder: LeaseHolder | None = None
    lease_ours: bool = False
    lease_problem: str | None = None
    read_only: bool = False
    fork_of: str | None = None
    #: Why this kernel continues as a fork: another kernel holds the session, another key...
    fork_reason: str | None = None
    merges: int = 0
    last_merge: str | None = None
    #: The session's stable id (what a frontend keeps in the notebook's metadata).
    session_id: str | None = None
    #: The size budgets in force and where they come from (set, or derived from the machine).
    budgets: Budgets | None = None


def restore_parts(only: Sequence[str] | None, variables: Sequence[str] | None) -> set[str]:
    """The parts a restore applies: ``only`` if given, else for ``--vars`` the variables and the
    imports they need, else all. ValueError naming the choices for a part that does not exist."""
    if only:
        parts = set(only)
    elif variables is not None:
        # `--vars f` brings back f and the imports it needs, nothing else: restoring the
        # settings or the working directory too would undo what the user did since.
        parts = {"imports", "variables"}
    else:
        parts = set(RESTORE_PARTS)
    unknown = parts - set(RESTORE_PARTS)
    if unknown:
        msg = f"unknown part(s) {', '.join(sorted(unknown))}; choose from {RESTORE_PARTS}"
        raise ValueError(msg)
    return parts
