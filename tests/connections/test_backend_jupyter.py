"""The jupyter backend against a second, real ipykernel started with jupyter_client."""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipysession.connections.backends.jupyter import JupyterBackend
from ipysession.connections.reconnector import ConnectionState, Reconnector
from ipysession.errors import ConnectFailed, InvalidSpec
from ipysession.model import ConnectionRecord
from tests.builders import wait_for
from tests.contract.backend_suite import BackendContract, Target, assert_no_secret
from tests.contract.deadlines import finishes

pytestmark = pytest.mark.kernel


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def dead_info(key: str = "dead-key-6c1e") -> dict[str, Any]:
    return {
        "ip": "127.0.0.1",
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        "key": key,
        **{
            name: closed_port()
            for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        },
    }


def run(client: Any, code: str, expression: str) -> str:
    """Run ``code`` on the remote kernel and return the repr of ``expression`` there."""
    reply = client.execute(
        code, user_expressions={"v": expression}, reply=True, timeout=30, allow_stdin=False
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    value: str = reply["content"]["user_expressions"]["v"]["data"]["text/plain"]
    return value


class _Kernel:
    def __init__(self, manager: Any, runtime: Path) -> None:
        self.manager = manager
        self.runtime = runtime
        self.info = json.loads(Path(manager.connection_file).read_text())
        # Where jupyter-server keeps the file of a kernel it manages: <runtime>/kernel-<id>.json
        self.kernel_id = str(uuid.uuid4())
        self.connection_file = str(runtime / f"kernel-{self.kernel_id}.json")
        Path(self.connection_file).write_text(json.dumps(self.info))


def _start(runtime: Path) -> tuple[Any, Any]:
    from jupyter_client.manager import start_new_kernel

    return start_new_kernel(kernel_name="python3", startup_timeout=60)


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    old = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    yield runtime
    if old is None:
        os.environ.pop("JUPYTER_RUNTIME_DIR", None)
    else:
        os.environ["JUPYTER_RUNTIME_DIR"] = old


@pytest.fixture(scope="module")
def remote(runtime_dir: Path) -> Iterator[_Kernel]:
    """A second, real ipykernel: the remote backend the tests connect to."""
    manager, client = _start(runtime_dir)
    client.stop_channels()  # the tests make their own clients, as a user's session would
    try:
        yield _Kernel(manager, runtime_dir)
    finally:
        manager.shutdown_kernel(now=True)


class TestJupyterContract(BackendContract):
    connect_timeout = 10.0
    dead_timeout = 1.0

    @pytest.fixture
    def backend(self) -> JupyterBackend:
        return JupyterBackend()

    @pytest.fixture
    def live_target(self, remote: _Kernel) -> Target:
        return Target(remote.connection_file, secret_values=[remote.info["key"]])

    @pytest.fixture
    def dead_target(self) -> Target:
        info = dead_info()
        return Target(info, secret_values=[info["key"]])

    @pytest.fixture
    def invalid_target(self) -> Target:
        return Target(
            {"key": "invalid-key-31f2", "ip": "127.0.0.1"}, secret_values=["invalid-key-31f2"]
        )

    def exercise(self, obj: Any) -> None:
        assert run(obj, "contract_value = 6 * 7", "contract_value") == "42"


@pytest.fixture
def backend() -> JupyterBackend:
    return JupyterBackend()


def test_split_keeps_only_a_description_in_params(backend: JupyterBackend, remote: _Kernel) -> None:
    params, secrets = backend.split_spec(remote.connection_file, {})
    assert params == {
        "source": remote.connection_file,
        "connection_file": remote.connection_file,
        "transport": "tcp",
        "signature_scheme": remote.info["signature_scheme"],
        "kernel_name": remote.info["kernel_name"],
    }
    info = secrets["connection_info"]
    assert info["key"] == remote.info["key"]
    for port in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        assert info[port] == remote.info[port]
    assert backend.describe(params, secrets) == f"kernel {Path(remote.connection_file).name} (tcp)"


def test_kernel_id_is_resolved_like_jupyter_console_existing(
    backend: JupyterBackend, remote: _Kernel
) -> None:
    params, secrets = backend.split_spec(remote.kernel_id, {})
    assert params["source"] == remote.kernel_id
    assert params["connection_file"] == remote.connection_file
    assert backend.describe(params, secrets) == f"kernel {remote.kernel_id} (tcp)"
    # A prefix is enough, as with --existing.
    params, _ = backend.split_spec(remote.kernel_id[:8], {"path": str(remote.runtime)})
    assert params["connection_file"] == remote.connection_file


def test_missing_connection_file_is_an_invalid_spec(
    backend: JupyterBackend, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSpec, match="No Jupyter connection file matches"):
        backend.split_spec(str(tmp_path / "kernel-gone.json"), {})
    with pytest.raises(InvalidSpec, match="needs a connection file"):
        backend.split_spec(None, {})


def test_connection_info_dict_with_bytes_key_and_curve_keys(backend: JupyterBackend) -> None:
    info = dead_info()
    info.update(
        key=b"bytes-key-0d2a",
        curve_publickey=b"pub-key-1b7e",
        curve_secretkey=b"sec-key-9f3a",
        kernel_name="python3",
    )
    params, secrets = backend.split_spec(info, {})
    stored = secrets["connection_info"]
    assert stored["key"] == "bytes-key-0d2a"
    assert stored["curve_secretkey"] == "sec-key-9f3a"
    assert stored["curve_publickey"] == "pub-key-1b7e"
    assert json.loads(json.dumps(secrets)) == secrets
    shown = json.dumps(params) + backend.describe(params, secrets)
    assert_no_secret(shown, ["bytes-key-0d2a", "sec-key-9f3a", "pub-key-1b7e"], "params")
    assert params["source"] == "connection info"


@pytest.mark.parametrize(
    ("info", "match"),
    [
        ({"key": "k"}, "no valid 'shell_port'"),
        ({**dead_info(), "hb_port": "1234"}, "no valid 'hb_port'"),
        ({**dead_info(), "transport": "udp"}, "Unknown kernel transport"),
        ({**dead_info(), "key": 5}, "must be a string"),
        ({**dead_info(), "key": b"\xff\xfe"}, "not valid UTF-8"),
    ],
)
def test_invalid_connection_info(backend: JupyterBackend, info: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidSpec, match=match):
        backend.split_spec(info, {})


def test_unreadable_connection_file(backend: JupyterBackend, tmp_path: Path) -> None:
    bad = tmp_path / "kernel-bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidSpec, match="could not be read"):
        backend.split_spec(str(bad), {})
    bad.write_text("[1, 2]")
    with pytest.raises(InvalidSpec, match="JSON object"):
        backend.split_spec(str(bad), {})


@pytest.mark.parametrize(
    ("ssh", "ok"),
    [
        ("me@gateway.example.org", True),
        ("gateway", True),
        ("me@10.0.0.5:2222", True),
        ("gateway:22", True),
        ("me@@gateway", False),
        ("me@gate way", False),
        ("-oProxyCommand=evil", False),
        ("gateway:port", False),
        ("", True),  # empty means no tunnel
    ],
)
def test_ssh_option_parsing(backend: JupyterBackend, ssh: str, ok: bool) -> None:
    info = dead_info()
    if ok:
        params, _ = backend.split_spec(info, {"ssh": ssh, "sshkey": "~/.ssh/id_ed25519"})
        if ssh:
            assert params["ssh"] == ssh
            assert backend.describe(params, {}).endswith(f"via ssh {ssh}")
        else:
            assert "ssh" not in params
        assert params["sshkey"] == str(Path("~/.ssh/id_ed25519").expanduser())
    else:
        with pytest.raises(InvalidSpec, match="ssh"):
            backend.split_spec(info, {"ssh": ssh})


def test_separate_secrets_are_refused(backend: JupyterBackend) -> None:
    with pytest.raises(InvalidSpec, match="no separate secrets"):
        backend.split_spec(dead_info(), {"secrets": {"key": "x"}})


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the ssh client")
def test_ssh_tunnel_to_an_unreachable_server_fails_within_the_timeout(
    backend: JupyterBackend,
) -> None:
    # Real ssh, real jupyter_client tunnel code; nothing listens on the SSH port.
    info = dead_info()
    params, secrets = backend.split_spec(info, {"ssh": f"nobody@127.0.0.1:{closed_port()}"})
    with pytest.raises(ConnectFailed) as error:
        finishes(lambda: backend.connect(params, secrets, timeout=5.0))
    assert info["key"] not in str(error.value)
    assert "SSH tunnels" in str(error.value)
    assert "via ssh nobody@" in str(error.value)


def test_remote_variable_survives_a_new_client(backend: JupyterBackend, remote: _Kernel) -> None:
    """What a local restart does: a new client from the stored record sees the remote's state."""
    params, secrets = backend.split_spec(remote.connection_file, {})
    record = ConnectionRecord(name="remote", kind="jupyter", params=params, secrets=secrets)
    first = backend.connect(params, secrets, timeout=10.0)
    assert run(first, "survivor = 'still here'", "survivor") == "'still here'"
    backend.close(first)
    stored = json.loads(json.dumps(record.to_dict()))
    again = ConnectionRecord.from_dict("remote", stored, "connections.remote")
    second = backend.connect(again.params, again.secrets, timeout=10.0)
    try:
        assert run(second, "", "survivor") == "'still here'"
    finally:
        backend.close(second)


def test_connect_uses_the_stored_info_when_the_file_is_gone(
    backend: JupyterBackend, remote: _Kernel, tmp_path: Path
) -> None:
    copy = tmp_path / "kernel-copy.json"
    copy.write_text(Path(remote.connection_file).read_text())
    params, secrets = backend.split_spec(str(copy), {})
    copy.unlink()  # runtime directories get cleaned; the record must not need the file
    client = backend.connect(params, secrets, timeout=10.0)
    try:
        assert backend.is_alive(client, timeout=5.0)
    finally:
        backend.close(client)
    # Without stored info the file is read, and a missing file fails at once: with an hour's
    # timeout, only a failure that does not wait for it returns within the test's deadline.
    with pytest.raises(ConnectFailed, match="does not exist"):
        finishes(lambda: backend.connect(params, {}, timeout=3600.0))


def test_wrong_key_fails_clearly(backend: JupyterBackend, remote: _Kernel) -> None:
    info = {**remote.info, "key": "not-the-key-44aa"}
    params, secrets = backend.split_spec(info, {})
    with pytest.raises(ConnectFailed, match="key or signature scheme") as error:
        finishes(lambda: backend.connect(params, secrets, timeout=1.5))
    assert "not-the-key-44aa" not in str(error.value)
    assert remote.info["key"] not in str(error.value)


def test_closed_client_is_not_alive(backend: JupyterBackend, remote: _Kernel) -> None:
    params, secrets = backend.split_spec(remote.connection_file, {})
    client = backend.connect(params, secrets, timeout=10.0)
    assert backend.is_alive(client, timeout=5.0)
    backend.close(client)
    assert backend.is_alive(client, timeout=1.0) is False


def test_dead_kernel_fails_fast_then_is_watched_to_retrying_and_never_restarted(
    backend: JupyterBackend, runtime_dir: Path
) -> None:
    """A kernel that dies under a live client: heartbeat miss -> retrying, in the background
    after the quick attempts (it would heal if the kernel came back), never restarted."""
    manager, first = _start(runtime_dir)
    first.stop_channels()
    try:
        params, secrets = backend.split_spec(str(manager.connection_file), {})
        record = ConnectionRecord(name="doomed", kind="jupyter", params=params, secrets=secrets)
        client = backend.connect(params, secrets, timeout=10.0)
        states: list[tuple[str, ConnectionState, str]] = []
        with Reconnector(
            attempts=2, backoff=0.1, timeout=0.5, heartbeat=0.2, heartbeat_timeout=0.3,
            on_state=lambda *a: states.append(a),
        ) as reconnector:  # fmt: skip
            reconnector.watch(record, client)
            pid = manager.provisioner.process.pid
            manager.shutdown_kernel(now=True)
            wait_for(
                lambda: record.stats.failures == 1,
                "the dead kernel's connection used up its quick attempts",
            )
            seen = [s for _, s, _ in states]
            assert ConnectionState.RETRYING in seen
            assert ConnectionState.FAILED not in seen
            assert reconnector.state("doomed") is ConnectionState.RETRYING
            with reconnector.lock:
                assert "heartbeat" in (record.stats.last_error or "")
            # Nobody started the kernel again.
            assert not manager.is_alive()
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        backend.close(client)
        # And connecting to the dead kernel's stored info gives up at its timeout, saying why.
        with pytest.raises(ConnectFailed, match="heartbeat"):
            finishes(lambda: backend.connect(params, secrets, timeout=1.0))
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)


def _kernel_writing(path: Path) -> Any:
    """A real kernel whose connection file is ``path`` (new ports and a new key each time)."""
    from jupyter_client.manager import KernelManager

    path.unlink(missing_ok=True)
    manager = KernelManager(kernel_name="python3", connection_file=str(path))
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    client.stop_channels()
    return manager


def test_a_replaced_kernel_is_picked_up_from_its_file(
    backend: JupyterBackend, tmp_path: Path
) -> None:
    """A remote replaced with new ports and key, written to the same file: a reconnect reads it."""
    path = tmp_path / "kernel-replaced.json"
    first = _kernel_writing(path)
    second = None
    try:
        old_key = json.loads(path.read_text())["key"]
        params, secrets = backend.split_spec(str(path), {})
        client = backend.connect(params, secrets, timeout=10.0)
        assert run(client, "generation = 1", "generation") == "1"
        backend.close(client)
        first.shutdown_kernel(now=True)
        second = _kernel_writing(path)
        new_info = json.loads(path.read_text())
        assert new_info["key"] != old_key
        # The record still holds the first kernel's info; the file names the second.
        client = backend.connect(params, secrets, timeout=10.0)
        try:
            assert run(client, "generation = 2", "generation") == "2"
            assert client.get_connection_info()["shell_port"] == new_info["shell_port"]
            assert backend.is_alive(client, timeout=5.0)
        finally:
            backend.close(client)
    finally:
        first.shutdown_kernel(now=True) if first.has_kernel else None
        if second is not None:
            second.shutdown_kernel(now=True)


def test_execute_interactive_on_a_dead_kernel_raises_instead_of_hanging(
    backend: JupyterBackend, tmp_path: Path
) -> None:
    from ipysession.errors import ConnectionLost

    path = tmp_path / "kernel-dies.json"
    manager = _kernel_writing(path)
    key = json.loads(path.read_text())["key"]
    try:
        params, secrets = backend.split_spec(str(path), {})
        client = backend.connect(params, secrets, timeout=10.0)
        assert type(client).__name__ == "RemoteKernelClient"
        client.heartbeat_grace = 1.0
        outputs: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                outputs.append(msg["content"]["text"])

        reply = client.execute_interactive("print('alive')", output_hook=hook)
        assert reply["content"]["status"] == "ok"
        assert "alive" in "".join(outputs)
        manager.shutdown_kernel(now=True)
        # No timeout given: jupyter_client's own loop would wait for ever for this reply.
        with pytest.raises(ConnectionLost) as lost:
            finishes(lambda: client.execute_interactive("1 + 1", output_hook=hook))
        message = str(lost.value)
        assert "heartbeat" in message
        assert "%session reconnect" in message
        assert key not in message
        backend.close(client)
    finally:
        manager.shutdown_kernel(now=True) if manager.has_kernel else None


def test_after_an_interrupted_wait_the_next_call_gets_its_own_reply(
    backend: JupyterBackend, tmp_path: Path
) -> None:
    """A cell interrupted while waiting on the remote: the next call still reads only its own
    request's output, never a reader left over from the interrupted one."""
    import _thread
    import threading

    path = tmp_path / "kernel-interrupted.json"
    manager = _kernel_writing(path)
    try:
        params, secrets = backend.split_spec(str(path), {})
        client = backend.connect(params, secrets, timeout=10.0)
        first: list[str] = []
        second: list[str] = []

        def collect(into: list[str]) -> Any:
            return lambda msg: into.append(msg["content"].get("text", ""))

        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            client.execute_interactive(
                "import time; time.sleep(2); print('first')", output_hook=collect(first)
            )
        reply = finishes(
            lambda: client.execute_interactive("print('second')", output_hook=collect(second))
        )
        assert reply["content"]["status"] == "ok"
        assert "".join(second).strip() == "second"
        assert "".join(first).strip() == "first"  # the interrupted request's output still arrived
        backend.close(client)
    finally:
        manager.shutdown_kernel(now=True)
