"""Session-scoped pytest fixtures for the real servers; a conftest imports the ones it needs.

A fixture whose server cannot start fails the test with the reason (``pytest.fail``), so a
missing package shows as a failure in CI, never as a skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.servers.dask import DaskCluster
from tests.servers.jupyter import JupyterServer
from tests.servers.postgres import PostgresServer
from tests.servers.process import Server, ServerUnavailable

#: The secrets of the test servers: published on purpose, they protect nothing. Distinctive, so a
#: test that finds one in a file, an output or the history knows where it came from.
PG_PASSWORD = "pg-pw-7c1e94d2a6"
JUPYTER_TOKEN = "jt-tok-3b8f60c1e5"

_S = TypeVar("_S", bound=Server)


def _serve(make: Callable[[], _S]) -> Iterator[_S]:
    try:
        server = make()
    except ServerUnavailable as exc:
        pytest.fail(f"test server unavailable: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


def _running(server: _S) -> _S:
    # A test that stopped it and failed before starting it again must not break the next one.
    try:
        server.start()
    except ServerUnavailable as exc:
        pytest.fail(f"test server unavailable: {exc}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[PostgresServer]:
    yield from _serve(lambda: PostgresServer(password=PG_PASSWORD))


@pytest.fixture
def postgres(_postgres_server: PostgresServer) -> PostgresServer:
    """A running PostgreSQL (role ``tester``, password :data:`PG_PASSWORD`, database ``shop``)."""
    return _running(_postgres_server)


@pytest.fixture(scope="session")
def _dask_cluster() -> Iterator[DaskCluster]:
    yield from _serve(DaskCluster)


@pytest.fixture
def dask_cluster(_dask_cluster: DaskCluster) -> DaskCluster:
    """A running Dask scheduler with one worker at ``dask_cluster.address``."""
    return _running(_dask_cluster)


@pytest.fixture(scope="session")
def _jupyter_server() -> Iterator[JupyterServer]:
    yield from _serve(lambda: JupyterServer(token=JUPYTER_TOKEN))


@pytest.fixture
def jupyter_server(_jupyter_server: JupyterServer) -> JupyterServer:
    """A running Jupyter Server at ``jupyter_server.url`` with token :data:`JUPYTER_TOKEN`."""
    return _running(_jupyter_server)
