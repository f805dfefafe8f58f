"""A ``%sql``/``%%sql`` cell run right after a restart, while its jupysql connection is still on
its way, waits for it and runs, in a real kernel with jupysql against SQLite and against a real
PostgreSQL that is down during the restart (issue 13).

The connection is made pending for real: the database's directory is moved away before the
restart (SQLite then cannot open the file, so the background connect fails and retries) and
moved back while the cell waits. ``connection_wait`` is far longer than any deadline here: a cell
that waited for a connection it does not need would time the test out instead of passing.
"""

from __future__ import annotations

import queue
import re
import time
from pathlib import Path

import pytest

from tests.builders import wait_for
from tests.kernels import FAST_AUTOSAVE, Kernel, start_kernel, wait_for_autosave
from tests.servers.fixtures import PG_PASSWORD
from tests.servers.postgres import PostgresServer

pytestmark = pytest.mark.kernel

CONFIG = [
    FAST_AUTOSAVE,
    "c.SessionManager.reconnect_attempts = 1",
    "c.SessionManager.reconnect_backoff = 0.1",
    "c.SessionManager.reconnect_max_interval = 0.5",
    "c.SessionManager.connect_timeout = 5.0",
    "c.SessionManager.connection_wait = 300.0",
]


def state_of(kernel: Kernel, name: str) -> str:
    match = re.search(rf"^\s*{name}: (\w+)", kernel.run("%session status").text, re.M)
    return match.group(1) if match else "?"


def start(kernel: Kernel, code: str) -> str:
    return kernel.client.execute(code, store_history=True)


def first_line(kernel: Kernel, msg_id: str, *, timeout: float = 120) -> str:
    """The first display of cell ``msg_id``: the line of a cell that waits."""
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
        if msg["msg_type"] in ("execute_result", "error", "stream"):
            raise AssertionError(f"the cell ran without waiting: {msg['content']}")
    raise AssertionError("the waiting cell showed no line")


def result_of(kernel: Kernel, msg_id: str, *, timeout: float = 120) -> str:
    """Everything cell ``msg_id`` printed or returned, once it is idle."""
    out = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kernel.client.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out += content["text"]
        elif kind in ("display_data", "update_display_data", "execute_result"):
            out += str(content["data"].get("text/plain", "")) + "\n"
        elif kind == "error":
            raise AssertionError(f"cell failed: {content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            kernel.client.get_shell_msg(timeout=timeout)
            return out
    raise AssertionError("the waiting cell did not finish")


def test_sql_cells_wait_for_the_connection_they_use(tmp_path: Path) -> None:
    shop_dir, other_dir = tmp_path / "shopdb", tmp_path / "otherdb"
    shop_dir.mkdir()
    other_dir.mkdir()
    with start_kernel(tmp_path, *CONFIG) as kernel:
        kernel.run("%load_ext sql")
        kernel.run(f"%session connect shop jupysql sqlite:///{shop_dir}/shop.db")
        kernel.run("%%sql shop\nCREATE TABLE items (n INTEGER)")
        kernel.run("%%sql shop\nINSERT INTO items VALUES (1), (2), (3)")
        kernel.run(f"%session connect other jupysql sqlite:///{other_dir}/other.db")
        kernel.run("%%sql other\nCREATE TABLE things (n INTEGER)")
        kernel.run("%%sql other\nINSERT INTO things VALUES (1), (2)")
        wait_for_autosave(kernel)

        # Both databases unreachable at the restart: both connections keep retrying.
        shop_dir.rename(tmp_path / "shopdb.away")
        other_dir.rename(tmp_path / "otherdb.away")
        kernel.restart()
        wait_for(lambda: state_of(kernel, "shop") == "retrying", "shop says retrying")
        wait_for(lambda: state_of(kernel, "other") == "retrying", "other says retrying")

        # A cell naming its connection by alias waits for that one only (shop stays down).
        msg_id = start(kernel, "%%sql other\nSELECT 40 + count(*) AS answer FROM things")
        line = first_line(kernel, msg_id)
        assert "waiting for other: retrying" in line
        assert "shop" not in line
        (tmp_path / "otherdb.away").rename(other_dir)
        assert "42" in result_of(kernel, msg_id)
        assert state_of(kernel, "shop") == "retrying"

        # Opening another database by URL needs no connection on its way: it never waits.
        kernel.run(f"%sql sqlite:///{tmp_path / 'new.db'} --alias scratch", timeout=120)
        assert state_of(kernel, "shop") == "retrying"

        msg_id = start(kernel, "%%sql shop\nSELECT 100 + count(*) AS answer FROM items")
        assert "waiting for shop: retrying" in first_line(kernel, msg_id)
        (tmp_path / "shopdb.away").rename(shop_dir)
        assert "103" in result_of(kernel, msg_id)

        # A %sql line that names no connection runs on the current one: it waits for every
        # jupysql connection on its way (here shop alone: the others are disconnected).
        kernel.run("%session disconnect other")
        kernel.run("%session disconnect scratch")
        kernel.run("%sql shop")  # shop is %sql's current connection
        wait_for_autosave(kernel)
        shop_dir.rename(tmp_path / "shopdb.away")
        kernel.restart()
        wait_for(lambda: state_of(kernel, "shop") == "retrying", "shop says retrying")
        msg_id = start(kernel, "%sql SELECT 200 + count(*) AS answer FROM items")
        assert "waiting for shop: retrying" in first_line(kernel, msg_id)
        (tmp_path / "shopdb.away").rename(shop_dir)
        assert "203" in result_of(kernel, msg_id)


def test_a_sql_cell_waits_for_postgres_to_come_back(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.info.url(password=False)
    outputs = []
    with start_kernel(tmp_path, *CONFIG, env={"IPYS_TEST_PG": PG_PASSWORD}) as kernel:
        kernel.run("%load_ext sql")
        kernel.run(f"%session connect shop jupysql {url} --secret-env password=IPYS_TEST_PG")
        assert "42" in kernel.run("%sql SELECT 40 + 2 AS answer").text
        wait_for_autosave(kernel)
        with postgres.down():
            kernel.restart()
            wait_for(lambda: state_of(kernel, "shop") == "retrying", "shop says retrying")
            msg_id = start(kernel, "%sql SELECT 3 + 4 AS seven")
            outputs.append(first_line(kernel, msg_id))
            assert "waiting for shop: retrying" in outputs[-1]
        outputs.append(result_of(kernel, msg_id))
        assert "7" in outputs[-1]
    assert PG_PASSWORD not in "\n".join(outputs)
