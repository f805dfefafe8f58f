"""Views of this kernel's session: ``%session status`` (:func:`status_view`), the summary after a
restore (:func:`restore_view`) and the notice after a save, ``%session connections``
(:func:`connection_rows`) and ``%session history`` (:func:`history_table`), from the manager's
reports, the connection records and the history entries."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ipysession.connections.backends import Liveness, redact_text
from ipysession.connections.records import advice, describe_record, mru_order, one_line
from ipysession.formatting import count, format_size, format_time
from ipysession.presentation.base import (
    Column,
    Field,
    Level,
    Notice,
    Pairs,
    State,
    Table,
    field_line,
)
from ipysession.presentation.replay import replay_lines
from ipysession.store.lookup import display_name

if TYPE_CHECKING:
    from ipysession.connections.reconnector import ConnectionStatus
    from ipysession.model import ConnectionRecord, HistoryEntry
    from ipysession.session.reports import RestoreReport, SaveReport, Status

__all__ = [
    "CONNECTION_HEADERS",
    "HISTORY_HEADERS",
    "PROBLEMS_TITLE",
    "ConnectionRow",
    "StatusView",
    "SummaryView",
    "connection_details",
    "connection_rows",
    "connections_table",
    "history_table",
    "ping_text",
    "restore_notice",
    "restore_view",
    "save_notice",
    "save_view",
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
            # One line: psycopg's errors span lines and hold tabs, which broke the table.
            one_line(self.last_error),
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


def connection_details(
    record: ConnectionRecord, state: str, status: ConnectionStatus | None = None
) -> list[str]:
    """``%session connections NAME``: one connection in full, its last error whole, with its
    time (the table shows it on one line)."""
    lines = [f"Connection '{record.name}' ({record.kind}): {describe_record(record)}"]
    message = status.message if status is not None and status.message else ""
    lines.append(f"  state: {state}" + (f" ({one_line(message, 200)})" if message else ""))
    auto = (
        "no: disconnected, until the next `%session connect`"
        if record.disconnected
        else ("yes" if record.auto else "no (--no-auto)")
    )
    lines.append(f"  variable: {record.variable}; reconnected after a restart: {auto}")
    stats = record.stats
    successes = count(stats.successes, "success", "successes")
    lines.append(
        f"  last used: {format_time(stats.last_used)}; {successes}, "
        f"{count(stats.failures, 'failure')}"
    )
    error = (status.error if status is not None else "") or stats.last_error
    at = (status.error_at if status is not None and status.error else None) or stats.last_error_at
    if error:
        lines.append(f"  last error ({format_time(at)}):")
        text = redact_text(error, record.secrets)
        lines.extend(f"    {line.rstrip()}" for line in text.expandtabs(4).splitlines() or [""])
        lines.append(f"  What to do: {advice(record.name, status.cause if status else None)}.")
    else:
        lines.append("  last error: none since the last success")
    return lines


def connections_table(rows: Sequence[ConnectionRow]) -> Table:
    empty = "No connections. `%session connect NAME KIND SPEC` adds one."
    columns = tuple(Column.STATE if h == "state" else Column.TEXT for h in CONNECTION_HEADERS)
    return Table(CONNECTION_HEADERS, tuple(r.cells() for r in rows), empty, columns=columns)


# --- history ------------------------------------------------------------------------------------

HISTORY_HEADERS = ("run", "#", "time", "result", "source")
#: Longer sources are cut here (with " ..."): a table is for finding a cell, not for reading it.
HISTORY_SOURCE_CHARS = 400


def history_table(entries: Iterable[HistoryEntry], *, run_id: str) -> Table:
    """``%session history``: one row per cell, this kernel's run marked, the source as typed."""
    rows = tuple(
        (
            e.run_id[:6] + (" (this run)" if e.run_id == run_id else ""),
            str(e.execution_count),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(e.time)),
            "ok" if e.success else "error",
            e.source
            if len(e.source) < HISTORY_SOURCE_CHARS
            else e.source[:HISTORY_SOURCE_CHARS] + " ...",
        )
        for e in entries
    )
    columns = (Column.TEXT, Column.TEXT, Column.TEXT, Column.STATE, Column.CODE)
    return Table(HISTORY_HEADERS, rows, "No history yet.", columns=columns)


_PING_WORDS = {
    Liveness.ANSWERS: "answers",
    Liveness.NO_ANSWER: "no answer",
    Liveness.UNKNOWN: "unknown (it has no is_alive() or ping() to ask)",
}


def ping_text(results: Mapping[str, Liveness]) -> str:
    """``%session ping``: one phrase per connection, in the order asked."""
    text = ", ".join(f"{name}: {_PING_WORDS[found]}" for name, found in results.items())
    return f"ipysession: {text or 'no connections'}."


# --- save, restore, status ----------------------------------------------------------------------


#: Said above the files a restore could not use.
PROBLEMS_TITLE = "Problems with session files (older generation used):"


@dataclass(frozen=True)
class SummaryView:
    """The summary of a restore or a save: a headline (what came back or was written, from or to
    where; for a restore, how long each part took), what to know about forks, every skipped item
    and why, and the files that failed."""

    headline: str
    paragraphs: tuple[str, ...] = ()
    skipped: Pairs | None = None
    problems: tuple[str, ...] = ()
    footer: str | None = None
    level: Level = Level.INFO
    #: What replaying cells rebuilt, and what it could not (see presentation/replay.py).
    replay: tuple[str, ...] = ()
    #: Values restored on another device than the one they were saved from, and why.
    placed: Pairs | None = None

    @property
    def notice(self) -> Notice:
        """The text form: the headline alone when everything came back."""
        lines = [self.headline, *self.paragraphs]
        if self.skipped is not None:
            lines.extend(self.skipped.lines())
        lines.extend(self.replay)
        if self.placed is not None:
            lines.extend(self.placed.lines())
        if self.problems:
            lines.append(PROBLEMS_TITLE)
            lines.extend(f"  {problem}" for problem in self.problems)
        if self.footer:
            lines.append(self.footer)
        return Notice(tuple(lines), self.level)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _imports_label(report: RestoreReport) -> str:
    """ "imports", or "imports (2 in the background)": their time is then only the handing
    over; the imports themselves overlap the kernel's start (session/imports_loading.py)."""
    if not report.importing:
        return "imports"
    return f"imports ({len(report.importing)} in the background)"


def restore_view(
    report: RestoreReport,
    connection_states: Mapping[str, str] | None = None,
    *,
    in_status: bool = False,
) -> SummaryView:
    """One line when everything came back; otherwise the same line plus every skip and why.

    ``in_status``: shown inside ``%session status``, which needs no pointer to itself."""
    if not report.found:
        line = f"ipysession: no saved session '{report.session}' yet."
        if not report.orphans:
            return SummaryView(line)
        listed = ", ".join(f"'{display_name(name)}'" for name in report.orphans)
        return SummaryView(
            f"{line} Renamed or moved this notebook? Saved sessions whose notebook is gone: "
            f"{listed}. `%session adopt NAME` moves one to this notebook and restores it."
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
    if report.loading:
        # Large values still arriving: a cell that names one waits for it (session/loading.py).
        parts.append(f"{count(len(report.loading), 'value')} loading in the background")
    states = connection_states or {}
    if report.connections:
        shown = ", ".join(f"{n} ({states.get(n, 'connecting')})" for n in report.connections)
        parts.append(f"connections: {shown}")
    # The split answers "why did this kernel take 4 s to start": re-importing torch and
    # initialising CUDA is not reading the data (issue 17).
    times = report.times
    split = ", ".join(
        f"{part} {_ms(seconds)}"
        for part, seconds in (
            (_imports_label(report), times.imports),
            ("data", times.data),
            ("replay", times.replay),
            ("connections", times.connections),
        )
    )
    headline = (
        f"ipysession: restored '{report.session}' ({where}): {', '.join(parts)} "
        f"in {_ms(report.seconds)} ({split})."
    )
    paragraphs: list[str] = []
    if report.merged_fork:
        taken = ", ".join(report.merged_fork_variables) or "no variable of its own"
        paragraphs.append(
            f"Merged in this kernel's own fork '{report.merged_fork}', saved after its last save "
            f"to '{report.session}': {taken}. They are saved to '{report.session}' now; the "
            f"fork stays on disk (`%session delete '{report.merged_fork}'` removes it)."
        )
    elif report.newer_fork:
        paragraphs.append(
            f"This kernel's own fork '{report.newer_fork}' holds work saved after what was "
            f"restored: `%session restore '{report.newer_fork}'` brings it into this kernel, "
            f"`%session merge '{report.newer_fork}'` into '{report.session}' once it is free."
        )
    skipped = (
        Pairs(f"Not restored ({len(report.skipped)}):", tuple(report.skipped), ("item", "reason"))
        if report.skipped
        else None
    )
    placed = (
        Pairs(
            f"Restored on another device ({len(report.placed)}; move them with .to(device) "
            "when it has room, or choose with SessionManager.device_map):",
            tuple(report.placed),
            ("variables", "where"),
        )
        if report.placed
        else None
    )
    warn = bool(report.skipped or report.problems or report.placed)
    footer = "Run `%session status` to see this again." if warn and not in_status else None
    return SummaryView(
        headline,
        tuple(paragraphs),
        skipped,
        tuple(report.problems),
        footer,
        Level.WARNING if warn else Level.INFO,
        replay=tuple(replay_lines(report.replay)),
        placed=placed,
    )


def restore_notice(
    report: RestoreReport,
    connection_states: Mapping[str, str] | None = None,
    *,
    in_status: bool = False,
) -> Notice:
    """The text of :func:`restore_view`."""
    return restore_view(report, connection_states, in_status=in_status).notice


def save_view(report: SaveReport) -> SummaryView:
    """What a save wrote, and every value it left out with the reason (for a value over a
    budget: the setting that keeps it)."""
    target = (
        f"checkpoint '{report.checkpoint}'"
        if report.checkpoint
        else f"generation {report.generation}"
    )
    headline = (
        f"ipysession: saved '{report.session}' ({target}): "
        f"{count(report.variables, 'variable')}, {len(report.skipped)} skipped"
    )
    return SummaryView(
        headline + (f" to {report.path}" if report.path else ""),
        skipped=(
            Pairs(f"Not saved ({len(report.skipped)}):", tuple(report.skipped))
            if report.skipped
            else None
        ),
        level=Level.WARNING if report.skipped else Level.INFO,
    )


def save_notice(report: SaveReport) -> Notice:
    """The text of :func:`save_view`."""
    return save_view(report).notice


#: Width of a status label ("Stored in: "), so the values line up in the text form.
STATUS_LABEL_WIDTH = 11


@dataclass(frozen=True)
class StatusView:
    """``%session status``: the state word, the counts ``list`` also shows, and the details.

    ``fields`` are the ``Label: value`` lines, ``alerts`` what stopped working, then what was
    not saved, the connections, the last restore and the notices this kernel kept."""

    session: str
    state: State
    variables: int
    skipped: int
    fields: tuple[Field, ...] = ()
    alerts: tuple[str, ...] = ()
    not_saved: Pairs | None = None
    connections: tuple[ConnectionRow, ...] = ()
    restore: SummaryView | None = None
    #: (when, text) of each notice, oldest first; a text may have several lines.
    notices: tuple[tuple[str, str], ...] = ()
    level: Level = Level.INFO

    @property
    def notice(self) -> Notice:
        """The text form, line by line."""
        lines = [field_line(f, STATUS_LABEL_WIDTH) for f in self.fields]
        lines.extend(self.alerts)
        if self.not_saved is not None:
            lines.extend(self.not_saved.lines())
        if self.connections:
            lines.append(f"Connections ({len(self.connections)}):")
            for row in self.connections:
                error = f" — {row.last_error}" if row.last_error else ""
                lines.append(f"  {row.name}: {row.state} ({row.target}){error}")
        if self.restore is not None:
            lines.append("Last restore:")
            lines.extend(f"  {line}" for line in self.restore.notice.lines)
        if self.notices:
            lines.append(f"Notices ({len(self.notices)}, oldest first):")
            for when, text in self.notices:
                first, *rest = text.splitlines() or [""]
                lines.append(f"  {when}  {first}")
                lines.extend(f"    {line}" for line in rest)
        return Notice(tuple(lines), self.level)


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
    fields = [
        Field("Session:", display_name(status.session)),
        Field("Id:", status.session_id or "-"),
        Field("State:", str(state), state=True),
        Field("Stored in:", f"{status.root} (key: {status.key})"),
        Field(
            "Autosave:",
            f"{autosave}; last save {format_time(status.last_save)}"
            + (f" (generation {status.last_generation})" if status.last_generation else "")
            + (" — a change is waiting to be written" if status.pending else ""),
        ),
        Field(
            "Captured:",
            f"{count(status.variables, 'variable')}, {skipped} skipped, "
            f"{count(status.history, 'history cell')}",
        ),
        Field("Lease:", _lease_text(status)),
    ]
    if status.budgets is not None:
        budgets = status.budgets
        fields.insert(
            -1,
            Field(
                "Budgets:",
                f"{format_size(budgets.max_variable_bytes)} per variable, "
                f"{format_size(budgets.max_session_bytes)} per session ({budgets.source})",
            ),
        )
    if status.loading:
        fields.append(
            Field(
                "Loading:",
                "; ".join(f"{name} ({progress})" for name, progress in status.loading)
                + " — a cell that names one waits for it",
            )
        )
    if status.fork_of:
        # The reason the fork was made: another kernel may hold the session, or nothing in it
        # could be read (another key, a newer release) with no other kernel anywhere.
        why = status.fork_reason or "another kernel holds it"
        fields.append(Field("Fork of:", f"'{status.fork_of}' ({why})"))
    if status.merges:
        fields.append(
            Field(
                "Merges:",
                f"{status.merges} save(s) merged with other kernels' changes"
                + (f"; last: {status.last_merge}" if status.last_merge else ""),
            )
        )
    alerts = []
    if status.disabled:
        alerts.append(f"Capture is OFF after repeated errors: {status.disabled}")
    if status.last_error:
        alerts.append(f"Last save failed: {status.last_error}")
    return StatusView(
        session=status.session,
        state=state,
        variables=status.variables,
        skipped=skipped,
        fields=tuple(fields),
        alerts=tuple(alerts),
        not_saved=(
            Pairs(f"Not saved ({skipped}):", tuple(status.skipped)) if status.skipped else None
        ),
        connections=tuple(connection_rows(status.connections, status.connection_states)),
        restore=(
            restore_view(status.restore, in_status=True) if status.restore is not None else None
        ),
        notices=tuple((format_time(when), text) for when, text in status.notices),
        level=Level.WARNING if status.disabled or status.last_error else Level.INFO,
    )
