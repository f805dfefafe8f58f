"""The autosave writer thread: pacing, flushes, retries and shutdown.

The writer's contract is with any callable that writes a snapshot; these tests give it one that
records what it was asked to write (and can be made to block or fail), so timing and ordering
can be observed. The real store behind it is tested in test_store.py and the kernel tests.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import pytest

from ipysession.errors import KeyStoreError
from ipysession.model import Session
from ipysession.session.writer import AutosaveWriter, WriteLog
from ipysession.store import WriteResult


class Recorder:
    def __init__(self) -> None:
        self.written: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.fail_next = 0

    def __call__(self, session: Session) -> str:
        self.started.set()
        self.release.wait(10)
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(28, "No space left on device")
        self.written.append(session.name)
        return f"wrote {session.name}"


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_newest_snapshot_wins_and_writes_are_paced() -> None:
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=0.3)
    writer.start()
    try:
        writer.submit(Session(name="a"))
        wait_until(lambda: recorder.written == ["a"])
        writer.submit(Session(name="b"))
        writer.submit(Session(name="c"))  # supersedes b before the interval has passed
        time.sleep(0.1)
        assert recorder.written == ["a"]
        wait_until(lambda: recorder.written == ["a", "c"])
    finally:
        writer.stop()


def test_flush_writes_now_and_returns_the_result() -> None:
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=60)
    writer.start()
    try:
        writer.submit(Session(name="first"))
        wait_until(lambda: recorder.written == ["first"])
        outcome = writer.flush(Session(name="now"), timeout=5)
        assert outcome.error is None
        assert outcome.result == "wrote now"
    finally:
        writer.stop()


def test_flush_during_a_write_does_not_wait_for_the_interval() -> None:
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=60)
    writer.start()
    try:
        recorder.release.clear()
        writer.submit(Session(name="slow"))
        assert recorder.started.wait(5)
        result: dict[str, object] = {}

        def flush() -> None:
            result["outcome"] = writer.flush(Session(name="urgent"), timeout=5)

        flusher = threading.Thread(target=flush)
        flusher.start()
        time.sleep(0.05)
        recorder.release.set()
        started = time.monotonic()
        flusher.join(10)
        assert time.monotonic() - started < 3
        assert recorder.written == ["slow", "urgent"]
    finally:
        writer.stop()


def test_failures_are_reported_and_retried() -> None:
    recorder = Recorder()
    recorder.fail_next = 1
    errors: list[BaseException] = []
    writer = AutosaveWriter(recorder, interval=0.05, on_error=errors.append)
    writer.start()
    try:
        writer.submit(Session(name="retry-me"))
        wait_until(lambda: recorder.written == ["retry-me"], timeout=5)
        assert len(errors) == 1
        assert isinstance(errors[0], OSError)
    finally:
        writer.stop()


def test_stop_writes_what_is_pending_and_is_safe_twice() -> None:
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=60)
    writer.start()
    writer.submit(Session(name="one"))
    wait_until(lambda: recorder.written == ["one"])
    writer.submit(Session(name="last"))  # held back by the 60 s interval
    writer.stop()
    writer.stop()
    assert recorder.written == ["one", "last"]
    assert not writer.pending


def test_flush_without_a_thread_writes_on_the_caller() -> None:
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=5)
    outcome = writer.flush(Session(name="inline"))
    assert outcome.result == "wrote inline"
    assert writer.flush().result is None  # nothing pending: nothing written


@pytest.mark.parametrize("interval", [0.0, 0.01])
def test_callbacks_that_raise_are_logged_not_propagated(
    interval: float, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(_: object) -> None:
        raise RuntimeError("callback broke")

    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=interval, on_written=explode)
    writer.start()
    try:
        writer.submit(Session(name="x"))
        wait_until(lambda: recorder.written == ["x"])
        wait_until(lambda: "callback failed" in caplog.text)
    finally:
        writer.stop()


def test_a_written_snapshot_is_not_kept_alive_while_the_writer_waits() -> None:
    """A snapshot holds every pickled value; the writer waiting out its interval must not keep
    it (a 100 MB DataFrame would stay in memory twice until the next write)."""
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=60)
    writer.start()
    try:
        session = Session(name="big")
        written = weakref.ref(session)
        writer.submit(session)
        del session
        wait_until(lambda: recorder.written == ["big"])
        wait_until(lambda: gc.collect() >= 0 and written() is None)
    finally:
        writer.stop()


def test_a_write_in_progress_counts_as_pending() -> None:
    """`%session status` and tests that wait for an autosave must not take a write that has
    started, but not finished, for one on disk."""
    recorder = Recorder()
    recorder.release.clear()
    writer = AutosaveWriter(recorder, interval=0)
    writer.start()
    try:
        writer.submit(Session(name="slow"))
        assert recorder.started.wait(5)
        assert writer.pending
        recorder.release.set()
        wait_until(lambda: not writer.pending)
        assert recorder.written == ["slow"]
    finally:
        recorder.release.set()
        writer.stop()


def test_nothing_written_calls_nothing_and_counts_as_nothing() -> None:
    """``None`` from ``write``: a read-only kernel wrote nothing, so nothing is reported."""
    written: list[object] = []
    writer = AutosaveWriter(lambda session: None, interval=0, on_written=written.append)
    outcome = writer.flush(Session(name="read-only"))
    assert outcome.result is None
    assert outcome.error is None
    assert written == []


def test_the_write_log_tells_each_run_of_failures_once_and_a_write_clears_it() -> None:
    notices: list[str] = []
    log = WriteLog(notices.append)
    full = OSError(28, "No space left on device")
    log.write_failed(full)
    log.write_failed(full)
    assert log.last_error == str(full)
    assert len(notices) == 1
    assert "could not save the session" in notices[0]
    log.written(WriteResult(7, Path("gen-7"), 10, 0, merged=False))
    assert log.last_error is None
    assert log.last_generation == 7
    assert log.last_save is not None
    log.write_failed(full)
    assert len(notices) == 2  # a new run of failures is told again


def test_a_key_failure_told_at_restore_is_the_first_failure_of_its_run() -> None:
    notices: list[str] = []
    log = WriteLog(notices.append)
    log.key_failed(KeyStoreError("the keyring is locked"))
    log.write_failed(KeyStoreError("the keyring is locked"))
    assert len(notices) == 1
    assert "once the key can be read" in notices[0]
    assert log.last_error == "the keyring is locked"


def _writer_threads(writer: AutosaveWriter) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is writer._thread]


def test_started_lazily_it_runs_no_thread_until_there_is_something_to_write() -> None:
    recorder = Recorder()
    beats: list[float] = []
    writer = AutosaveWriter(
        recorder, interval=0.0, heartbeat=lambda: beats.append(1.0), heartbeat_interval=0.05
    )
    writer.start(lazily=True)
    try:
        assert writer.armed
        assert _writer_threads(writer) == []
        writer.submit(Session(name="first"))
        wait_until(lambda: recorder.written == ["first"])
        assert len(_writer_threads(writer)) == 1
        # From the first write on, the thread's heartbeat keeps the lease that write took fresh.
        wait_until(lambda: len(beats) >= 2)
    finally:
        writer.stop()


def test_a_flush_starts_a_lazy_writer_and_a_snapshot_pending_before_start_is_written() -> None:
    recorder = Recorder()
    writer = AutosaveWriter(recorder, interval=60)
    writer.submit(Session(name="before"))  # not started yet: it waits
    writer.start(lazily=True)  # something to write: the thread starts at once
    try:
        wait_until(lambda: recorder.written == ["before"])
    finally:
        writer.stop()
    lazy = AutosaveWriter(recorder, interval=60)
    lazy.start(lazily=True)
    try:
        outcome = lazy.flush(Session(name="flushed"))
        assert outcome.error is None
        assert outcome.result == "wrote flushed"
        assert len(_writer_threads(lazy)) == 1
    finally:
        lazy.stop()
    assert recorder.written == ["before", "flushed"]


def test_a_flush_that_finds_a_write_in_flight_waits_for_it_and_returns_its_outcome() -> None:
    recorder = Recorder()
    recorder.release.clear()
    writer = AutosaveWriter(recorder, interval=60)
    writer.start()
    try:
        writer.submit(Session(name="in flight"))
        assert recorder.started.wait(5)  # the thread took it: nothing is pending any more
        releaser = threading.Timer(0.1, recorder.release.set)
        releaser.start()
        outcome = writer.flush()
        assert outcome.error is None
        assert outcome.result == "wrote in flight"
        assert recorder.written == ["in flight"]
        releaser.join()
    finally:
        recorder.release.set()
        writer.stop()
