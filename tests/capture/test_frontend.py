"""The ``ipysession`` comm target, spoken to from a client of a real kernel."""

from __future__ import annotations

import json
import os
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ipysession.capture.frontend import MAX_LAYOUT_BYTES, TARGET_NAME, LayoutChannel
from ipysession.errors import CaptureError
from tests.builders import wait_for
from tests.shell import ShellFactory

TIMEOUT = 30

pytestmark = pytest.mark.kernel


class Client:
    """A kernel client that speaks the comm protocol the way a frontend does."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        # IOPub messages that arrived while execute() waited for its reply.
        self.backlog: list[dict[str, Any]] = []

    def execute(self, code: str, **expressions: str) -> dict[str, Any]:
        """Run code in the kernel; return the text/plain value of each user expression."""
        reply = self.kc.execute_interactive(
            code, user_expressions=expressions, timeout=TIMEOUT, output_hook=self.backlog.append
        )
        content = reply["content"]
        assert content["status"] == "ok", content
        values: dict[str, Any] = {}
        for name, result in content["user_expressions"].items():
            assert result["status"] == "ok", result
            values[name] = result["data"]["text/plain"]
        return values

    def open(self, data: dict[str, Any] | None = None, target: str = TARGET_NAME) -> str:
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": target, "data": data or {}}
        self.kc.shell_channel.send(self.kc.session.msg("comm_open", content))
        return comm_id

    def send(self, comm_id: str, data: Any) -> None:
        content = {"comm_id": comm_id, "data": data}
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", content))

    def close(self, comm_id: str) -> None:
        content = {"comm_id": comm_id, "data": {}}
        self.kc.shell_channel.send(self.kc.session.msg("comm_close", content))

    def next_on(self, comm_id: str) -> tuple[str, dict[str, Any]]:
        """The next comm_msg or comm_close the kernel publishes on ``comm_id``."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.backlog:
                msg = self.backlog.pop(0)
            else:
                try:
                    msg = self.kc.get_iopub_msg(timeout=1)
                except queue.Empty:
                    continue
            kind = msg["msg_type"]
            if kind in ("comm_msg", "comm_close") and msg["content"].get("comm_id") == comm_id:
                return kind, msg["content"].get("data", {})
        raise AssertionError(f"no reply on comm {comm_id} within {TIMEOUT} s")

    def reply(self, comm_id: str) -> dict[str, Any]:
        kind, data = self.next_on(comm_id)
        assert kind == "comm_msg", (kind, data)
        return data

    def request(self, comm_id: str, data: Any) -> dict[str, Any]:
        self.send(comm_id, data)
        return self.reply(comm_id)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    from jupyter_client.manager import start_new_kernel

    home = tmp_path_factory.mktemp("kernel")
    env = dict(os.environ, IPYTHONDIR=str(home / "ipython"))
    km, kc = start_new_kernel(startup_timeout=60, env=env, cwd=str(home))
    try:
        client = Client(kc)
        client.execute(
            "from ipysession.capture.frontend import LayoutChannel\n"
            "ch = LayoutChannel()\n"
            "changes = []\n"
            "ch.on_change = changes.append\n"
            "assert ch.register(get_ipython())\n"
        )
        yield client
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)  # a clean exit lets coverage save in the kernel


@pytest.fixture
def client(kernel: Client) -> Client:
    """The shared kernel with an empty layout, no recorded changes, the target registered."""
    kernel.execute(
        "ch.set_layout(None)\nchanges.clear()\nch.on_change = changes.append\n"
        "assert ch.register(get_ipython())"
    )
    return kernel


def kernel_value(client: Client, expression: str) -> Any:
    import ast

    return ast.literal_eval(client.execute("", value=expression)["value"])


# --- the protocol, end to end -------------------------------------------------------------------


def test_fetch_before_any_save_gives_null(client: Client) -> None:
    comm = client.open()
    assert client.request(comm, {"action": "fetch"}) == {"status": "ok", "layout": None}


def test_save_then_fetch_on_another_comm(client: Client) -> None:
    layout = {"panels": ["left", "right"], "sizes": [0.25, 0.75], "note": "é ✓", "open": True}
    saver = client.open()
    assert client.request(saver, {"action": "save", "layout": layout}) == {"status": "ok"}

    reader = client.open()
    assert client.request(reader, {"action": "fetch"}) == {"status": "ok", "layout": layout}
    # The kernel side sees it too, and the manager's callback heard of it once.
    assert kernel_value(client, "ch.layout") == layout
    assert kernel_value(client, "changes") == [layout]


def test_request_in_comm_open_is_answered(client: Client) -> None:
    client.execute("ch.set_layout([1, 2, 3])")
    comm = client.open({"action": "fetch", "id": "first"})
    assert client.reply(comm) == {"status": "ok", "layout": [1, 2, 3], "id": "first"}


def test_reply_echoes_the_request_id(client: Client) -> None:
    comm = client.open()
    assert client.request(comm, {"action": "save", "layout": 7, "id": 41}) == {
        "status": "ok",
        "id": 41,
    }
    assert client.request(comm, {"action": "fetch", "id": {"n": 42}}) == {
        "status": "ok",
        "layout": 7,
        "id": {"n": 42},
    }


def test_save_null_clears_the_layout(client: Client) -> None:
    comm = client.open()
    assert client.request(comm, {"action": "save", "layout": {"a": 1}})["status"] == "ok"
    assert client.request(comm, {"action": "save", "layout": None}) == {"status": "ok"}
    assert client.request(comm, {"action": "fetch"}) == {"status": "ok", "layout": None}
    assert kernel_value(client, "changes") == [{"a": 1}, None]


def test_too_large_layout_is_refused_and_the_old_one_kept(client: Client) -> None:
    comm = client.open()
    assert client.request(comm, {"action": "save", "layout": "small"})["status"] == "ok"
    # 256 KiB of JSON exactly is allowed; one byte more is not.
    fits = "x" * (MAX_LAYOUT_BYTES - 2)
    assert client.request(comm, {"action": "save", "layout": fits}) == {"status": "ok"}
    reply = client.request(comm, {"action": "save", "layout": fits + "x"})
    assert reply["status"] == "error"
    assert "too large" in reply["reason"]
    assert str(MAX_LAYOUT_BYTES) in reply["reason"]
    assert client.request(comm, {"action": "fetch"})["layout"] == fits
    assert kernel_value(client, "len(changes)") == 2


@pytest.mark.parametrize(
    ("request_data", "reason"),
    [
        ({"action": "save"}, "a save request needs a 'layout'"),
        (
            {"action": "delete"},
            "unknown action 'delete' (expected one of 'save', 'fetch', 'subscribe')",
        ),
        (
            {"layout": {}},
            "the request has no 'action' (expected one of 'save', 'fetch', 'subscribe')",
        ),
        ([1, 2], "the request must be a JSON object"),
    ],
)
def test_bad_requests_get_an_error_and_change_nothing(
    client: Client, request_data: Any, reason: str
) -> None:
    comm = client.open()
    assert client.request(comm, request_data) == {"status": "error", "reason": reason}
    assert client.request(comm, {"action": "fetch"}) == {"status": "ok", "layout": None}
    assert kernel_value(client, "changes") == []


def test_a_failing_on_change_still_stores_and_answers_ok(client: Client) -> None:
    client.execute("def boom(layout):\n    raise RuntimeError('x')\nch.on_change = boom")
    comm = client.open()
    assert client.request(comm, {"action": "save", "layout": {"k": 1}}) == {"status": "ok"}
    assert client.request(comm, {"action": "fetch"})["layout"] == {"k": 1}


def test_restore_with_set_layout_is_served_and_not_a_change(client: Client) -> None:
    client.execute("ch.set_layout({'restored': [True, None, 1.5]})")
    comm = client.open()
    assert client.request(comm, {"action": "fetch"}) == {
        "status": "ok",
        "layout": {"restored": [True, None, 1.5]},
    }
    assert kernel_value(client, "changes") == []


def test_register_twice_keeps_one_target(client: Client) -> None:
    values = client.execute(
        "again = ch.register(get_ipython())",
        again="again",
        target="get_ipython().kernel.comm_manager.targets['ipysession'] == ch._on_open",
    )
    assert values == {"again": "True", "target": "True"}


def test_close_unregisters_closes_comms_and_is_safe_twice(client: Client) -> None:
    open_comm = client.open()
    assert client.request(open_comm, {"action": "save", "layout": "kept"})["status"] == "ok"
    values = client.execute(
        "ch.close()\nch.close()",
        registered="ch.registered",
        targets="'ipysession' in get_ipython().kernel.comm_manager.targets",
        layout="ch.layout",
    )
    assert values == {"registered": "False", "targets": "False", "layout": "'kept'"}
    # The comm the frontend had open is closed by the kernel.
    assert client.next_on(open_comm)[0] == "comm_close"
    # With no target, the kernel refuses a new comm by closing it.
    refused = client.open({"action": "fetch"})
    assert client.next_on(refused)[0] == "comm_close"
    # Registering again works and serves the layout it kept.
    client.execute("assert ch.register(get_ipython())")
    comm = client.open()
    assert client.request(comm, {"action": "fetch"}) == {"status": "ok", "layout": "kept"}


def test_frontend_closing_its_comm_is_forgotten(client: Client) -> None:
    comm = client.open()
    assert client.request(comm, {"action": "fetch"})["status"] == "ok"
    before = int(client.execute("", n="len(ch._comms)")["n"])
    client.close(comm)
    wait_for(
        lambda: int(client.execute("", n="len(ch._comms)")["n"]) == before - 1,
        "the kernel forgot the closed comm",
    )


# --- without a kernel ---------------------------------------------------------------------------


def test_terminal_ipython_has_no_comms(make_shell: ShellFactory) -> None:
    channel = LayoutChannel()
    assert channel.register(make_shell()) is False
    assert channel.registered is False
    channel.close()
    channel.close()


def test_set_layout_validates_and_copies() -> None:
    channel = LayoutChannel(max_bytes=64)
    channel.set_layout({"a": [1, 2]})
    copy = channel.layout
    copy["a"].append(3)
    assert channel.layout == {"a": [1, 2]}

    with pytest.raises(CaptureError, match="not JSON"):
        channel.set_layout({"a": object()})
    with pytest.raises(CaptureError, match="not JSON"):
        channel.set_layout(float("nan"))
    with pytest.raises(CaptureError, match="too large"):
        channel.set_layout("x" * 100)
    assert channel.layout == {"a": [1, 2]}
    channel.set_layout(None)
    assert channel.layout is None


def test_size_is_measured_on_compact_utf8_json() -> None:
    channel = LayoutChannel(max_bytes=8)
    assert len(json.dumps({"é": 1}, ensure_ascii=False, separators=(",", ":")).encode()) == 8
    channel.set_layout({"é": 1})
    assert channel.layout == {"é": 1}
    with pytest.raises(CaptureError, match="10 bytes encoded; at most 8"):
        channel.set_layout({"éé": 1})
