"""The dask backend against a real scheduler and worker (tests/servers/dask.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ipysession.connections.backends.dask import DaskBackend
from ipysession.errors import InvalidSpec
from tests.builders import wait_for
from tests.contract.backend_suite import BackendContract, Target
from tests.contract.deadlines import finishes
from tests.servers.dask import DaskCluster
from tests.servers.process import free_port

pytestmark = pytest.mark.kernel


class TestDaskContract(BackendContract):
    connect_timeout = 30.0
    dead_timeout = 1.0

    @pytest.fixture
    def backend(self) -> DaskBackend:
        return DaskBackend()

    @pytest.fixture
    def live_target(self, dask_cluster: DaskCluster) -> Target:
        return Target(dask_cluster.address, options={"kwargs": {"name": "contract"}})

    @pytest.fixture
    def dead_target(self) -> Target:
        return Target(f"tcp://127.0.0.1:{free_port()}")

    @pytest.fixture
    def invalid_target(self) -> Target:
        return Target("not a scheduler address")

    def exercise(self, obj: Any) -> None:
        assert obj.submit(sum, [20, 22]).result(timeout=60) == 42

    def test_split_spec_separates_the_secret(  # type: ignore[override]
        self, backend: DaskBackend, live_target: Target
    ) -> None:
        """A Dask scheduler has no password: nothing is secret, and all of it is shown."""
        params, secrets = backend.split_spec(live_target.spec, live_target.options)
        assert secrets == {}
        assert params["address"] == live_target.spec
        assert json.loads(json.dumps(params)) == params


@pytest.fixture
def backend() -> DaskBackend:
    return DaskBackend()


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        ("127.0.0.1:8786", {"secrets": {"password": "x"}}, "no secrets"),
        ("127.0.0.1:8786", {"kwargs": {"timeout": 3}}, "sets timeout itself"),
        ({"address": "127.0.0.1:8786", "workers": 3}, {}, "Unknown field"),
        ("", {}, "needs the scheduler's address"),
    ],
)
def test_invalid_specs(
    backend: DaskBackend, spec: Any, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidSpec, match=match):
        backend.split_spec(spec, options)


def test_bare_host_port_means_tcp(backend: DaskBackend) -> None:
    params, _ = backend.split_spec("127.0.0.1:8786", {})
    assert params["address"] == "tcp://127.0.0.1:8786"
    assert backend.describe(params, {}) == "dask scheduler tcp://127.0.0.1:8786"


def test_ping_says_no_answer_while_the_scheduler_is_dead_and_a_new_client_works_after(
    backend: DaskBackend, dask_cluster: DaskCluster
) -> None:
    params, secrets = backend.split_spec(dask_cluster.address, {})
    client = backend.connect(params, secrets, timeout=30.0)
    try:
        assert backend.is_alive(client, timeout=10.0) is True
        with dask_cluster.down():
            # A Client has no is_alive; its cached scheduler info would still say "running".
            assert finishes(lambda: backend.is_alive(client, timeout=2.0)) is False
        # The scheduler is back (same port). A reconnect gives a working client.
        again = backend.connect(params, secrets, timeout=30.0)
        try:
            assert again.submit(sum, [1, 1]).result(timeout=60) == 2
            wait_for(lambda: backend.is_alive(again, timeout=5.0), "the new client answers")
        finally:
            backend.close(again)
    finally:
        backend.close(client)
