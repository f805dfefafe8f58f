"""The factory backend against a real TCP peer, through a client module written for the test."""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipysession.connections.backends.factory import FactoryBackend
from ipysession.errors import ConnectFailed, InvalidSpec
from tests.contract.backend_suite import BackendContract, Target
from tests.contract.deadlines import finishes

PASSWORD = "s3cret-7d0f"

# A tiny line protocol: "AUTH <password>" -> "OK"/"NO", "PING" -> "PONG", "GET"/"SET <v>".
CLIENT_MODULE = textwrap.dedent(
    '''
    """A client for the test peer, written as a user's library would be."""
    import socket


    class Client:
        def __init__(self, host, port, password, timeout=2.0):
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.file = self.sock.makefile("rwb")
            if self.call("AUTH " + password) != "OK":
                self.sock.close()
                raise PermissionError(f"peer refused password {password!r}")

        def call(self, line):
            self.file.write(line.encode() + b"\\n")
            self.file.flush()
            return self.file.readline().decode().strip()

        def ping(self):
            return self.call("PING") == "PONG"

        def close(self):
            self.file.close()
            self.sock.close()


    class Checked(Client):
        """A client whose liveness is an is_alive() method instead of ping()."""

        healthy = True

        def is_alive(self):
            return self.healthy and self.ping()


    def connect(host, port, password):
        return Client(host, port, password)


    def slow(seconds):
        import time

        time.sleep(seconds)
        return Client.__new__(Client)


    def leaky(password):
        raise RuntimeError(f"could not log in as bob:{password}@example")


    not_callable = 3
    '''
)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        value = ""
        authed = False
        for raw in self.rfile:
            line = raw.decode().strip()
            if line.startswith("AUTH "):
                authed = line[5:] == PASSWORD
                self.wfile.write(b"OK\n" if authed else b"NO\n")
            elif not authed:
                self.wfile.write(b"NO\n")
            elif line == "PING":
                self.wfile.write(b"PONG\n")
            elif line.startswith("SET "):
                value = line[4:]
                self.wfile.write(b"OK\n")
            elif line == "GET":
                self.wfile.write(value.encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def peer() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def client_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "ipys_test_peer_client.py").write_text(CLIENT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("ipys_test_peer_client", None)
    return "ipys_test_peer_client"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class TestFactoryContract(BackendContract):
    connect_timeout = 5.0

    @pytest.fixture
    def backend(self) -> FactoryBackend:
        return FactoryBackend()

    @pytest.fixture
    def live_target(self, peer: int, client_module: str) -> Target:
        return Target(
            f"{client_module}:Client",
            {"kwargs": {"host": "127.0.0.1", "port": peer}, "secrets": {"password": PASSWORD}},
        )

    @pytest.fixture
    def dead_target(self, client_module: str) -> Target:
        return Target(
            f"{client_module}:connect",
            {
                "kwargs": {"host": "127.0.0.1", "port": closed_port()},
                "secrets": {"password": PASSWORD},
            },
        )

    @pytest.fixture
    def invalid_target(self) -> Target:
        return Target("not a callable", {"secrets": {"password": PASSWORD}}, [PASSWORD])

    def exercise(self, obj: Any) -> None:
        assert obj.call("SET hello") == "OK"
        assert obj.call("GET") == "hello"


@pytest.fixture
def backend() -> FactoryBackend:
    return FactoryBackend()


def test_split_spec_shapes(backend: FactoryBackend) -> None:
    params, secrets = backend.split_spec(
        "pkg.mod:Client.from_url",
        {"kwargs": {"url": "redis://cache:6379/0", "retries": 3}, "secrets": {"password": "x"}},
    )
    assert params == {
        "callable": "pkg.mod:Client.from_url",
        "kwargs": {"url": "redis://cache:6379/0", "retries": 3},
    }
    assert secrets == {"password": "x"}
    assert backend.describe(params, secrets) == (
        "pkg.mod:Client.from_url(url='redis://cache:6379/0', retries=3, password=***)"
    )
    mapping_params, _ = backend.split_spec(
        {"callable": "pkg.mod:f", "kwargs": {"a": 1}}, {"kwargs": {"b": 2}}
    )
    assert mapping_params == {"callable": "pkg.mod:f", "kwargs": {"a": 1, "b": 2}}


def test_long_values_are_shortened_in_describe(backend: FactoryBackend) -> None:
    params, secrets = backend.split_spec("m:f", {"kwargs": {"blob": "x" * 500}})
    assert len(backend.describe(params, secrets)) < 100


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        (None, {}, "module:callable"),
        ("module_only", {}, "module:callable"),
        ("m:f; rm -rf", {}, "module:callable"),
        ({"callable": "m:f", "extra": 1}, {}, "Unknown field"),
        ("m:f", {"kwargs": {"x": object()}}, "not a JSON value"),
        ("m:f", {"kwargs": {"not an identifier": 1}}, "identifier"),
        ("m:f", {"kwargs": {"password": "a"}, "secrets": {"password": "b"}}, "both"),
        ("m:f", {"kwargs": [1, 2]}, "mapping"),
    ],
)
def test_invalid_specs(backend: FactoryBackend, spec: Any, options: Any, match: str) -> None:
    with pytest.raises(InvalidSpec, match=match):
        backend.split_spec(spec, options)


def test_wrong_secret_is_reported_redacted(
    backend: FactoryBackend, peer: int, client_module: str
) -> None:
    wrong = "wrong-pw-0a9b"
    params, secrets = backend.split_spec(
        f"{client_module}:Client",
        {"kwargs": {"host": "127.0.0.1", "port": peer}, "secrets": {"password": wrong}},
    )
    with pytest.raises(ConnectFailed, match="PermissionError") as info:
        backend.connect(params, secrets, timeout=5.0)
    assert wrong not in str(info.value)


def test_error_text_embedding_the_secret_is_redacted(
    backend: FactoryBackend, client_module: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipysession")
    params, secrets = backend.split_spec(
        f"{client_module}:leaky", {"secrets": {"password": PASSWORD}}
    )
    with pytest.raises(ConnectFailed) as info:
        backend.connect(params, secrets, timeout=5.0)
    assert "bob:***@example" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text


def test_missing_module_or_attribute(backend: FactoryBackend, client_module: str) -> None:
    for spec in ("ipys_no_such_module_xyz:f", f"{client_module}:nothing_here"):
        params, secrets = backend.split_spec(spec, {})
        with pytest.raises(ConnectFailed, match="Could not find"):
            backend.connect(params, secrets, timeout=5.0)
    params, secrets = backend.split_spec(f"{client_module}:not_callable", {})
    with pytest.raises(ConnectFailed, match="not callable"):
        backend.connect(params, secrets, timeout=5.0)


def test_slow_callable_times_out(backend: FactoryBackend, client_module: str) -> None:
    # The callable would take an hour; the test waits a minute at most: only the timeout can
    # end the connect in time, and it says so.
    params, secrets = backend.split_spec(f"{client_module}:slow", {"kwargs": {"seconds": 3600}})
    with pytest.raises(ConnectFailed, match=r"did not return within 0\.2 s"):
        finishes(lambda: backend.connect(params, secrets, timeout=0.2))


def test_liveness_conventions(backend: FactoryBackend, peer: int, client_module: str) -> None:
    params, secrets = backend.split_spec(
        f"{client_module}:Checked",
        {"kwargs": {"host": "127.0.0.1", "port": peer}, "secrets": {"password": PASSWORD}},
    )
    checked = backend.connect(params, secrets, timeout=5.0)
    try:
        assert backend.is_alive(checked, timeout=2.0) is True
        checked.healthy = False
        assert backend.is_alive(checked, timeout=2.0) is False
    finally:
        backend.close(checked)
    # A check that raises (a closed socket) means not alive. No convention at all: alive.
    checked.healthy = True
    assert backend.is_alive(checked, timeout=2.0) is False

    class Flag:
        is_alive = False

    assert backend.is_alive(Flag(), timeout=1.0) is False
    assert backend.is_alive(object(), timeout=1.0) is True


def test_close_that_raises_is_swallowed(backend: FactoryBackend) -> None:
    class Grumpy:
        def close(self) -> None:
            raise OSError("already closed")

    backend.close(Grumpy())
    backend.close(Grumpy())


def test_an_object_without_a_check_pings_as_unknown_not_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`%session ping` on a factory object with neither is_alive() nor ping(): "unknown"."""
    import ipysession
    from ipysession.connections.backends import Liveness, liveness
    from tests.shell import ipython_shell, run

    backend = FactoryBackend()
    plain = backend.connect({"callable": "collections:OrderedDict", "kwargs": {}}, {}, timeout=5.0)
    assert backend.is_alive(plain, timeout=1.0) is True  # the heartbeat never tears it down
    assert liveness(backend, plain, alive=True) is Liveness.UNKNOWN
    assert liveness(backend, plain, alive=False) is Liveness.NO_ANSWER
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "%session connect plain factory collections:OrderedDict")
        capsys.readouterr()
        run(shell, "%session ping plain")
        said = capsys.readouterr().out
        assert "plain: unknown (it has no is_alive() or ping() to ask)" in said
        assert "answers" not in said
        run(shell, "%session disconnect plain")
        run(shell, "%session forget plain")


def test_an_object_with_a_ping_that_answers_pings_as_answers() -> None:
    from ipysession.connections.backends import Liveness, liveness

    backend = FactoryBackend()
    assert liveness(backend, object(), alive=False) is Liveness.NO_ANSWER

    class Pinged:
        def ping(self) -> bool:
            return True

    assert liveness(backend, Pinged(), alive=True) is Liveness.ANSWERS
