"""Real peers for the connection tests, and what they share.

The peers are real: SQLite files, Jupyter connection info pointing at closed loopback ports, and
a client module (:data:`PEER`) written to ``tmp_path`` and imported through the factory backend.
The ``peer`` and ``events`` fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import socket
import textwrap
import threading
from pathlib import Path
from typing import Any

from ipysession.connections.reconnector import ConnectionState
from ipysession.connections.records import make_record
from ipysession.model import ConnectionRecord

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
            self.checks = 0

        def is_alive(self):
            self.checks += 1
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


    def make_with_secrets(label, **secrets):
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
