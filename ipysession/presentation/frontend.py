"""What the JupyterLab extension is told over the ``ipysession`` comm: the session's state and
notices, as JSON (see docs/frontend-protocol.md). Built from :class:`Status` alone, so the same
words reach the status bar that ``%session status`` prints.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipysession.presentation.base import Level, Notice
from ipysession.presentation.kernel import SummaryView
from ipysession.session.notices import NoticeKind, RaisedNotice
from ipysession.session.reports import RestoreReport, Status
from ipysession.store.lookup import display_name

__all__ = [
    "Deferred",
    "FrontendState",
    "Said",
    "notice_message",
    "raised_message",
    "restore_counts",
    "state_message",
]

Said = Notice | SummaryView
"""What ipysession shows once: a summary (a table where HTML shows) or a notice."""


@dataclass(frozen=True)
class Deferred:
    """What waits for the first cell, or for the JupyterLab extension to subscribe: rendered
    when shown (so connections that came up meanwhile show as connected), with its kind."""

    render: Callable[[], Said]
    kind: NoticeKind

    def notice(self) -> Notice:
        """The text form (the extension shows notifications: text, not tables)."""
        said = self.render()
        return said.notice if isinstance(said, SummaryView) else said


class FrontendState(str, enum.Enum):
    """The one word the status bar shows for the session, most important first."""

    #: Capture stopped after repeated hook errors, or the last save failed.
    ERROR = "error"
    #: Another kernel holds the session; this one never writes it.
    READ_ONLY = "read-only"
    #: Another kernel held the session; this one saves to its own fork.
    FORK = "fork"
    #: A change waits for the autosave writer.
    PENDING = "pending"
    #: Autosave is off: changes are kept only by `%session save` (or at shutdown).
    PAUSED = "paused"
    #: Written since this kernel started (the status bar adds "N s ago").
    SAVED = "saved"
    #: Restored at start, nothing saved since.
    RESTORED = "restored"
    #: Nothing restored and nothing saved yet.
    NEW = "new"

    def __str__(self) -> str:
        return self.value


def restore_counts(report: RestoreReport | None) -> dict[str, Any] | None:
    """``restored N of M``: the items back (variables, imports, settings, connections) of those
    the session held, and how many were skipped or had file problems (the warning mark).
    ``None`` when nothing was restored."""
    if report is None or not report.found:
        return None
    restored = (
        len(report.variables)
        + len(report.imports)
        + len(report.preferences)
        + len(report.connections)
    )
    return {
        "items": restored,
        "total": restored + len(report.skipped),
        "variables": len(report.variables),
        "warnings": len(report.skipped) + len(report.problems),
        "generation": report.generation,
        "checkpoint": report.checkpoint,
        "seconds": round(report.seconds, 3),
    }


def _word(status: Status) -> FrontendState:
    if status.disabled or status.last_error:
        return FrontendState.ERROR
    if status.read_only:
        return FrontendState.READ_ONLY
    if status.fork_of:
        return FrontendState.FORK
    if status.pending:
        return FrontendState.PENDING
    if not status.autosave:
        return FrontendState.PAUSED
    if status.last_save is not None:
        return FrontendState.SAVED
    if status.restore is not None and status.restore.found:
        return FrontendState.RESTORED
    return FrontendState.NEW


def state_message(status: Status) -> dict[str, Any]:
    """The ``{"type": "state", ...}`` message: everything the status bar and the panel header
    show. Holds no secret: names, counts, times and the words of the last error."""
    holder = status.lease_holder
    return {
        "type": "state",
        "state": str(_word(status)),
        "session": display_name(status.session),
        "session_full": status.session,
        "session_id": status.session_id,
        "restored": restore_counts(status.restore),
        "last_save": status.last_save,
        "generation": status.last_generation,
        "variables": status.variables,
        "skipped": len(status.skipped),
        "autosave": status.autosave,
        "pending": status.pending,
        "error": status.disabled or status.last_error,
        "read_only": status.read_only,
        "fork_of": display_name(status.fork_of) if status.fork_of else None,
        "fork_reason": status.fork_reason,
        "holder": holder.describe() if holder is not None and not status.lease_ours else None,
        "connections": dict(status.connection_states),
    }


def notice_message(notice: Notice, kind: NoticeKind) -> dict[str, Any]:
    """The ``{"type": "notice", ...}`` message: one notification for the user; ``kind`` says
    what it is about (docs/frontend-protocol.md lists them)."""
    return {"type": "notice", "kind": str(kind), "level": notice.level.value, "text": notice.text}


def raised_message(raised: RaisedNotice) -> dict[str, Any]:
    """The notice message of one the manager raised (it carries its kind, not its level)."""
    return notice_message(Notice((raised.text,), _level_of(raised.text)), raised.kind)


def _level_of(text: str) -> Level:
    # Notices carry no level of their own: what failed is an error, what was made is news,
    # the rest (a fork, a takeover, a connection lost) asks for a look.
    lowered = text.lower()
    if "could not" in lowered or "failed" in lowered:
        return Level.ERROR
    if " created " in lowered:
        return Level.INFO
    return Level.WARNING
