"""Views of this kernel's session: ``%session status`` (:func:`status_view`), the notices after a
restore or a save, and ``%session connections`` (:func:`connection_rows`), from the manager's
reports and the connection records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ipysession.connections.backends import redact_text
from ipysession.connections.records import describe_record, mru_order
from ipysession.formatting import count, format_time
from ipysession.presentation.base import Level, Notice, State, Table
from ipysession.store.lookup import display_name

if TYPE_CHECKING:
    from ipysession.model import ConnectionRecord
    from ipysession.session.reports import RestoreReport, SaveReport, Status

__all__ = [
    "CONNECTION_HEADERS",
    "ConnectionRow",
    "StatusView",
    "connection_rows",
    "connections_table",
    "restore_notice",
    "save_notice",
    "status_view",
]


# --- connections --------------------------------------------------------------------------------

CONNECTION_HEADERS = (
    "name",
    "kind",
    "target",
    "state",
    "variable",
    "last used",
    "ok",
    "failed",
    "last error",
)


@dataclass(frozen=True)
class ConnectionRow:
    """One connection, secrets redacted (``target`` is the backend's redacted description)."""

    name: str
    kind: str
    target: str
    state: str
    variable: str
    auto: bool
    last_used: float | None
    successes: int
    failures: int
    last_error: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.name,
            self.kind,
            self.target,
            self.state,
            self.variable,
            format_time(self.last_used),
            str(self.successes),
            str(self.failures),
            self.last_error,
        )


def connection_rows(
    records: Mapping[str, ConnectionRecord] | Iterable[ConnectionRecord],
    states: Mapping[str, str],
) -> list[ConnectionRow]:
    """Rows for ``%session connections``, most recently used first.

    ``states`` maps names to the live state (``connected``, ``failed``...); a name it lacks is
    ``disconnected``. ``last_error`` was redacted when it was recorded.
    """
    return [
        ConnectionRow(
            name=record.name,
            kind=record.kind,
            target=describe_record(record),
            state=str(states.get(record.name, "disconnected")),
            variable=record.variable,
            auto=record.auto,
            last_used=record.stats.last_used,
            successes=record.stats.successes,
            failures=record.stats.failures,
            # Redacted when it was recorded; again here, in case a record came from elsewhere.
            last_error=redact_text(record.stats.last_error or "", record.secrets),
        )
        for record in mru_order(records)
    ]


def connections_table(rows: Sequence[ConnectionRow]) -> Table:
    empty = "No connections. `%session connect NAME KIND SPEC` adds one."
    return Table(CONNECTION_HEADERS, tuple(r.cells() for r in rows), empty)


# --- save, restore, status ----------------------------------------------------------------------


def restore_notice(
    report: RestoreReport,
    connection_states: Mapping[str, str] | None = None,
    *,
    in_status: bool = False,
) -> Notice:
    """One line when everything came back; otherwise the same line plus every skip and why.

    ``in_status``: shown inside ``%session status``, which needs no pointer to itself."""
    if not report.found:
        line = f"ipysession: no saved session '{report.session}' yet."
        if not report.orphans:
            return Notice((line,))
        listed = ", ".join(f"'{display_name(name)}'" for name in report.orphans)
        return Notice(
            (
                f"{line} Renamed or moved this notebook? Saved sessions whose notebook is gone: "
                f"{listed}. `%session adopt NAME` moves one to this notebook and restores it.",
            )
        )
    where = (
        f"checkpoint '{report.checkpoint}'"
        if report.checkpoint
        else f"generation {report.generation}"
    )
    parts = [count(len(report.variables), "variable"), count(len(report.imports), "import")]
    if report.preferences:
        parts.append(count(len(report.preferences), "setting"))
    if report.cwd:
        parts.append(f"cwd {report.cwd}")
    if report.history:
        parts.append(count(report.history, "history cell"))
    if report.layout:
        parts.append("layout")
    states = connection_states or {}
    if report.connections:
        shown = ", ".join(f"{n} ({states.get(n, 'connecting')})" for n in report.connections)
        parts.append(f"connections: {shown}")
    lines = [
        f"ipysession: restored '{report.session}' ({where}): {', '.join(parts)} "
        f"in {report.seconds * 1000:.0f} ms."
    ]
    if report.merged_fork:
        taken = ", ".join(report.merged_fork_variables) or "no variable of its own"
        lines.append(
            f"Merged in this kernel's own fork '{report.merged_fork}', saved after its last save "
            f"to '{report.session}': {taken}. They are saved to '{report.session}' now; the "
            f"fork stays on disk (`%session delete '{report.merged_fork}'` removes it)."
        )
    elif report.newer_fork:
        lines.append(
            f"This kernel's own fork '{report.newer_fork}' holds work saved after what was "
            f"restored: `%session restore '{report.newer_fork}'` brings it into this kernel, "
            f"`%session merge '{report.newer_fork}'` into '{report.session}' once it is free."
        )
    if report.skipped:
        lines.append(f"Not restored ({len(report.skipped)}):")
        lines.extend(f"  {item}: {reason}" for item, reason in report.skipped)
    if report.placed:
        lines.append(
            f"Restored on another device ({len(report.placed)}; move them with .to(device) "
            "when it has room, or choose with SessionManager.device_map):"
        )
        lines.extend(f"  {names}: {what}" for names, what in report.placed)
    if report.problems:
        lines.append("Problems with session files (older generation used):")
        lines.extend(f"  {problem}" for problem in report.problems)
    warn = bool(report.skipped or report.problems or report.placed)
    if warn and not in_status:
        lines.append("Run `%session status` to see this again.")
    level = Level.WARNING if warn else Level.INFO
    return Notice(tuple(lines), level)


def save_notice(report: SaveReport) -> Notice:
    target = (
        f"checkpoint '{report.checkpoint}'"
        if report.checkpoint
        else f"generation {report.generation}"
    )
    headline = (
        f"ipysession: saved '{report.session}' ({target}): "
        f"{count(report.variables, 'variable')}, {len(report.skipped)} skipped"
    )
    lines = [headline + (f" to {report.path}" if report.path else "")]
    if report.skipped:
        lines.append(f"Not saved ({len(report.skipped)}):")
        lines.extend(f"  {name}: {reason}" for name, reason in report.skipped)
    return Notice(tuple(lines), Level.WARNING if report.skipped else Level.INFO)


@dataclass(frozen=True)
class StatusView:
    """``%session status``: the state word, the counts ``list`` also shows, and the details."""

    session: str
    state: State
    variables: int
    skipped: int
    notice: Notice


def _sharing_state(status: Status) -> State:
    if status.read_only:
        return State.READ_ONLY
    if status.fork_of:
        return State.FORK
    holder = status.lease_holder
    if holder is not None and not status.lease_ours and not status.lease_problem:
        return State.IN_USE
    return State.OK


def _lease_text(status: Status) -> str:
    holder = status.lease_holder
    if status.read_only:
        who = holder.describe() if holder is not None else "another kernel"
        return f"{who} uses this session; this kernel never saves to it"
    if status.lease_problem:
        return f"could not be taken ({status.lease_problem}); saves still merge safely"
    if holder is None:
        return "not taken yet (taken at the first save)"
    if status.lease_ours:
        return (
            f"held by this kernel, {holder.describe()}, since {format_time(holder.started)}; "
            f"heartbeat {format_time(holder.heartbeat)}"
        )
    return f"held by {holder.describe()}"


def autosave_words(*, enabled: bool, interval: float) -> str:
    """``off``, ``on, after every cell`` or ``on, at most every 5 s``: autosave's setting."""
    if not enabled:
        return "off"
    return "on, after every cell" if interval == 0 else f"on, at most every {interval:g} s"


def status_view(status: Status) -> StatusView:
    state = _sharing_state(status)
    autosave = autosave_words(enabled=status.autosave, interval=status.autosave_interval)
    skipped = len(status.skipped)
    lines = [
        f"Session:   {display_name(status.session)}",
        f"Id:        {status.session_id or '-'}",
        f"State:     {state}",
        f"Stored in: {status.root} (key: {status.key})",
        f"Autosave:  {autosave}; last save {format_time(status.last_save)}"
        + (f" (generation {status.last_generation})" if status.last_generation else "")
        + (" — a change is waiting to be written" if status.pending else ""),
        f"Captured:  {count(status.variables, 'variable')}, {skipped} skipped, "
        f"{count(status.history, 'history cell')}",
        f"Lease:     {_lease_text(status)}",
    ]
    if status.fork_of:
        # The reason the fork was made: another kernel may hold the session, or nothing in it
        # could be read (another key, a newer release) with no other kernel anywhere.
        why = status.fork_reason or "another kernel holds it"
        lines.append(f"Fork of:   '{status.fork_of}' ({why})")
    if status.merges:
        lines.append(
            f"Merges:    {status.merges} save(s) merged with other kernels' changes"
            + (f"; last: {status.last_merge}" if status.last_merge else "")
        )
    if status.disabled:
        lines.append(f"Capture is OFF after repeated errors: {status.disabled}")
    if status.last_error:
        lines.append(f"Last save failed: {status.last_error}")
    if status.skipped:
        lines.append(f"Not saved ({skipped}):")
        lines.extend(f"  {name}: {reason}" for name, reason in status.skipped)
    if status.connections:
        lines.append(f"Connections ({len(status.connections)}):")
        for row in connection_rows(status.connections, status.connection_states):
            error = f" — {row.last_error}" if row.last_error else ""
            lines.append(f"  {row.name}: {row.state} ({row.target}){error}")
    if status.restore is not None:
        lines.append("Last restore:")
        lines.extend(f"  {line}" for line in restore_notice(status.restore, in_status=True).lines)
    if status.notices:
        lines.append(f"Notices ({len(status.notices)}, oldest first):")
        for when, text in status.notices:
            first, *rest = text.splitlines() or [""]
            lines.append(f"  {format_time(when)}  {first}")
            lines.extend(f"    {line}" for line in rest)
    level = Level.WARNING if status.disabled or status.last_error else Level.INFO
    return StatusView(
        session=status.session,
        state=state,
        variables=status.variables,
        skipped=skipped,
        notice=Notice(tuple(lines), level),
    )
