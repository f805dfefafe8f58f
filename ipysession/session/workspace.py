"""The workspace: what this kernel captured of its shell, and the ways between it and a Session.

* **records -> Session.** Between cells, on the main thread, :meth:`Workspace.end_cell` captures
  what the cell changed (variables, imports, history, preferences, cwd) into records;
  :meth:`Workspace.snapshot` turns them into an immutable :class:`~ipysession.model.Session`
  (values are already bytes: no pickling there), which the writer thread seals and writes.
* **Session -> shell.** :meth:`Workspace.apply` applies a restored session part by part, in the
  order of :data:`~ipysession.session.reports.RESTORE_PARTS`; one item that fails is reported as
  skipped and never stops the rest.

It knows nothing of leases, forks or the writer: the manager decides when to capture and when to
save, :mod:`.sharing` decides where a snapshot goes.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import queue
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable, Container, Iterable, Sequence
from collections.abc import Set as AbstractSet
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ipysession._version import __version__
from ipysession.capture import figures as figure_capture
from ipysession.capture import history as history_capture
from ipysession.capture import namespace as ns_capture
from ipysession.capture import preferences as pref_capture
from ipysession.capture.cellnames import cell_names
from ipysession.capture.describe import budget_hint, format_bytes
from ipysession.capture.references import global_names
from ipysession.errors import SessionError
from ipysession.model import (
    REDACTED,
    HistoryEntry,
    ImportRecord,
    Preferences,
    Session,
    VariableRecord,
    WriterInfo,
)
from ipysession.session import replay as replaying
from ipysession.session.effects import cell_effects
from ipysession.session.reports import ReplayOutcome, ReplayState, RestoreReport, TravelReport
from ipysession.session.timeline import ABSENT, Timeline, Value

if TYPE_CHECKING:
    from ipysession.connections.live import ConnectionSet
    from ipysession.store import SessionStore

__all__ = ["CaptureSettings", "ReplaySettings", "Workspace", "writer_info"]

log = logging.getLogger("ipysession")

_ABSENT = object()

# A cell that is only ipysession's own magic.
_OWN_MAGIC = re.compile(r"\s*%session\b[^\n]*\s*\Z")


@dataclasses.dataclass(frozen=True)
class CaptureSettings:
    """The manager's capture options as they are now (``%config`` may change them any time)."""

    limits: ns_capture.CaptureLimits
    full_capture_interval: float
    deep_capture_interval: float
    undo_max_bytes: int = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ReplaySettings:
    """``SessionManager.replay`` and ``replay_time_limit`` as they are now."""

    mode: str = "auto"
    time_limit: float = 60.0


class Workspace:
    """The captured state of one shell's namespace, history and settings."""

    def __init__(
        self,
        shell: Any,
        connections: ConnectionSet,
        *,
        store: Callable[[], SessionStore],
        run_id: str,
        max_history: int,
        exclude: Sequence[str],
    ) -> None:
        self.shell = shell
        self.connections = connections
        # A callable, not the store: the key behind it is resolved on first need only.
        self._store = store
        self.created = time.time()
        self.records: dict[str, VariableRecord] = {}
        # Each name's import records: several for `import a.b` + `import a.c` (see merge_imports).
        self.imports: dict[str, tuple[ImportRecord, ...]] = {}
        self.forgotten: set[str] = set()
        self.previous_history: list[HistoryEntry] = []
        self.preferences = Preferences()
        self.cwd: str | None = None
        self.layout: Any = None
        self.extra: dict[str, Any] = {}
        # Session name -> its stable id: kept from the session restored as this kernel's own,
        # made once for a name saved here first (a fork gets its own, not its parent's).
        self.ids: dict[str, str] = {}
        self._env_baseline = dict(os.environ)
        self._last_full_pass = self._last_deep_pass = time.monotonic()
        # (name, record, blob id) from the writer thread: values now safely in a blob, whose
        # bytes the main thread can drop (a 50 MB DataFrame would otherwise be held twice).
        self._stored_in_blobs: queue.SimpleQueue[tuple[str, VariableRecord, str]] = (
            queue.SimpleQueue()
        )
        # (name, blob id) from the writer thread: values whose blob was missing at a write (the
        # session was deleted under this kernel); the main thread captures them again.
        self._lost_blobs: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._recapture: set[str] = set()
        self._restored_names: set[str] = set()
        # Values that could not be saved and were not rebuilt at restore (consent needed, or
        # replay off): their records, kept so `%session replay` and the next restart can.
        self.replay_pending: dict[str, VariableRecord] = {}
        self.timeline = Timeline(CaptureSettings.undo_max_bytes)
        # The shell's own hidden-names dict, live: names IPython adds later stay hidden too.
        hidden = getattr(shell, "user_ns_hidden", None)
        self.tracker = ns_capture.ChangeTracker(
            exclude=tuple(exclude), hidden=hidden if hidden is not None else frozenset()
        )
        self.history = history_capture.HistoryRecorder(
            run_id, max_history=max_history, redact=connections.redact
        )

    @property
    def user_ns(self) -> dict[str, Any]:
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    # --- capture, between cells (main thread) --------------------------------------------------

    def catch_up(self) -> None:
        """Before a cell: settle what happened since the last one (restore, writer)."""
        if self._restored_names:
            self._unhide_restored()
        self._drop_stored_bytes()
        self._forget_lost_blobs()

    def start_cell(self, info: Any) -> None:
        self.history.pre_run_cell(info)
        self.tracker.pre_cell(self.user_ns)

    def end_cell(self, result: Any, settings: CaptureSettings) -> bool:
        """Capture what the cell that just ran changed (and, now and then, everything).

        Returns whether it changed something a restore brings back besides history: a variable,
        an import, a preference, the working directory. A cell that only read (``%session
        status``, ``print(df)``) adds its history line, which is saved with the next change or
        at shutdown, and makes no generation of its own.
        """
        before = self._restorable()
        self.history.post_run_cell(result)
        info = getattr(result, "info", None)
        source = getattr(info, "raw_cell", "") or ""
        transformed = getattr(info, "transformed_cell", None)
        changes = self.tracker.post_cell(self.user_ns, source, transformed=transformed)
        now = time.monotonic()
        if now - self._last_deep_pass >= settings.deep_capture_interval:
            _merge_changes(changes, self.tracker.full_pass(self.user_ns, deep=True))
            self._last_deep_pass = self._last_full_pass = now
        elif now - self._last_full_pass >= settings.full_capture_interval:
            _merge_changes(changes, self.tracker.full_pass(self.user_ns))
            self._last_full_pass = now
        # Values whose blob went missing are pickled again from the live object, whatever the
        # cell did: their stored copy is gone.
        recapture, self._recapture = self._recapture, set()
        touched = changes.changed | changes.deleted | recapture
        previous = {name: self._value(name) for name in touched}
        self._apply_changes(
            changes.changed | recapture,
            changes.deleted,
            source,
            settings.limits,
            verify=changes.recheck,
        )
        self._record_step(result, previous, settings.undo_max_bytes)
        self._capture_shell_state()
        # Equal records compare cheaply: an unchanged record is the very same object, and a
        # re-captured one compares its bytes, so a value the cell only read counts as unchanged.
        return self._restorable() != before

    def _value(self, name: str) -> Value:
        return (self.records.get(name), self.imports.get(name))

    def _record_step(self, result: Any, before: dict[str, Value], max_bytes: int) -> None:
        """One step of the timeline: each name whose record the cell changed, before and after."""
        self.timeline.max_bytes = max_bytes
        changed_before: dict[str, Value] = {}
        changed_after: dict[str, Value] = {}
        for name, old in before.items():
            new = self._value(name)
            if new != old:
                changed_before[name] = old
                changed_after[name] = new
        count = getattr(result, "execution_count", None)
        self.timeline.record(count if isinstance(count, int) else 0, changed_before, changed_after)

    def _restorable(self) -> tuple[object, ...]:
        """What a cell may change that a restore brings back, history aside (see end_cell)."""
        return (dict(self.records), dict(self.imports), self.preferences, self.cwd)

    def capture_all(self, limits: ns_capture.CaptureLimits) -> None:
        """Capture every variable now (before an explicit save)."""
        full = self.tracker.full_pass(self.user_ns)
        names = {name for name in self.user_ns if self._is_persistable(name)}
        self._apply_changes(
            full.changed | names,
            full.deleted,
            "",
            limits,
            verify=(names - full.changed) | full.recheck,
        )
        self._capture_shell_state()

    def forget(self, names: Iterable[str]) -> list[str]:
        """Stop persisting these names; returns those that had a value or an import here."""
        forgotten = []
        for name in names:
            self.forgotten.add(name)
            self.tracker.forget(name)
            had_value = self.records.pop(name, None) is not None
            had_import = self.imports.pop(name, None) is not None
            if had_value or had_import:
                forgotten.append(name)
        return forgotten

    def _is_persistable(self, name: str) -> bool:
        return (
            name not in self.forgotten
            and self.tracker.persistable(name)
            and name not in self.connections.variables()
        )

    def _apply_changes(
        self,
        changed: Iterable[str],
        deleted: Iterable[str],
        source: str,
        limits: ns_capture.CaptureLimits,
        *,
        verify: Container[str] = (),
    ) -> None:
        """Capture ``changed`` again and drop ``deleted``. Names in ``verify`` may well be
        unchanged (a deep pass, an explicit save): one still equal to its stored blob keeps it."""
        user_ns = self.user_ns
        for name in deleted:
            self.records.pop(name, None)
            self.imports.pop(name, None)
        # Imports written in this cell win over ones inferred from the value; either is used
        # only while it still resolves to the very object bound to the name.
        cell_imports = ns_capture.imports_in_source(source)
        known_imports = {name: records[-1] for name, records in self.imports.items()}
        known_imports.update((rec.name, rec) for rec in cell_imports)
        for name in sorted(changed):
            if name not in user_ns or not self._is_persistable(name):
                continue
            if name in verify and self._still_stored(name, user_ns[name]):
                continue
            captured = ns_capture.capture_value(
                name, user_ns[name], limits=limits, imports=known_imports
            )
            self.tracker.note_captured(name, captured)
            if isinstance(captured, ImportRecord):
                self.records.pop(name, None)
                value = user_ns[name]
                this_cell = [
                    r
                    for r in cell_imports
                    if r.name == name and ns_capture.import_matches(r, value)
                ]
                self.imports[name] = ns_capture.merge_imports(
                    self.imports.get(name, ()), [*this_cell, captured]
                )
            else:
                self.imports.pop(name, None)
                self.records[name] = captured
        self._enforce_session_budget(limits.max_session_bytes)

    def _still_stored(self, name: str, value: object) -> bool:
        """Whether ``value`` serializes to exactly the large value its record holds.

        Checked by feeding the serialized pieces to the keyed hash blob ids are made of, against
        the record's blob id (or, for bytes the writer has not stored yet, their id), so an
        unchanged 100 MB DataFrame costs a hash of its data, not a second copy of it in memory
        (which a re-capture would hold until the writer had deduplicated it). Small values are
        simply captured again."""
        record = self.records.get(name)
        if record is None or record.encoding is None:
            return False
        store = self._store()
        if record.blob is not None:
            stored_id = record.blob
        elif record.data is not None and len(record.data) > store.blob_threshold:
            stored_id = store.key.content_id(record.data)
        else:
            return False
        hasher = store.key.content_hasher()
        if not ns_capture.serialize_into(value, record.encoding, hasher.update):
            return False
        return hmac.compare_digest(hasher.hexdigest(), stored_id)

    def _enforce_session_budget(self, max_session_bytes: int) -> None:
        """Skip the largest values past ``max_session_bytes``; each reason names the setting
        and the value that keeps them all (the total of every value this kernel holds)."""
        held = [(n, r) for n, r in self.records.items() if r.saved and r.data is not None]
        needed = sum(record.size for _, record in held)
        if needed <= max_session_bytes:
            return
        total = 0
        for name, record in sorted(held, key=lambda item: item[1].size):
            total += record.size
            if total > max_session_bytes:
                self.records[name] = VariableRecord(
                    name=name,
                    type_name=record.type_name,
                    size=record.size,
                    skipped=(
                        f"{format_bytes(record.size)} would take the session over its limit "
                        f"of {format_bytes(max_session_bytes)} (its values take "
                        f"{format_bytes(needed)}); "
                        + budget_hint("max_session_bytes", needed, "keeps them all")
                    ),
                )

    def _capture_shell_state(self) -> None:
        self.preferences = pref_capture.capture_preferences(
            self.shell, env_baseline=self._env_baseline
        )
        self.cwd = pref_capture.capture_cwd()

    # --- records -> Session --------------------------------------------------------------------

    def snapshot(self, name: str, writer: WriterInfo) -> Session:
        """An immutable picture of the workspace as captured so far (cheap: no pickling)."""
        return Session(
            name=name,
            created=self.created,
            updated=time.time(),
            writer=writer,
            history=self.all_history(),
            variables=dict(self.records),
            imports=[record for records in self.imports.values() for record in records],
            preferences=self.preferences,
            cwd=self.cwd,
            layout=self.layout,
            connections=self.connections.snapshot(),
            id=self.session_id(name),
            extra=dict(self.extra),
        )

    def session_id(self, name: str) -> str:
        """The stable id of session ``name`` as this kernel saves it (made on first ask)."""
        return self.ids.setdefault(name, uuid.uuid4().hex)

    def all_history(self) -> list[HistoryEntry]:
        """The restored history followed by this run's cells."""
        return self.history.merge(self.previous_history)

    def blob_ids(self) -> set[str]:
        """The blobs this workspace's records refer to."""
        return {record.blob for record in self.records.values() if record.blob is not None}

    def stored_in_blobs(self, blobs: dict[str, str], written: Session) -> None:
        """The writer stored these values (name -> blob id) of ``written`` (any thread).

        Only queued here: the records are replaced on the main thread, at the next cell.
        """
        for name, blob_id in blobs.items():
            record = written.variables.get(name)
            if record is not None and record.data is not None:
                self._stored_in_blobs.put((name, record, blob_id))

    def blobs_lost(self, lost: dict[str, str]) -> None:
        """The writer found these values' blobs (name -> blob id) missing (any thread): they
        were saved as skipped, and are captured again at the next cell (queued here)."""
        for name, blob_id in lost.items():
            self._lost_blobs.put((name, blob_id))

    def _forget_lost_blobs(self) -> None:
        """Drop the references to missing blobs, so the next capture pickles those values anew
        (an unchanged value would otherwise keep its reference: main thread)."""
        while True:
            try:
                name, blob_id = self._lost_blobs.get_nowait()
            except queue.Empty:
                return
            record = self.records.get(name)
            if record is not None and record.blob == blob_id:
                del self.records[name]
                self._recapture.add(name)

    def _drop_stored_bytes(self) -> None:
        """Keep only the blob reference of values the writer has stored (main thread)."""
        while True:
            try:
                name, written, blob_id = self._stored_in_blobs.get_nowait()
            except queue.Empty:
                return
            if self.records.get(name) is written:  # not captured again since that write
                self.records[name] = dataclasses.replace(written, data=None, blob=blob_id)

    # --- Session -> shell ----------------------------------------------------------------------

    def apply(
        self,
        session: Session,
        report: RestoreReport,
        *,
        source: str,
        parts: Container[str],
        variables: Sequence[str] | None,
        own: bool,
        replay: ReplaySettings | None = None,
    ) -> None:
        """Apply ``session`` (read from session ``source``) to the shell, part by part.

        ``own``: it is this kernel's own session, whose history, creation time and extra fields
        it continues; ``variables`` limits variables to these names, and imports to these names
        and those the chosen variables' code reads (``%session restore --vars f`` brings back
        ``np`` when ``f`` calls ``np.mean``).
        """
        # A set: each of thousands of names is looked up once per variable and import.
        only = None if variables is None else frozenset(variables)
        figures_before = figure_capture.open_figures()
        if "preferences" in parts:
            for item, reason in pref_capture.apply_preferences(self.shell, session.preferences):
                _outcome(report, report.preferences, item, reason)
        if "cwd" in parts and session.cwd:
            reason = pref_capture.apply_cwd(session.cwd)
            if reason is None:
                report.cwd = session.cwd
            else:
                report.skipped.append(("cwd", reason))
        times = report.times
        if only is None:
            if "imports" in parts:
                with times.timing("imports"):
                    self._restore_imports(session, report, None)
            if "variables" in parts:
                with times.timing("data"):
                    self._restore_variables(session, source, report, None)
        else:
            # Chosen variables first: the imports restored with them are those their code
            # reads (see capture.references.global_names), which only the unpickled values can tell.
            if "variables" in parts:
                with times.timing("data"):
                    self._restore_variables(session, source, report, only)
            if "imports" in parts:
                user_ns = self.user_ns
                values = (user_ns[name] for name in report.variables if name in user_ns)
                with times.timing("imports"):
                    self._restore_imports(session, report, only | global_names(values))
        if "variables" in parts and replay is not None:
            unsaved = {
                name: record
                for name, record in session.variables.items()
                if record.skipped is not None and (only is None or name in only)
            }
            with times.timing("replay"):
                self._rebuild(session.history, unsaved, report, replay)
        if "variables" in parts:
            user_ns = self.user_ns
            rebuilt = [n for o in report.replay for n in o.names if o.state is ReplayState.REBUILT]
            back = [user_ns[n] for n in (*report.variables, *rebuilt) if n in user_ns]
            figure_capture.settle_figures(self.shell, figures_before, back)
        if "history" in parts and own:
            self.previous_history = list(session.history)
            report.history = len(session.history)
        if "layout" in parts and session.layout is not None:
            self.layout = session.layout
            report.layout = True
        if "connections" in parts and session.connections:
            with times.timing("connections"):
                report.connections = self.connections.load(session.connections)
        if own:
            self.created = session.created or self.created
            self.extra = dict(session.extra)
            if session.id is not None:
                self.ids[source] = session.id
        # What was just restored is what is saved: only later changes need capturing again.
        self.tracker.sync(self.user_ns)
        # The restore changed the namespace outside any cell: earlier states no longer lead here.
        self.timeline.clear()
        self._restored_names.update(report.variables, report.imports)

    # --- time travel (see session/timeline.py) ------------------------------------------------

    def travel(self, target: int, what: str, read_blob: Callable[[str], bytes]) -> TravelReport:
        """Put the namespace back in timeline state ``target`` (reachable: the caller checked).

        Only names that differ are touched; a value that could not be saved is left as it is.
        The records follow at the end of the cell, as for any cell that rebinds names.
        """
        started = time.perf_counter()
        report = TravelReport(target=what)
        user_ns = self.user_ns
        for name, value in sorted(self.timeline.state_after(target).items()):
            if value == self._value(name) and (value == ABSENT or name in user_ns):
                continue
            record, imports = value
            if value == ABSENT:
                if user_ns.pop(name, _ABSENT) is not _ABSENT:
                    report.removed.append(name)
                continue
            if imports:
                results = ns_capture.restore_imports(imports, user_ns)
                failed = [reason for _, reason in results if reason is not None]
                if failed:
                    report.left.append((name, failed[0]))
                else:
                    report.restored.append(name)
                continue
            if record is None or record.skipped is not None:
                report.left.append(
                    (name, "it could not be saved, so no earlier copy of it was kept")
                )
                continue
            try:
                data = record.data if record.data is not None else read_blob(record.blob or "")
                user_ns[name] = ns_capture.restore_value(record, data, namespace=user_ns)
            except Exception as exc:  # noqa: BLE001 - one value that fails never stops the rest
                report.left.append((name, _describe_error(exc)))
                continue
            report.restored.append(name)
        self.timeline.travelling(target)
        report.seconds = time.perf_counter() - started
        return report

    # --- rebuilding what could not be saved (see session/replay.py) ----------------------------

    def _rebuild(
        self,
        history: Sequence[HistoryEntry],
        unsaved: dict[str, VariableRecord],
        report: RestoreReport,
        settings: ReplaySettings,
    ) -> None:
        """Replay the cells that made ``unsaved`` values, as ``settings`` allows; report each."""
        user_ns = self.user_ns
        targets = {name: record for name, record in unsaved.items() if name not in user_ns}
        if not targets:
            return
        if settings.mode == "auto":
            outcomes = self.replay(history, targets, consent=False, settings=settings)
        else:
            outcomes = self.replay(history, targets, consent=None, settings=settings)
        report.replay.extend(outcomes)
        rebuilt = {n for o in outcomes if o.state is ReplayState.REBUILT for n in o.names}
        if rebuilt:
            report.skipped = [item for item in report.skipped if item[0] not in rebuilt]

    def replay(
        self,
        history: Sequence[HistoryEntry],
        targets: dict[str, VariableRecord],
        *,
        consent: bool | None,
        settings: ReplaySettings,
        ask: Callable[[ReplayOutcome], bool] | None = None,
    ) -> list[ReplayOutcome]:
        """Rebuild ``targets`` (name -> its skipped record) from ``history``.

        ``consent``: True runs cells with side effects too, False only groups that just compute,
        None runs nothing (only plans: replay is 'never', or 'ask' at start). ``ask(outcome)``
        is asked for a group with side effects instead, when given.
        """
        user_ns = self.user_ns
        plan = replaying.plan_replay(
            history,
            targets,
            present=lambda name: name in user_ns,
            prepare=self._replay_cell,
        )
        outcomes: list[ReplayOutcome] = []
        for name, reason in plan.unavailable.items():
            outcomes.append(
                ReplayOutcome(
                    names=(name,),
                    cells=(),
                    state=ReplayState.UNAVAILABLE,
                    reason=reason,
                    types=(targets[name].type_name,),
                )
            )
            self.replay_pending.pop(name, None)
        for group in plan.groups:
            types = tuple(targets[n].type_name if n in targets else "" for n in group.targets)
            why = group.consent_reason
            if consent is None:
                outcome = group.outcome(
                    ReplayState.OFF, reason=f"SessionManager.replay is '{settings.mode}'"
                )
            elif why is not None and not consent and not self._asked(ask, group, why):
                outcome = group.outcome(ReplayState.WAITING, reason=why)
            else:
                outcome = replaying.run_group(group, user_ns, time_limit=settings.time_limit)
            outcome = dataclasses.replace(outcome, types=types)
            outcomes.append(outcome)
            for name in group.targets:
                record = targets.get(name)
                if outcome.state is ReplayState.REBUILT:
                    self.replay_pending.pop(name, None)
                    self._restored_names.add(name)
                elif outcome.state is not ReplayState.FAILED and record is not None:
                    self.replay_pending[name] = record
                if record is not None and record.skipped:
                    # Kept as skipped: the value still cannot be saved, and the next restart
                    # rebuilds it again from the same cells.
                    self.records[name] = record
        if any(o.state is ReplayState.REBUILT for o in outcomes):
            self.tracker.sync(user_ns, [n for o in outcomes for n in o.names if n in user_ns])
        return outcomes

    @staticmethod
    def _asked(
        ask: Callable[[ReplayOutcome], bool] | None, group: replaying.ReplayGroup, why: str
    ) -> bool:
        return ask is not None and ask(group.outcome(ReplayState.WAITING, reason=why))

    def _replay_cell(self, position: int, entry: HistoryEntry) -> replaying.ReplayCell | None:
        """One history entry read for replay (None: it cannot be replayed as recorded)."""
        if REDACTED in entry.source:
            return None  # a secret was blanked: this is no longer the code that ran
        if _OWN_MAGIC.match(entry.source):
            return None  # `%session ...`: replaying it would restore, undo or replay again
        try:
            code = self.shell.transform_cell(entry.source)
        except Exception:  # noqa: BLE001 - a cell IPython cannot transform is not replayed
            log.debug("cell %s cannot be transformed for replay", entry.execution_count)
            return None
        return replaying.ReplayCell(
            position=position,
            count=entry.execution_count,
            code=code,
            names=cell_names(entry.source, code),
            effects=cell_effects(code, self._module_of),
        )

    def _module_of(self, name: str) -> str | None:
        """The module a namespace name comes from (a module's own name, or its value's)."""
        value = self.user_ns.get(name, _ABSENT)
        if value is _ABSENT:
            return None
        if isinstance(value, ModuleType):
            return value.__name__
        owner = value if isinstance(value, type) or callable(value) else type(value)
        module = getattr(owner, "__module__", None)
        return module if isinstance(module, str) else None

    def _restore_imports(
        self, session: Session, report: RestoreReport, only: AbstractSet[str] | None
    ) -> None:
        selected = [i for i in session.imports if only is None or i.name in only]
        restored: set[str] = set()  # report.imports, as a set: thousands of imports stay linear
        for record, reason in ns_capture.restore_imports(selected, self.user_ns):
            if reason is not None or record.name not in restored:  # `a.b`, `a.c`: one
                _outcome(report, report.imports, record.name, reason)
            if reason is None:
                restored.add(record.name)
                self.imports[record.name] = ns_capture.merge_imports(
                    self.imports.get(record.name, ()), [record]
                )

    def _restore_variables(
        self,
        session: Session,
        source: str,
        report: RestoreReport,
        only: AbstractSet[str] | None,
    ) -> None:
        user_ns = self.user_ns
        for var_name, record in session.variables.items():
            if only is not None and var_name not in only:
                continue
            if record.skipped is not None:
                report.skipped.append((var_name, f"not saved: {record.skipped}"))
                continue
            try:
                data = record.data
                if data is None and record.blob is not None:
                    data = self._store().read_blob(source, record.blob)
                if data is None:  # pragma: no cover - the model forbids it
                    continue
                user_ns[var_name] = ns_capture.restore_value(record, data, namespace=user_ns)
            except Exception as exc:  # noqa: BLE001 - unpickling can raise anything; one bad value never stops the rest
                report.skipped.append((var_name, _describe_error(exc)))
                # Carried forward so the next save does not drop a value that failed to load
                # here (a missing package, say) but may load elsewhere.
                self.records[var_name] = record
                continue
            report.variables.append(var_name)
            self.records[var_name] = record

    def _unhide_restored(self) -> None:
        """Names this kernel restored are the user's, not IPython's own.

        A kernel restores while IPython loads its extensions; right after, IPython hides every
        name then in the namespace from ``%who`` (``hide_initial_ns``), which would also stop
        capture from saving them. Unhide those still bound to the restored object.
        """
        names, self._restored_names = self._restored_names, set()
        hidden = getattr(self.shell, "user_ns_hidden", None)
        if not isinstance(hidden, dict):
            return
        user_ns = self.user_ns
        for name in names:
            if name in hidden and name in user_ns and hidden[name] is user_ns[name]:
                del hidden[name]


def writer_info(kernel_id: str, run_id: str) -> WriterInfo:
    """Who writes a snapshot: this process, its versions, its kernel and run."""
    ipython = sys.modules.get("IPython")
    return WriterInfo(
        python=sys.version.split()[0],
        ipython=getattr(ipython, "__version__", ""),
        ipysession=__version__,
        host=socket.gethostname(),
        pid=os.getpid(),
        kernel_id=kernel_id,
        run_id=run_id,
    )


def _describe_error(exc: BaseException) -> str:
    """One line for a report: our own errors speak for themselves, others get their type."""
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, SessionError) else f"{type(exc).__name__}: {text}"


def _outcome(report: RestoreReport, done: list[str], item: str, reason: str | None) -> None:
    if reason is None:
        done.append(item)
    else:
        report.skipped.append((item, reason))


def _merge_changes(into: ns_capture.ChangeSet, more: ns_capture.ChangeSet) -> None:
    into.changed |= more.changed
    into.deleted |= more.deleted
    into.recheck |= more.recheck
