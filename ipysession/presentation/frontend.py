"""What the JupyterLab extension is told over the ``ipysession`` comm: the session's state and
notices, as JSON (see docs/frontend-protocol.md). Built from :class:`Status` alone, so the same
words reach the status bar that ``%session status`` prints.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipysession.connections.backends import redact_text
from ipysession.connections.records import advice
from ipysession.presentation.base import Level, Notice
from ipysession.presentation.kernel import ConnectionRow, SummaryView, connection_rows
from ipysession.presentation.stored import session_rows
from ipysession.session.notices import NoticeKind, RaisedNotice
from ipysession.session.reports import RestoreReport, Status
from ipysession.store.lookup import display_name

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ipysession.connections.reconnector import ConnectionStatus
    from ipysession.model import ConnectionRecord
    from ipysession.store import SessionSummary

__all__ = [
    "Deferred",
    "FrontendState",
    "Said",
    "connection_json",
    "forks_json",
    "loading_json",
    "not_saved_rows",
    "notice_message",
    "raised_message",
    "recent_json",
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
        "loading": loading_json(status),
    }


def loading_json(status: Status) -> dict[str, Any] | None:
    """Values still arriving in the background after a restore (the status bar says
    "loading N of M" until they are bound): ``None`` once every one is in the namespace."""
    if not status.loading:
        return None
    restore = status.restore
    handed = len(restore.loading) + len(restore.importing) if restore is not None else 0
    total = max(handed, len(status.loading))
    return {
        "names": [name for name, _ in status.loading],
        "progress": dict(status.loading),
        "done": total - len(status.loading),
        "total": total,
    }


def not_saved_rows(skipped: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """The panel's "Not saved" section: each variable left out, why, and what to do about it."""
    return [{"name": name, **_reason_and_fix(name, reason)} for name, reason in skipped]


#: Where a budget's reason says which setting keeps the value (capture/describe.budget_hint).
_BUDGET_FIX = "; `%config SessionManager."


def _reason_and_fix(name: str, reason: str) -> dict[str, str]:
    cut = reason.find(_BUDGET_FIX)
    if cut >= 0:
        return {"reason": reason[:cut], "fix": reason[cut + 2 :]}
    # Every other reason: a value that cannot be pickled is rebuilt by replaying its cells.
    fix = (
        f"After a restart `%session replay {name}` rebuilds it by running the cells that made "
        "it again; `c.SessionManager.exclude` leaves it out for good"
    )
    return {"reason": reason, "fix": fix}


def _row_json(row: ConnectionRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "target": row.target,
        "state": row.state,
        "variable": row.variable,
        "auto": row.auto,
        "last_used": row.last_used,
        "successes": row.successes,
        "failures": row.failures,
        "last_error": row.last_error or None,
    }


def connection_json(
    record: ConnectionRecord, state: str, status: ConnectionStatus | None
) -> dict[str, Any]:
    """One connection of the panel's "Connections" section: its row, and the last error of
    the current run with its time and what to do. Every text is redacted (never a secret)."""
    data = _row_json(connection_rows([record], {record.name: state})[0])
    error = (status.error if status is not None else "") or record.stats.last_error or ""
    at = (status.error_at if status is not None and status.error else None) or (
        record.stats.last_error_at
    )
    data.update(
        {
            "last_error": redact_text(error, record.secrets) or None,
            "error_at": at if error else None,
            "advice": advice(record.name, status.cause if status else None) if error else None,
            "message": redact_text(status.message, record.secrets) if status else None,
            "disconnected": record.disconnected,
        }
    )
    return data


def recent_json(recent: Sequence[ConnectionRecord], states: dict[str, str]) -> list[dict[str, Any]]:
    """The panel's "Recent" section: connections used lately in any session, most recent first,
    with their state here (``not in this session`` when this session has none of that name)."""
    here = {r.name: states.get(r.name, "not in this session") for r in recent}
    return [_row_json(row) for row in connection_rows(recent, here)]


def forks_json(
    summaries: Iterable[SessionSummary], parents: Iterable[str], *, current: str
) -> list[dict[str, Any]]:
    """The panel's "Forks" section: the saved forks of ``parents`` (this kernel's session, and
    the session it forks when it is a fork), this kernel's own session left out; each as a row
    of ``ipysession list --json``."""
    wanted = set(parents)
    rows = [row.as_json() for row in session_rows(summaries)]
    return [row for row in rows if row["fork_of"] in wanted and row["name"] != current]


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
