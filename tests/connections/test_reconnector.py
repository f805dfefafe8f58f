"""The Reconnector: every record at once on its own thread, backoff with jitter, the wait budget,
the heartbeat monitor, close and disconnect; against real peers (SQLite, closed ports, a factory
module)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from ipysession.connections.reconnector import ConnectionState, Reconnector
from ipysession.connections.records import (
    FailureCause,
    advice,
    connect_record,
    make_record,
)
from ipysession.model import ConnectionRecord
from ipysession.presentation import connection_rows
from ipysession.retry import Backoff
from tests.builders import wait_for
from tests.connections.peers import (
    SECRET,
    Events,
    factory_record,
    sqlite_record,
    unreachable_kernel,
)
from tests.contract.deadlines import finishes


def connect_threads(*names: str) -> list[threading.Thread]:
    """The Reconnector's worker threads for ``names`` that are still running."""
    wanted = {f"ipysession-connect-{name}" for name in names}
    return [t for t in threading.enumerate() if t.name in wanted and t.is_alive()]


def test_three_targets_one_unreachable(
    tmp_path: Path, peer: Any, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    """wait(1.0) returns within about a second with two connected; the third goes on retrying in
    the background after its quick attempts, its failure counted once."""
    caplog.set_level(logging.DEBUG, logger="ipysession")
    records = {
        r.name: r
        for r in (
            sqlite_record("db", tmp_path / "three.db"),
            factory_record("cache", "make", password=SECRET),
            unreachable_kernel("remote"),
        )
    }
    reconnector = Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, attempts=3, backoff=0.2, timeout=0.5
    )
    try:
        reconnector.start(records)
        # The budget ends the wait while "remote" is still pending: the two that connected are
        # handed out, and "remote" carries on in the background.
        ready = reconnector.wait(1.0)
        assert set(ready) == {"db", "cache"}
        assert ready["cache"].label == "cache"
        assert reconnector.state("remote") in (ConnectionState.CONNECTING, ConnectionState.RETRYING)
        assert set(reconnector.objects()) == {"db", "cache"}
        wait_for(
            lambda: records["remote"].stats.failures == 1, '"remote" used up its quick attempts'
        )
        status = reconnector.status("remote")
        assert status is not None
        assert status.state is ConnectionState.RETRYING
        assert status.background
        assert status.attempt >= 3
        assert "heartbeat" in status.error
        assert status.cause is FailureCause.UNREACHABLE
        with reconnector.lock:
            assert records["remote"].stats.last_error is not None
            assert "heartbeat" in records["remote"].stats.last_error
            assert records["remote"].stats.last_error_at is not None
        assert records["db"].stats.successes == 1
        assert events.ready == []  # the two ready ones were handed out by wait(), only there
        assert events.states_of("remote")[0] is ConnectionState.CONNECTING
        assert ConnectionState.FAILED not in events.states_of("remote")
        assert events.states_of("remote")[-1] is ConnectionState.RETRYING
        assert events.states_of("db") == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
        for _, _, text in events.states:
            assert SECRET not in text
        assert SECRET not in caplog.text
        rows = connection_rows(records, reconnector.states())
        assert SECRET not in json.dumps([dataclasses.asdict(row) for row in rows])
    finally:
        reconnector.close(close_objects=True)
    assert reconnector.states()["db"] is ConnectionState.DISCONNECTED
    assert peer.CLOSED == ["cache"]


def test_wait_returns_at_once_when_all_are_ready(peer: Any) -> None:
    with Reconnector() as reconnector:
        reconnector.start([factory_record("a", "make"), factory_record("b", "make")])
        # As soon as both are ready, not at the end of a budget far longer than the test's own
        # deadline: a wait that ran out its budget would fail here.
        ready = finishes(lambda: reconnector.wait(3600.0), within=60.0)
        assert set(ready) == {"a", "b"}
        assert reconnector.wait(1.0) == {}  # nothing is being collected any more


def test_late_connection_goes_to_on_ready_on_a_worker_thread(peer: Any, events: Events) -> None:
    with Reconnector(on_ready=events.on_ready, on_state=events.on_state) as reconnector:
        reconnector.start([factory_record("slow", "slow", seconds=0.4)])
        assert reconnector.wait(0.05) == {}
        wait_for(lambda: bool(events.ready), "an object reached on_ready")
        name, obj, thread = events.ready[0]
        assert (name, obj.label) == ("slow", "slow")
        assert thread.startswith("ipysession-connect-")
        assert thread != threading.current_thread().name
        assert reconnector.objects() == {"slow": obj}


def test_collect_false_delivers_everything_through_on_ready(peer: Any, events: Events) -> None:
    with Reconnector(on_ready=events.on_ready) as reconnector:
        reconnector.start([factory_record("x", "make")], collect=False)
        wait_for(lambda: len(events.ready) == 1, "one object reached on_ready")
        assert reconnector.wait(0.0) == {}


def test_retries_with_backoff_then_succeeds(peer: Any, events: Events) -> None:
    record = factory_record("flaky", "flaky", failures=2)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, attempts=3, backoff=0.05
    ) as r:
        r.start([record])
        ready = r.wait(5.0)
        assert set(ready) == {"flaky"}
        # The state callback runs on the worker after it hands the object over: wait for it.
        wait_for(
            lambda: events.states_of("flaky")[-1:] == [ConnectionState.CONNECTED],
            "the connected state reached on_state",
        )
    assert peer.CALLS["flaky"] == 3
    assert events.states_of("flaky") == [
        ConnectionState.CONNECTING,
        ConnectionState.RETRYING,
        ConnectionState.RETRYING,
        ConnectionState.CONNECTED,
    ]
    retry_messages = [m for n, s, m in events.states if s is ConnectionState.RETRYING]
    assert retry_messages[0].startswith(
        "attempt 1 failed: ipys_conn_peer:flaky raised ConnectionRefusedError: attempt 1 "
        "refused; next try in 0."
    )
    assert record.stats.successes == 1
    assert record.stats.failures == 0


def test_backoff_grows_exponentially_with_jitter() -> None:
    reconnector = Reconnector(backoff=1.0, max_backoff=5.0)
    try:
        assert reconnector.backoff == Backoff(base=1.0, cap=5.0, jitter=0.5)
        # Days of healing reach attempt 1024 and more: the delay stays at the cap.
        for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0), (5000, 5.0)]:
            delays = [reconnector.backoff.delay(failures) for _ in range(50)]
            assert all(0.5 * base <= d <= 1.5 * base for d in delays)
            assert len(set(delays)) > 1  # jitter
    finally:
        reconnector.close()


def test_unknown_backend_fails_without_retrying(events: Events) -> None:
    ghost = ConnectionRecord(name="ghost", kind="no-such-backend", params={})
    with Reconnector(on_state=events.on_state, attempts=5, backoff=1.0) as reconnector:
        reconnector.start([ghost])
        assert reconnector.wait(2.0) == {}
        assert reconnector.state("ghost") is ConnectionState.FAILED
        assert "No connection backend named 'no-such-backend'" in reconnector.snapshot()["ghost"][1]


def test_close_stops_retrying_and_closes_late_arrivals(peer: Any, events: Events) -> None:
    failing = factory_record("never", "flaky", failures=100)
    late = factory_record("late", "slow", seconds=0.3)
    reconnector = Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, attempts=50, backoff=0.1
    )
    reconnector.start([failing, late])
    wait_for(
        lambda: peer.CALLS.get("never", 0) >= 1 and "late" in peer.CALLS,
        "both connects have started",
    )
    reconnector.close()
    reconnector.close()  # safe twice
    calls = peer.CALLS["never"]
    count = len(events.states)
    # Every worker ends: the retry loop stops at close() instead of sleeping out its backoff.
    wait_for(lambda: not connect_threads("never", "late"), "the connect threads have ended")
    assert peer.CALLS["never"] <= calls + 1  # at most the attempt already under way
    assert len(events.states) == count
    assert events.ready == []
    assert peer.CLOSED == ["late"]  # arrived after close(): closed, never delivered
    assert reconnector.wait(1.0) == {}
    reconnector.start([failing])  # ignored after close
    reconnector.watch(failing, object())
    assert reconnector.state("never") is not ConnectionState.CONNECTED


def test_disconnect_and_forget(peer: Any, events: Events) -> None:
    with Reconnector(on_state=events.on_state) as reconnector:
        reconnector.start([factory_record("a", "make"), factory_record("b", "make")])
        ready = reconnector.wait(5.0)
        reconnector.disconnect("a")
        assert ready["a"].closed
        assert reconnector.state("a") is ConnectionState.DISCONNECTED
        assert events.states_of("a")[-1] is ConnectionState.DISCONNECTED
        reconnector.forget("b")
        assert ready["b"].closed
        assert reconnector.state("b") is None
        assert set(reconnector.states()) == {"a"}
        reconnector.disconnect("unknown")  # no error
        assert reconnector.ping("unknown") is False


def test_disconnect_cancels_a_connect_in_progress(peer: Any, events: Events) -> None:
    with Reconnector(on_ready=events.on_ready) as reconnector:
        reconnector.start([factory_record("slowpoke", "slow", seconds=0.3)])
        reconnector.disconnect("slowpoke")
        assert reconnector.wait(1.0) == {}
        wait_for(lambda: peer.CLOSED == ["slowpoke"], "the cancelled object was closed")
        assert events.ready == []
        assert reconnector.state("slowpoke") is ConnectionState.DISCONNECTED


def test_heartbeat_recovers_a_dead_object_with_a_fresh_one(peer: Any, events: Events) -> None:
    record = factory_record("svc", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, heartbeat=0.05, backoff=0.05, attempts=3
    ) as reconnector:
        reconnector.watch(record, obj)
        wait_for(lambda: obj.checks >= 2, "two heartbeats checked the object")
        assert reconnector.state("svc") is ConnectionState.CONNECTED
        obj.healthy = False
        wait_for(lambda: bool(events.ready), "an object reached on_ready")
        name, fresh, _ = events.ready[0]
        assert name == "svc"
        assert fresh is not obj
        assert fresh.is_alive()
        assert reconnector.objects() == {"svc": fresh}
        assert events.states_of("svc")[-2:] == [ConnectionState.RETRYING, ConnectionState.CONNECTED]
        assert not obj.closed  # the caller closes the old one, on its own thread
        assert record.stats.successes == 2


def test_heartbeat_keeps_an_object_that_answers_again(peer: Any, events: Events) -> None:
    record = factory_record("blip", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, heartbeat=0.05, backoff=0.4
    ) as reconnector:
        reconnector.watch(record, obj)
        obj.healthy = False
        wait_for(
            lambda: reconnector.state("blip") is ConnectionState.RETRYING, '"blip" is retrying'
        )
        obj.healthy = True
        wait_for(
            lambda: reconnector.state("blip") is ConnectionState.CONNECTED,
            '"blip" is connected again',
        )
        assert reconnector.snapshot()["blip"][1] == "answering again"
        assert reconnector.objects() == {"blip": obj}
        assert events.ready == []
        assert peer.CALLS["blip"] == 1  # no fresh connection was made


def test_heartbeat_recovery_heals_in_the_background_and_gives_up_only_when_told(
    peer: Any, events: Events
) -> None:
    record = factory_record("gone", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(
        on_state=events.on_state,
        heartbeat=0.05,
        backoff=0.02,
        max_backoff=0.05,
        attempts=2,
        give_up_after=0.5,
    ) as reconnector:
        reconnector.watch(record, obj)
        obj.healthy = False
        # Every fresh object is unhealthy too: the service is gone.
        peer.Thing.is_alive = lambda self: False
        # ...and connecting fails as well.
        record.params["callable"] = "ipys_conn_peer:refuse"
        record.secrets["password"] = SECRET
        wait_for(lambda: reconnector.state("gone") is ConnectionState.FAILED, '"gone" has failed')
        status = reconnector.status("gone")
        assert status is not None
        assert status.message.startswith("gave up after ")
        assert status.attempt > 2  # retried past the quick attempts before giving up
        assert record.stats.failures == 1  # one outage, counted once
        assert "bob:***" in (record.stats.last_error or "")
        assert SECRET not in reconnector.snapshot()["gone"][1]


def test_down_at_start_then_up_connects_by_itself(peer: Any, events: Events) -> None:
    """Past the quick attempts the record keeps retrying (capped backoff) and connects."""
    record = factory_record("late", "flaky", failures=6)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, attempts=2, backoff=0.01,
        max_backoff=0.05,
    ) as reconnector:  # fmt: skip
        reconnector.start([record], collect=False)
        wait_for(lambda: bool(events.ready), "the connection came by itself")
        assert reconnector.state("late") is ConnectionState.CONNECTED
        assert peer.CALLS["late"] == 7
        assert record.stats.failures == 1
        assert record.stats.successes == 1
        assert record.stats.last_error is None  # cleared by the success
        assert reconnector.status("late") == reconnector.status("late")
        assert reconnector.status("late").error == ""  # type: ignore[union-attr]


def test_refused_credentials_fail_at_once_with_the_advice_to_connect(
    tmp_path: Path, events: Events
) -> None:
    """SQLite says 'unable to open' for a missing directory; a refused password is the case
    that must not be retried: a factory that raises what PostgreSQL says stands for it."""
    (tmp_path / "authpeer.py").write_text(
        "def make(label):\n"
        "    raise RuntimeError('FATAL:  password authentication failed for user \"bob\"')\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        record = make_record("auth", "factory", "authpeer:make", {"kwargs": {"label": "x"}})
        with Reconnector(on_state=events.on_state, attempts=3, backoff=5.0) as reconnector:
            reconnector.start([record])
            assert finishes(lambda: reconnector.wait(3600.0), within=60.0) == {}
            status = reconnector.status("auth")
            assert status is not None
            assert status.state is ConnectionState.FAILED
            assert status.cause is FailureCause.REJECTED
            assert status.attempt == 0 or status.attempt == 1
            assert "%session connect auth SPEC" in advice("auth", status.cause)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("authpeer", None)


def test_retry_now_cuts_the_backoff_short(peer: Any, events: Events) -> None:
    record = factory_record("soon", "flaky", failures=1)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, attempts=1, backoff=3600.0
    ) as reconnector:
        reconnector.start([record], collect=False)
        wait_for(lambda: record.stats.failures == 1, "the first attempt failed")
        assert reconnector.state("soon") is ConnectionState.RETRYING
        assert reconnector.retry_now("soon")
        # Without retry_now the next try would come in about an hour.
        wait_for(lambda: bool(events.ready), "the retry came at once")
        assert reconnector.state("soon") is ConnectionState.CONNECTED
        assert not reconnector.retry_now("soon")  # nothing to hurry when connected


def test_ping_adopts_an_object_the_user_holds_once_it_answers(peer: Any, events: Events) -> None:
    """The server came back: the engine the user still holds works, so ping says so and the
    state is connected again (no fresh connection made)."""
    record = factory_record("held", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(on_state=events.on_state, attempts=1, backoff=3600.0) as reconnector:
        reconnector.watch(record, obj)
        obj.healthy = False
        assert not reconnector.ping("held", timeout=1.0)
        wait_for(
            lambda: reconnector.state("held") is ConnectionState.RETRYING, '"held" is retrying'
        )
        obj.healthy = True
        assert reconnector.ping("held", timeout=1.0, fallback=obj)
        assert reconnector.state("held") is ConnectionState.CONNECTED
        assert reconnector.objects() == {"held": obj}


def test_ping_checks_now_and_starts_recovery(peer: Any, events: Events) -> None:
    record = factory_record("p", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, backoff=0.05
    ) as reconnector:
        reconnector.watch(record, obj)
        assert reconnector.ping("p") is True
        obj.healthy = False
        assert reconnector.ping("p", timeout=1.0) is False
        wait_for(lambda: bool(events.ready), "an object reached on_ready")
        assert reconnector.state("p") is ConnectionState.CONNECTED


def test_failing_callbacks_are_logged_not_raised(
    peer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any) -> None:
        raise RuntimeError("callback bug")

    with Reconnector(on_ready=boom, on_state=boom) as reconnector:
        reconnector.start([factory_record("cb", "make")], collect=False)
        wait_for(lambda: reconnector.state("cb") is ConnectionState.CONNECTED, '"cb" is connected')
        wait_for(
            lambda: "on_ready callback failed" in caplog.text, "the failing on_ready was logged"
        )
    assert "on_state callback failed" in caplog.text


def test_restarting_a_live_connection_delivers_a_new_object(peer: Any, events: Events) -> None:
    record = factory_record("re", "make")
    with Reconnector(on_ready=events.on_ready) as reconnector:
        reconnector.start([record])
        first = reconnector.wait(5.0)["re"]
        reconnector.start([record], collect=False)  # %session reconnect NAME
        wait_for(lambda: bool(events.ready), "an object reached on_ready")
        assert events.ready[0][1] is not first
        assert not first.closed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"backoff": -1.0},
        {"timeout": 0.0},
        {"heartbeat": 0.0},
        {"give_up_after": 0.0},
    ],
)
def test_reconnector_validates_its_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        Reconnector(**kwargs)
