"""SessionManager: the one orchestrator between a shell, the capture modules and the store.

(About 500 lines: one short entry point per thing the faces ask -- save, restore, merge a
fork, delete, discard, status, autosave, forget, layout -- plus the cell hooks and the one
change path; the work itself is done by the parts named below.)

Its options (``c.SessionManager.<name>`` in ``ipython_config.py``) are defined, with their help
text and checks, in :mod:`ipysession.session.options`; the manager inherits them.

The manager holds the cell hooks and the entry points the faces call (save, restore, status,
connect...); the work is done by its parts:
:class:`~ipysession.session.workspace.Workspace` (capture, records <-> Session),
:class:`~ipysession.session.sharing.Sharing` (the lease, forks, the merging write) and
:class:`~ipysession.session.writer.AutosaveWriter` (the writer thread). One autosave, hop by hop:

1. ``post_run_cell`` (main thread): the workspace captures what the cell changed, and
   :meth:`SessionManager._changed` hands a snapshot to the writer;
2. the writer thread calls :meth:`Sharing.write <ipysession.session.sharing.Sharing.write>`: the
   lease, then ``SessionStore.write`` merging with another writer's save if there is one;
3. the writer reports the :class:`~ipysession.store.WriteResult` to
   :class:`~ipysession.session.writer.WriteLog` (what ``%session status`` shows), and the
   workspace drops the bytes of values now stored in blobs before the next cell.

The manager never prints: it returns reports (:class:`RestoreReport`, :class:`SaveReport`,
:class:`Status`) and collects notices, which the extension shows where the user asked for them
(see :mod:`ipysession.extension`). It knows the shell only as an object handed to the capture
modules, so it imports no IPython module.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from traitlets import observe

from ipysession.capture import history as history_capture
from ipysession.capture import namespace as ns_capture
from ipysession.capture.devices import device_map_from
from ipysession.connections.live import ConnectionSet, ConnectionSettings
from ipysession.errors import (
    CaptureError,
    KeyStoreError,
    NewerFormat,
    SessionError,
    SessionExists,
    SessionInUse,
    SessionNotFound,
    WrongKey,
)
from ipysession.model import HistoryEntry, ImportRecord, Session, VariableRecord
from ipysession.session.arrivals import Arrivals
from ipysession.session.budgets import Budgets, machine_budgets
from ipysession.session.discard import SaveGuard, in_use_error, live_holder
from ipysession.session.hooks import HookGuard
from ipysession.session.imports_loading import BackgroundImports
from ipysession.session.lease import RootDirs
from ipysession.session.loading import BackgroundLoads, LoadJob
from ipysession.session.notices import NoticeKind, Notices
from ipysession.session.options import SessionOptions, check_autosave_interval
from ipysession.session.reports import (
    ReplayOutcome,
    ReplayState,
    RestoreReport,
    SaveReport,
    Status,
    TravelReport,
    restore_parts,
)
from ipysession.session.sharing import LeaseDecision, Sharing, default_session_name
from ipysession.session.snapshots import missing_snapshot
from ipysession.session.workspace import (
    CaptureSettings,
    ReplaySettings,
    Workspace,
    writer_info,
)
from ipysession.session.writer import AutosaveWriter, WriteLog

if TYPE_CHECKING:
    from ipysession.keys.resolution import BackendChoice, KeyResolution
    from ipysession.keys.watch import KeyWatch
    from ipysession.session.merge import MergeResult
    from ipysession.store import SessionStore, WriteResult

__all__ = ["SessionManager", "default_session_name"]

log = logging.getLogger("ipysession")


class SessionManager(SessionOptions):
    """Saves the workspace between cells and brings it back when a kernel starts."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shell = shell
        self.run_id = uuid.uuid4().hex[:12]
        self.kernel_id = ""
        self.started = time.time()
        self.notices = Notices()
        # Each part tells what its notices are about (the extension's notification kind).
        self._notify = self.notices.sink(NoticeKind.OTHER)
        self._store: SessionStore | None = None
        self._key: KeyResolution | None = None
        # Follows `ipysession rekey` while this kernel runs: the store asks it before each write.
        self._key_watch: KeyWatch | None = None
        self._store_lock = threading.Lock()
        # Something changed since this kernel started: close() makes a final save.
        self._dirty = False
        self._hooks = HookGuard(self._notify)
        self.last_restore: RestoreReport | None = None
        # Measured when first needed, then kept for the kernel's life (see session/budgets).
        self._machine_budgets: Budgets | None = None
        self._write_log = WriteLog(self.notices.sink(NoticeKind.SAVE))
        self.connections = ConnectionSet(
            ConnectionSettings(
                wait=self.reconnect_wait,
                attempts=self.reconnect_attempts,
                backoff=self.reconnect_backoff,
                timeout=self.connect_timeout,
                heartbeat=self.heartbeat_interval or None,
                max_interval=max(self.reconnect_max_interval, self.reconnect_backoff),
                give_up_after=self.reconnect_give_up_after or None,
                connection_wait=self.connection_wait,
            ),
            bind=self._bind_variable,
            unbind=self._unbind_variable,
            notify=self.notices.sink(NoticeKind.CONNECTION),
            changed=self._changed,
            recent=lambda: self.store.recent_connections(),
        )
        # Names still arriving (connections, values loaded in the background): a cell
        # that names one waits for it (see arrivals.py).
        self.arrivals = Arrivals([self.connections.arrivals])
        self.workspace = Workspace(
            shell,
            self.connections,
            store=lambda: self.store,
            run_id=self.run_id,
            max_history=self.max_history,
            exclude=self.exclude,
        )
        # Large values restored in the background at kernel start: an arrival source too.
        self.loads = BackgroundLoads(
            bind=self.workspace.bind_loaded,
            failed=self._load_failed,
            workers=self.background_restore_workers,
        )
        self.arrivals.add(self.loads)
        # Heavy imports restored at kernel start on a thread of their own: an arrival source
        # too; the kernel's event loop binds them as it binds large values (loads.wake): see
        # restore(), which sets importing.wake where there is one.
        self.importing = BackgroundImports(bind=self._bind_imports)
        self.workspace.importing = self.importing
        self.loads.wait_for_module = self.importing.wait_module
        self.arrivals.add(self.importing)
        self.arrivals.namespace = lambda: self.workspace.user_ns
        # Between a cell's pre_run_cell and post_run_cell: nothing is bound from outside then.
        self._in_cell = False
        #: Called (main thread) when values loaded in the background were bound or failed
        #: between cells: the JupyterLab extension's status bar stops saying "loading".
        self.on_loads_settled: Callable[[], None] | None = None
        self.sharing = Sharing(
            self,
            self.workspace,
            default_name=self._default_name,
            notify=self.notices.sink(NoticeKind.CONFLICT),
        )
        # Sessions deleted under this kernel, or by it, are never written again on their own.
        self._saves = SaveGuard(
            lambda n: RootDirs(Path(self.root)).session_dir(n), self.notices.sink(NoticeKind.FILE)
        )
        self._writer = AutosaveWriter(
            self._write,
            interval=self.autosave_interval,
            on_error=self._write_log.write_failed,
            on_written=self._write_log.written,
            heartbeat=self._heartbeat,
            heartbeat_interval=self.lease_timeout / 4,
        )

    # --- names, store, key --------------------------------------------------------------------

    def _default_name(self) -> str:
        user_ns = getattr(self.shell, "user_ns", {}) or {}
        return default_session_name(
            self.session_name, os.environ, user_ns, kernel_id=self.kernel_id
        )

    @property
    def name(self) -> str:
        """The session this kernel saves to (a fork of its own, when another kernel holds it)."""
        return self.sharing.name

    @property
    def key(self) -> KeyResolution:
        """The key in use, resolved on first need (never at load when nothing is stored)."""
        with self._store_lock:
            if self._key_watch is None:
                from ipysession.keys.resolution import resolve_key
                from ipysession.keys.watch import KeyWatch

                def resolve() -> KeyResolution:
                    return resolve_key(
                        backend=cast("BackendChoice", self.key_backend),
                        keyring_timeout=self.keyring_timeout,
                        allow_plaintext_keyring=self.allow_plaintext_keyring,
                    )

                if self._key is None:
                    self._key = resolve()
                    if self._key.notice:
                        self.notices.add(self._key.notice, NoticeKind.KEY)
                self._key_watch = KeyWatch(
                    self._key, resolve, on_change=self.notices.sink(NoticeKind.KEY)
                )
            # After a rekey the watch holds the new key.
            return self._key_watch.resolution

    @property
    def store(self) -> SessionStore:
        key = self.key.key
        watch = self._key_watch
        with self._store_lock:
            if self._store is None:
                from ipysession.store import SessionStore
                from ipysession.store.retention import Retention

                retention = Retention.from_schedule(
                    self.retention,
                    keep=self.keep_generations,
                    max_bytes=self.retention_max_bytes or None,
                )
                self._store = SessionStore(
                    Path(self.root),
                    key=key,
                    retention=retention,
                    key_source=watch.current_key if watch is not None else None,
                )
            return self._store

    def has_saved_session(self, name: str | None = None) -> bool:
        """Cheap check (no key, no decryption) whether a session directory exists."""
        from ipysession.store.names import session_dir_for

        return session_dir_for(Path(self.root), name or self.name).is_dir()

    def has_any_session(self) -> bool:
        """Cheap check (no key) whether any session is saved, so that a first start never
        needs the key just to look for sessions of renamed notebooks."""
        from ipysession.store.names import SESSIONS_DIR

        try:
            with os.scandir(Path(self.root) / SESSIONS_DIR) as entries:
                return any(not e.name.startswith(".") for e in entries)
        except OSError:
            return False

    @observe("exclude")
    def _exclude_changed(self, change: Any) -> None:
        # Configured values arrive while Configurable.__init__ runs, before the workspace exists;
        # the workspace is then built with self.exclude. Later changes (`%config`) go to it here.
        workspace = self.__dict__.get("workspace")
        if workspace is not None:
            workspace.tracker.exclude = tuple(change["new"])

    # --- what the faces read ------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """This kernel never writes its session (another kernel holds it; on_conflict)."""
        return self.sharing.read_only

    @property
    def fork_of(self) -> str | None:
        """The session this kernel forked from, if it continues as a fork."""
        return self.sharing.fork_of

    @property
    def last_generation(self) -> int | None:
        return self._write_log.last_generation

    @property
    def last_save(self) -> float | None:
        """When this kernel last wrote its session (epoch seconds), or None."""
        return self._write_log.last_save

    @property
    def pending(self) -> bool:
        """A snapshot waits for the autosave writer."""
        return self._writer.pending

    @property
    def last_error(self) -> str | None:
        """The last save's error (or the key's), cleared by the next write."""
        return self._write_log.last_error

    @property
    def merges(self) -> int:
        """Saves merged with another writer's since this kernel started."""
        return self.sharing.merges

    @property
    def layout(self) -> Any:
        """The frontend layout kept with the session (opaque JSON), or None."""
        return self.workspace.layout

    # --- cell hooks ---------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        # Outside the guard: with capture stopped, the event loop still binds between cells.
        self._in_cell = True
        self._hooks.run(self._pre_run_cell, info, ends_cell=False)

    def post_run_cell(self, result: Any) -> None:
        self._in_cell = False
        self._hooks.run(self._post_run_cell, result, ends_cell=True)

    @property
    def disabled(self) -> str | None:
        """Why capture stopped after repeated hook errors, or None while it runs."""
        return self._hooks.disabled

    def settle_loads(self) -> None:
        """Bind the large values read in the background since the last call (main thread,
        between cells: the kernel's event loop calls it when a worker is through)."""
        if self._in_cell:
            return  # the cell's post_run_cell wakes the loop again
        arriving = len(self.loads.arriving()) + len(self.importing.arriving())
        try:
            # Imports first: values that wait for their modules are bound after them.
            self.importing.settle()
        except Exception:
            log.exception("Binding imports restored in the background failed")
        try:
            self.loads.settle()
        except Exception:
            log.exception("Binding values loaded in the background failed")
        still = len(self.loads.arriving()) + len(self.importing.arriving())
        if self.on_loads_settled is not None and still != arriving:
            self.on_loads_settled()

    def _wake_for_imports(self) -> None:
        """An import is through (worker thread): ask the kernel's event loop to bind it (None
        in a terminal: bound after the next cell). Through ``loads.when_ready``, which never
        waits: before the loop exists a helper thread hands the call over, so the worker goes
        straight on to the next module while the kernel is still starting."""
        when_ready = self.loads.when_ready
        if when_ready is not None:
            when_ready(self.settle_loads)

    def _bind_imports(
        self, records: Sequence[ImportRecord]
    ) -> list[tuple[ImportRecord, str | None]]:
        """Bind imports restored in the background (main thread); a failure is reported and
        told as a failed value loaded in the background is."""
        results = self.workspace.bind_imports(records)
        failed = [(record.name, reason) for record, reason in results if reason is not None]
        if failed:
            names = ", ".join(f"'{name}'" for name, _ in failed)
            self.notices.add(
                f"ipysession: imports {names} of session '{self.name}' could not be restored: "
                f"{'; '.join(reason for _, reason in failed)}. The rest of the session is "
                "restored; `%session status` lists what was not.",
                NoticeKind.RESTORE,
            )
        return results

    def _load_failed(self, job: LoadJob) -> None:
        """A value loading in the background failed: its variables stay unrestored (their
        records are carried forward, as for any value that fails to restore)."""
        reason = job.reason or "failed"
        report = self.last_restore
        if report is not None:
            report.skipped.extend((name, reason) for name in job.names)
        names = ", ".join(f"'{name}'" for name in job.names)
        self.notices.add(
            f"ipysession: {names} of session '{self.name}' could not be restored in the "
            f"background: {reason}. The rest of the session is restored; `%session status` "
            "lists what was not.",
            NoticeKind.RESTORE,
        )

    def _pre_run_cell(self, info: Any) -> None:
        # What arrived in the background is not bound here but between cells (loading.py): this
        # cell waits only for the loading values it names (arrivals, below).
        self.loads.cell_starting()
        # A session deleted from outside is noticed here (one stat), before this cell's own
        # changes would be saved, so a `%session` cell shows the notice at once.
        self._saves.allows(self.name)
        self.workspace.catch_up()
        # Before the tracker looks at the namespace: a connection bound now is not the cell's.
        self.connections.cell_starting()
        self.connections.settle()
        source = getattr(info, "raw_cell", None)
        if isinstance(source, str):
            transformed = getattr(info, "transformed_cell", None)
            self.arrivals.before_cell(source, transformed if isinstance(transformed, str) else None)
        self.workspace.start_cell(info)

    def _post_run_cell(self, result: Any) -> None:
        self.arrivals.gate.clear()  # a refused cell that did not parse never used its refusal
        self.connections.cell_finished()
        changed = self.workspace.end_cell(
            result,
            CaptureSettings(
                limits=self._limits(),
                full_capture_interval=self.full_capture_interval,
                deep_capture_interval=self.deep_capture_interval,
                undo_max_bytes=self.undo_max_bytes,
            ),
        )
        # A `%sql URL` cell opened a connection: kept as a record, restored into %sql later.
        # The keys as a view: copied only when there is a connection to adopt.
        self.connections.adopt_sql_connections(self.shell.user_ns.keys())
        if changed:
            self._changed()
        else:
            # Only history (a cell that read, `%session status`): no generation of its own.
            # Marked, so the next change's save or the save at shutdown carries its line.
            self._dirty = True
        # After capture: a value bound now is no change of this cell's. In a kernel, after the
        # cell's reply (its event loop binds), so that the cell's answer does not wait for it.
        # Imports first: values that wait for their modules are bound after them.
        self.importing.cell_finished()
        self.loads.cell_finished()

    def budgets(self) -> Budgets:
        """The size budgets in force: ``max_variable_bytes`` and ``max_session_bytes`` where
        set, the machine's (measured once per kernel) where 0; and where they come from."""
        variable, session = self.max_variable_bytes, self.max_session_bytes
        if variable and session:
            return Budgets(variable, session, "set in the configuration")
        if self._machine_budgets is None:
            self._machine_budgets = machine_budgets(self.root)
        machine = self._machine_budgets
        if not (variable or session):
            return machine
        source = (
            f"{'max_variable_bytes' if variable else 'max_session_bytes'} set, the other "
            f"{machine.source}"
        )
        return Budgets(
            variable or machine.max_variable_bytes, session or machine.max_session_bytes, source
        )

    def _limits(self) -> ns_capture.CaptureLimits:
        budgets = self.budgets()
        return ns_capture.CaptureLimits(
            max_variable_bytes=budgets.max_variable_bytes,
            max_session_bytes=budgets.max_session_bytes,
        )

    # --- one path for every change ------------------------------------------------------------

    def _changed(self) -> None:
        """Something to save: mark it, and hand a fresh snapshot to the writer if autosave may.

        The one guard is the union of what the call sites guarded against before they shared
        this path: autosave turned off (the user saves by hand; the change still counts for the
        final save at close), a read-only kernel (it never writes its session: a snapshot handed
        over would only sit in the writer, and status would say "pending" for ever), and capture
        stopped after repeated hook errors (the records are no longer kept up to date, so, as
        close() does, nothing more is saved on its own until `%reload_ext ipysession`).
        """
        self._dirty = True
        if (
            self.autosave
            and not self.read_only
            and not self.disabled
            and self._saves.stopped(self.name) is None
        ):
            self._writer.submit(self.snapshot())

    def _write(self, session: Session) -> WriteResult | None:
        """The writer thread's write: nothing for a session this kernel no longer saves (deleted
        or discarded); otherwise the lease and the merging write of :class:`Sharing`."""
        if not self._saves.allows(session.name):
            return None
        result = self.sharing.write(session)
        if result is not None:
            own = session.name in (self.name, self.fork_of)
            self._saves.saw(self.name if own else session.name)
            if result.lost_blobs:
                # Saved as skipped (their blobs were gone): captured again at the next cell.
                self.workspace.blobs_lost(result.lost_blobs)
        return result

    def _heartbeat(self) -> None:
        # Refreshing the lease would re-create the directory of a session deleted under us.
        if self._saves.allows(self.name):
            self.sharing.heartbeat()

    def snapshot(self, name: str | None = None) -> Session:
        """An immutable picture of the workspace as captured so far (cheap: no pickling)."""
        return self.workspace.snapshot(name or self.name, writer_info(self.kernel_id, self.run_id))

    # --- connections --------------------------------------------------------------------------

    def _bind_variable(self, variable: str, obj: Any) -> None:
        self.shell.user_ns[variable] = obj

    def _unbind_variable(self, variable: str, obj: Any) -> None:
        if obj is not None and self.shell.user_ns.get(variable) is obj:
            del self.shell.user_ns[variable]

    # --- save ---------------------------------------------------------------------------------

    def save(self, name: str | None = None, *, checkpoint: str | None = None) -> SaveReport:
        """Capture everything and write it now (synchronously, in order with autosaves).

        A ``checkpoint`` label is checked before anything is written: an empty or invalid one
        raises :class:`~ipysession.errors.StoreError` instead of saving without a checkpoint.
        """
        if self.read_only and (name is None or name == self.name):
            raise self.sharing.read_only_error()
        if checkpoint is not None:
            from ipysession.store.scan import check_label

            check_label(checkpoint)
        target = name or self.name
        if self._saves.resume(target):  # deleted or discarded: the user asks to save it again
            self.notices.add(
                f"ipysession: session '{target}' is saved again, and autosave of it is back "
                f"{'on' if self.autosave else 'as configured (off)'}.",
                NoticeKind.FILE,
            )
        self.workspace.capture_all(self._limits())
        snapshot = self.snapshot(target)
        result: WriteResult | None
        if target == self.name:
            outcome = self._writer.flush(snapshot)
            if outcome.error is not None:
                raise outcome.error
            result = outcome.result
        else:
            # Values kept as blob references live in this session's directory: link them over.
            self.store.share_blobs(self.name, target, snapshot.blob_ids())
            result = self.store.write(snapshot)
        checkpoint_path = (
            self.store.checkpoint(target, checkpoint, snapshot) if checkpoint is not None else None
        )
        path = checkpoint_path or (result.path if result is not None else None)
        return SaveReport(
            session=target,
            generation=result.generation if result is not None else None,
            path=str(path) if path else None,
            variables=sum(1 for r in snapshot.variables.values() if r.saved),
            skipped=[(n, r.skipped) for n, r in snapshot.variables.items() if r.skipped],
            checkpoint=checkpoint,
        )

    def set_autosave(self, *, enabled: bool, interval: float | None = None) -> None:
        """Turn autosave on or off; ``interval`` (see :func:`check_autosave_interval`) is checked
        before anything changes, so a refused one (ValueError) leaves autosave as it was."""
        if interval is not None:
            interval = check_autosave_interval(interval)
        self.autosave = enabled
        if interval is not None:
            self.autosave_interval = interval
            self._writer.interval = interval
        if enabled:
            self._start_writer()

    def set_layout(self, layout: Any) -> None:
        """Keep the frontend's layout (sent over the ``ipysession`` comm) with the session."""
        self.workspace.layout = layout
        self._changed()

    def has_saved_variable(self, name: str) -> bool:
        """Whether ``name`` is a variable (or import) this session saves."""
        return name in self.workspace.records or name in self.workspace.imports

    def forget(self, names: Sequence[str]) -> list[str]:
        """Stop persisting these variables (until ``forget`` is undone by a new assignment)."""
        wanted = list(dict.fromkeys(names))
        here = set(self.workspace.forget(wanted))
        carried = self.sharing.forget(wanted)  # other writers' values this kernel carried
        self._changed()
        return [name for name in wanted if name in here or name in carried]

    # --- restore ------------------------------------------------------------------------------

    def orphans(self, limit: int = 3) -> list[str]:
        """Saved sessions named after a notebook that no longer exists on disk (renamed or
        moved), newest first, at most ``limit``; this kernel's own name is never one."""
        found = [
            (summary.updated or 0.0, summary.name)
            for summary in self.store.list()
            if summary.name is not None
            and summary.name != self.name
            and summary.name.endswith(".ipynb")
            and Path(summary.name).is_absolute()
            and not Path(summary.name).exists()
        ]
        return [name for _, name in sorted(found, reverse=True)[:limit]]

    def adopt(self, name: str) -> RestoreReport:
        """Move session ``name`` (a renamed or moved notebook's) to this kernel's name and
        restore it here.

        This notebook may have a session only if this kernel wrote all of it since it started
        with none (autosave runs from the first cell, before the user reads the notice): the
        adopted session takes its place, and what this kernel made meanwhile stays in the
        namespace and is saved on top. A session with older work is refused, never replaced."""
        holder = live_holder(Path(self.root), name, timeout=self.lease_timeout)
        if holder is not None:
            # That kernel would go on saving under the old name.
            msg = f"Session '{name}' is in use by {holder.describe()}; nothing was adopted"
            raise SessionInUse(msg, hint="Stop that kernel first, then adopt it again")
        if self.has_saved_session():
            if not self._written_only_by_this_kernel():
                msg = f"Session '{self.name}' exists already; nothing was adopted"
                raise SessionExists(
                    msg,
                    hint=(
                        f"`%session restore {name}` brings its variables here without moving "
                        "it, or `%session discard` first to replace this notebook's session"
                    ),
                )
            self._stop_saving(self.name, "it is being replaced by an adopted session")
            self.store.delete(self.name)
            self._saves.resume(self.name)
        self.store.rename(name, self.name)
        report = self.restore()
        self._changed()  # what this kernel made before adopting is saved with the adopted work
        return report

    def _written_only_by_this_kernel(self) -> bool:
        generations = self.store.generations(self.name)
        return not self.store.checkpoints(self.name) and all(
            info.writer_run_id == self.run_id for info in generations
        )

    def restore(
        self,
        name: str | None = None,
        *,
        generation: int | None = None,
        checkpoint: str | None = None,
        only: Sequence[str] | None = None,
        variables: Sequence[str] | None = None,
        background: bool = False,
    ) -> RestoreReport:
        """Read a session and apply it to the shell, part by part; never raises for one item.

        ``variables`` alone restores only those variables and the imports their code reads
        (see :meth:`Workspace.apply`); ``only`` names the parts explicitly. ``background``
        (kernel start): values of ``background_restore_bytes`` or more arrive later, between
        cells (see :mod:`ipysession.session.loading`).
        """
        started = time.perf_counter()
        target = name or self.name
        report = RestoreReport(session=target, checkpoint=checkpoint)
        parts = restore_parts(only, variables)
        own = target == self.name
        latest = generation is None and checkpoint is None
        decision = self.sharing.claim_for_restore() if own else LeaseDecision.WRITE
        if own and self._writer.armed:
            self._start_writer()  # a lease taken now is kept fresh from now
        source = target
        # A kernel restarted by Jupyter keeps its id, so its fork keeps its name: it comes back
        # to its own fork, not to a fresh copy of the session another kernel holds.
        own_fork = self.sharing.fork_name(target)
        if decision is LeaseDecision.FORK and latest and self.has_saved_session(own_fork):
            source = own_fork
        try:
            with report.times.timing("data"):
                result = self.store.read(source, generation=generation, checkpoint=checkpoint)
        except SessionNotFound:
            if not latest and self.store.exists(source):
                # The session is there, only not what was asked for: never "no saved session".
                raise missing_snapshot(
                    self.store, source, generation, checkpoint, own=source == self.name
                ) from None
            report.found = False
            report.seconds = time.perf_counter() - started
            return report
        except KeyStoreError as exc:
            self._write_log.key_failed(exc)
            raise
        except (WrongKey, NewerFormat) as exc:
            if not (own and latest):
                raise
            # Restarted (Jupyter keeps the kernel id), a kernel that forked because its session
            # could not be read comes back to its own fork, as one that forked from a held
            # session does; without this its earlier work was only "merged" into the fork at
            # the next save, never put back into the namespace.
            resume = source != own_fork and self.has_saved_session(own_fork)
            self.sharing.unreadable(exc, resumed=resume)
            if not resume:
                raise
            source = own_fork
            with report.times.timing("data"):
                result = self.store.read(source)
        if own:
            self._saves.saw(source)
        session = result.session
        if own and latest and source == target and variables is None and not only:
            # Restarted, a kernel comes back to the work it was saving, fork or not.
            session = self.sharing.bring_in_own_fork(
                session, report, merge=decision is LeaseDecision.WRITE
            )
        report.generation = result.generation
        report.path = str(result.path)
        report.problems = [f"{problem.kind}: {problem.message}" for problem in result.problems]
        if result.rollback is not None:  # newest generations deleted or put back (head record)
            report.problems.append(f"rollback: {result.rollback.message}")
        self.workspace.device_map = device_map_from(self.device_map)
        # A kernel's event loop binds imports as they arrive; without one (a terminal, where
        # the extension sets no when_ready) wake stays None and each cell's end binds them.
        self.importing.wake = self._wake_for_imports if self.loads.when_ready else None
        self.workspace.apply(
            session,
            report,
            source=source,
            parts=parts,
            variables=variables,
            own=own,
            replay=self._replay_settings(),
            loads=self.loads if background and variables is None and not only else None,
            background_bytes=self.background_restore_bytes,
            background_imports=frozenset(self.background_imports),
        )
        if own and self.sharing.restored(
            result.generation, latest=latest, decision=decision, from_fork=source != target
        ):
            self._changed()  # a new fork: its copy of the session is saved under its own name
        elif report.merged_fork is not None:
            self._changed()  # what came from the fork is saved to the session at once
        report.seconds = time.perf_counter() - started
        self.last_restore = report
        return report

    def _replay_settings(self) -> ReplaySettings:
        return ReplaySettings(mode=self.replay, time_limit=self.replay_time_limit)

    def replay_values(
        self,
        names: Sequence[str] = (),
        *,
        consent: bool,
        ask: Callable[[ReplayOutcome], bool] | None = None,
    ) -> list[ReplayOutcome]:
        """Rebuild values that could not be saved by replaying their cells (``%session replay``).

        ``names``: those (default: every value a restore left waiting); names already in the
        namespace are left alone. ``consent`` runs cells with side effects without asking;
        otherwise ``ask(outcome)`` decides for each group that has some.
        """
        workspace = self.workspace
        pending = workspace.replay_pending
        wanted = list(dict.fromkeys(names)) or list(pending)
        user_ns = workspace.user_ns
        targets = {}
        for name in wanted:
            if name in user_ns:
                continue
            record = pending.get(name) or workspace.records.get(name)
            targets[name] = record or VariableRecord(name=name, type_name="", size=0, skipped="")
        if not targets:
            return []
        outcomes = workspace.replay(
            workspace.all_history(),
            targets,
            consent=consent,
            settings=self._replay_settings(),
            ask=ask,
        )
        self._changed()
        return outcomes

    def replay_waiting(self) -> list[ReplayOutcome]:
        """The groups the last restore left waiting for consent (their cells have side effects)
        and that are still missing: what a frontend asks the user about."""
        report = self.last_restore
        if report is None:
            return []
        pending = self.workspace.replay_pending
        user_ns = self.workspace.user_ns
        return [
            outcome
            for outcome in report.replay
            if outcome.state is ReplayState.WAITING
            and any(name in pending and name not in user_ns for name in outcome.names)
        ]

    # --- time travel --------------------------------------------------------------------------

    def undo(self, n: int = 1) -> TravelReport:
        """Put the namespace back as it was before the last ``n`` cells that changed it."""
        if n < 1:
            msg = f"%session undo goes back 1 or more cells, not {n}"
            raise CaptureError(msg, hint="`%session undo` goes back one cell, `undo 3` three")
        timeline = self.workspace.timeline
        if timeline.head <= timeline.oldest:
            command = "undo"
            raise self._nothing_kept(command)
        target = timeline.undo_target(n)
        return self._travel(target)

    def checkout(self, spec: str) -> TravelReport:
        """Go to the state after execution ``spec`` (a cell's number), or ``-``: back to where
        the last undo or checkout left."""
        timeline = self.workspace.timeline
        if spec == "-":
            target = timeline.before_travel
            if target is None:
                msg = "No undo or checkout to go back from in this kernel"
                raise CaptureError(msg, hint="`%session log` lists the states you can go to")
        else:
            try:
                count = int(spec)
            except ValueError:
                msg = f"%session checkout takes a cell's number or '-', not {spec!r}"
                raise CaptureError(msg, hint="`%session log` lists the cells") from None
            found = timeline.state_of_count(count)
            if found is None:
                command = f"checkout {count}"
                raise self._nothing_kept(command)
            target = found
        if not timeline.reachable(target):
            command = f"checkout {spec}"
            raise self._nothing_kept(command)
        return self._travel(target)

    def _travel(self, target: int) -> TravelReport:
        timeline = self.workspace.timeline
        count = timeline.count_of(target)
        steps = timeline.steps
        if count is not None:
            what = f"after cell {count}"
        else:  # the oldest state kept: before the first step
            what = f"before cell {steps[0].count}" if steps else "at the start"
        name = self.name
        report = self.workspace.travel(target, what, lambda blob: self.store.read_blob(name, blob))
        report.session = name
        return report

    def _nothing_kept(self, what: str) -> CaptureError:
        timeline = self.workspace.timeline
        if self.undo_max_bytes <= 0:
            msg = (
                f"`%session {what}`: the timeline of session '{self.name}' is off "
                "(SessionManager.undo_max_bytes = 0)"
            )
            return CaptureError(
                msg,
                hint=(
                    "`%config SessionManager.undo_max_bytes = 268435456` keeps steps from the "
                    "next cell on; `%session restore --generation N` goes back to a save"
                ),
            )
        kept = timeline.steps
        span = (
            f"cells {kept[0].count} to {kept[-1].count}"
            if kept
            else "no cell yet (cells that changed nothing are not kept)"
        )
        msg = (
            f"`%session {what}`: that state of session '{self.name}' is not kept; this kernel's "
            f"timeline holds {span}"
        )
        return CaptureError(
            msg,
            hint=(
                "`%session log` lists what is kept (SessionManager.undo_max_bytes bounds it; a "
                "restore starts it afresh); `%session restore --generation N` goes back to a save"
            ),
        )

    def resolve_conflict(self, choice: str) -> RestoreReport | None:
        """The user's answer to a conflict at start (the JupyterLab conflict dialog): ``fork``,
        ``readonly`` or ``takeover``, for this kernel only. Another answer than the one taken
        (``on_conflict``) goes back to the original session and restores it again under the
        new policy; returns that restore's report, or ``None`` when nothing changed.

        Refused once a cell has run: restoring again would replace the work done since."""
        if choice not in ("fork", "readonly", "takeover"):
            msg = f"Unknown conflict choice {choice!r}"
            raise SessionError(msg, hint="Choose 'fork', 'readonly' or 'takeover'")
        taken = "readonly" if self.read_only else "fork" if self.fork_of else None
        if taken is None:
            msg = f"Session '{self.name}' has no conflict to resolve"
            raise SessionError(msg, hint="Nothing to do: this kernel holds its session")
        if choice == taken:
            return None
        if int(getattr(self.shell, "execution_count", 1) or 1) > 1:
            msg = f"Cells have run since session '{self.sharing.conflict_original()}' was opened"
            raise SessionError(
                msg,
                hint=f"Set c.SessionManager.on_conflict = '{choice}' and restart the kernel",
            )
        # What the writer holds for the fork is written first, so the fork on disk is whole.
        self._writer.flush(self.snapshot())
        self.sharing.undo_conflict()
        self.on_conflict = choice
        report = self.restore()
        self.start()
        return report

    def watch_saves(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (on the writer thread) once after each save and each failed one."""
        self._write_log.on_change = callback

    def merge_fork(self, fork: str, *, write: bool) -> tuple[str, MergeResult, int | None]:
        """Merge session ``fork`` back into the session it forks (``write`` False: a dry run);
        see :meth:`Sharing.merge_back`."""
        return self.sharing.merge_back(fork, write=write)

    # --- status and lifecycle -----------------------------------------------------------------

    def status(self) -> Status:
        self._saves.allows(self.name)  # a deletion from outside is told here at the latest
        records = self.workspace.records
        lease = self.sharing.lease
        return Status(
            session=self.name,
            session_id=self.workspace.session_id(self.name),
            root=self.root,
            key=self._key.backend if self._key else "not loaded yet",
            autosave=self.autosave,
            autosave_interval=self.autosave_interval,
            last_save=self._write_log.last_save,
            last_generation=self.last_generation,
            last_error=self.last_error,
            pending=self._writer.pending,
            variables=sum(1 for r in records.values() if r.saved),
            skipped=[(n, r.skipped) for n, r in records.items() if r.skipped],
            history=len(self.workspace.all_history()),
            restore=self.last_restore,
            disabled=self.disabled,
            budgets=self.budgets(),
            lease_holder=lease.holder if lease is not None else None,
            lease_ours=lease is not None and lease.ours,
            lease_problem=lease.reason
            if lease is not None and lease.state == "unavailable"
            else None,
            read_only=self.read_only,
            fork_of=self.fork_of,
            fork_reason=self.sharing.fork_reason,
            merges=self.merges,
            last_merge=self.sharing.last_merge,
            connections=self.connections.snapshot(),
            connection_states=self.connections.states(),
            notices=self.notices.recent(),
            loading=[*self.importing.loading(), *self.loads.loading()],
        )

    # --- delete and discard -------------------------------------------------------------------

    def delete(self, name: str, *, force: bool = False) -> Path:
        """Delete saved session ``name`` for good; returns its former directory.

        This kernel's own session: it stops saving it first (between cells and at shutdown),
        or the next save would write it again. A session another live kernel holds is refused
        (:class:`SessionInUse`, naming the kernel) unless ``force``; that kernel then stops
        saving it at its next cell and says so. Raises :class:`SessionNotFound` if nothing of
        ``name`` is on disk.
        """
        if name == self.name:
            if not self.store.exists(name):
                msg = f"No saved session named '{name}'"
                raise SessionNotFound(msg, hint="`%session list` shows the saved sessions")
            self._stop_saving(name, "it was deleted with `%session delete`")
            return self.store.delete(name)
        holder = live_holder(Path(self.root), name, timeout=self.lease_timeout)
        if holder is not None and not force:
            raise in_use_error(name, holder.describe(), magic=True)
        return self.store.delete(name)

    def discard(self) -> Path | None:
        """Stop saving this kernel's session and remove it, so the next kernel starts empty.

        Returns the removed directory, or ``None`` when nothing had been saved yet. Nothing is
        written afterwards, not even at shutdown; ``%session save`` would save again."""
        name = self.name
        self._stop_saving(name, "it was discarded with `%session discard`")
        return self.store.delete(name) if self.store.exists(name) else None

    def _stop_saving(self, name: str, why: str) -> None:
        self._saves.stop(name, why)
        # A flush is served after any write in flight, in order, and the guard refuses its own
        # snapshot: once it returns, nothing of this session is on its way to the disk.
        outcome = self._writer.flush(self.snapshot(name))
        if outcome.error is not None:
            log.warning("Waiting for the writer before deleting %r: %s", name, outcome.error)
        self._dirty = False
        self.sharing.release()

    def start(self) -> None:
        self._start_writer()

    def _start_writer(self) -> None:
        """The writer's thread runs while this kernel holds a lease to keep fresh (its
        heartbeat); with none (no saved session) it starts at the first write instead."""
        if not self.autosave or self.read_only:
            return
        lease = self.sharing.lease
        self._writer.start(lazily=lease is None or not lease.ours)

    def close(self, *, final_save: bool = True) -> None:
        """Final save (if anything changed) and stop the writer. Safe to call twice."""
        # Not guarded by autosave: with autosave off, closing still keeps what changed.
        if final_save and self._dirty and not self.disabled and not self.read_only:
            try:
                self._writer.submit(self.snapshot())
            except Exception:
                log.exception("ipysession could not build the final snapshot")
        self.loads.stop()
        self.importing.stop()
        self._writer.stop()
        self.sharing.release()
        self.connections.close()
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def search_history(
        self, *, n: int | None = None, grep: str | None = None
    ) -> list[HistoryEntry]:
        return history_capture.search(self.workspace.all_history(), n=n, grep=grep)
