"""The sqlalchemy backend against a real PostgreSQL (tests/servers/postgres.py) through psycopg."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import text

from ipysession.connections.backends.sqlalchemy import SQLAlchemyBackend
from ipysession.connections.reconnector import ConnectionState, Reconnector
from ipysession.model import ConnectionRecord
from tests.builders import wait_for
from tests.contract.backend_suite import BackendContract, Target, assert_no_secret
from tests.contract.deadlines import finishes
from tests.servers.fixtures import PG_PASSWORD
from tests.servers.postgres import PostgresServer
from tests.servers.process import free_port


class TestPostgresContract(BackendContract):
    connect_timeout = 30.0

    @pytest.fixture
    def backend(self) -> SQLAlchemyBackend:
        return SQLAlchemyBackend()

    @pytest.fixture
    def live_target(self, postgres: PostgresServer) -> Target:
        return Target(postgres.info.url(), secret_values=[PG_PASSWORD])

    @pytest.fixture
    def dead_target(self) -> Target:
        return Target(
            f"postgresql+psycopg://tester:{PG_PASSWORD}@127.0.0.1:{free_port()}/shop",
            secret_values=[PG_PASSWORD],
        )

    @pytest.fixture
    def invalid_target(self) -> Target:
        # A port that is not a number: SQLAlchemy refuses the URL before any driver sees it.
        return Target(
            f"postgresql+psycopg://tester:{PG_PASSWORD}@127.0.0.1:notaport/shop",
            secret_values=[PG_PASSWORD],
        )

    def exercise(self, obj: Any) -> None:
        with obj.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE t (x integer)"))
            conn.execute(text("INSERT INTO t VALUES (42)"))
            assert conn.execute(text("SELECT x FROM t")).scalar() == 42


@pytest.fixture
def backend() -> SQLAlchemyBackend:
    return SQLAlchemyBackend()


def test_password_from_the_environment_is_kept_apart(
    backend: SQLAlchemyBackend, postgres: PostgresServer
) -> None:
    """``--secret-env password=PGPASSWORD``: the URL the user typed has no password at all."""
    url = postgres.info.url(password=False)
    params, secrets = backend.split_spec(url, {"secrets": {"password": PG_PASSWORD}})
    assert secrets == {"password": PG_PASSWORD}
    assert PG_PASSWORD not in json.dumps(params)
    engine = backend.connect(params, secrets, timeout=30.0)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "tester"
        assert PG_PASSWORD not in repr(engine)
        assert PG_PASSWORD not in str(engine.url)
    finally:
        backend.close(engine)


def test_wrong_password_fails_without_showing_either(
    backend: SQLAlchemyBackend, postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    from ipysession.errors import ConnectFailed

    caplog.set_level(logging.DEBUG, logger="ipysession")
    params, _ = backend.split_spec(postgres.info.url(password=False), {})
    wrong = {"password": "wrong-pw-5d0c"}
    with pytest.raises(ConnectFailed, match="password authentication failed") as info:
        finishes(lambda: backend.connect(params, wrong, timeout=30.0))
    assert_no_secret(str(info.value) + caplog.text, ["wrong-pw-5d0c", PG_PASSWORD], "the error")


def test_server_restarted_while_idle_next_use_works(
    backend: SQLAlchemyBackend, postgres: PostgresServer
) -> None:
    """Idle connections die with the server; the pre-ping replaces them on the next use."""
    params, secrets = backend.split_spec(postgres.info.url(), {})
    engine = backend.connect(params, secrets, timeout=30.0)
    try:
        with postgres.down():
            assert backend.is_alive(engine, timeout=5.0) is False
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 7")).scalar() == 7
        assert backend.is_alive(engine, timeout=30.0) is True
    finally:
        backend.close(engine)


def test_down_at_start_then_up_is_bound_by_itself(
    backend: SQLAlchemyBackend, postgres: PostgresServer
) -> None:
    """The reconnector keeps trying while the server is down and connects once it is up."""
    params, secrets = backend.split_spec(postgres.info.url(), {})
    record = ConnectionRecord(name="db", kind="sqlalchemy", params=params, secrets=secrets)
    postgres.stop()
    try:
        with Reconnector(attempts=1000, timeout=5.0, backoff=0.2) as reconnector:
            reconnector.start([record])
            wait_for(
                lambda: reconnector.state("db") in (ConnectionState.RETRYING,),
                '"db" is retrying while PostgreSQL is down',
            )
            postgres.start()
            ready = reconnector.wait(120.0)
            assert set(ready) == {"db"}
            assert reconnector.state("db") is ConnectionState.CONNECTED
            with ready["db"].connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            backend.close(ready["db"])
    finally:
        postgres.start()
