"""Merging two versions of one session, when two writers saved it concurrently.

:meth:`SessionStore.write <ipysession.store.session_store.SessionStore.write>` calls ``merge(theirs,
ours)`` when another writer advanced the session since the caller read it: ``theirs`` is the newest
session on disk, ``ours`` is what the caller is writing now. :func:`merge_sessions` is that merge, a
pure function of the two (no IPython, no files):

* **history**: the union, ordered by time; an entry both hold (same run id, execution count and
  time) appears once;
* **variables**: last writer wins by name, and the last writer is us (we are writing now); names
  only they have are kept. The value that lost stays in the previous generation on disk;
* **imports**: the union by name (ours wins a name both bind). A name is either a variable or an
  import: whichever kind we hold wins over theirs;
* **connections**: the union by name; for a name both hold, the record used most recently (by
  ``stats.last_used``, else ``stats.created``) wins, ours on a tie;
* **preferences, working directory, layout, writer**: ours;
* ``created`` is the earlier of the two, ``updated`` the later; unknown top-level fields of both
  are kept (ours win a name both have).

:class:`MergeDetails` says what came from them, for the log and ``%session status``.

A writer that keeps saving after a merge carries what it took from the others into its next saves
(so a save without a conflict does not drop it), but on the next conflict it must merge theirs
with its *own* capture only: what it carried is older than theirs (theirs still holds it unless a
later writer replaced or dropped it), and must never win over it. ``SessionManager`` does this.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ipysession.model import ConnectionRecord, HistoryEntry, ImportRecord, Session, VariableRecord

__all__ = ["MergeDetails", "MergeResult", "history_key", "merge_sessions"]


def history_key(entry: HistoryEntry) -> tuple[str, int, float]:
    """Identity of a history entry: run id, execution count, time."""
    return (entry.run_id, entry.execution_count, entry.time)


@dataclass(frozen=True)
class MergeDetails:
    """What a merge took from the other writer (``theirs``) and where ours won."""

    history_added: int = 0
    variables_kept: tuple[str, ...] = ()
    variables_overridden: tuple[str, ...] = ()
    imports_added: tuple[str, ...] = ()
    connections_taken: tuple[str, ...] = ()
    dropped_history: int = 0

    def summary(self) -> str:
        """One line for the log: ``"3 history cells, 1 variable (b) from the other writer"``."""
        parts = []
        if self.history_added:
            parts.append(f"{self.history_added} history cell(s)")
        if self.variables_kept:
            parts.append(f"variable(s) {', '.join(self.variables_kept)}")
        if self.imports_added:
            parts.append(f"import(s) {', '.join(self.imports_added)}")
        if self.connections_taken:
            parts.append(f"connection(s) {', '.join(self.connections_taken)}")
        taken = ", ".join(parts) if parts else "nothing new"
        text = f"kept from the other writer: {taken}"
        if self.variables_overridden:
            text += f"; ours replaced their {', '.join(self.variables_overridden)}"
        if self.dropped_history:
            text += f"; {self.dropped_history} oldest history cell(s) over the limit dropped"
        return text


@dataclass(frozen=True)
class MergeResult:
    session: Session
    details: MergeDetails


def _connection_time(record: ConnectionRecord) -> float:
    stats = record.stats
    return stats.last_used if stats.last_used is not None else stats.created


def _merge_history(
    theirs: list[HistoryEntry], ours: list[HistoryEntry], max_history: int | None
) -> tuple[list[HistoryEntry], int, int]:
    merged: dict[tuple[str, int, float], HistoryEntry] = {}
    for entry in theirs:
        merged.setdefault(history_key(entry), entry)
    added_from_theirs = {history_key(e) for e in theirs}
    for entry in ours:
        merged[history_key(entry)] = entry  # ours wins an identical key
        added_from_theirs.discard(history_key(entry))
    # Stable: equal times keep theirs-then-ours order within a run, execution order otherwise.
    ordered = sorted(merged.values(), key=lambda e: (e.time, e.run_id, e.execution_count))
    dropped = 0
    if max_history is not None and len(ordered) > max_history:
        dropped = len(ordered) - max_history
        ordered = ordered[dropped:] if max_history > 0 else []
    return ordered, len(added_from_theirs), dropped


def merge_sessions(
    theirs: Session, ours: Session, *, max_history: int | None = None
) -> MergeResult:
    """Merge ``theirs`` (newest on disk) and ``ours`` (being written now); see the module doc.

    ``max_history`` caps the merged history, oldest entries dropped first. Neither argument is
    modified; records are shared, not copied (they are treated as immutable).
    """
    history, history_added, dropped = _merge_history(theirs.history, ours.history, max_history)

    our_imports = {record.name for record in ours.imports}
    variables: dict[str, VariableRecord] = dict(ours.variables)
    kept: list[str] = []
    overridden: list[str] = []
    for name, record in theirs.variables.items():
        if name in variables:
            if variables[name] != record:
                overridden.append(name)
        elif name not in our_imports:
            variables[name] = record
            kept.append(name)

    # Every record of a name only they bind: `import a.b` and `import a.c` are two records of `a`.
    theirs_only = [
        imported
        for imported in theirs.imports
        if imported.name not in our_imports and imported.name not in ours.variables
    ]
    imports: list[ImportRecord] = [*ours.imports, *theirs_only]
    imports_added = list(dict.fromkeys(imported.name for imported in theirs_only))

    connections: dict[str, ConnectionRecord] = dict(ours.connections)
    taken: list[str] = []
    for name, connection in theirs.connections.items():
        mine = connections.get(name)
        if mine is None or _connection_time(connection) > _connection_time(mine):
            connections[name] = connection
            taken.append(name)

    created = min((t for t in (theirs.created, ours.created) if t), default=ours.created)
    session = replace(
        ours,
        created=created,
        updated=max(theirs.updated, ours.updated),
        history=history,
        variables=variables,
        imports=imports,
        connections=connections,
        extra={**theirs.extra, **ours.extra},
    )
    details = MergeDetails(
        history_added=history_added,
        variables_kept=tuple(kept),
        variables_overridden=tuple(overridden),
        imports_added=tuple(imports_added),
        connections_taken=tuple(taken),
        dropped_history=dropped,
    )
    return MergeResult(session=session, details=details)
