"""The sqlalchemy backend against a real SQLite file database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import text

from ipysession.connections.backends.sqlalchemy import SQLAlchemyBackend, is_secret_query_name
from ipysession.errors import ConnectFailed, InvalidSpec
from tests.contract.backend_suite import BackendContract, Target, assert_no_secret

TOKEN = "tok-5f1d2c9e"
PASSWORD = "pw-8e41b0c3"


def sqlite_url(path: Path, **query: str) -> str:
    # uri=true hands extra query parameters to SQLite (which ignores unknown ones), so a
    # live SQLite engine can carry a secret parameter without a warning.
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"sqlite:///file:{path}?uri=true{extra}"


class TestSQLAlchemyContract(BackendContract):
    connect_timeout = 5.0

    @pytest.fixture
    def backend(self) -> SQLAlchemyBackend:
        return SQLAlchemyBackend()

    @pytest.fixture
    def live_target(self, tmp_path: Path) -> Target:
        return Target(sqlite_url(tmp_path / "live.db", token=TOKEN), secret_values=[TOKEN])

    @pytest.fixture
    def dead_target(self, tmp_path: Path) -> Target:
        missing = tmp_path / "no-such-dir" / "dead.db"
        return Target(sqlite_url(missing, token=TOKEN), secret_values=[TOKEN])

    @pytest.fixture
    def invalid_target(self) -> Target:
        return Target(f"not a url with {PASSWORD}", secret_values=[PASSWORD])

    def exercise(self, obj: Any) -> None:
        with obj.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (42)"))
        with obj.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar() == 42


@pytest.fixture
def backend() -> SQLAlchemyBackend:
    return SQLAlchemyBackend()


def test_password_and_secret_query_parameters_are_split_out(backend: SQLAlchemyBackend) -> None:
    url = (
        f"postgresql://alice:{PASSWORD}@db.example:5432/sales"
        f"?sslmode=require&sslkey=/home/alice/client.key&API_KEY={TOKEN}&Access-Token=abc123"
    )
    params, secrets = backend.split_spec(url, {})
    assert secrets == {
        "password": PASSWORD,
        "query": {"sslkey": "/home/alice/client.key", "API_KEY": TOKEN, "Access-Token": "abc123"},
    }
    assert params == {"url": "postgresql://alice@db.example:5432/sales?sslmode=require"}
    shown = backend.describe(params, secrets)
    assert shown.startswith("postgresql://alice:***@db.example:5432/sales?")
    assert "sslmode=require" in shown
    assert "sslkey=***" in shown
    for secret in (PASSWORD, TOKEN, "abc123", "client.key"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("PWD", True),
        ("token", True),
        ("api_key", True),
        ("apiKey", True),
        ("access_token", True),
        ("client_secret", True),
        ("sslkey", True),
        ("credentials_base64", True),
        ("sig", True),
        ("sslmode", False),
        ("charset", False),
        ("application_name", False),
        ("timeout", False),
    ],
)
def test_secret_query_names(name: str, secret: bool) -> None:
    assert is_secret_query_name(name) is secret


def test_secret_from_options_never_needs_typing(backend: SQLAlchemyBackend) -> None:
    params, secrets = backend.split_spec(
        "postgresql://alice@db/sales", {"secrets": {"password": PASSWORD, "token": TOKEN}}
    )
    assert secrets == {"password": PASSWORD, "query": {"token": TOKEN}}
    assert params["url"] == "postgresql://alice@db/sales"
    assert backend.describe(params, secrets) == "postgresql://alice:***@db/sales?token=***"


def test_url_with_special_characters_round_trips(backend: SQLAlchemyBackend) -> None:
    password = "p@ss:w/rd%?"
    from urllib.parse import quote

    params, secrets = backend.split_spec(f"postgresql://bob:{quote(password, safe='')}@h/db", {})
    assert secrets == {"password": password}
    assert backend._url(params, secrets).password == password
    assert_no_secret(backend.describe(params, secrets), [password, quote(password, safe="")], "d")


def test_mapping_spec_and_engine_kwargs(backend: SQLAlchemyBackend, tmp_path: Path) -> None:
    spec = {"url": f"sqlite:///{tmp_path / 'k.db'}", "engine_kwargs": {"echo": False}}
    params, _ = backend.split_spec(spec, {"engine_kwargs": {"pool_recycle": 60}})
    assert params["engine_kwargs"] == {"echo": False, "pool_recycle": 60}
    engine = backend.connect(params, {}, timeout=5.0)
    try:
        assert engine.pool._recycle == 60
    finally:
        backend.close(engine)


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        (None, {}, "needs a database URL"),
        ("", {}, "needs a database URL"),
        ({"url": "sqlite://", "oops": 1}, {}, "Unknown field"),
        ("sqlite://", {"engine_kwargs": {"creator": object()}}, "JSON values"),
        ("sqlite://", {"engine_kwargs": [1]}, "mapping"),
        ("sqlite://", {"secrets": "pw"}, "mapping"),
    ],
)
def test_invalid_specs(backend: SQLAlchemyBackend, spec: Any, options: Any, match: str) -> None:
    with pytest.raises(InvalidSpec, match=match):
        backend.split_spec(spec, options)


def test_engine_is_created_with_pre_ping_and_its_repr_hides_secrets(
    backend: SQLAlchemyBackend, tmp_path: Path
) -> None:
    params, secrets = backend.split_spec(sqlite_url(tmp_path / "r.db", token=TOKEN), {})
    engine = backend.connect(params, secrets, timeout=5.0)
    try:
        assert engine.pool._pre_ping is True
        assert TOKEN not in repr(engine)
        assert TOKEN not in str(engine.url)
    finally:
        backend.close(engine)


def test_a_row_survives_a_reconnect(backend: SQLAlchemyBackend, tmp_path: Path) -> None:
    params, secrets = backend.split_spec(f"sqlite:///{tmp_path / 'rows.db'}", {})
    first = backend.connect(params, secrets, timeout=5.0)
    with first.begin() as conn:
        conn.execute(text("CREATE TABLE notes (body TEXT)"))
        conn.execute(text("INSERT INTO notes VALUES ('kept')"))
    backend.close(first)
    second = backend.connect(params, secrets, timeout=5.0)
    try:
        with second.connect() as conn:
            assert conn.execute(text("SELECT body FROM notes")).scalar() == "kept"
    finally:
        backend.close(second)


def test_driver_errors_are_redacted(
    backend: SQLAlchemyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    # No driver for this dialect is installed: the ImportError is reported, the password is not.
    caplog.set_level(logging.DEBUG, logger="ipysession")
    params, secrets = backend.split_spec(f"mssql+nosuchdriver://u:{PASSWORD}@h/db", {})
    with pytest.raises(ConnectFailed) as info:
        backend.connect(params, secrets, timeout=2.0)
    assert PASSWORD not in str(info.value)
    assert "u:***@h/db" in str(info.value)
    assert PASSWORD not in caplog.text


def test_is_alive_is_false_when_the_database_is_gone(
    backend: SQLAlchemyBackend, tmp_path: Path
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    params, secrets = backend.split_spec(f"sqlite:///{folder / 'x.db'}", {})
    engine = backend.connect(params, secrets, timeout=5.0)
    try:
        assert backend.is_alive(engine, timeout=2.0)
        engine.dispose()
        (folder / "x.db").unlink()
        folder.rmdir()
        assert backend.is_alive(engine, timeout=2.0) is False
    finally:
        backend.close(engine)
