"""The ``jupysql`` backend: a SQL connection that ``%sql`` (jupysql) uses, restored after a restart.

``%session connect shop jupysql postgresql://me@db/shop --secret-env password=PGPASSWORD``
connects like the ``sqlalchemy`` backend (same spec, same secrets: the password is split out,
stored encrypted and shown as ``***``), binds the ``Engine`` to ``shop``, and registers it in
jupysql's connection manager under the alias ``shop``, as ``%sql shop`` would: ``%sql SELECT 1``
runs on it at once, and again right after a restart of the kernel, with no URL or password typed.

Spec and options
----------------
A database URL, as for :mod:`~ipysession.connections.backends.sqlalchemy`. Options: ``secrets``
(``{"password": ...}``), ``engine_kwargs``, and ``kwargs`` with ``alias`` (the name ``%sql``
knows it by; default: the connection's name, given by the magic) and ``current`` (``False``:
do not make it ``%sql``'s current connection).

Behaviour
---------
``connect`` creates the engine (``pool_pre_ping=True``, ``SELECT 1`` within the timeout) and
registers it with ``sql.connection.ConnectionManager``. A connection restored in the background
never takes over from one the user chose in this kernel meanwhile: if ``%sql`` already has a
current connection that is not this alias, it stays current. ``close`` removes the alias from
jupysql and disposes of the engine. ``is_alive`` runs ``SELECT 1``.

Connections made with ``%sql`` itself
-------------------------------------
``%sql postgresql://me:pw@db/shop --alias shop`` opens a connection ipysession did not make.
:func:`unrecorded_connections` finds such SQLAlchemy connections in jupysql's manager after a
cell; :class:`~ipysession.connections.live.ConnectionSet` adopts each one as a ``jupysql``
record (the engine as it is, not a second connection), under the alias when it is a Python
name, else ``sql_<database>``, so that it is restored into ``%sql`` after a restart like one
made with ``%session connect``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any

from ipysession.connections.backends.base import check_options, redact_text
from ipysession.connections.backends.sqlalchemy import SQLAlchemyBackend
from ipysession.errors import ConnectFailed, InvalidSpec

__all__ = ["JupysqlBackend", "connection_name", "engine_spec", "unrecorded_connections"]

log = logging.getLogger("ipysession")

_INSTALL_HINT = "Install jupysql with: pip install jupysql"
# jupysql's ConnectionManager is class-level state with no lock of its own.
_register_lock = threading.Lock()


def _manager() -> Any:
    from sql.connection import ConnectionManager

    return ConnectionManager


class JupysqlBackend:
    """A SQLAlchemy engine registered with jupysql's ``%sql`` under an alias."""

    kind = "jupysql"
    requires = ("sql.connection", "sqlalchemy")

    def __init__(self) -> None:
        self._sql = SQLAlchemyBackend()

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(self.kind, options, ("engine_kwargs", "kwargs"))
        kwargs = options.get("kwargs") or {}
        if not isinstance(kwargs, Mapping) or set(kwargs) - {"alias", "current"}:
            msg = "The jupysql backend takes --kwarg alias=NAME and --kwarg current=False"
            raise InvalidSpec(msg)
        alias = kwargs.get("alias")
        if alias is not None and (not isinstance(alias, str) or not alias.strip()):
            msg = "The jupysql alias must be a non-empty name"
            raise InvalidSpec(msg)
        inner = {k: v for k, v in options.items() if k != "kwargs"}
        params, secrets = self._sql.split_spec(spec, inner)
        if alias:
            params["alias"] = alias.strip()
        if kwargs.get("current") is False:
            params["current"] = False
        return params, secrets

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        text = self._sql.describe(params, secrets)
        if params.get("alias"):
            text += f" as %sql {params['alias']}"
        return redact_text(text, secrets)

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        target = self.describe(params, secrets)
        try:
            manager = _manager()
        except ImportError:
            msg = "The jupysql backend needs jupysql, which is not installed"
            raise ConnectFailed(msg, target=target, hint=_INSTALL_HINT) from None
        engine = self._sql.connect(params, secrets, timeout=timeout)
        # Marked as ours: registered with %sql before it is bound, it must not look like a
        # connection the user opened with %sql (see unrecorded_connections).
        engine._ipysession_made = True
        alias = params.get("alias") or None
        try:
            with _register_lock:
                before = manager.current
                stale = manager.connections.get(alias) if alias else None
                manager.set(engine, displaycon=False, alias=alias)
                registered = manager.current
                keep_before = before is not None and getattr(before, "alias", None) != alias
                if keep_before or params.get("current") is False:
                    manager.current = before
            if stale is not None and stale is not registered:
                _close_jupysql(stale)
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            self._sql.close(engine)
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            msg = f"jupysql did not take the connection ({text})"
            raise ConnectFailed(msg, target=target) from None
        log.debug("Connected to %s", target)
        return engine

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        return self._sql.is_alive(obj, timeout=timeout)

    def close(self, obj: Any) -> None:
        try:
            manager = _manager()
            with _register_lock:
                for alias, conn in list(manager.connections.items()):
                    if _engine_of(conn) is obj:
                        manager.connections.pop(alias, None)
                        if manager.current is conn:
                            manager.current = None
                        _close_jupysql(conn)
        except Exception as exc:  # noqa: BLE001 - close() never raises
            log.debug("Removing a connection from jupysql failed (%s)", type(exc).__name__)
        self._sql.close(obj)


def _engine_of(conn: Any) -> Any:
    inner = getattr(conn, "_connection_sqlalchemy", None)
    return getattr(inner, "engine", None)


def _close_jupysql(conn: Any) -> None:
    try:
        conn.close()
    except Exception as exc:  # noqa: BLE001 - closing never raises
        log.debug("Closing a jupysql connection failed (%s)", type(exc).__name__)


# --- connections made with %sql itself ----------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def unrecorded_connections(known: list[Any]) -> list[tuple[str, Any]]:
    """``(alias, engine)`` of every SQLAlchemy connection in jupysql's manager whose engine is
    not in ``known``. Empty, without importing anything, when jupysql is not in use."""
    if "sql.connection" not in sys.modules:
        return []
    try:
        manager = _manager()
        with _register_lock:
            found = [(str(a), _engine_of(c)) for a, c in manager.connections.items()]
    except Exception as exc:  # noqa: BLE001 - jupysql's internals may change
        log.debug("Reading jupysql's connections failed (%s)", type(exc).__name__)
        return []
    return [
        (alias, e)
        for alias, e in found
        if e is not None
        and not getattr(e, "_ipysession_made", False)
        and all(e is not k for k in known)
    ]


def engine_spec(engine: Any) -> str:
    """The URL ``engine`` was made from, password included: a spec for ``split_spec`` only."""
    return str(engine.url.render_as_string(hide_password=False))


def connection_name(alias: str, engine: Any, taken: set[str]) -> str:
    """A connection (and variable) name for a ``%sql`` connection: the alias when it is a
    Python name, else ``sql_<database>``; ``_2``, ``_3``... when taken."""
    if _IDENTIFIER.match(alias):
        base = alias
    else:
        database = str(getattr(getattr(engine, "url", None), "database", "") or "db")
        base = "sql_" + (re.sub(r"[^A-Za-z0-9_]", "_", database.rsplit("/", 1)[-1]) or "db")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name
