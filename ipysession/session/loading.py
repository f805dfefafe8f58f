"""Large values restored in the background: read on worker threads, bound between cells.

At kernel start the manager's restore binds small values, imports, settings and the cwd at
once; a value (or a group of variables that share objects) whose stored size is at least
``SessionManager.background_restore_bytes`` becomes a :class:`LoadJob` instead. Then:

1. worker threads (``ipysession-load-<n>``, at most ``background_restore_workers`` of them;
   started only when there is something to load, and in a kernel only once it is ready, so
   that they never slow its start) read each job's pickle stream and out-of-band buffers:
   every blob is authenticated and decrypted by the store, into writable memory the array
   will use as it is. Nothing is unpickled there: unpickling can run a notebook class's code,
   which belongs on the main thread. On Linux they run at a lower scheduling priority
   (niceness +10) than the kernel, so that on a busy machine the threads that answer the
   user's cells get the cores first;
2. on the main thread, between cells, :meth:`BackgroundLoads.settle` unpickles what was read and
   binds it: in a Jupyter kernel the worker wakes the kernel's own event loop
   (``kernel.io_loop.add_callback``), so a value arrives while the kernel is idle, and what
   arrived during a cell is bound after its reply; in a terminal, after the next cell. Never
   before a cell: one that names no loading value runs at once, without waiting for the
   unpickling of values it does not use;
3. a cell that names a value still loading waits for it: :class:`BackgroundLoads` is an
   arrival source (:mod:`ipysession.session.arrivals`), the one mechanism that also makes a
   cell wait for a connection, with one line updated in place ("waiting for df: loading,
   410.0 MiB of 1.1 GiB read"). A cell that names none runs at once.

Heavy imports come back in the background too (:mod:`ipysession.session.imports_loading`):
an import of a top-level module in ``SessionManager.background_imports`` (numpy, pandas, scipy,
sklearn, polars, pyarrow, xarray, statsmodels, dask, astropy, torch, jax, tensorflow by default;
never matplotlib or GUI toolkits) not yet imported is imported on one thread of its own, started
at once, and bound between cells; a cell that names it waits, as for a value. A value whose
unpickling needs a module still being imported is never unpickled before the module is in
(:func:`ipysession.capture.pickling.guarded` refuses it with :class:`ModulePending`): a small one
becomes a job here, and any job stays READ ("read 1.2 KiB, waiting for pandas") until then, so
no cell stalls on the module's import lock.

While a value loads, its record stays the workspace's record, so every save in the meantime
carries it forward (blob references only): a kernel killed while loading loses nothing. A value
the user binds again before it arrives keeps the user's value. A job that fails (a damaged blob,
a class that no longer imports) fails only its own variables, with the reason, in the restore
report, the notices, and the cell that waited for it.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ipysession.errors import CaptureError, SessionError
from ipysession.formatting import format_size
from ipysession.model import VariableRecord

__all__ = [
    "BackgroundLoads",
    "LoadArrival",
    "LoadJob",
    "LoadState",
    "ModulePending",
    "pending_module",
    "record_bytes",
    "yield_cpu_to_the_kernel",
]

log = logging.getLogger("ipysession")

#: Seconds a cell that names a loading value waits for it: as long as it takes (an interrupt
#: stops the wait; the value goes on loading).
WAIT_LIMIT = 24 * 3600.0

#: How much lower than the kernel a worker thread runs (added to its niceness: higher yields
#: more), at most the lowest priority there is.
_WORKER_NICENESS = 10
_MOST_NICE = 19

#: What a job's bytes are: the pickle stream, and its out-of-band buffers in pickle's order.
Payload = tuple[bytes | bytearray | memoryview, list[bytearray | memoryview]]
#: Reads one blob: its bytes, authenticated, in writable memory of their own.
BlobReader = Callable[[str], bytes | bytearray | memoryview]


class ModulePending(Exception):
    """A value cannot be unpickled yet: ``module`` is still being imported in the background
    (:mod:`ipysession.session.imports_loading`). Its job waits, read, until the module is in."""

    def __init__(self, module: str) -> None:
        super().__init__(module)
        self.module = module


def pending_module(exc: BaseException) -> str | None:
    """The module whose background import ``exc`` (or what caused it) waits for, if any."""
    seen: BaseException | None = exc
    for _ in range(8):  # restore_value wraps what unpickling raised, a group wraps that again
        if seen is None:
            return None
        if isinstance(seen, ModulePending):
            return seen.module
        seen = seen.__cause__
    return None


class LoadState(enum.Enum):
    QUEUED = "queued"
    READING = "reading"
    READ = "read"  # bytes in memory, waiting for the main thread to unpickle them
    BOUND = "bound"
    FAILED = "failed"


def record_bytes(
    record: VariableRecord,
    read_blob: BlobReader,
    on_read: Callable[[int], None] | None = None,
) -> Payload:
    """The pickle stream of ``record`` and its out-of-band buffers, each read from its blob
    into writable memory that the restored arrays use as it is; ``on_read(n)`` after each
    piece of ``n`` bytes."""
    data: bytes | bytearray | memoryview | None = record.data
    if data is None and record.blob is not None:
        data = read_blob(record.blob)
    if data is None:  # pragma: no cover - the model forbids it
        what = f"Variable '{record.name}' has no stored value"
        raise CaptureError(what)
    if on_read is not None:
        on_read(len(data))
    buffers: list[bytearray | memoryview] = []
    for buffer in record.buffers:
        piece = bytearray(buffer.data) if buffer.data is not None else read_blob(str(buffer.blob))
        # Arrays are rebuilt on writable memory: read-only bytes are copied, the rest kept.
        if isinstance(piece, bytes) or (isinstance(piece, memoryview) and piece.readonly):
            buffers.append(bytearray(piece))
        else:
            buffers.append(piece)
        if on_read is not None:
            on_read(len(piece))
    return data, buffers


@dataclass(eq=False)
class LoadJob:
    """One value, or one group of variables that share objects, loading in the background.

    ``record`` holds the bytes (the group's holder for a group); ``names`` are the variables
    it binds. ``state``, ``read`` and ``error`` are written by one worker thread and read by the
    main thread (single attribute stores); ``done`` is set once the worker is through.
    """

    record: VariableRecord
    names: tuple[str, ...]
    size: int
    group: bool = False
    state: LoadState = LoadState.QUEUED
    read: int = 0
    error: BaseException | None = None
    reason: str | None = None
    payload: Payload | None = field(default=None, repr=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    #: The module whose background import this job waits for before it is unpickled.
    waiting_for: str | None = None

    def progress(self) -> str:
        """Where it stands, in a few words: "loading, 410.0 MiB of 1.1 GiB read"."""
        state = self.state
        if state is LoadState.QUEUED:
            return f"queued, {format_size(self.size)}"
        if state is LoadState.READING:
            return f"loading, {format_size(self.read)} of {format_size(self.size)} read"
        if state is LoadState.READ:
            if self.waiting_for is not None:
                return f"read {format_size(self.size)}, waiting for {self.waiting_for}"
            return f"read {format_size(self.size)}, unpickling"
        return str(state.value)


#: Unpickles a job's payload and binds its names on the main thread: returns the names it bound,
#: and raises (any exception) when the value cannot come back.
Binder = Callable[[LoadJob, Payload], list[str]]


class BackgroundLoads:
    """The values of one restore still loading; an arrival source for the cell gate.

    Implements :class:`ipysession.session.arrivals.ArrivalSource` (``limit``, ``arriving``).
    """

    kind = "value"

    def __init__(
        self,
        *,
        bind: Binder,
        failed: Callable[[LoadJob], None],
        workers: int = 2,
    ) -> None:
        self._bind = bind
        self._failed = failed
        self.workers = max(1, workers)
        self.jobs: list[LoadJob] = []
        self._queue: queue.SimpleQueue[tuple[LoadJob, BlobReader] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        #: Called by a worker when a job is through (any thread): the kernel's event loop is
        #: asked to settle between cells. None: values arrive at the next cell.
        self.wake: Callable[[], None] | None = None
        #: Given :meth:`begin` when jobs are queued, calls it once the kernel is ready (from its
        #: event loop). Reading at once would compete with the kernel's own start for this
        #: machine's cores and delay its first answer. None (a terminal): the workers start with
        #: the jobs. Whatever happens first of it, a cell (:meth:`settle`) or a cell waiting for
        #: a value (:meth:`LoadArrival.wait`) starts them too.
        self.when_ready: Callable[[Callable[[], None]], None] | None = None
        self._ready = False
        #: Waits up to some seconds for a module's background import (a job that needs it
        #: waits, read, until it is in): True once it is. None: no background imports.
        self.wait_for_module: Callable[[str, float], bool] | None = None

    # --- as an arrival source ------------------------------------------------------------------

    @property
    def limit(self) -> float:
        return WAIT_LIMIT

    def arriving(self) -> Sequence[LoadArrival]:
        """One arrival per variable still loading (cheap when nothing is)."""
        if not self.jobs:
            return []
        return [
            LoadArrival(self, job, name)
            for job in list(self.jobs)
            if job.state is not LoadState.BOUND and job.reason is None
            for name in job.names
        ]

    # --- the manager's side ----------------------------------------------------------------------

    def start(self, jobs: Sequence[LoadJob], read_blob: BlobReader) -> None:
        """Queue ``jobs`` (largest last: small values arrive first); the workers start now, or
        once the kernel is ready (:attr:`when_ready`)."""
        if not jobs:
            return  # nothing to load: no thread at all
        self._stopped.clear()
        ordered = sorted(jobs, key=lambda job: job.size)
        self.jobs.extend(ordered)
        for job in ordered:
            self._queue.put((job, read_blob))
        when_ready = self.when_ready
        if when_ready is None or self._ready:
            self.begin()
        else:
            when_ready(self.begin)

    def begin(self) -> None:
        """Start the workers for what is queued (any thread; safe to call again)."""
        if self._stopped.is_set():
            return
        with self._lock:
            self._ready = True
            if not any(job.state is LoadState.QUEUED for job in self.jobs):
                return
            self._threads = [t for t in self._threads if t.is_alive()]
            for _ in range(self.workers - len(self._threads)):
                thread = threading.Thread(
                    target=self._work,
                    name=f"ipysession-load-{len(self._threads) + 1}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def cell_starting(self) -> None:
        """A cell starts (main thread): the kernel is up, so the workers may start. Nothing is
        bound here: a cell that names no loading value would wait for the unpickling of values
        it does not use, and one that names a value waits for exactly that one (arrivals)."""
        if self.jobs and not self._ready:
            self.begin()  # a cell runs: the kernel is up, whether or not it said so

    def cell_finished(self) -> None:
        """A cell ended (main thread): what arrived meanwhile is bound after its reply, by the
        kernel's event loop (:attr:`wake`), or now where there is none (a terminal: after the
        cell's output)."""
        if not self.jobs:
            return
        wake = self.wake
        if wake is None:
            self.settle()
        elif any(_unsettled(job) for job in self.jobs):
            wake()

    def loading(self) -> list[tuple[str, str]]:
        """(name, progress) of every variable still on its way: what ``%session status`` shows."""
        return [(a.name, a.progress()) for a in self.arriving()]

    def settle(self, only: LoadJob | None = None) -> list[str]:
        """Bind what the workers have read, report what failed (main thread only).

        Returns the names bound now. ``only``: settle that job alone (a cell waits for it).
        """
        bound: list[str] = []
        if self._stopped.is_set():
            return bound  # unloaded: this manager no longer touches the namespace
        if self.jobs and not self._ready:
            self.begin()
        for job in [only] if only is not None else list(self.jobs):
            if job.state is LoadState.READ:
                payload, job.payload = job.payload, None
                try:
                    assert payload is not None
                    bound.extend(self._bind(job, payload))
                except Exception as exc:  # noqa: BLE001 - unpickling can raise anything
                    module = pending_module(exc)
                    if module is not None:
                        # A module it needs is still being imported: it stays read until then.
                        job.payload, job.waiting_for = payload, module
                        continue
                    job.error = exc
                    job.state = LoadState.FAILED
                else:
                    job.waiting_for = None
                    job.state = LoadState.BOUND
            if job.state is LoadState.FAILED and job.reason is None:
                job.reason = _reason(job.error)
                self._failed(job)
        if (
            only is None
            and self.jobs
            and all(job.state is LoadState.BOUND or job.reason is not None for job in self.jobs)
        ):
            self.jobs = []  # all through: the per-cell check is free again
        return bound

    def stop(self) -> None:
        """Stop reading (kernel shutdown): queued jobs are dropped; safe to call twice."""
        self._stopped.set()
        self.wake = None
        with self._lock:
            for _ in self._threads:
                self._queue.put(None)
            self._threads = []

    # --- workers ---------------------------------------------------------------------------------

    def _work(self) -> None:
        yield_cpu_to_the_kernel()
        while True:
            item = self._queue.get()
            if item is None or self._stopped.is_set():
                return
            job, read_blob = item
            self._read(job, read_blob)
            wake = self.wake
            if wake is not None:
                try:
                    wake()
                except Exception:
                    log.debug("Waking the kernel after a background load failed", exc_info=True)

    @staticmethod
    def _read(job: LoadJob, read_blob: BlobReader) -> None:
        job.state = LoadState.READING
        started = time.perf_counter()

        def count(n: int) -> None:
            job.read += n

        try:
            job.payload = record_bytes(job.record, read_blob, count)
        except Exception as exc:  # noqa: BLE001 - a damaged blob fails its job only
            job.error = exc
            job.state = LoadState.FAILED
        else:
            job.state = LoadState.READ
            log.debug(
                "Read %s (%d bytes) in the background in %.3f s",
                ", ".join(job.names),
                job.read,
                time.perf_counter() - started,
            )
        job.done.set()


class LoadArrival:
    """One variable still loading: what a cell that names it waits on."""

    def __init__(self, loads: BackgroundLoads, job: LoadJob, name: str) -> None:
        self._loads = loads
        self._job = job
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def progress(self) -> str:
        return self._job.progress()

    def is_ready(self) -> bool:
        return self._job.state is LoadState.BOUND

    def failed(self) -> bool:
        return self._job.reason is not None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the bytes, then bind them here (main thread)."""
        self._loads.begin()
        deadline = time.monotonic() + timeout
        if self._job.done.wait(timeout):
            self._loads.settle(self._job)
        module, wait_for_module = self._job.waiting_for, self._loads.wait_for_module
        # Read, but a module it needs is still being imported: wait for that, then bind.
        if (
            not self.is_ready()
            and module is not None
            and wait_for_module is not None
            and wait_for_module(module, max(0.0, deadline - time.monotonic()))
        ):
            self._loads.settle(self._job)
        return self.is_ready()

    def not_ready(self, waited: float) -> SessionError:
        job = self._job
        if job.reason is not None:
            what = f"Variable '{self._name}' could not be restored in the background: {job.reason}"
            return CaptureError(
                what,
                hint=(
                    "The other variables came back; `%session status` lists what was not "
                    "restored and why"
                ),
            )
        what = f"Variable '{self._name}' is still loading after {waited:.0f} s ({job.progress()})"
        return CaptureError(
            what, hint="It goes on loading in the background: run the cell again to wait for it"
        )


def yield_cpu_to_the_kernel() -> None:
    """Lower the calling worker thread's scheduling priority (Linux, where a thread id is a task the
    scheduler ranks on its own): on a busy machine the kernel's own threads, which answer the
    user's cells, get the cores first; an idle machine's cores still go to reading."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere a thread id is no process id: never renice by it
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + _WORKER_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness, _MOST_NICE))


def _unsettled(job: LoadJob) -> bool:
    """Whether the worker is through with ``job`` and the main thread has yet to bind it or
    report its failure."""
    return job.state is LoadState.READ or (job.state is LoadState.FAILED and job.reason is None)


def _reason(error: BaseException | None) -> str:
    if error is None:  # pragma: no cover - FAILED is set with its error
        return "failed"
    text = str(error) or type(error).__name__
    return text if isinstance(error, SessionError) else f"{type(error).__name__}: {text}"
