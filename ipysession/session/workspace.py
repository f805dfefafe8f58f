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
import operator
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
from ipysession.capture import devices, pickling, tensors
from ipysession.capture import figures as figure_capture
from ipysession.capture import history as history_capture
from ipysession.capture import namespace as ns_capture
from ipysession.capture import preferences as pref_capture
from ipysession.capture.cellnames import cell_names
from ipysession.capture.covars import CoVariables
from ipysession.capture.describe import budget_hint, format_bytes
from ipysession.capture.pickling import digest_parts
from ipysession.capture.references import code_names, global_names, names_reached
from ipysession.capture.sizing import imported
from ipysession.errors import CaptureError, SessionError
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
from ipysession.session.imports_loading import BackgroundImports, top_module
from ipysession.session.loading import (
    WAIT_LIMIT,
    BackgroundLoads,
    LoadJob,
    Payload,
    pending_module,
    record_bytes,
)
from ipysession.session.reports import ReplayOutcome, ReplayState, RestoreReport, TravelReport
from ipysession.session.timeline import ABSENT, Timeline, Value

if TYPE_CHECKING:
    from ipysession.connections.live import ConnectionSet
    from ipysession.store import SessionStore

__all__ = ["CaptureSettings", "ReplaySettings", "Workspace", "writer_info"]

log = logging.getLogger("ipysession")

_ABSENT = object()

_record_size = operator.attrgetter("size")

# A cell that is only ipysession's own magic.
_OWN_MAGIC = re.compile(r"\s*%session\b[^\n]*\s*\Z")

#: (name, record, record as sealed) from the writer thread.
_StoredQueue = queue.SimpleQueue[tuple[str, VariableRecord, VariableRecord]]


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
        # Names `%session forget` stopped saving, until a later cell assigns them again; those
        # forgotten during the running cell stay forgotten whatever that cell bound before.
        self.forgotten: set[str] = set()
        self._forgotten_in_cell: set[str] = set()
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
        # (name, record, record as sealed) from the writer thread: values now safely in blobs,
        # whose bytes the main thread can drop (a 50 MB DataFrame would otherwise be held twice).
        self._stored_in_blobs: _StoredQueue = queue.SimpleQueue()
        # (name, blob id) from the writer thread: values whose blob was missing at a write (the
        # session was deleted under this kernel); the main thread captures them again.
        self._lost_blobs: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._recapture: set[str] = set()
        self._restored_names: set[str] = set()
        # Values that could not be saved and were not rebuilt at restore (consent needed, or
        # replay off): their records, kept so `%session replay` and the next restart can.
        self.replay_pending: dict[str, VariableRecord] = {}
        self.timeline = Timeline(CaptureSettings.undo_max_bytes)
        #: Imports restored in the background at kernel start (the manager sets it): values
        #: that need one of its modules wait for it (see session/imports_loading.py).
        self.importing: BackgroundImports | None = None
        # The report of the restore that handed them over: it gets their outcomes as they bind.
        self._importing_report: RestoreReport | None = None
        # Names a cell bound or deleted while imports were pending: the user's, never rebound.
        self._bound_by_cells: set[str] = set()
        # Where restored tensors go (SessionManager.device_map, parsed; the manager sets it).
        self.device_map = devices.DeviceMap()
        # The shell's own hidden-names dict, live: names IPython adds later stay hidden too.
        hidden = getattr(shell, "user_ns_hidden", None)
        # Which variables share objects: those are captured together, as one group.
        self.covars = CoVariables()
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
        self._forgotten_in_cell.clear()
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
        # A new assignment undoes `forget`; a forgotten name merely read stays forgotten.
        self.forgotten -= changes.rebound - self._forgotten_in_cell
        if self.importing is not None and self.importing.jobs:
            # `pd = 1` (or `del pd` after it) before pandas arrived: the import leaves it be.
            self._bound_by_cells |= changes.changed | changes.deleted
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
        """Stop persisting these names until a later cell assigns them again; returns those
        that had a value or an import here."""
        forgotten = []
        for name in names:
            # The rest of its group is captured again without it at the next cell.
            self._recapture |= self._old_group(name)
            self.forgotten.add(name)
            self._forgotten_in_cell.add(name)
            self.tracker.forget(name)
            self.covars.remove(name)
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
        unchanged (a deep pass, an explicit save): one still equal to its stored blob keeps it.

        Variables that share objects (:mod:`ipysession.capture.covars`) are captured together,
        as one group; a group a changed or deleted name belonged to is formed again."""
        user_ns = self.user_ns
        # torch, JAX or CuPy imported since the last pass: their arrays go out of band from now.
        tensors.register_loaded()
        regroup: set[str] = set()
        for name in deleted:
            regroup |= self._old_group(name)
            self.records.pop(name, None)
            self.imports.pop(name, None)
            self.covars.remove(name)
        # Imports written in this cell win over ones inferred from the value; either is used
        # only while it still resolves to the very object bound to the name.
        cell_imports = ns_capture.imports_in_source(source)
        known_imports = {name: records[-1] for name, records in self.imports.items()}
        known_imports.update((rec.name, rec) for rec in cell_imports)
        todo = {name for name in changed if name in user_ns and self._is_persistable(name)}
        for name in list(todo):
            regroup |= self._old_group(name)
        todo |= {name for name in regroup if name in user_ns and self._is_persistable(name)}
        pickled: set[str] = set()
        for name in sorted(todo):
            if name in verify and name not in regroup and self._still_stored(name, user_ns[name]):
                continue
            value = user_ns[name]
            not_pickled = ns_capture.classify(name, value, imports=known_imports)
            if not_pickled is None:
                self.covars.update(name, value)
                pickled.add(name)
                continue
            self.covars.remove(name)
            self._keep(name, not_pickled, cell_imports)
        done: set[str] = set()
        for name in sorted(pickled):
            if name in done:
                continue
            group = {n for n in self.covars.group(name) if n in user_ns and self._is_persistable(n)}
            done |= group
            records: dict[str, VariableRecord] | None = None
            if len(group) > 1:
                records = ns_capture.capture_group(
                    {n: user_ns[n] for n in group},
                    views_of=self.covars.shared_ids(group),
                    limits=limits,
                )
            if records is None:  # alone, or a group that cannot be pickled together
                for member in sorted(group):
                    captured = ns_capture.capture_value(
                        member, user_ns[member], limits=limits, imports=known_imports
                    )
                    self._keep(member, captured, cell_imports)
                continue
            for member, record in records.items():
                self._keep(member, record, cell_imports)
        self._enforce_session_budget(limits.max_session_bytes)

    def _keep(
        self,
        name: str,
        captured: VariableRecord | ImportRecord,
        cell_imports: Sequence[ImportRecord],
    ) -> None:
        """Take what capture made of ``name`` as its record (or its import)."""
        self.tracker.note_captured(name, captured)
        if isinstance(captured, ImportRecord):
            self.records.pop(name, None)
            self.covars.remove(name)
            value = self.user_ns[name]
            this_cell = [
                r for r in cell_imports if r.name == name and ns_capture.import_matches(r, value)
            ]
            self.imports[name] = ns_capture.merge_imports(
                self.imports.get(name, ()), [*this_cell, captured]
            )
        else:
            self.imports.pop(name, None)
            self.records[name] = captured

    def _old_group(self, name: str) -> set[str]:
        """The other names of the group ``name``'s record belongs to (none if it has none)."""
        record = self.records.get(name)
        if record is None:
            return set()
        if record.group is not None:
            holder = self.records.get(record.group)
            members = set(holder.members) if holder is not None else set()
            return (members | {record.group}) - {name}
        return set(record.members) - {name}

    def _still_stored(self, name: str, value: object) -> bool:
        """Whether ``value`` serializes to exactly the large value its record holds.

        Checked by feeding the serialized pieces (the pickle stream, and each out-of-band
        buffer as it is, uncopied) to the keyed hash blob ids are made of, against the record's
        blob ids (or, for bytes the writer has not stored yet, their ids), so an unchanged
        100 MB array costs a hash of its data, not a second copy of it in memory (which a
        re-capture would hold until the writer had deduplicated it). Small values, and groups,
        are simply captured again."""
        record = self.records.get(name)
        if record is None or record.encoding is None or record.members or record.group:
            return False
        store = self._store()
        threshold = store.blob_threshold
        large_stream = record.blob is not None or (
            record.data is not None and len(record.data) > threshold
        )
        if not large_stream and not any(
            b.blob is not None or b.size > threshold for b in record.buffers
        ):
            return False
        key = store.key
        parts = digest_parts(value, record.encoding, key.content_hasher)
        if parts is None:
            return False
        stream_id, buffer_ids = parts
        stored_stream = record.blob if record.blob is not None else _id_of(key, record.data)
        stored_buffers = [
            b.blob if b.blob is not None else _id_of(key, b.data) for b in record.buffers
        ]
        return (
            stored_stream is not None
            and hmac.compare_digest(stream_id, stored_stream)
            and buffer_ids == stored_buffers
        )

    def _enforce_session_budget(self, max_session_bytes: int) -> None:
        """Skip the largest values past ``max_session_bytes``; each reason names the setting
        and the value that keeps them all (the total of every value this kernel holds)."""
        # The usual case first, cheaply (every size counts: an overestimate): no sorting or
        # filtering of thousands of records after every cell.
        if sum(map(_record_size, self.records.values())) <= max_session_bytes:
            return
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
        """The blobs this workspace's records refer to (values and out-of-band buffers)."""
        return {ref for record in self.records.values() for ref in record.blob_refs()}

    def stored_in_blobs(self, stored: dict[str, VariableRecord], written: Session) -> None:
        """The writer stored these values of ``written`` in blobs (name -> the record as sealed,
        holding only blob references; any thread).

        Only queued here: the records are replaced on the main thread, at the next cell.
        """
        for name, sealed in stored.items():
            record = written.variables.get(name)
            # A merge with another writer may have sealed their record under this name.
            if record is not None and record is not sealed and _same_value(record, sealed):
                self._stored_in_blobs.put((name, record, sealed))

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
            if record is not None and blob_id in record.blob_refs():
                del self.records[name]
                # A group is captured again whole (its other names refer to this record).
                self._recapture |= {name, *record.members}

    def _drop_stored_bytes(self) -> None:
        """Keep only the blob reference of values the writer has stored (main thread)."""
        while True:
            try:
                name, written, sealed = self._stored_in_blobs.get_nowait()
            except queue.Empty:
                return
            if self.records.get(name) is written:  # not captured again since that write
                self.records[name] = sealed

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
        loads: BackgroundLoads | None = None,
        background_bytes: int = 0,
        background_imports: Container[str] = (),
    ) -> None:
        """Apply ``session`` (read from session ``source``) to the shell, part by part.

        ``loads``: values (or groups) of ``background_bytes`` or more are handed to it, to be
        read on its worker threads and bound between cells (only a restore of everything).
        With it, imports of the top-level modules in ``background_imports`` not yet imported
        are imported on :attr:`importing`'s worker thread and bound between cells too, and a
        value that needs one of them becomes a background job (session/imports_loading.py).

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
                    self._restore_imports(
                        session, report, None, background_imports if loads is not None else ()
                    )
            if "variables" in parts:
                # Unpickling never imports a module still on its way: the value waits instead.
                check = self._module_check() if loads is not None else None
                with times.timing("data"), pickling.guarded(check):
                    jobs = self._restore_variables(
                        session, source, report, None, background_bytes if loads else 0
                    )
                if loads is not None and jobs:
                    store = self._store()
                    loads.start(jobs, lambda blob: store.read_blob(source, blob))
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

    def travel(
        self, target: int, what: str, read_blob: Callable[[str], bytes | bytearray | memoryview]
    ) -> TravelReport:
        """Put the namespace back in timeline state ``target`` (reachable: the caller checked).

        Only names that differ are touched; a value that could not be saved is left as it is.
        The records follow at the end of the cell, as for any cell that rebinds names.
        """
        started = time.perf_counter()
        report = TravelReport(target=what)
        user_ns = self.user_ns
        state = self.timeline.state_after(target)
        # A variable that shares objects comes back with its whole group, so that `b is a`
        # holds in the state travelled to as it did then (a member whose own record did not
        # change is rebound too).
        for name in list(state):
            record = state[name][0]
            holder = record.group if record is not None and record.group else name
            held = state.get(holder, self._value(holder))[0]
            for member in held.members if held is not None else ():
                state.setdefault(member, self._value(member))
        groups: dict[str, dict[str, Any]] = {}
        for name, value in sorted(state.items()):
            if (
                value == self._value(name)
                and (value == ABSENT or name in user_ns)
                and not _in_group(value[0])
            ):
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
                if _in_group(record):
                    holder_name = record.group or name
                    if holder_name not in groups:
                        holder_record = state.get(holder_name, self._value(holder_name))[0]
                        if holder_record is None or not holder_record.members:
                            what_failed = (
                                f"Variable '{name}' shares objects with '{holder_name}', "
                                "whose earlier copy is no longer kept"
                            )
                            raise CaptureError(what_failed)
                        data, buffers = _record_bytes(holder_record, read_blob)
                        groups[holder_name] = ns_capture.restore_group(
                            holder_record, data, buffers=buffers, namespace=user_ns
                        )
                    user_ns[name] = groups[holder_name][name]
                else:
                    data, buffers = _record_bytes(record, read_blob)
                    user_ns[name] = ns_capture.restore_value(
                        record, data, buffers=buffers, namespace=user_ns
                    )
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
        # An import still importing in the background is an input the replay will have: the
        # plan takes it as present (else it would replay the import cells too, and the cells
        # before them, some needing consent), and a group that reads one waits for it to run.
        importing = self._importing_names()
        plan = replaying.plan_replay(
            history,
            targets,
            present=lambda name: name in user_ns or name in importing,
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
                if importing and self._reads_any(group, importing):
                    self._await_imports()
                    importing = self._importing_names()
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
        self,
        session: Session,
        report: RestoreReport,
        only: AbstractSet[str] | None,
        background: Container[str] = (),
    ) -> None:
        """Import the session's imports (those in ``only``); those of a top-level module in
        ``background`` that is not imported yet go to :attr:`importing` instead."""
        selected = [i for i in session.imports if only is None or i.name in only]
        importing = self.importing
        if background and importing is not None:
            later = [
                record
                for record in selected
                # A module still half-imported counts as not imported: by the thread of an
                # extension unloaded and loaded again (or any other thread), importing it here
                # would wait on its lock; the worker waits for it instead.
                if top_module(record) in background and imported(top_module(record)) is None
            ]
            if later:
                importing.start(later)  # at once: the imports overlap the kernel's start
                for record in later:
                    # Kept now, as a loading value's record is: a save meanwhile carries it.
                    self.imports[record.name] = ns_capture.merge_imports(
                        self.imports.get(record.name, ()), [record]
                    )
                report.importing.extend(dict.fromkeys(record.name for record in later))
                self._importing_report = report
                self._bound_by_cells = set()
                selected = [record for record in selected if record not in later]
        self._bind_imports(ns_capture.restore_imports(selected, self.user_ns), report)

    def _bind_imports(
        self, results: Sequence[tuple[ImportRecord, str | None]], report: RestoreReport | None
    ) -> None:
        """Record what restore_imports did: in the report, and as this workspace's imports."""
        restored: set[str] = set()  # report.imports, as a set: thousands of imports stay linear
        for record, reason in results:
            if report is not None and (reason is not None or record.name not in restored):
                _outcome(report, report.imports, record.name, reason)  # `a.b`, `a.c`: one
            if reason is None:
                restored.add(record.name)
                self.imports[record.name] = ns_capture.merge_imports(
                    self.imports.get(record.name, ()), [record]
                )

    def bind_imports(
        self, records: Sequence[ImportRecord]
    ) -> list[tuple[ImportRecord, str | None]]:
        """Bind imports whose modules were imported in the background (main thread, between
        cells), through the same path as those restored at once, into the report of the restore
        that handed them over. A module whose background import failed is imported once more
        here. A name the user bound (or bound and deleted) meanwhile stays as the user left it;
        one forgotten meanwhile is bound but not saved. Returns each record bound and None, or
        why it could not be."""
        user_ns = self.user_ns
        users = {
            record.name
            for record in records
            if record.name in user_ns or record.name in self._bound_by_cells
        }
        results = ns_capture.restore_imports(
            [record for record in records if record.name not in users], user_ns
        )
        self._bind_imports(results, self._importing_report)
        for record, _ in results:
            if record.name in self.forgotten:
                self.imports.pop(record.name, None)  # `%session forget` popped it: it stays out
        bound = [record.name for record, reason in results if reason is None]
        # Bound outside any cell: what the tracker sees now is what is saved, not a change.
        self.tracker.sync(user_ns, bound)
        self._restored_names.update(bound)
        return results

    def _importing_names(self) -> frozenset[str]:
        """The names that imports still importing in the background will bind."""
        importing = self.importing
        if importing is None or not importing.jobs:
            return frozenset()
        return frozenset(arrival.name for arrival in importing.arriving())

    def _reads_any(self, group: replaying.ReplayGroup, names: AbstractSet[str]) -> bool:
        """Whether running ``group`` may read one of ``names``: its cells' code (function
        bodies they define included), or the code of a notebook function they use, by the rule
        a cell waiting for what it names follows (capture.references.names_reached)."""
        read: set[str] = set()
        for cell in group.cells:
            read |= cell.inputs | _cell_code_names(cell.code)
        return not names_reached(read, self.user_ns).isdisjoint(names)

    def _await_imports(self) -> None:
        """Wait for the imports still importing in the background, and bind them: a replayed
        group runs notebook cells that read them. Only before a group that reads one, so a
        restore whose replay reads none (a generator of plain numbers) does not wait for pandas
        before the kernel is ready."""
        importing = self.importing
        if importing is None or not importing.jobs:
            return
        for job in list(importing.jobs):
            job.done.wait(WAIT_LIMIT)
        importing.settle()

    def _module_check(self) -> Callable[[str], None] | None:
        importing = self.importing
        return importing.module_check() if importing is not None else None

    def _restore_variables(
        self,
        session: Session,
        source: str,
        report: RestoreReport,
        only: AbstractSet[str] | None,
        background_bytes: int = 0,
    ) -> list[LoadJob]:
        """Bind the session's variables; those of ``background_bytes`` or more (0: none) are
        returned as jobs to load in the background instead."""
        user_ns = self.user_ns
        variables = session.variables
        if only is not None:
            # A variable comes back with its group: `--vars b` brings `a` when `b is a`.
            only = set(only)
            for name in list(only):
                record = variables.get(name)
                holder = variables.get(record.group) if record and record.group else record
                if holder is not None and holder.members:
                    only |= set(holder.members)
        groups: dict[str, dict[str, Any] | BaseException] = {}
        jobs: dict[str, LoadJob] = {}
        for var_name, record in variables.items():
            if only is not None and var_name not in only:
                continue
            if record.skipped is not None:
                report.skipped.append((var_name, f"not saved: {record.skipped}"))
                continue
            holder_name = (record.group or var_name) if _in_group(record) else var_name
            holder = record if holder_name == var_name else variables.get(holder_name)
            if (
                background_bytes > 0
                and holder is not None
                and holder.skipped is None
                and holder.size >= background_bytes
            ):
                # Large: read on a worker thread, bound between cells (see session/loading.py).
                # Its record is kept now, so a save meanwhile carries it forward.
                job = jobs.get(holder_name)
                if job is None:
                    job = jobs[holder_name] = LoadJob(
                        record=holder, names=(), size=holder.size, group=_in_group(holder)
                    )
                job.names = (*job.names, var_name)
                report.loading.append(var_name)
                self.records[var_name] = record
                continue
            try:
                if record.group is not None or record.members:
                    holder_name = record.group or var_name
                    if holder_name not in groups:
                        groups[holder_name] = self._load_group(session, source, holder_name, report)
                    loaded = groups[holder_name]
                    if isinstance(loaded, BaseException):
                        if var_name == holder_name:
                            raise loaded
                        what = (
                            f"saved with '{holder_name}' (they share objects), which "
                            f"{_group_failure(loaded)}"
                        )
                        raise CaptureError(what) from loaded
                    if var_name not in loaded:
                        what = (
                            f"Variable '{var_name}' shares objects with '{holder_name}', whose "
                            "stored group does not hold it"
                        )
                        raise CaptureError(
                            what, hint="The session was merged by hand or damaged: save it again"
                        )
                    value = loaded[var_name]
                else:
                    with devices.restoring(self.device_map, record.size) as placements:
                        value = self._load_value(record, source)
                    _placed(report, var_name, placements)
                user_ns[var_name] = value
            except Exception as exc:  # noqa: BLE001 - unpickling can raise anything; one bad value never stops the rest
                module = pending_module(exc)
                if module is not None and holder is not None:
                    # It needs a module still being imported in the background: it is bound
                    # once that is in, as a large value is (see session/imports_loading.py).
                    job = jobs.get(holder_name)
                    if job is None:
                        job = jobs[holder_name] = LoadJob(
                            record=holder, names=(), size=holder.size, group=_in_group(holder)
                        )
                    job.names, job.waiting_for = (*job.names, var_name), module
                    report.loading.append(var_name)
                    self.records[var_name] = record
                    continue
                report.skipped.append((var_name, _describe_error(exc)))
                # Carried forward so the next save does not drop a value that failed to load
                # here (a missing package, say) but may load elsewhere.
                self.records[var_name] = record
                continue
            report.variables.append(var_name)
            self.records[var_name] = record
            self.covars.update(var_name, value)
        return list(jobs.values())

    def bind_loaded(self, job: LoadJob, payload: Payload) -> list[str]:
        """Unpickle a value read in the background and bind its names (main thread, between
        cells); returns the names bound. A name the user bound meanwhile keeps the user's
        value. Raises what unpickling raised: the job's variables then stay unrestored."""
        user_ns = self.user_ns
        data, buffers = payload
        # Never imports a module still on its way (it raises ModulePending: the job waits).
        with pickling.guarded(self._module_check()):
            if job.group:
                values = ns_capture.restore_group(
                    job.record, data, buffers=buffers, namespace=user_ns
                )
            else:
                value = ns_capture.restore_value(
                    job.record, data, buffers=buffers, namespace=user_ns
                )
                values = {job.record.name: value}
        bound = []
        for name in job.names:
            if name not in values:  # the session was merged by hand or damaged
                log.warning("Variable %r is not in the stored group of %r", name, job.record.name)
                continue
            if name in user_ns:
                continue
            user_ns[name] = values[name]
            self.covars.update(name, values[name])
            bound.append(name)
        # Bound outside any cell: what the tracker sees now is what is saved, not a change.
        self.tracker.sync(user_ns, bound)
        self._restored_names.update(bound)
        return bound

    def _load_group(
        self, session: Session, source: str, holder_name: str, report: RestoreReport
    ) -> dict[str, Any] | BaseException:
        """The values of the group ``holder_name`` holds, or why they cannot come back."""
        holder = session.variables.get(holder_name)
        if holder is None or not holder.members:
            return _GroupMissing(
                "is not in this session (it was merged by hand or damaged: save it again)"
            )
        if holder.skipped is not None:
            return _GroupMissing(f"was not saved: {holder.skipped}")
        try:
            data, buffers = self._value_bytes(holder, source)
            with devices.restoring(self.device_map, holder.size) as placements:
                values = ns_capture.restore_group(
                    holder, data, buffers=buffers, namespace=self.user_ns
                )
        except Exception as exc:  # noqa: BLE001 - the whole group fails with this reason
            return exc
        _placed(report, ", ".join(holder.members), placements)
        return values

    def _load_value(self, record: VariableRecord, source: str) -> Any:
        data, buffers = self._value_bytes(record, source)
        return ns_capture.restore_value(record, data, buffers=buffers, namespace=self.user_ns)

    def _value_bytes(self, record: VariableRecord, source: str) -> Payload:
        store = self._store()
        return _record_bytes(record, lambda blob: store.read_blob(source, blob))

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


def _cell_code_names(code: str) -> set[str]:
    """Every global or attribute name a cell's ``code`` (nested code included) may read."""
    try:
        return code_names(compile(code, "<ipysession replay plan>", "exec"))
    except (SyntaxError, ValueError):
        return set()


def _in_group(record: VariableRecord | None) -> bool:
    return record is not None and (record.group is not None or bool(record.members))


def _record_bytes(
    record: VariableRecord, read_blob: Callable[[str], bytes | bytearray | memoryview]
) -> Payload:
    """The pickle stream of ``record`` and its out-of-band buffers (see loading.record_bytes)."""
    return record_bytes(record, read_blob)


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


def _placed(report: RestoreReport, names: str, placements: devices.Placements) -> None:
    """Say which tensors of ``names`` came back on another device than they were saved on."""
    report.placed.extend((names, note) for note in placements.notes())


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


class _GroupMissing(CaptureError):
    """The record holding a group is missing or was not saved (what follows "which ...")."""


def _group_failure(exc: BaseException) -> str:
    """How a member's reason goes on after "saved with 'a' (they share objects), which"."""
    if isinstance(exc, _GroupMissing):
        return exc.what
    return f"could not be restored: {_describe_error(exc)}"


def _same_value(record: VariableRecord, sealed: VariableRecord) -> bool:
    """Whether ``sealed`` is ``record`` with its bytes moved to blobs (and nothing else)."""
    return (
        (record.type_name, record.size, record.encoding, record.fingerprint)
        == (sealed.type_name, sealed.size, sealed.encoding, sealed.fingerprint)
        and (record.members, record.group) == (sealed.members, sealed.group)
        and [b.size for b in record.buffers] == [b.size for b in sealed.buffers]
    )


def _id_of(key: Any, data: bytes | memoryview | None) -> str | None:
    return None if data is None else str(key.content_id(data))
