"""Connections heal, against a real service the test starts and stops (a TCP server process on
127.0.0.1 that the factory backend connects to), in real kernels:

- down when the kernel starts, then up: bound by itself, no user action; a cell that names no
  connection never waits meanwhile;
- restarted while idle: the next use works and the state says connected;
- a cell that names a connection still on its way waits for it (one line in its output) and runs;
- the password is in no file, output or log line.
"""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import wait_for
from tests.connections.service import CLIENT, Service, free_port
from tests.kernels import FAST_AUTOSAVE, Kernel, start_kernel, wait_for_autosave

pytestmark = pytest.mark.kernel

PASSWORD = "svc-pw-7d41f0c2e9"

CONFIG = [
    FAST_AUTOSAVE,
    "c.SessionManager.reconnect_attempts = 1",
    "c.SessionManager.reconnect_backoff = 0.1",
    "c.SessionManager.reconnect_max_interval = 0.5",
    "c.SessionManager.connect_timeout = 5.0",
    "c.SessionManager.heartbeat_interval = 0.5",
    # Far longer than any kernel.run deadline: a cell that waited when it should not would
    # time out the test instead of passing by luck.
    "c.SessionManager.connection_wait = 300.0",
]


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service(free_port(), PASSWORD)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def connect_line(port: int) -> str:
    return (
        "%session connect svc factory tcpsvc:connect --kwarg host='127.0.0.1' "
        f"--kwarg port={port} --secret-env password=SVC_PW"
    )


def state_of(kernel: Kernel, name: str) -> str:
    match = re.search(rf"^\s*{name}: (\w+)", kernel.run("%session status").text, re.M)
    return match.group(1) if match else "?"


def everything_written(home: Path) -> str:
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()
    )


def test_down_at_start_then_up_is_bound_by_itself(tmp_path: Path, service: Service) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "tcpsvc.py").write_text(CLIENT)
    outputs = []
    with start_kernel(tmp_path, *CONFIG, env={"SVC_PW": PASSWORD}) as kernel:
        outputs.append(kernel.run(connect_line(service.port)).text)
        assert "ECHO hello" in kernel.run("print(svc.ask('hello'))").stdout
        wait_for_autosave(kernel)
        service.stop()
        kernel.restart()
        # Names no connection: runs at once (a wait would outlast this cell's deadline).
        assert kernel.run("x = 40 + 2", timeout=120).ok
        wait_for(lambda: state_of(kernel, "svc") == "retrying", "svc says retrying")
        detail = kernel.run("%session connections svc").text
        outputs.append(detail)
        assert "last error (" in detail
        assert "%session reconnect svc" in detail
        assert not kernel.value("'svc' in globals()")
        service.start()
        # No user action: the background retry binds it at a cell boundary.
        wait_for(lambda: kernel.value("'svc' in globals()"), "svc was bound by itself")
        assert state_of(kernel, "svc") == "connected"
        assert "ECHO again" in kernel.run("print(svc.ask('again'))").stdout
        listing = kernel.run("%session connections").text
        outputs.append(listing)
        assert re.search(r"svc .*connected", listing)
    written = everything_written(tmp_path)
    assert "Connection svc" in "".join(
        p.read_text() for p in (tmp_path / "logs").glob("ipysession.log*")
    )
    assert PASSWORD not in written  # session files, logs, history: nothing holds it
    assert PASSWORD not in "\n".join(outputs)


def test_restarted_while_idle_then_a_cell_that_names_it_waits_and_runs(
    tmp_path: Path, service: Service
) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "tcpsvc.py").write_text(CLIENT)
    with start_kernel(tmp_path, *CONFIG, env={"SVC_PW": PASSWORD}) as kernel:
        kernel.run(connect_line(service.port))
        # The service restarts while the kernel is idle: the next use works...
        service.stop()
        service.start()
        assert "ECHO after" in kernel.run("print(svc.ask('after'))", timeout=120).stdout
        # ...and the state says connected (the heartbeat may have seen the outage meanwhile).
        wait_for(lambda: state_of(kernel, "svc") == "connected", "svc says connected")
        assert kernel.run("%session ping svc").text.count("answers") == 1
        wait_for_autosave(kernel)

        service.stop()
        kernel.restart()
        wait_for(lambda: state_of(kernel, "svc") == "retrying", "svc says retrying")
        # A cell that names svc while it is on its way: it waits, its line says so, and once
        # the service is back it runs.
        kc = kernel.client
        msg_id = kc.execute("print(svc.ask('waited'))", store_history=True)
        seen = _first_display(kernel, msg_id, timeout=120)
        assert "waiting for svc: retrying, attempt" in seen
        service.start()
        reply = _until_idle(kernel, msg_id, timeout=120)
        assert "ECHO waited" in reply
        assert state_of(kernel, "svc") == "connected"
    assert PASSWORD not in everything_written(tmp_path)


def test_a_cell_whose_wait_runs_out_fails_with_connection_not_ready(
    tmp_path: Path, service: Service
) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "tcpsvc.py").write_text(CLIENT)
    config = [*CONFIG, "c.SessionManager.connection_wait = 0.5"]
    with start_kernel(tmp_path, *config, env={"SVC_PW": PASSWORD}) as kernel:
        kernel.run(connect_line(service.port))
        wait_for_autosave(kernel)
        service.stop()
        kernel.restart()
        result = kernel.run("ran = True\nsvc.ask('x')", timeout=120, allow_error=True)
        assert result.error is not None
        assert result.error["ename"] == "ConnectionNotReady"
        message = result.error["evalue"]
        assert "Connection 'svc' (`svc`) is not ready after" in message
        assert "last error" in message
        assert "%session reconnect svc" in message
        assert PASSWORD not in message
        assert not kernel.value("'ran' in globals()")  # none of the cell ran


def _first_display(kernel: Kernel, msg_id: str, *, timeout: float) -> str:
    """The text of the first display of cell ``msg_id`` (the cell is still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kernel.client.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] in ("display_data", "update_display_data"):
            return str(msg["content"]["data"].get("text/plain", ""))
    raise AssertionError("the waiting cell showed no line")


def _until_idle(kernel: Kernel, msg_id: str, *, timeout: float) -> str:
    out = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kernel.client.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out += msg["content"]["text"]
        elif msg["msg_type"] == "error":
            raise AssertionError(f"cell failed: {msg['content']['evalue']}")
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            kernel.client.get_shell_msg(timeout=timeout)
            return out
    raise AssertionError("the waiting cell did not finish")
