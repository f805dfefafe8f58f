"""Connection records, the connections table, the Reconnector, and the backend registry.

The peers are real: SQLite files, Jupyter connection info pointing at closed loopback ports, and
a client module written to tmp_path and imported through the factory backend.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ipysession.connections.backends import (
    available_backends,
    call_with_timeout,
    check_options,
    get_backend,
    redact_text,
)
from ipysession.connections.records import (
    ConnectionState,
    Reconnector,
    connect_record,
    describe_record,
    format_table,
    make_record,
    mru_order,
    record_failure,
    record_success,
    update_record,
)
from ipysession.errors import BackendNotFound, ConnectFailed, InvalidSpec
from ipysession.model import ConnectionRecord, ConnectionStats

SECRET = "hunter2-c0ffee"

PEER = textwrap.dedent(
    '''
    """Objects for the Reconnector tests, built through the factory backend."""
    import threading
    import time

    CALLS = {}
    CLOSED = []
    LOCK = threading.Lock()


    class Thing:
        def __init__(self, label):
            self.label = label
            self.healthy = True
            self.closed = False

        def is_alive(self):
            return self.healthy and not self.closed

        def close(self):
            self.closed = True
            CLOSED.append(self.label)


    def _count(label):
        with LOCK:
            CALLS[label] = CALLS.get(label, 0) + 1
            return CALLS[label]


    def make(label, password=None):
        _count(label)
        return Thing(label)


    def slow(label, seconds):
        _count(label)
        time.sleep(seconds)
        return Thing(label)


    def flaky(label, failures):
        n = _count(label)
        if n <= failures:
            raise ConnectionRefusedError(f"attempt {n} refused")
        return Thing(label)


    def refuse(label, password):
        _count(label)
        raise ConnectionRefusedError(f"login bob:{password} refused")
    '''
)


@pytest.fixture
def peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "ipys_conn_peer.py").write_text(PEER)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("ipys_conn_peer", None)
    import ipys_conn_peer

    yield ipys_conn_peer
    sys.modules.pop("ipys_conn_peer", None)


def factory_record(name: str, fn: str, **kwargs: Any) -> ConnectionRecord:
    secrets = {"password": kwargs.pop("password")} if "password" in kwargs else {}
    return make_record(
        name,
        "factory",
        f"ipys_conn_peer:{fn}",
        {"kwargs": {"label": name, **kwargs}, "secrets": secrets},
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def unreachable_kernel(name: str) -> ConnectionRecord:
    info = {
        "ip": "127.0.0.1",
        "key": SECRET,
        **{
            p: closed_port()
            for p in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        },
    }
    return make_record(name, "jupyter", info)


def sqlite_record(name: str, path: Path) -> ConnectionRecord:
    return make_record(name, "sqlalchemy", f"sqlite:///file:{path}?uri=true&token={SECRET}")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class Events:
    """Collects callbacks (they run on worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: list[tuple[str, Any, str]] = []
        self.states: list[tuple[str, ConnectionState, str]] = []

    def on_ready(self, name: str, obj: Any) -> None:
        with self.lock:
            self.ready.append((name, obj, threading.current_thread().name))

    def on_state(self, name: str, state: ConnectionState, message: str) -> None:
        with self.lock:
            self.states.append((name, state, message))

    def states_of(self, name: str) -> list[ConnectionState]:
        with self.lock:
            return [s for n, s, _ in self.states if n == name]


@pytest.fixture
def events() -> Events:
    return Events()


# --- records ------------------------------------------------------------------------------------


def test_connection_state_values() -> None:
    assert [s.value for s in ConnectionState] == [
        "connecting",
        "connected",
        "retrying",
        "failed",
        "disconnected",
    ]
    assert str(ConnectionState.FAILED) == "failed"
    assert f"{ConnectionState.RETRYING}" == "retrying"
    assert ConnectionState("connected") is ConnectionState.CONNECTED


def test_mru_order() -> None:
    def rec(name: str, last_used: float | None, created: float) -> ConnectionRecord:
        return ConnectionRecord(
            name=name, kind="factory", stats=ConnectionStats(created=created, last_used=last_used)
        )

    records = {
        r.name: r
        for r in [
            rec("old", 100.0, 1.0),
            rec("never-new", None, 50.0),
            rec("recent", 300.0, 2.0),
            rec("never-old", None, 10.0),
            rec("middle", 200.0, 3.0),
        ]
    }
    assert [r.name for r in mru_order(records)] == [
        "recent",
        "middle",
        "old",
        "never-new",
        "never-old",
    ]
    assert mru_order(list(records.values()))[0].name == "recent"


def test_record_success_and_failure() -> None:
    record = ConnectionRecord(name="db", kind="sqlalchemy", secrets={"password": SECRET})
    record_success(record, now=1000.0)
    record_success(record)
    assert record.stats.successes == 2
    assert record.stats.last_used is not None
    assert record.stats.last_used > 1000.0
    record_failure(record, f"login with {SECRET} refused")
    assert record.stats.failures == 1
    assert record.stats.last_error == "login with *** refused"


def test_make_and_update_record_keep_history(tmp_path: Path) -> None:
    record = make_record(
        "db", "sqlalchemy", f"sqlite:///{tmp_path / 'a.db'}", variable="engine", auto=False
    )
    assert (record.name, record.kind, record.variable, record.auto) == (
        "db",
        "sqlalchemy",
        "engine",
        False,
    )
    record_success(record, now=5.0)
    moved = update_record(record, f"sqlite:///{tmp_path / 'b.db'}")
    assert moved.params["url"].endswith("b.db")
    assert (moved.variable, moved.auto, moved.stats.successes, moved.stats.last_used) == (
        "engine",
        False,
        1,
        5.0,
    )
    assert moved.stats is not record.stats
    with pytest.raises(BackendNotFound):
        make_record("x", "no-such-kind", "spec")
    with pytest.raises(InvalidSpec):
        make_record("x", "sqlalchemy", None)


def test_connect_record_updates_history_and_redacts(
    peer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipysession")
    good = factory_record("good", "make", password=SECRET)
    obj = connect_record(good, timeout=5.0)
    assert obj.label == "good"
    assert good.stats.successes == 1
    bad = factory_record("bad", "refuse", password=SECRET)
    with pytest.raises(ConnectFailed) as info:
        connect_record(bad, timeout=5.0)
    assert SECRET not in str(info.value)
    assert "bob:***" in str(info.value)
    assert bad.stats.failures == 1
    assert "bob:***" in (bad.stats.last_error or "")
    assert SECRET not in caplog.text


def test_format_table(tmp_path: Path) -> None:
    db = sqlite_record("db", tmp_path / "t.db")
    record_success(db, now=time.mktime((2024, 5, 1, 12, 30, 0, 0, 0, -1)))
    kernel = unreachable_kernel("remote")
    record_failure(kernel, f"no heartbeat from key {SECRET}")
    ghost = ConnectionRecord(name="ghost", kind="not-installed", secrets={"token": SECRET})
    rows = format_table(
        {r.name: r for r in (kernel, db, ghost)},
        {"db": ConnectionState.CONNECTED, "remote": "failed"},
    )
    # Used ones first; then never-used ones, newest created first.
    assert [r["name"] for r in rows] == ["db", "ghost", "remote"]
    db_row = rows[0]
    assert db_row["target"].startswith("sqlite:///file")
    assert db_row["target"].endswith("t.db?uri=true&token=***")
    db_row["target"] = "checked"
    assert db_row == {
        "name": "db",
        "kind": "sqlalchemy",
        "target": "checked",
        "state": "connected",
        "variable": "db",
        "auto": True,
        "last_used": "2024-05-01 12:30:00",
        "successes": 1,
        "failures": 0,
        "last_error": "",
    }
    assert rows[2]["state"] == "failed"
    assert rows[2]["last_error"] == "no heartbeat from key ***"
    assert rows[2]["last_used"] == "never"
    assert rows[1]["target"] == "not-installed (backend not installed)"
    assert rows[1]["state"] == "disconnected"
    assert SECRET not in json.dumps(rows)


def test_describe_record_never_raises() -> None:
    broken = ConnectionRecord(name="b", kind="sqlalchemy", params={"url": 42})  # type: ignore[dict-item]
    assert isinstance(describe_record(broken), str)


# --- Reconnector --------------------------------------------------------------------------------


def test_three_targets_one_unreachable(
    tmp_path: Path, peer: Any, events: Events, caplog: pytest.LogCaptureFixture
) -> None:
    """wait(1.0) returns within about a second with two connected; the third ends failed."""
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
        started = time.monotonic()
        reconnector.start(records)
        ready = reconnector.wait(1.0)
        elapsed = time.monotonic() - started
        # It waits for the budget (one target is still pending), and returns: bounded, with
        # room for a loaded machine.
        assert 0.9 <= elapsed < 1.0 + 2.0, elapsed
        assert set(ready) == {"db", "cache"}
        assert ready["cache"].label == "cache"
        assert reconnector.state("remote") in (ConnectionState.CONNECTING, ConnectionState.RETRYING)
        assert set(reconnector.objects()) == {"db", "cache"}
        wait_for(lambda: reconnector.state("remote") is ConnectionState.FAILED)
        _, message = reconnector.snapshot()["remote"]
        assert "heartbeat" in message
        assert records["remote"].stats.failures == 1
        assert records["remote"].stats.last_error == message
        assert records["db"].stats.successes == 1
        assert events.ready == []  # the two ready ones were handed out by wait(), only there
        assert events.states_of("remote")[0] is ConnectionState.CONNECTING
        assert ConnectionState.RETRYING in events.states_of("remote")
        assert events.states_of("remote")[-1] is ConnectionState.FAILED
        assert events.states_of("db") == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
        for _, _, text in events.states:
            assert SECRET not in text
        assert SECRET not in caplog.text
        assert SECRET not in json.dumps(format_table(records, reconnector.states()))
    finally:
        reconnector.close(close_objects=True)
    assert reconnector.states()["db"] is ConnectionState.DISCONNECTED
    assert peer.CLOSED == ["cache"]


def test_wait_returns_at_once_when_all_are_ready(peer: Any) -> None:
    with Reconnector() as reconnector:
        reconnector.start([factory_record("a", "make"), factory_record("b", "make")])
        started = time.monotonic()
        ready = reconnector.wait(30.0)
        assert time.monotonic() - started < 10.0  # as soon as both are ready, not at 30 s
        assert set(ready) == {"a", "b"}
        assert reconnector.wait(1.0) == {}  # nothing is being collected any more


def test_late_connection_goes_to_on_ready_on_a_worker_thread(peer: Any, events: Events) -> None:
    with Reconnector(on_ready=events.on_ready, on_state=events.on_state) as reconnector:
        reconnector.start([factory_record("slow", "slow", seconds=0.4)])
        assert reconnector.wait(0.05) == {}
        wait_for(lambda: bool(events.ready))
        name, obj, thread = events.ready[0]
        assert (name, obj.label) == ("slow", "slow")
        assert thread.startswith("ipysession-connect-")
        assert thread != threading.current_thread().name
        assert reconnector.objects() == {"slow": obj}


def test_collect_false_delivers_everything_through_on_ready(peer: Any, events: Events) -> None:
    with Reconnector(on_ready=events.on_ready) as reconnector:
        reconnector.start([factory_record("x", "make")], collect=False)
        wait_for(lambda: len(events.ready) == 1)
        assert reconnector.wait(0.0) == {}


def test_retries_with_backoff_then_succeeds(peer: Any, events: Events) -> None:
    record = factory_record("flaky", "flaky", failures=2)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, attempts=3, backoff=0.05
    ) as r:
        r.start([record])
        ready = r.wait(5.0)
        assert set(ready) == {"flaky"}
    assert peer.CALLS["flaky"] == 3
    assert events.states_of("flaky") == [
        ConnectionState.CONNECTING,
        ConnectionState.RETRYING,
        ConnectionState.RETRYING,
        ConnectionState.CONNECTED,
    ]
    retry_messages = [m for n, s, m in events.states if s is ConnectionState.RETRYING]
    assert retry_messages[0].startswith(
        "attempt 1 of 3 failed: ipys_conn_peer:flaky raised ConnectionRefusedError: attempt 1 "
        "refused; retrying in 0."
    )
    assert "retrying in" in retry_messages[0]
    assert record.stats.successes == 1
    assert record.stats.failures == 0


def test_backoff_grows_exponentially_with_jitter() -> None:
    reconnector = Reconnector(backoff=1.0, max_backoff=5.0)
    try:
        for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
            delays = [reconnector._delay(failures) for _ in range(50)]
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
    wait_for(lambda: peer.CALLS.get("never", 0) >= 1 and "late" in peer.CALLS)
    reconnector.close()
    reconnector.close()  # safe twice
    calls = peer.CALLS["never"]
    count = len(events.states)
    time.sleep(0.6)
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
        wait_for(lambda: peer.CLOSED == ["slowpoke"])
        assert events.ready == []
        assert reconnector.state("slowpoke") is ConnectionState.DISCONNECTED


def test_heartbeat_recovers_a_dead_object_with_a_fresh_one(peer: Any, events: Events) -> None:
    record = factory_record("svc", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(
        on_ready=events.on_ready, on_state=events.on_state, heartbeat=0.05, backoff=0.05, attempts=3
    ) as reconnector:
        reconnector.watch(record, obj)
        time.sleep(0.2)
        assert reconnector.state("svc") is ConnectionState.CONNECTED
        obj.healthy = False
        wait_for(lambda: bool(events.ready))
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
        wait_for(lambda: reconnector.state("blip") is ConnectionState.RETRYING)
        obj.healthy = True
        wait_for(lambda: reconnector.state("blip") is ConnectionState.CONNECTED)
        assert reconnector.snapshot()["blip"][1] == "answering again"
        assert reconnector.objects() == {"blip": obj}
        assert events.ready == []
        assert peer.CALLS["blip"] == 1  # no fresh connection was made


def test_heartbeat_gives_up_after_the_attempts(peer: Any, events: Events) -> None:
    record = factory_record("gone", "make")
    obj = connect_record(record, timeout=5.0)
    with Reconnector(
        on_state=events.on_state, heartbeat=0.05, backoff=0.02, attempts=2
    ) as reconnector:
        reconnector.watch(record, obj)
        obj.healthy = False
        # Every fresh object is unhealthy too: the service is gone.
        peer.Thing.is_alive = lambda self: False
        # ...and connecting fails as well.
        record.params["callable"] = "ipys_conn_peer:refuse"
        record.secrets["password"] = SECRET
        wait_for(lambda: reconnector.state("gone") is ConnectionState.FAILED)
        assert record.stats.failures == 1
        assert "bob:***" in (record.stats.last_error or "")
        assert SECRET not in reconnector.snapshot()["gone"][1]


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
        wait_for(lambda: bool(events.ready))
        assert reconnector.state("p") is ConnectionState.CONNECTED


def test_failing_callbacks_are_logged_not_raised(
    peer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any) -> None:
        raise RuntimeError("callback bug")

    with Reconnector(on_ready=boom, on_state=boom) as reconnector:
        reconnector.start([factory_record("cb", "make")], collect=False)
        wait_for(lambda: reconnector.state("cb") is ConnectionState.CONNECTED)
        wait_for(lambda: "on_ready callback failed" in caplog.text)
    assert "on_state callback failed" in caplog.text


def test_restarting_a_live_connection_delivers_a_new_object(peer: Any, events: Events) -> None:
    record = factory_record("re", "make")
    with Reconnector(on_ready=events.on_ready) as reconnector:
        reconnector.start([record])
        first = reconnector.wait(5.0)["re"]
        reconnector.start([record], collect=False)  # %session reconnect NAME
        wait_for(lambda: bool(events.ready))
        assert events.ready[0][1] is not first
        assert not first.closed


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"backoff": -1.0}, {"timeout": 0.0}, {"heartbeat": 0.0}],
)
def test_reconnector_validates_its_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        Reconnector(**kwargs)


# --- backends.base: redaction, helpers, registry --------------------------------------------------


def test_redact_text() -> None:
    secrets = {"password": "p@ss word", "query": {"token": ["t1-abc", "t2-def"]}, "port": 54321}
    text = (
        "postgresql://u:p%40ss%20word@h/db?token=t1-abc&token=t2-def port 54321 "
        "'p@ss word' p%40ss+word"
    )
    assert redact_text(text, secrets) == (
        "postgresql://u:***@h/db?token=***&token=*** port *** '***' ***"
    )
    assert (
        redact_text("a secret and a secret-longer", ["secret", "secret-longer"])
        == "a *** and a ***"
    )
    assert redact_text("nothing here", None) == "nothing here"
    assert redact_text("keep True and empty", {"flag": True, "empty": "", "none": None}) == (
        "keep True and empty"
    )
    assert redact_text("bytes key", {"key": b"key"}) == "bytes ***"


def test_call_with_timeout() -> None:
    assert call_with_timeout(lambda: 7, 1.0) == 7
    with pytest.raises(KeyError):
        call_with_timeout(lambda: {}["x"], 1.0)
    late: list[str] = []
    done = threading.Event()

    def slow() -> str:
        time.sleep(1.5)
        return "late value"

    def on_late(value: str) -> None:
        late.append(value)
        done.set()

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        call_with_timeout(slow, 0.05, on_late=on_late)
    assert time.monotonic() - started < 1.0  # the timeout, not the 1.5 s call, ended it
    assert done.wait(10.0)
    assert late == ["late value"]


def test_check_options() -> None:
    check_options("x", {"secrets": {}, "a": 1}, ("a",))
    with pytest.raises(InvalidSpec, match="does not understand the option"):
        check_options("x", {"b": 1}, ("a",))


def test_builtin_backends() -> None:
    assert {"factory", "jupyter", "sqlalchemy"} <= set(available_backends())
    assert get_backend("jupyter") is get_backend("jupyter")
    assert get_backend("sqlalchemy").kind == "sqlalchemy"


def test_unknown_backend_names_the_installed_ones() -> None:
    with pytest.raises(BackendNotFound) as info:
        get_backend("mongodb")
    message = str(info.value)
    assert "No connection backend named 'mongodb'" in message
    assert "factory, jupyter, sqlalchemy" in message
    assert "ipysession.backends" in message


PLUGIN = textwrap.dedent(
    """
    class MemoryBackend:
        kind = "ipys-test-memory"

        def split_spec(self, spec, options):
            return {"name": spec}, dict(options.get("secrets") or {})

        def connect(self, params, secrets, *, timeout):
            return {"name": params["name"]}

        def is_alive(self, obj, *, timeout):
            return True

        def close(self, obj):
            pass

        def describe(self, params, secrets):
            return "memory " + params["name"]


    class NotABackend:
        kind = "nope"


    class NeedsMissing(MemoryBackend):
        requires = ("ipys_module_that_is_not_installed",)
    """
)


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution declaring entry points in the ipysession.backends group."""
    (tmp_path / "ipys_test_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "ipys_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ipys-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ipysession.backends]\n"
        "ipys-test-memory = ipys_test_plugin:MemoryBackend\n"
        "ipys-test-broken = ipys_module_that_does_not_exist:Backend\n"
        "ipys-test-notabackend = ipys_test_plugin:NotABackend\n"
        "ipys-test-needsmissing = ipys_test_plugin:NeedsMissing\n"
        "jupyter = ipys_test_plugin:MemoryBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("plugin_dist")
def test_third_party_backends_through_entry_points() -> None:
    memory = get_backend("ipys-test-memory")
    assert type(memory).__name__ == "MemoryBackend"
    record = make_record("m", "ipys-test-memory", "scratch", {"secrets": {"k": SECRET}})
    assert describe_record(record) == "memory scratch"
    assert connect_record(record, timeout=1.0) == {"name": "scratch"}
    kinds = available_backends()
    assert "ipys-test-memory" in kinds
    assert "ipys-test-broken" not in kinds
    assert "ipys-test-notabackend" not in kinds
    assert "ipys-test-needsmissing" not in kinds
    with pytest.raises(BackendNotFound, match="failed to load"):
        get_backend("ipys-test-broken")
    with pytest.raises(BackendNotFound, match="does not implement the Backend protocol"):
        get_backend("ipys-test-notabackend")
    with pytest.raises(BackendNotFound, match="needs ipys_module_that_is_not_installed"):
        get_backend("ipys-test-needsmissing")
    # A plugin cannot take over a built-in kind.
    assert type(get_backend("jupyter")).__name__ == "JupyterBackend"
