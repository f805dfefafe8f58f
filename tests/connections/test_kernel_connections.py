"""Connections survive a restart of the local kernel: a real remote kernel and a real database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager, start_new_kernel

from tests.builders import wait_for
from tests.kernels import Kernel, start_kernel

pytestmark = pytest.mark.kernel

SECRET = "tok-9f1b2c3d4e5f-SECRET"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[KernelManager]:
    """A second, plain ipykernel: the remote backend the local kernel connects to."""
    km, kc = start_new_kernel(kernel_name="python3")
    kc.stop_channels()
    try:
        yield km
    finally:
        km.shutdown_kernel(now=True)


def session_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (home / "data").rglob("*") if p.is_file())


def test_remote_kernel_and_sqlite_come_back(tmp_path: Path, remote: KernelManager) -> None:
    db = tmp_path / "shop.db"
    with start_kernel(tmp_path, "c.SessionManager.autosave_interval = 0.05") as kernel:
        kernel.run(f"%session connect rk jupyter {remote.connection_file}")
        kernel.run("rk.execute_interactive('remote_value = 6 * 7', timeout=20)")
        kernel.run(f"%session connect db sqlalchemy 'sqlite:///{db}?token={SECRET}'")
        kernel.run(
            "with db.begin() as c:\n"
            "    c.exec_driver_sql('create table t (x integer)')\n"
            "    c.exec_driver_sql('insert into t values (7)')"
        )
        listing = kernel.run("%session connections").text
        assert "rk" in listing
        assert "db" in listing
        assert "connected" in listing
        assert SECRET not in listing
        kernel.restart()
        first = kernel.run(
            "from jupyter_client import BlockingKernelClient\n"
            "print(isinstance(rk, BlockingKernelClient), type(db).__name__)"
        )
        assert "True Engine" in first.stdout
        assert "connections: rk (connected), db (connected)" in first.text
        out = kernel.run("rk.execute_interactive('print(remote_value)', timeout=20)").stdout
        assert "42" in out
        assert kernel.value("db.connect().exec_driver_sql('select x from t').scalar()") == 7
        status = kernel.run("%session status").text
        outputs = "\n".join([first.text, listing, status, kernel.run("%session history").text])
        assert SECRET not in outputs
    assert SECRET.encode() not in session_bytes(tmp_path)
    shown = subprocess.run(
        [sys.executable, "-m", "ipysession", "show", "--json", _only_session(tmp_path)],
        env=_cli_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert SECRET not in shown.stdout + shown.stderr
    assert "db" in json.dumps(json.loads(shown.stdout))


def test_unreachable_target_is_retried_without_holding_up_start(
    tmp_path: Path, remote: KernelManager
) -> None:
    info = Path(remote.connection_file)
    copy = tmp_path / "remote.json"
    copy.write_text(info.read_text())
    config = [
        "c.SessionManager.autosave_interval = 0.05",
        "c.SessionManager.reconnect_wait = 1.0",
        "c.SessionManager.connect_timeout = 0.5",
        "c.SessionManager.reconnect_attempts = 2",
    ]
    with start_kernel(tmp_path, *config) as kernel:
        kernel.run(f"%session connect rk jupyter {copy}")
        remote.shutdown_kernel(now=True)  # the target is gone: its ports are closed
        kernel.restart()
        # The first cell runs though "rk" can never come back: start is not held up by it.
        assert kernel.run("x = 41 + 1").ok
        assert kernel.value("x") == 42
        # Reported as what it is: retrying in the background, not given up.
        wait_for(
            lambda: "rk: retrying" in kernel.run("%session status").text,
            '"rk" is reported retrying',
        )
        assert not kernel.value("'rk' in globals()")
        detail = kernel.run("%session connections rk").text
        assert "last error (" in detail
        assert "heartbeat" in detail


def status_of(kernel: Kernel) -> str:
    return kernel.run("%session status").text


def test_remote_restarted_with_new_ports_is_updated(tmp_path: Path) -> None:
    first_km, kc = start_new_kernel(kernel_name="python3")
    kc.stop_channels()
    second_km = None
    config = ["c.SessionManager.connect_timeout = 1.0", "c.SessionManager.reconnect_attempts = 1"]
    try:
        with start_kernel(tmp_path, *config) as kernel:
            kernel.run(f"%session connect rk jupyter {first_km.connection_file}")
            first_km.shutdown_kernel(now=True)
            second_km, kc2 = start_new_kernel(kernel_name="python3")
            kc2.stop_channels()
            # Reconnecting happens in the background: wait for its outcome, however slow the
            # machine, instead of reading the state at the moment the command returns.
            kernel.run("%session reconnect rk")
            wait_for(
                lambda: re.search(r"^\s*rk: (failed|retrying) ", status_of(kernel), re.M),
                '"rk" is reported failed or retrying',
            )
            # KIND left out: the record's kind is kept (the path was once taken as the KIND).
            kernel.run(f"%session connect rk {second_km.connection_file}")
            out = kernel.run("rk.execute_interactive('print(1 + 1)', timeout=20)").stdout
            assert "2" in out
            assert "connected" in kernel.run("%session connections").text
    finally:
        first_km.shutdown_kernel(now=True) if first_km.has_kernel else None
        if second_km is not None:
            second_km.shutdown_kernel(now=True)


def _cli_env(home: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "IPYSESSION_DIR": str(home / "data"),
        "IPYSESSION_CONFIG_DIR": str(home / "config"),
    }


def _only_session(home: Path) -> str:
    listing = subprocess.run(
        [sys.executable, "-m", "ipysession", "list", "--json"],
        env=_cli_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    sessions = json.loads(listing.stdout)
    rows = sessions["sessions"] if isinstance(sessions, dict) else sessions
    assert len(rows) == 1, rows
    return str(rows[0]["name"])
