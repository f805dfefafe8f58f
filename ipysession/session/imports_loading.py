"""Heavy imports restored in the background: imported on a worker thread, bound between cells.

At kernel start, re-importing a notebook's libraries is most of what stands between the
launch and a kernel that answers (``import pandas`` alone takes a few hundred milliseconds).
So the restore of everything at kernel start (the one that hands large values to
:class:`~ipysession.session.loading.BackgroundLoads`) hands over the import records whose
top-level module is in ``SessionManager.background_imports`` and not yet in ``sys.modules``:

1. one worker thread (``ipysession-import``) imports their modules in the saved order,
   started at once, while the kernel finishes starting: the point is to overlap the two. On
   Linux it runs at a lower scheduling priority (niceness +10), as the loading workers do;
2. on the main thread, between cells, :meth:`BackgroundImports.settle` binds each record's
   name (``np``, ``pd``, ``from x import y``) once its module is imported, through the same
   path as an import restored at once (the report, the workspace's records, the change
   tracker). An import that raised on the worker thread is imported once more there, on the
   main thread: a module that insists on the main thread (one that calls ``signal.signal`` at
   import) still comes back; if that fails too, it is reported as any failed import is;
3. a cell that names a pending import waits for it (this is an arrival source, see
   :mod:`ipysession.session.arrivals`: "waiting for pd: importing pandas"); a cell that names
   none runs at once. A cell that calls a notebook function whose code reads ``pd`` waits
   too, by the same rule as for values loading in the background
   (:func:`ipysession.capture.references.names_reached`). What no rule sees: a library called
   by the cell that imports a pending module itself waits on that module's import lock, which
   is as long as it would have waited at kernel start, never longer.

Values that need a module still being imported are not unpickled before it is: unpickling them
would import it on the main thread and wait on its import lock, undoing the gain.
:meth:`BackgroundImports.check_module` (used with :func:`ipysession.capture.pickling.guarded`)
refuses them with :class:`~ipysession.session.loading.ModulePending`, and they become background
jobs bound after their modules arrived.

While an import is pending its records are the workspace's, so a save carries them forward:
a kernel killed meanwhile loses nothing, and the next start imports them again.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ipysession.capture.namespace import resolve_import
from ipysession.errors import CaptureError, SessionError
from ipysession.model import ImportRecord
from ipysession.session.loading import WAIT_LIMIT, ModulePending, yield_cpu_to_the_kernel

__all__ = ["BackgroundImports", "ImportArrival", "ImportJob", "ImportState"]

log = logging.getLogger("ipysession")


class ImportState(enum.Enum):
    QUEUED = "queued"
    IMPORTING = "importing"
    IMPORTED = "imported"  # by the worker, or it failed there: the main thread binds it next
    BOUND = "bound"  # every record the main thread could bind is bound; failures have a reason


@dataclass(eq=False)
class ImportJob:
    """The import records of one top-level module, imported on the worker thread.

    ``state`` and ``error`` are written by the worker and read by the main thread (single
    attribute stores); ``done`` is set once the worker is through with it.
    """

    module: str
    records: list[ImportRecord]
    state: ImportState = ImportState.QUEUED
    error: BaseException | None = None
    #: Name -> why it could not be imported, once the main thread tried too.
    failed: dict[str, str] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(record.name for record in self.records))

    def progress(self) -> str:
        if self.state is ImportState.QUEUED:
            return f"queued to import {self.module}"
        if self.state is ImportState.IMPORTING:
            return f"importing {self.module}"
        return f"imported {self.module}, binding"


#: Binds records on the main thread; returns each record with None or why it failed.
Binder = Callable[[Sequence[ImportRecord]], list[tuple[ImportRecord, str | None]]]


def top_module(record: ImportRecord) -> str:
    """The top-level package a record imports ("" for a relative import)."""
    return record.module.split(".")[0]


class BackgroundImports:
    """The imports of one restore still on their way; an arrival source for the cell gate.

    Implements :class:`ipysession.session.arrivals.ArrivalSource` (``limit``, ``arriving``).
    """

    kind = "import"

    def __init__(self, *, bind: Binder) -> None:
        self._bind = bind
        self.jobs: list[ImportJob] = []
        self._pending: set[str] = set()  # top-level modules the worker has yet to finish
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called by the worker after each module (any thread): the kernel's event loop is
        #: asked to bind between cells. None: names are bound after the next cell.
        self.wake: Callable[[], None] | None = None

    # --- as an arrival source ------------------------------------------------------------------

    @property
    def limit(self) -> float:
        return WAIT_LIMIT

    def arriving(self) -> Sequence[ImportArrival]:
        """One arrival per name still to be bound (cheap when nothing is)."""
        if not self.jobs:
            return []
        return [
            ImportArrival(self, job, name)
            for job in list(self.jobs)
            for name in job.names
            if name not in job.bound and name not in job.failed
        ]

    # --- the manager's side ----------------------------------------------------------------------

    def start(self, records: Sequence[ImportRecord]) -> None:
        """Import the modules of ``records`` on the worker thread, in this order, at once."""
        if not records:
            return
        jobs: dict[str, ImportJob] = {}
        for record in records:
            module = top_module(record)
            jobs.setdefault(module, ImportJob(module=module, records=[])).records.append(record)
        self._stopped.clear()
        with self._lock:
            self._pending.update(jobs)
        self.jobs.extend(jobs.values())
        self._thread = threading.Thread(
            target=self._work, args=(list(jobs.values()),), name="ipysession-import", daemon=True
        )
        self._thread.start()

    def is_pending(self, module: str) -> bool:
        """Whether the worker has yet to finish importing ``module``'s top-level package."""
        if not self._pending:
            return False
        with self._lock:
            return module.split(".")[0] in self._pending

    def check_module(self, module: str) -> None:
        """Raise :class:`ModulePending` if ``module`` is still being imported (the check
        :func:`ipysession.capture.pickling.guarded` calls for each module a pickle names)."""
        if self.is_pending(module):
            raise ModulePending(module.split(".")[0])

    def module_check(self) -> Callable[[str], None] | None:
        """The check to unpickle under while imports are pending; None once none is."""
        return self.check_module if self._pending else None

    def wait_module(self, module: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the worker to finish ``module``; True once done."""
        top = module.split(".")[0]
        for job in list(self.jobs):
            if job.module == top:
                return job.done.wait(timeout)
        return True

    def cell_finished(self) -> None:
        """A cell ended (main thread): without an event loop to wake, bind what arrived now."""
        if self.jobs and self.wake is None:
            self.settle()

    def loading(self) -> list[tuple[str, str]]:
        """(name, progress) of every import still on its way: what ``%session status`` shows."""
        return [(a.name, a.progress()) for a in self.arriving()]

    def settle(self, only: ImportJob | None = None) -> list[str]:
        """Bind the names of what the worker imported (main thread only); returns them."""
        bound: list[str] = []
        if self._stopped.is_set():
            return bound  # unloaded: this manager no longer touches the namespace
        for job in [only] if only is not None else list(self.jobs):
            if job.state is not ImportState.IMPORTED:
                continue
            if job.error is not None:
                log.debug(
                    "Importing %s in the background failed (%s); importing it here",
                    job.module,
                    job.error,
                )
            for record, reason in self._bind(job.records):
                if reason is None:
                    job.bound.add(record.name)
                    bound.append(record.name)
                else:
                    job.failed.setdefault(record.name, reason)
            # A name the user bound meanwhile is left to the user: it is through too.
            job.bound.update(name for name in job.names if name not in job.failed)
            job.state = ImportState.BOUND
        if only is None and all(job.state is ImportState.BOUND for job in self.jobs):
            self.jobs = []  # all through: the per-cell check is free again
        return bound

    def stop(self) -> None:
        """Stop importing after the module in progress (kernel shutdown); safe twice."""
        self._stopped.set()
        self.wake = None

    # --- the worker ------------------------------------------------------------------------------

    def _work(self, jobs: list[ImportJob]) -> None:
        # At niceness +10, as the loading workers: measured on a busy 2-core machine, the first
        # cell of a restarted kernel answered sooner (the kernel's own start gets the cores
        # first), and the imports were through no later.
        yield_cpu_to_the_kernel()
        for job in jobs:
            if self._stopped.is_set():
                return
            job.state = ImportState.IMPORTING
            started = time.perf_counter()
            try:
                for record in job.records:
                    # All the statement imports (`from scipy import stats` loads scipy.stats),
                    # so that binding on the main thread only looks it up.
                    resolve_import(record)
            except BaseException as exc:  # noqa: BLE001 - retried on the main thread
                job.error = exc
            else:
                log.debug(
                    "Imported %s in the background in %.3f s",
                    job.module,
                    time.perf_counter() - started,
                )
            job.state = ImportState.IMPORTED
            with self._lock:
                self._pending.discard(job.module)
            job.done.set()
            wake = self.wake
            if wake is not None:
                try:
                    wake()
                except Exception:
                    log.debug("Waking the kernel after a background import failed", exc_info=True)


@dataclass(frozen=True, eq=False)
class ImportArrival:
    """One name still being imported: what a cell that names it waits on."""

    imports: BackgroundImports
    job: ImportJob
    name: str

    def progress(self) -> str:
        return self.job.progress()

    def is_ready(self) -> bool:
        return self.name in self.job.bound

    def failed(self) -> bool:
        return self.name in self.job.failed

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the module, then bind the name here (main thread)."""
        if self.job.done.wait(timeout):
            self.imports.settle(self.job)
        return self.is_ready()

    def not_ready(self, waited: float) -> SessionError:
        reason = self.job.failed.get(self.name)
        if reason is not None:
            what = f"Import '{self.name}' could not be restored: {reason}"
            return CaptureError(
                what,
                hint=(
                    "The rest of the session came back; `%session status` lists what was not "
                    "restored and why"
                ),
            )
        what = f"Import '{self.name}' is still importing after {waited:.0f} s ({self.progress()})"
        return CaptureError(
            what, hint="It goes on importing in the background: run the cell again to wait for it"
        )
