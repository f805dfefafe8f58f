"""BackgroundLoads on its own, with the arrivals mechanism and no shell: worker threads read,
the caller's thread binds, a cell names what it waits for (issue 15).

The "store" here is a dict of bytes read through a function that can be held on an event, so a
test decides when a read ends instead of depending on the machine's speed.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pytest

from ipysession.model import VariableRecord
from ipysession.session.arrivals import Arrivals
from ipysession.session.loading import BackgroundLoads, LoadJob, LoadState
from tests.builders import wait_for


class Blobs:
    def __init__(self, **blobs: bytes) -> None:
        self.blobs = blobs
        self.release = threading.Event()
        self.threads: set[str] = set()

    def read(self, blob_id: str) -> bytearray:
        self.threads.add(threading.current_thread().name)
        self.release.wait(60)
        if blob_id not in self.blobs:
            raise KeyError(blob_id)
        return bytearray(self.blobs[blob_id])


def record(name: str, blob: str, size: int) -> VariableRecord:
    return VariableRecord(name=name, type_name="bytes", size=size, blob=blob, encoding="pickle")


class Target:
    """Where bound values go (a namespace), and the failures reported."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.failed: list[LoadJob] = []
        self.bound_on: set[str] = set()

    def bind(self, job: LoadJob, payload: tuple[Any, list[bytearray]]) -> list[str]:
        self.bound_on.add(threading.current_thread().name)
        data, _ = payload
        if data == b"bad pickle":
            raise ValueError("could not unpickle")
        for name in job.names:
            self.ns[name] = bytes(data)
        return list(job.names)


def make(target: Target) -> BackgroundLoads:
    return BackgroundLoads(bind=target.bind, failed=target.failed.append, workers=2)


def test_reads_on_workers_binds_on_the_callers_thread_and_a_cell_waits_only_for_what_it_names() -> (
    None
):
    blobs = Blobs(a=b"A" * 10, b=b"B" * 20)
    target = Target()
    loads = make(target)
    arrivals = Arrivals([loads], namespace=lambda: target.ns)
    loads.start(
        [LoadJob(record("a", "a", 10), ("a",), 10), LoadJob(record("b", "b", 20), ("b",), 20)],
        blobs.read,
    )
    try:
        assert {a.name for a in loads.arriving()} == {"a", "b"}
        # Names neither: runs at once, waiting for nothing.
        assert arrivals.before_cell("x = 1").waited == ()
        threading.Timer(0.1, blobs.release.set).start()
        result = arrivals.before_cell("print(a)")
        assert result.waited == ("a",)
        assert result.arrived == ("a",)
        assert target.ns["a"] == b"A" * 10
        assert target.bound_on == {threading.current_thread().name}
        assert blobs.threads
        assert all(t.startswith("ipysession-load-") for t in blobs.threads)
        wait_for(lambda: all(j.done.is_set() for j in loads.jobs), "both reads ended")
        assert loads.settle() == ["b"]
        assert loads.arriving() == []
        assert loads.jobs == []
    finally:
        loads.stop()


def test_a_failed_read_or_unpickle_fails_its_job_only_and_a_waiting_cell_gets_the_reason() -> None:
    blobs = Blobs(ok=b"fine", bad=b"bad pickle")
    blobs.release.set()
    target = Target()
    loads = make(target)
    arrivals = Arrivals([loads])
    jobs = [
        LoadJob(record("ok", "ok", 4), ("ok",), 4),
        LoadJob(record("gone", "missing", 4), ("gone",), 4),
        LoadJob(record("broken", "bad", 10), ("broken",), 10),
    ]
    loads.start(jobs, blobs.read)
    try:
        result = arrivals.before_cell("gone")
        assert result.refused is not None
        assert "'gone' could not be restored in the background" in str(result.refused)
        assert "KeyError" in str(result.refused)
        assert arrivals.gate.armed
        wait_for(lambda: all(j.done.is_set() for j in jobs), "all reads ended")
        loads.settle()
        assert target.ns == {"ok": b"fine"}
        assert {j.names[0]: j.state for j in jobs} == {
            "ok": LoadState.BOUND,
            "gone": LoadState.FAILED,
            "broken": LoadState.FAILED,
        }
        assert sorted(j.names[0] for j in target.failed) == ["broken", "gone"]
        assert "could not unpickle" in (jobs[2].reason or "")
    finally:
        loads.stop()


def test_progress_and_stop() -> None:
    blobs = Blobs(a=b"A" * 2048)
    target = Target()
    loads = make(target)
    job = LoadJob(record("a", "a", 2048), ("a",), 2048)
    loads.start([job], blobs.read)
    wait_for(lambda: job.state is LoadState.READING, "the read started")
    assert loads.loading() == [("a", "loading, 0 B of 2.0 KiB read")]
    loads.stop()
    blobs.release.set()
    wait_for(lambda: job.done.is_set(), "the read ended")
    # Stopped (the extension unloaded): nothing is bound any more.
    assert loads.settle() == []
    assert target.ns == {}


def _load_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ipysession-load-")]


def test_no_job_no_thread_and_with_a_ready_hook_the_workers_wait_for_the_kernel() -> None:
    target = Target()
    loads = make(target)
    handed: list[Any] = []
    loads.when_ready = handed.append
    try:
        wait_for(lambda: _load_threads() == [], "earlier workers ended")
        loads.start([], Blobs().read)
        assert handed == []  # nothing to load: nothing waits, no thread
        blobs = Blobs(a=b"A" * 10)
        blobs.release.set()
        job = LoadJob(record("a", "a", 10), ("a",), 10)
        loads.start([job], blobs.read)
        # Queued, its arrival known to the cell gate, but nothing reads before the kernel is up.
        assert [a.name for a in loads.arriving()] == ["a"]
        assert _load_threads() == []
        assert job.state is LoadState.QUEUED
        assert handed == [loads.begin]
        handed[0]()  # the kernel's event loop runs: it is ready
        wait_for(lambda: job.done.is_set(), "the read ended")
        assert loads.settle() == ["a"]
        # Ready once: a later restore starts its workers with its jobs.
        later = LoadJob(record("b", "a", 10), ("b",), 10)
        loads.start([later], blobs.read)
        assert len(handed) == 1
        wait_for(lambda: later.done.is_set(), "the later read ended")
    finally:
        loads.stop()


def test_a_cell_naming_a_value_starts_the_workers_the_kernel_did_not_start_yet() -> None:
    target = Target()
    loads = make(target)
    loads.when_ready = lambda begin: None  # a kernel whose loop never said it was ready
    arrivals = Arrivals([loads], namespace=lambda: target.ns)
    blobs = Blobs(a=b"A" * 10)
    blobs.release.set()
    # Workers of earlier tests' managers end after their stop(), not at once.
    wait_for(lambda: _load_threads() == [], "earlier workers ended")
    loads.start([LoadJob(record("a", "a", 10), ("a",), 10)], blobs.read)
    try:
        assert _load_threads() == []
        result = arrivals.before_cell("print(a)")
        assert result.arrived == ("a",)
        assert target.ns["a"] == b"A" * 10
    finally:
        loads.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_workers_run_below_the_kernels_priority_and_the_kernel_keeps_its_own() -> None:
    target = Target()
    loads = make(target)
    blobs = Blobs(a=b"A" * 10)  # its read waits for release: the worker is alive meanwhile
    job = LoadJob(record("a", "a", 10), ("a",), 10)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    if own >= 19:  # run under `nice -n 19`: there is no lower priority to give the workers
        pytest.skip("the tests run at the lowest scheduling priority already")
    try:
        loads.start([job], blobs.read)
        wait_for(lambda: job.state is LoadState.READING, "the worker reads")
        workers = [t for t in threading.enumerate() if t.name.startswith("ipysession-load-")]
        assert workers
        for worker in workers:
            assert worker.native_id is not None
            assert os.getpriority(os.PRIO_PROCESS, worker.native_id) > own
        assert os.getpriority(os.PRIO_PROCESS, 0) == own  # this thread (the kernel's) unchanged
        blobs.release.set()
        wait_for(lambda: job.done.is_set(), "the read ended")
        assert loads.settle() == ["a"]
    finally:
        blobs.release.set()
        loads.stop()
