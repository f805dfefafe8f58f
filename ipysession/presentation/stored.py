"""Views of what is on disk: ``list`` (:func:`session_rows`), ``snapshots`` (:func:`snapshot_rows`)
and ``show`` (:func:`show_view`), from the store's records."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ipysession.connections.records import mru_order
from ipysession.formatting import count, format_size, format_time
from ipysession.model import REDACTED, redact
from ipysession.presentation.base import (
    Column,
    Field,
    Section,
    State,
    Table,
    known,
    problem_json,
)
from ipysession.session.forks import fork_parent
from ipysession.store.lookup import display_name

if TYPE_CHECKING:
    from pathlib import Path

    from ipysession.model import ConnectionRecord, Session, VariableRecord, WriterInfo
    from ipysession.store import CheckpointInfo, FileProblem, GenerationInfo, SessionSummary

__all__ = [
    "DOCTOR_NOTE",
    "SESSION_HEADERS",
    "SNAPSHOT_HEADERS",
    "VARIABLE_HEADERS",
    "SessionRow",
    "ShowView",
    "SnapshotRow",
    "format_age",
    "session_rows",
    "sessions_table",
    "show_view",
    "snapshot_rows",
    "snapshots_table",
]

#: Doctor is the command that explains a file that does not read, in both faces.
DOCTOR_NOTE = "Run `ipysession doctor` for details about the files that do not read."


# --- list ---------------------------------------------------------------------------------------

SESSION_HEADERS = (
    "session",
    "updated",
    "size",
    "generations",
    "variables",
    "skipped",
    "connections",
    "state",
)


@dataclass(frozen=True)
class SessionRow:
    """One saved session. ``variables`` counts saved values, ``skipped`` those that were not."""

    summary: SessionSummary
    state: State
    this_kernel: bool = False
    #: The session this one forks, when that session is listed too (the row follows it).
    fork_of: str | None = None
    #: Seconds since the session was last saved, at the time the rows were made.
    age: float | None = None

    @property
    def readable(self) -> bool:
        return self.summary.newest_readable is not None

    @property
    def name(self) -> str:
        """The session's name; one that does not read is shown by its slug (which selects it)."""
        summary = self.summary
        # A notebook's path reads short (~/proj/analysis.ipynb); any suffix of it selects it.
        name = display_name(summary.name) if summary.name is not None else f"? ({summary.slug})"
        return f"{name} (this kernel)" if self.this_kernel else name

    @property
    def state_text(self) -> str:
        fallback = self.summary.newest_readable
        if self.state is not State.OK and fallback is not None:
            return f"{self.state} (falls back to generation {fallback})"
        return str(self.state)

    @property
    def listed_name(self) -> str:
        """The name as ``list`` shows it: a fork under its parent, with its age."""
        if self.fork_of is None:
            return self.name
        age = format_age(self.age) if self.age is not None else "?"
        return f"  └ {self.name}, {age} old"

    def cells(self) -> tuple[str, ...]:
        s = self.summary
        return (
            self.listed_name,
            format_time(s.updated, missing="-"),
            format_size(s.size_bytes),
            str(s.generations),
            known(s.variables, readable=self.readable),
            known(s.skipped, readable=self.readable),
            known(s.connections, readable=self.readable),
            self.state_text,
        )

    def as_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "name": s.name,
            "display_name": display_name(s.name) if s.name is not None else None,
            "slug": s.slug,
            "path": str(s.path),
            "updated": s.updated,
            "size_bytes": s.size_bytes,
            "generations": s.generations,
            "variables": s.variables,
            "skipped": s.skipped,
            "connections": s.connections,
            "newest_readable": s.newest_readable,
            "state": str(self.state),
            "problem": problem_json(s.problem) if s.problem else None,
            "fork_of": fork_parent(s.name) if s.name is not None else None,
            "age_seconds": self.age,
        }


def format_age(seconds: float) -> str:
    """How long ago, in the largest whole unit: ``"45 s"``, ``"12 min"``, ``"3 h"``, ``"2 d"``."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def session_rows(
    summaries: Iterable[SessionSummary], *, current: str | None = None, now: float | None = None
) -> list[SessionRow]:
    """Rows for ``list``, in the store's order, each fork moved under the session it forks (with
    its age: the time since its last save, ``now`` the clock); ``current`` (the magic's
    session) is marked."""
    clock = time.time() if now is None else now
    rows = [
        SessionRow(
            s,
            State.of_file(s.problem),
            this_kernel=current is not None and s.name == current,
            age=clock - s.updated if s.updated else None,
        )
        for s in summaries
    ]
    listed = {r.summary.name for r in rows if r.summary.name is not None}
    forks: dict[str, list[SessionRow]] = {}
    top: list[SessionRow] = []
    for row in rows:
        parent = fork_parent(row.summary.name) if row.summary.name is not None else None
        if parent is not None and parent in listed:
            forks.setdefault(parent, []).append(replace(row, fork_of=parent))
        else:
            top.append(row)  # a fork whose parent is gone stays where it is, by its full name
    ordered: list[SessionRow] = []

    def add(row: SessionRow) -> None:
        ordered.append(row)
        for fork in forks.get(row.summary.name or "", []):
            add(fork)  # a fork of a fork follows its own parent

    for row in top:
        add(row)
    return ordered


def _columns(headers: Sequence[str]) -> tuple[Column, ...]:
    return tuple(Column.STATE if h == "state" else Column.TEXT for h in headers)


def sessions_table(rows: Sequence[SessionRow], *, empty: str) -> Table:
    notes = (DOCTOR_NOTE,) if any(r.state is not State.OK for r in rows) else ()
    return Table(
        SESSION_HEADERS, tuple(r.cells() for r in rows), empty, notes, _columns(SESSION_HEADERS)
    )


# --- snapshots ----------------------------------------------------------------------------------

SNAPSHOT_HEADERS = (
    "snapshot",
    "time",
    "size",
    "cells",
    "variables",
    "skipped",
    "written by",
    "state",
)


@dataclass(frozen=True)
class SnapshotRow:
    """One generation or checkpoint of a session; the counts are ``None`` when it does not read."""

    snapshot: str
    path: Path
    time: float
    size: int
    cells_saved: int | None
    variables: int | None
    skipped: int | None
    state: State
    problem: FileProblem | None = None
    generation: int | None = None
    checkpoint: str | None = None
    writer: str | None = None
    writer_host: str | None = None
    writer_pid: int | None = None
    writer_kernel_id: str | None = None
    writer_run_id: str | None = None

    def cells(self) -> tuple[str, ...]:
        return (
            self.snapshot,
            format_time(self.time, missing="-"),
            format_size(self.size),
            known(self.cells_saved),
            known(self.variables),
            known(self.skipped),
            self.writer or "-",
            str(self.state),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "generation": self.generation,
            "checkpoint": self.checkpoint,
            "path": str(self.path),
            "time": self.time,
            "size": self.size,
            "cells": self.cells_saved,
            "variables": self.variables,
            "skipped": self.skipped,
            "writer": self.writer,
            "writer_host": self.writer_host,
            "writer_pid": self.writer_pid,
            "writer_kernel_id": self.writer_kernel_id,
            "writer_run_id": self.writer_run_id,
            "state": str(self.state),
            "problem": problem_json(self.problem) if self.problem else None,
        }


def snapshot_rows(
    generations: Iterable[GenerationInfo], checkpoints: Iterable[CheckpointInfo]
) -> list[SnapshotRow]:
    """Generations (in the store's order, newest first), then checkpoints."""
    rows = [
        SnapshotRow(
            snapshot=f"generation {info.number}",
            generation=info.number,
            path=info.path,
            time=info.time or info.mtime,
            size=info.size,
            cells_saved=info.cells,
            variables=info.variables,
            skipped=info.skipped,
            state=State.of_file(info.problem),
            problem=info.problem,
            # A file written before hosts were recorded still names the run that wrote it.
            writer=info.writer or (f"run {info.writer_run_id[:8]}" if info.writer_run_id else None),
            writer_host=info.writer_host,
            writer_pid=info.writer_pid,
            writer_kernel_id=info.writer_kernel_id,
            writer_run_id=info.writer_run_id,
        )
        for info in generations
    ]
    rows += [
        SnapshotRow(
            snapshot=f"checkpoint {cp.label}",
            checkpoint=cp.label,
            path=cp.path,
            time=cp.time or cp.mtime,
            size=cp.size,
            cells_saved=cp.cells,
            variables=cp.variables,
            skipped=cp.skipped,
            state=State.of_file(cp.problem),
            problem=cp.problem,
        )
        for cp in checkpoints
    ]
    return rows


def snapshots_table(rows: Sequence[SnapshotRow], *, empty: str) -> Table:
    notes = (DOCTOR_NOTE,) if any(r.state is not State.OK for r in rows) else ()
    return Table(
        SNAPSHOT_HEADERS, tuple(r.cells() for r in rows), empty, notes, _columns(SNAPSHOT_HEADERS)
    )


# --- show ---------------------------------------------------------------------------------------

VARIABLE_HEADERS = ("name", "type", "size", "state")


@dataclass(frozen=True)
class ShowView:
    """What one saved session holds: ``document`` is the ``--json`` form, secrets redacted."""

    document: dict[str, Any]
    sections: tuple[Section, ...]

    def text(self) -> str:
        return "\n\n".join(section.text() for section in self.sections)


def _writer_text(writer: WriterInfo) -> str:
    versions = [
        f"{label} {version}"
        for label, version in (
            ("ipysession", writer.ipysession),
            ("IPython", writer.ipython),
            ("Python", writer.python),
        )
        if version
    ]
    where = [
        text
        for text, present in (
            (f"host {writer.host}", writer.host),
            (f"pid {writer.pid}", writer.pid),
            (f"kernel {writer.kernel_id}", writer.kernel_id),
        )
        if present
    ]
    text = ", ".join(versions) or "unknown"
    return f"{text} ({', '.join(where)})" if where else text


def _variable_json(record: VariableRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type_name,
        "size": record.size,
        "state": "saved" if record.saved else "skipped",
        "stored": _stored_where(record),
        "encoding": record.encoding,
        "skipped": record.skipped,
    }


def _stored_where(record: VariableRecord) -> str | None:
    """``"blob"`` (its value or a buffer of it in blobs), ``"inline"``, ``"group"`` (stored with
    the variables it shares objects with, in the record ``group`` names), or None (skipped)."""
    if not record.saved:
        return None
    if record.group is not None:
        return "group"
    return "blob" if record.blob_refs() else "inline"


def _connection_json(record: ConnectionRecord) -> dict[str, Any]:
    stats = record.stats
    return {
        "name": record.name,
        "kind": record.kind,
        "variable": record.variable,
        "auto": record.auto,
        "params": dict(record.params),
        "secrets": {key: redact(value) for key, value in record.secrets.items()},
        "stats": {
            "created": stats.created,
            "last_used": stats.last_used,
            "successes": stats.successes,
            "failures": stats.failures,
            "last_error": stats.last_error,
        },
    }


def show_view(
    session: Session, *, generation: int | None, path: Path, checkpoint: str | None = None
) -> ShowView:
    """Everything ``show`` reports of one snapshot, secrets and ``%env`` values redacted.

    Built field by field (never from ``to_dict()``), so values, history sources, secrets and
    unknown fields cannot leak into it.
    """
    prefs = session.preferences
    variables = [_variable_json(record) for record in session.variables.values()]
    imports = [
        {
            "name": imp.name,
            "module": imp.module,
            "attribute": imp.attribute,
            "statement": imp.statement(),
        }
        for imp in session.imports
    ]
    connections = [_connection_json(record) for record in mru_order(session.connections)]
    document: dict[str, Any] = {
        "name": session.name,
        "display_name": display_name(session.name),
        # Stable across generations and renames (`%session adopt`, `ipysession rename`); None
        # for a session last saved before ids existed (it gets one at its next save).
        "id": session.id,
        "generation": generation,
        "path": str(path),
        "created": session.created,
        "updated": session.updated,
        "writer": {
            "python": session.writer.python,
            "ipython": session.writer.ipython,
            "ipysession": session.writer.ipysession,
            "host": session.writer.host,
            "pid": session.writer.pid,
            "kernel_id": session.writer.kernel_id,
            "run_id": session.writer.run_id,
        },
        "cwd": session.cwd,
        "history": {"cells": len(session.history)},
        "variables": variables,
        "imports": imports,
        "preferences": {
            "extensions": list(prefs.extensions),
            "magics": dict(prefs.magics),
            "env": {name: REDACTED for name in prefs.env},
        },
        "connections": connections,
    }
    which = f"checkpoint {checkpoint!r}" if checkpoint else f"generation {generation}"
    saved = sum(1 for v in variables if v["state"] == "saved")
    rows = tuple(
        (
            v["name"],
            v["type"],
            format_size(v["size"]),
            f"saved ({v['stored']})" if v["state"] == "saved" else f"skipped: {v['skipped']}",
        )
        for v in variables
    )
    magics = ", ".join(f"%{k} {v}".rstrip() for k, v in prefs.magics.items())
    sections = [
        Section(
            f"Session {display_name(session.name)!r}",
            fields=(
                Field("name", session.name),
                Field("id", session.id or "- (saved before ids; set at its next save)"),
                Field("snapshot", f"{which}: {path}"),
                Field("created", format_time(session.created, missing="-")),
                Field("updated", format_time(session.updated, missing="-")),
                Field("written by", _writer_text(session.writer)),
                Field("cwd", session.cwd or "-"),
                Field("history", count(len(session.history), "cell")),
            ),
        ),
        Section(
            f"Variables ({saved} saved, {len(variables) - saved} skipped)",
            table=Table(VARIABLE_HEADERS, rows, empty="none", columns=_columns(VARIABLE_HEADERS)),
        ),
        Section(
            f"Imports ({len(imports)})",
            tuple(imp.statement() for imp in session.imports),
            code=True,
        ),
        Section(
            "Preferences",
            fields=(
                Field("extensions", ", ".join(prefs.extensions) or "-"),
                Field("magics", magics or "-"),
                Field("env", ", ".join(f"{k}={REDACTED}" for k in prefs.env) or "-"),
            ),
        ),
        Section(
            f"Connections ({len(connections)}, most recently used first)",
            tuple(line for conn in connections for line in _connection_lines(conn)),
        ),
    ]
    return ShowView(document, tuple(sections))


def _connection_lines(conn: dict[str, Any]) -> list[str]:
    stats = conn["stats"]
    auto = "" if conn["auto"] else ", no auto-reconnect"
    params = ", ".join(f"{k}={v!r}" for k, v in conn["params"].items()) or "-"
    hidden = ", ".join(f"{k}={v}" for k, v in conn["secrets"].items()) or "-"
    lines = [
        f"{conn['name']} [{conn['kind']}] -> variable {conn['variable']}{auto}",
        f"  params      {params}",
        f"  secrets     {hidden}",
        f"  created     {format_time(stats['created'], missing='-')}",
        f"  last used   {format_time(stats['last_used'], missing='-')}",
        f"  outcomes    {count(stats['successes'], 'success', 'successes')}, "
        f"{count(stats['failures'], 'failure')}",
    ]
    if stats["last_error"]:
        lines.append(f"  last error  {stats['last_error']}")
    return lines
