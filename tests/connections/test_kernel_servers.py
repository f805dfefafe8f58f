"""Connections to real servers survive a restart of a real kernel: PostgreSQL (sqlalchemy and
jupysql's ``%sql``), a Dask cluster, a kernel on a Jupyter Server, and a remote kernel replaced
under its connection file. No password or token shows in files, outputs or history."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.builders import wait_for
from tests.kernels import CellResult, Kernel, run_cli, start_kernel, wait_for_autosave
from tests.servers.dask import DaskCluster
from tests.servers.fixtures import JUPYTER_TOKEN, PG_PASSWORD
from tests.servers.jupyter import JupyterServer
from tests.servers.postgres import PostgresServer

pytestmark = pytest.mark.kernel

CONFIG = ("c.SessionManager.autosave_interval = 0.05", "c.SessionManager.connect_timeout = 30.0")
SECRETS = (PG_PASSWORD, JUPYTER_TOKEN)


def session_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (home / "data").rglob("*") if p.is_file())


def bound(kernel: Kernel, *names: str) -> None:
    """Wait until every name is bound: connections come back in the background."""
    wait_for(
        lambda: kernel.value(f"all(n in globals() for n in {list(names)!r})"),
        f"{', '.join(names)} are bound after the restart",
        timeout=120.0,
    )


def assert_hidden(where: str, text: str | bytes) -> None:
    for secret in SECRETS:
        needle: Any = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a secret appears in {where}"


def test_every_server_connection_comes_back_bound_after_a_restart(
    tmp_path: Path,
    postgres: PostgresServer,
    dask_cluster: DaskCluster,
    jupyter_server: JupyterServer,
) -> None:
    pg = postgres.info
    env = {"IPYS_TEST_PG": PG_PASSWORD, "IPYS_TEST_TOKEN": JUPYTER_TOKEN}
    seen: list[CellResult] = []
    kernel_id = None
    with start_kernel(tmp_path, *CONFIG, env=env) as kernel:

        def cell(code: str) -> CellResult:
            result = kernel.run(code)
            seen.append(result)
            return result

        pg_url = pg.url(password=False)
        cell(f"%session connect db sqlalchemy {pg_url} --secret-env password=IPYS_TEST_PG")
        cell("%load_ext sql")
        # Typed inline, as users do: split out, encrypted, and redacted from the history.
        cell(f"%session connect shop jupysql {pg.url()}")
        assert cell("%sql SELECT 41 + 1 AS answer").text.count("42") == 1
        cell(f"%session connect cluster dask {dask_cluster.address}")
        cell("fut = cluster.submit(sum, [1, 2]); assert fut.result(timeout=60) == 3")
        cell(
            f"%session connect rk jupyter_server {jupyter_server.url} --kwarg kernel_name=python3 "
            "--secret-env token=IPYS_TEST_TOKEN"
        )
        cell("rk.execute_interactive('remote_value = 6 * 7', timeout=60)")
        kernel_id = kernel.value("rk.kernel_id")
        listing = cell("%session connections").text
        for name in ("db", "shop", "cluster", "rk"):
            assert re.search(rf"^\s*{name}\s.*connected", listing, re.M), listing
        wait_for_autosave(kernel)

        kernel.restart()
        # A cell that names none of them runs at once.
        assert cell("x = 1").ok
        bound(kernel, "db", "shop", "cluster", "rk")
        assert (
            kernel.value("db.connect().exec_driver_sql('select current_user').scalar()") == "tester"
        )
        # %sql works right away: the connection is back in jupysql's manager, no URL retyped.
        assert "7" in cell("%sql SELECT 3 + 4 AS seven").text
        assert kernel.value("cluster.submit(sum, [4, 5]).result(timeout=60)") == 9
        out = cell("rk.execute_interactive('print(remote_value)', timeout=60)").stdout
        assert "42" in out  # the same kernel, found again by its id
        assert kernel.value("rk.kernel_id") == kernel_id
        assert kernel.value("rk.started") is False
        # The future was not saved: it is named, with what to do instead.
        assert not kernel.value("'fut' in globals()")
        status = cell("%session status").text
        assert re.search(r"fut: .*a Dask future .*publish_dataset", status), status
        history = cell("%session history").text
        assert "connect shop jupysql" in history
        texts = [r.text + r.stderr for r in seen] + [history]
        assert_hidden("an output or the history", "\n".join(texts))
        shown = run_cli(
            tmp_path,
            "show",
            "--json",
            kernel.value(
                "__import__('ipysession.extension').extension.get_manager(get_ipython()).name"
            ),
        )
        assert shown.returncode == 0, shown.stderr
        assert_hidden("ipysession show", shown.stdout + shown.stderr)
        kernel.run("rk.close(); cluster.close()")
    assert_hidden("the session files", session_bytes(tmp_path))
    if kernel_id:
        jupyter_server.shutdown_kernel(kernel_id)


def test_postgres_restarted_while_idle_next_use_works_and_says_connected(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    with start_kernel(tmp_path, *CONFIG, env={"IPYS_TEST_PG": PG_PASSWORD}) as kernel:
        kernel.run(
            f"%session connect db sqlalchemy {postgres.info.url(password=False)} "
            "--secret-env password=IPYS_TEST_PG"
        )
        with postgres.down():
            pass
        # The pool's idle connection died with the server; the pre-ping replaces it.
        assert kernel.value("db.connect().exec_driver_sql('select 5').scalar()") == 5
        assert "db: answers" in kernel.run("%session ping db").text
        wait_for(
            lambda: re.search(
                r"^\s*db\s.*connected", kernel.run("%session connections").text, re.M
            ),
            '"db" is listed connected',
        )


def test_a_replaced_remote_kernel_is_picked_up_from_its_file_after_a_restart(
    tmp_path: Path,
) -> None:
    from jupyter_client.manager import KernelManager

    path = tmp_path / "kernel-remote.json"

    def remote() -> KernelManager:
        path.unlink(missing_ok=True)
        km = KernelManager(kernel_name="python3", connection_file=str(path))
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        kc.stop_channels()
        return km

    first = remote()
    second = None
    try:
        with start_kernel(tmp_path, *CONFIG) as kernel:
            kernel.run(f"%session connect rk jupyter {path}")
            kernel.run("rk.execute_interactive('which = \"first\"', timeout=60)")
            old_port = json.loads(path.read_text())["shell_port"]
            wait_for_autosave(kernel)
            first.shutdown_kernel(now=True)
            second = remote()  # new ports and a new key, in the same file
            assert json.loads(path.read_text())["shell_port"] != old_port
            kernel.restart()
            bound(kernel, "rk")
            kernel.run("rk.execute_interactive('which = \"second\"', timeout=60)")
            out = kernel.run("rk.execute_interactive('print(which)', timeout=60)").stdout
            assert "second" in out
            key = json.loads(path.read_text())["key"]
            assert key not in kernel.run("%session connections").text
    finally:
        if first.has_kernel:
            first.shutdown_kernel(now=True)
        if second is not None:
            second.shutdown_kernel(now=True)


def test_a_connection_made_with_sql_itself_comes_back_into_sql(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """``%sql URL --alias warehouse``: no `%session connect` at all, and it is restored."""
    seen: list[CellResult] = []
    with start_kernel(tmp_path, *CONFIG) as kernel:

        def cell(code: str) -> CellResult:
            result = kernel.run(code)
            seen.append(result)
            return result

        cell("%load_ext sql")
        kept = cell(f"%sql {postgres.info.url()} --alias warehouse")
        # Nothing of ipysession's lands under the %sql cell, which did not ask for it.
        assert "ipysession" not in kept.text
        assert "42" in cell("%sql SELECT 40 + 2 AS answer").text
        listing = cell("%session connections").text
        assert re.search(r"^\s*warehouse\s+jupysql\s.*connected", listing, re.M), listing
        wait_for_autosave(kernel)
        kernel.restart()
        bound(kernel, "warehouse")
        assert "7" in cell("%sql SELECT 3 + 4 AS seven").text
        listing = cell("%session connections").text
        assert re.search(r"^\s*warehouse\s+jupysql\s.*connected", listing, re.M), listing
        history = cell("%session history").text
        assert "--alias warehouse" in history
        assert_hidden("an output or the history", "\n".join(r.text + r.stderr for r in seen))
        assert_hidden("the history", history)
    assert_hidden("the session files", session_bytes(tmp_path))


def test_dask_scheduler_restarted_while_idle_is_found_dead_then_reconnected(
    tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    with start_kernel(tmp_path, *CONFIG) as kernel:
        kernel.run(f"%session connect cluster dask {dask_cluster.address}")
        assert kernel.value("cluster.submit(sum, [1, 2]).result(timeout=60)") == 3
        with dask_cluster.down():
            # The Client still says "running" here; the scheduler itself does not answer.
            assert "cluster: no answer" in kernel.run("%session ping cluster").text
        # The failed ping started a reconnect; it gets through once the scheduler is back.
        wait_for(
            lambda: "cluster: answers" in kernel.run("%session ping cluster").text,
            '"cluster" answers again',
            timeout=180.0,
        )
        assert kernel.value("cluster.submit(sum, [4, 5]).result(timeout=60)") == 9
        listing = kernel.run("%session connections").text
        assert re.search(r"^\s*cluster\s.*connected", listing, re.M), listing
        kernel.run("cluster.close()")


def test_postgres_down_at_kernel_start_then_up_is_bound_by_itself(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    config = (*CONFIG, "c.SessionManager.reconnect_attempts = 1000")
    with start_kernel(tmp_path, *config, env={"IPYS_TEST_PG": PG_PASSWORD}) as kernel:
        kernel.run(
            f"%session connect db sqlalchemy {postgres.info.url(password=False)} "
            "--secret-env password=IPYS_TEST_PG"
        )
        wait_for_autosave(kernel)
        with postgres.down():
            kernel.restart()
            assert kernel.run("x = 1").ok  # the kernel starts; nothing waits for the database
            assert not kernel.value("'db' in globals()")
        # No user action: the background reconnection binds it once PostgreSQL is back.
        bound(kernel, "db")
        assert kernel.value("db.connect().exec_driver_sql('select 6 * 7').scalar()") == 42
        text = kernel.run("%session connections").text
        assert re.search(r"^\s*db\s.*connected", text, re.M), text
        assert_hidden("the connections table", text)
