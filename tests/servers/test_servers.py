"""The test servers themselves: each answers, stops, and comes back on the same port."""

from __future__ import annotations

import psycopg
import pytest

from tests.servers.dask import DaskCluster
from tests.servers.jupyter import JupyterServer
from tests.servers.postgres import PostgresServer
from tests.servers.process import accepts


def test_postgres_takes_the_password_and_comes_back(postgres: PostgresServer) -> None:
    info = postgres.info
    with psycopg.connect(info.url(driver="postgresql"), connect_timeout=30) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            f"postgresql://{info.user}:wrong@{info.host}:{info.port}/{info.database}",
            connect_timeout=30,
        )
    with postgres.down():
        assert not accepts(postgres.port)
    with psycopg.connect(info.url(driver="postgresql"), connect_timeout=30) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_dask_runs_work_and_comes_back(dask_cluster: DaskCluster) -> None:
    from distributed import Client

    with Client(dask_cluster.address, timeout=60) as client:
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    with dask_cluster.down():
        assert not accepts(dask_cluster.port)
    with Client(dask_cluster.address, timeout=60) as client:
        assert client.submit(sum, [4, 5]).result(timeout=60) == 9


def test_jupyter_server_needs_its_token_and_comes_back(jupyter_server: JupyterServer) -> None:
    import urllib.error
    import urllib.request

    assert "started" in jupyter_server.api("GET", "/api/status")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(jupyter_server.url + "/api/kernels", timeout=30)
    assert info.value.code == 403
    with jupyter_server.down():
        assert not accepts(jupyter_server.port)
    assert "started" in jupyter_server.api("GET", "/api/status")
