"""The jupyter_server backend against a real Jupyter Server with a token (tests/servers/)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from ipysession.connections.backends.jupyter_server import JupyterServerBackend, ServerKernel
from ipysession.errors import ConnectFailed, ConnectionLost, InvalidSpec
from ipysession.model import ConnectionRecord
from tests.contract.backend_suite import BackendContract, Target, assert_no_secret
from tests.contract.deadlines import finishes
from tests.servers.fixtures import JUPYTER_TOKEN
from tests.servers.jupyter import JupyterServer
from tests.servers.process import free_port

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel_id(jupyter_server: JupyterServer) -> Iterator[str]:
    """A kernel the server holds, started through its REST API (as JupyterLab would)."""
    kernel = jupyter_server.start_kernel()
    try:
        yield kernel
    finally:
        if jupyter_server.running():
            jupyter_server.shutdown_kernel(kernel)


def outputs_of(kernel: ServerKernel, code: str) -> str:
    texts: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        texts.append(content.get("text") or content.get("data", {}).get("text/plain", ""))

    reply = kernel.execute_interactive(code, output_hook=hook, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(texts)


class TestJupyterServerContract(BackendContract):
    connect_timeout = 60.0
    dead_timeout = 1.0

    @pytest.fixture
    def backend(self) -> JupyterServerBackend:
        return JupyterServerBackend()

    @pytest.fixture
    def live_target(self, jupyter_server: JupyterServer, kernel_id: str) -> Target:
        url = f"{jupyter_server.url}/api/kernels/{kernel_id}?token={JUPYTER_TOKEN}"
        return Target(url, secret_values=[JUPYTER_TOKEN])

    @pytest.fixture
    def dead_target(self) -> Target:
        return Target(
            f"http://127.0.0.1:{free_port()}?token={JUPYTER_TOKEN}", secret_values=[JUPYTER_TOKEN]
        )

    @pytest.fixture
    def invalid_target(self) -> Target:
        return Target(f"ftp://host/?token={JUPYTER_TOKEN}", secret_values=[JUPYTER_TOKEN])

    def exercise(self, obj: Any) -> None:
        assert outputs_of(obj, "print(6 * 7)").strip() == "42"


@pytest.fixture
def backend() -> JupyterServerBackend:
    return JupyterServerBackend()


def test_split_takes_the_token_and_the_kernel_out_of_the_url(backend: JupyterServerBackend) -> None:
    params, secrets = backend.split_spec(
        f"https://hub.example.org/user/me/api/kernels/abc-123?token={JUPYTER_TOKEN}", {}
    )
    assert secrets == {"token": JUPYTER_TOKEN}
    assert params == {
        "url": "https://hub.example.org/user/me",
        "kernel_id": "abc-123",
        "kernel_name": None,
        "start": False,
    }
    by_name, secrets = backend.split_spec(
        "http://127.0.0.1:8888",
        {"kwargs": {"kernel_name": "python3"}, "secrets": {"token": JUPYTER_TOKEN}},
    )
    assert by_name["start"] is True
    assert by_name["kernel_name"] == "python3"
    assert by_name["kernel_id"]  # chosen now, so the record names one kernel from the start
    assert secrets == {"token": JUPYTER_TOKEN}
    assert JUPYTER_TOKEN not in backend.describe(by_name, secrets)


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        ("http://h:1", {"kwargs": {"port": 1}}, "kernel_id=ID"),
        ("http://h:1", {"secrets": {"password": "x"}}, "one secret: token"),
        ("http://h:1", {"kwargs": {"kernel_id": "bad id!"}}, "kernel id"),
        ("", {}, "needs the server's URL"),
        ("http://h:1/?kernel=x", {}, "no query parameter but token"),
    ],
)
def test_invalid_specs(
    backend: JupyterServerBackend, spec: str, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidSpec, match=match):
        backend.split_spec(spec, options)


def test_started_by_name_then_reattached_by_id_after_a_local_restart(
    backend: JupyterServerBackend, jupyter_server: JupyterServer
) -> None:
    params, secrets = backend.split_spec(
        jupyter_server.url,
        {"kwargs": {"kernel_name": "python3"}, "secrets": {"token": JUPYTER_TOKEN}},
    )
    record = ConnectionRecord(name="rk", kind="jupyter_server", params=params, secrets=secrets)
    first = backend.connect(params, secrets, timeout=60.0)
    try:
        assert first.started is True
        assert first.kernel_id == params["kernel_id"]
        outputs_of(first, "remote_value = 6 * 7")
        backend.close(first)
        # What a restart of this kernel does: the stored record, read back, connects again.
        stored = ConnectionRecord.from_dict("rk", json.loads(json.dumps(record.to_dict())), "c")
        again = backend.connect(stored.params, stored.secrets, timeout=60.0)
        try:
            assert again.started is False
            assert outputs_of(again, "print(remote_value)").strip() == "42"
            assert backend.is_alive(again, timeout=10.0)
        finally:
            backend.close(again)
    finally:
        jupyter_server.shutdown_kernel(params["kernel_id"])


def test_the_token_never_shows(
    backend: JupyterServerBackend, kernel_id: str, jupyter_server: JupyterServer
) -> None:
    params, secrets = backend.split_spec(
        f"{jupyter_server.url}/api/kernels/{kernel_id}?token={JUPYTER_TOKEN}", {}
    )
    kernel = backend.connect(params, secrets, timeout=60.0)
    try:
        assert_no_secret(repr(kernel), [JUPYTER_TOKEN], "repr")
        with pytest.raises(TypeError, match="live connection"):
            pickle.dumps(kernel)
    finally:
        backend.close(kernel)
    with pytest.raises(ConnectFailed, match="refused") as refused:
        finishes(lambda: backend.connect(params, {"token": "wrong-tok-1f"}, timeout=30.0))
    assert_no_secret(str(refused.value), [JUPYTER_TOKEN, "wrong-tok-1f"], "the error")


def test_a_kernel_that_is_not_there_is_not_started_when_named_by_id(
    backend: JupyterServerBackend, jupyter_server: JupyterServer
) -> None:
    params, secrets = backend.split_spec(
        f"{jupyter_server.url}/api/kernels/no-such-kernel", {"secrets": {"token": JUPYTER_TOKEN}}
    )
    with pytest.raises(ConnectFailed, match="has no kernel no-such-kernel"):
        backend.connect(params, secrets, timeout=30.0)


def test_server_stopped_is_reported_not_waited_for(
    backend: JupyterServerBackend, jupyter_server: JupyterServer
) -> None:
    """The server goes away: ping says so, running code raises ConnectionLost instead of hanging,
    and once it is back a reconnect gives a working kernel under the same id."""
    params, secrets = backend.split_spec(
        jupyter_server.url,
        {"kwargs": {"kernel_name": "python3"}, "secrets": {"token": JUPYTER_TOKEN}},
    )
    kernel = backend.connect(params, secrets, timeout=60.0)
    kernel.heartbeat_grace = 2.0
    try:
        with jupyter_server.down():
            assert backend.is_alive(kernel, timeout=5.0) is False
            with pytest.raises(ConnectionLost) as lost:
                finishes(lambda: kernel.execute_interactive("1 + 1"))
            assert_no_secret(str(lost.value), [JUPYTER_TOKEN], "ConnectionLost")
            assert "%session reconnect" in str(lost.value)
        again = backend.connect(params, secrets, timeout=60.0)
        try:
            assert again.kernel_id == params["kernel_id"]
            assert outputs_of(again, "print('back')").strip() == "back"
        finally:
            backend.close(again)
    finally:
        backend.close(kernel)
        jupyter_server.shutdown_kernel(params["kernel_id"])
