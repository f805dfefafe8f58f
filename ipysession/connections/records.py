"""Connection records and their history: make, update, describe, connect once, most recent first.

This module works on the :class:`~ipysession.model.ConnectionRecord` mapping a session holds
(``Session.connections``) and on the backends of :mod:`ipysession.connections.backends`. It knows
nothing of IPython or threads: the :class:`~ipysession.connections.reconnector.Reconnector`
connects records in the background, and the manager and the ``%session`` magics call both.

- :func:`make_record` splits a user's spec into a new record (params in the clear, secrets for
  the encrypted part); :func:`update_record` re-splits a new spec into an existing record,
  keeping its history and variable.
- :func:`connect_record` connects one record synchronously (``%session connect``), updating its
  history; :func:`record_success` and :func:`record_failure` are the history updates themselves.
- :func:`mru_order` sorts records most recently used first (the order every view shows; the
  rows themselves are built by :mod:`ipysession.presentation`).
- :func:`redacted_error` is what a failure says, secrets redacted, for a state or ``last_error``;
  :func:`failure_cause` sorts a failure into a :class:`FailureCause` and :func:`advice` names the
  command that fits it (``%session reconnect`` when the target was merely down, ``%session
  connect`` when the spec or the credentials were refused); :func:`one_line` is an error as one
  line of a table.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ipysession.connections.backends.base import get_backend, redact_text
from ipysession.errors import (
    BackendNotFound,
    ConnectFailed,
    ConnectionSetupError,
    InvalidSpec,
    SessionError,
)
from ipysession.model import ConnectionRecord, ConnectionStats

__all__ = [
    "FailureCause",
    "advice",
    "connect_record",
    "describe_record",
    "failure_cause",
    "make_record",
    "mru_order",
    "one_line",
    "record_failure",
    "record_success",
    "redacted_error",
    "update_record",
]

log = logging.getLogger("ipysession")


def as_list(
    records: Mapping[str, ConnectionRecord] | Iterable[ConnectionRecord],
) -> list[ConnectionRecord]:
    """The records of a ``{name: record}`` mapping, or of any iterable of records."""
    if isinstance(records, Mapping):
        return list(records.values())
    return list(records)


def mru_order(
    records: Mapping[str, ConnectionRecord] | Iterable[ConnectionRecord],
) -> list[ConnectionRecord]:
    """Records most recently used first; then never-used ones, newest created first."""
    return sorted(
        as_list(records),
        key=lambda r: (
            r.stats.last_used is None,
            -(r.stats.last_used or 0.0),
            -r.stats.created,
            r.name,
        ),
    )


def record_success(record: ConnectionRecord, *, now: float | None = None) -> None:
    """Count a successful connect, mark the record used now and clear its last error."""
    record.stats.successes += 1
    record.stats.last_used = time.time() if now is None else now
    record.stats.last_error = None
    record.stats.last_error_at = None
    record.disconnected = False


def record_failure(
    record: ConnectionRecord, error_text: str, *, now: float | None = None, count: bool = True
) -> None:
    """Keep a failed connect's (already redacted) error, redacted once more, and its time.

    ``count=False`` updates the error of a failure already counted (a background retry of the
    same outage) without counting it again. A failure does not make the record "used".
    """
    if count:
        record.stats.failures += 1
    record.stats.last_error = redact_text(error_text, record.secrets)
    record.stats.last_error_at = time.time() if now is None else now


class FailureCause(str, enum.Enum):
    """Why a connect failed, as far as the error tells: it decides retrying and the advice."""

    #: Down, refused, timed out, no route: it may come back by itself; retried in the background.
    UNREACHABLE = "unreachable"
    #: The spec, the backend or the credentials were refused: retrying cannot help.
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value


# What servers say when they refuse credentials (PostgreSQL, MySQL, SQL Server, HTTP, Jupyter).
_REJECTED_WORDS = re.compile(
    r"authenticat|password|permission denied|access denied|not authori[sz]ed|unauthori[sz]ed"
    r"|forbidden|\b40[13]\b|invalid (?:token|credentials|api key)|login failed|does not exist",
    re.IGNORECASE,
)


def failure_cause(exc: BaseException, text: str | None = None) -> FailureCause:
    """Sort a connect failure: a refused spec or credentials, or a target that did not answer.

    ``text`` is the redacted message (``redacted_error``); it is what is matched, so a secret
    never takes part. An unknown error counts as unreachable: retrying it costs little, while
    giving up on a server that was only down is what users complained about.
    """
    if isinstance(exc, (BackendNotFound, InvalidSpec)):
        return FailureCause.REJECTED
    message = text if text is not None else f"{type(exc).__name__}: {exc}"
    return FailureCause.REJECTED if _REJECTED_WORDS.search(message) else FailureCause.UNREACHABLE


def advice(name: str, cause: FailureCause | None) -> str:
    """The command that fits a failure of connection ``name``."""
    if cause is FailureCause.REJECTED:
        return (
            f"`%session connect {name} SPEC` gives it a new spec or credentials "
            f"(the kind is kept); `%session connections {name}` shows the whole error"
        )
    return (
        f"it is retried in the background; `%session reconnect {name}` tries now, and "
        f"`%session connections {name}` shows the whole error"
    )


def one_line(text: str | None, limit: int = 120) -> str:
    """``text`` as one line of a table: blanks (tabs, newlines) folded to one space, cut."""
    if not text:
        return ""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


def make_record(
    name: str,
    kind: str,
    spec: str | Mapping[str, Any] | None,
    options: Mapping[str, Any] | None = None,
    *,
    variable: str = "",
    auto: bool = True,
) -> ConnectionRecord:
    """A new record for ``spec``, split by the ``kind`` backend (raises ConnectionSetupError)."""
    params, secrets = get_backend(kind).split_spec(spec, options or {})
    return ConnectionRecord(
        name=name, kind=kind, params=params, secrets=secrets, variable=variable, auto=auto
    )


def update_record(
    record: ConnectionRecord,
    spec: str | Mapping[str, Any] | None,
    options: Mapping[str, Any] | None = None,
    *,
    kind: str | None = None,
) -> ConnectionRecord:
    """A copy of ``record`` pointing at ``spec`` (same name, variable, auto flag and history)."""
    kind = kind or record.kind
    params, secrets = get_backend(kind).split_spec(spec, options or {})
    return ConnectionRecord(
        name=record.name,
        kind=kind,
        params=params,
        secrets=secrets,
        variable=record.variable,
        auto=record.auto,
        stats=ConnectionStats.from_dict(record.stats.to_dict(), "stats"),
        extra=dict(record.extra),
    )


def describe_record(record: ConnectionRecord) -> str:
    """The record's target, secrets redacted. Never raises."""
    try:
        text = get_backend(record.kind).describe(record.params, record.secrets)
    except BackendNotFound:
        text = f"{record.kind} (backend not installed)"
    except Exception as exc:  # noqa: BLE001 - describe_record() never raises
        log.debug("Describing connection %s failed (%s)", record.name, type(exc).__name__)
        text = f"{record.kind} connection"
    return redact_text(text, record.secrets)


def redacted_error(exc: BaseException, record: ConnectionRecord) -> str:
    """What went wrong, for a state message or ``last_error``: no target (shown beside it)."""
    if isinstance(exc, SessionError):
        text = exc.what + (f". {exc.hint}" if exc.hint else "")
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact_text(text, record.secrets)


_PLAIN_ERRORS = (ConnectionSetupError, BackendNotFound, InvalidSpec, ConnectFailed)


def connect_record(record: ConnectionRecord, *, timeout: float) -> Any:
    """Connect ``record`` now, on this thread, and update its history.

    Returns the live object. Raises :class:`~ipysession.errors.ConnectionSetupError`
    (``BackendNotFound``, ``InvalidSpec`` or ``ConnectFailed``) with secrets redacted.
    """
    try:
        backend = get_backend(record.kind)
        obj = backend.connect(record.params, record.secrets, timeout=timeout)
    except ConnectionSetupError as exc:
        record_failure(record, redacted_error(exc, record))
        if redact_text(str(exc), record.secrets) != str(exc):  # a plugin let a secret through
            cls = type(exc) if type(exc) in _PLAIN_ERRORS else ConnectFailed
            raise cls(
                redact_text(exc.what, record.secrets),
                target=describe_record(record),
                hint=redact_text(exc.hint, record.secrets) if exc.hint else None,
            ) from None
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party backend raises anything
        error = redacted_error(exc, record)
        record_failure(record, error)
        raise ConnectFailed(error, target=describe_record(record)) from None
    record_success(record)
    return obj
