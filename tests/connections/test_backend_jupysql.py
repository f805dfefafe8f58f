"""The jupysql backend against real PostgreSQL: registered with %sql's connection manager."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from ipysession.connections.backends.jupysql import JupysqlBackend
from ipysession.errors import InvalidSpec
from tests.contract.backend_suite import BackendContract, Target
from tests.servers.fixtures import PG_PASSWORD
from tests.servers.postgres import PostgresServer
from tests.servers.process import free_port


@pytest.fixture(autouse=True)
def jupysql_manager() -> Iterator[Any]:
    """jupysql's ConnectionManager is process-wide: each test starts and ends with it empty."""
    from sql.connection import ConnectionManager

    ConnectionManager.close_all()
    ConnectionManager.current = None
    yield ConnectionManager
    ConnectionManager.close_all()
    ConnectionManager.current = None


class TestJupysqlContract(BackendContract):
    connect_timeout = 30.0

    @pytest.fixture
    def backend(self) -> JupysqlBackend:
        return JupysqlBackend()

    @pytest.fixture
    def live_target(self, postgres: PostgresServer) -> Target:
        return Target(
            postgres.info.url(), options={"kwargs": {"alias": "shop"}}, secret_values=[PG_PASSWORD]
        )

    @pytest.fixture
    def dead_target(self) -> Target:
        url = f"postgresql+psycopg://tester:{PG_PASSWORD}@127.0.0.1:{free_port()}/shop"
        return Target(url, secret_values=[PG_PASSWORD])

    @pytest.fixture
    def invalid_target(self) -> Target:
        url = f"postgresql+psycopg://tester:{PG_PASSWORD}@127.0.0.1:notaport/shop"
        return Target(url, secret_values=[PG_PASSWORD])

    def exercise(self, obj: Any) -> None:
        from sql.connection import ConnectionManager

        assert ConnectionManager.current is not None
        assert ConnectionManager.current.alias == "shop"
        with obj.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1


@pytest.fixture
def backend() -> JupysqlBackend:
    return JupysqlBackend()


def test_registered_under_its_alias_and_removed_on_close(
    backend: JupysqlBackend, postgres: PostgresServer, jupysql_manager: Any
) -> None:
    params, secrets = backend.split_spec(postgres.info.url(), {"kwargs": {"alias": "shop"}})
    assert params["alias"] == "shop"
    assert PG_PASSWORD not in backend.describe(params, secrets)
    engine = backend.connect(params, secrets, timeout=30.0)
    conn = jupysql_manager.connections["shop"]
    assert jupysql_manager.current is conn
    result = conn.raw_execute("SELECT 40 + 2")
    assert result.fetchone()[0] == 42
    assert PG_PASSWORD not in conn.url
    backend.close(engine)
    backend.close(engine)
    assert "shop" not in jupysql_manager.connections
    assert jupysql_manager.current is None


def test_a_restored_connection_never_takes_over_the_current_one(
    backend: JupysqlBackend, postgres: PostgresServer, jupysql_manager: Any
) -> None:
    mine = backend.connect(*backend.split_spec(postgres.info.url(), {"kwargs": {"alias": "mine"}}),
                           timeout=30.0)  # fmt: skip
    chosen = jupysql_manager.current
    restored = backend.connect(
        *backend.split_spec(postgres.info.url(), {"kwargs": {"alias": "restored"}}), timeout=30.0
    )
    try:
        assert jupysql_manager.current is chosen
        assert set(jupysql_manager.connections) == {"mine", "restored"}
    finally:
        backend.close(restored)
        backend.close(mine)


def test_unknown_kwargs_are_refused(backend: JupysqlBackend) -> None:
    with pytest.raises(InvalidSpec, match="alias=NAME"):
        backend.split_spec("sqlite://", {"kwargs": {"pool_size": 3}})


def test_only_connections_opened_with_sql_itself_are_unrecorded(
    backend: JupysqlBackend, postgres: PostgresServer, jupysql_manager: Any
) -> None:
    from ipysession.connections.backends.jupysql import (
        connection_name,
        engine_spec,
        unrecorded_connections,
    )

    ours = backend.connect(
        *backend.split_spec(postgres.info.url(), {"kwargs": {"alias": "ours"}}), timeout=30.0
    )
    try:
        # Registered with %sql, not yet bound: still not taken for the user's own.
        assert unrecorded_connections([]) == []
        # What `%sql URL --alias typed` does (the magic needs a shell; its connection class not).
        from sql.connection import SQLAlchemyConnection
        from sqlalchemy import create_engine

        SQLAlchemyConnection(create_engine(postgres.info.url()), alias="typed")
        found = unrecorded_connections([ours])
        assert [alias for alias, _ in found] == ["typed"]
        engine = found[0][1]
        assert PG_PASSWORD in engine_spec(engine)  # the spec split_spec takes the secret from
        assert connection_name("typed", engine, set()) == "typed"
        assert connection_name("typed", engine, {"typed"}) == "typed_2"
        assert connection_name("postgresql://tester:***@h/shop", engine, set()) == "sql_shop"
        assert unrecorded_connections([ours, engine]) == []
    finally:
        backend.close(ours)
