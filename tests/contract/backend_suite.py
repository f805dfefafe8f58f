"""The contract every connection backend passes, ours and third parties'.

Use it from a test module::

    from tests.contract.backend_suite import BackendContract, Target

    class TestRedisContract(BackendContract):
        connect_timeout = 5.0

        @pytest.fixture
        def backend(self):
            return RedisBackend()

        @pytest.fixture
        def live_target(self, redis_server):          # a real peer, reachable
            return Target("redis://:pw@127.0.0.1:6379/0", secret_values=["pw"])

        @pytest.fixture
        def dead_target(self):                        # nothing listens there
            return Target("redis://:pw@127.0.0.1:1/0", secret_values=["pw"])

        @pytest.fixture
        def invalid_target(self):                     # split_spec must refuse it
            return Target("redis://:pw@[bad", secret_values=["pw"])

        def exercise(self, obj):                      # optional: use the live object
            obj.set("k", "v"); assert obj.get("k") == b"v"

Every secret -- each value in the ``secrets`` that ``split_spec`` returns, plus the
``secret_values`` a target lists -- must stay out of ``params``, ``describe``, record reprs,
the connections table, exception messages and log records.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ipysession.connections.backends import Backend, available_backends, get_backend
from ipysession.connections.reconnector import ConnectionState, Reconnector
from ipysession.connections.records import (
    connect_record,
    describe_record,
)
from ipysession.errors import ConnectFailed, InvalidSpec
from ipysession.model import ConnectionRecord
from ipysession.presentation import connection_rows
from tests.contract.deadlines import GENEROUS, finishes

__all__ = ["BackendContract", "Target", "assert_no_secret", "secret_strings"]


@dataclass
class Target:
    """A spec and options for ``split_spec``, and the strings that must never be shown."""

    spec: str | Mapping[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)


def secret_strings(secrets: Any) -> set[str]:
    """Every leaf value of a secrets mapping, as text (what must never be shown)."""
    out: set[str] = set()

    def walk(value: Any) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                walk(v)
        elif isinstance(value, bytes):
            walk(value.decode("utf-8", "replace"))
        elif str(value):
            out.add(str(value))

    walk(secrets)
    return out


def assert_no_secret(text: str, secrets: set[str] | list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret appears in {where}: {text!r}"


def _ipysession_log(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for rec in caplog.records:
        if rec.name.startswith("ipysession"):
            lines.append(rec.getMessage())
            if rec.exc_text:
                lines.append(rec.exc_text)
    return "\n".join(lines)


class BackendContract:
    """Subclass as ``Test<Name>Contract`` and provide the fixtures named in the module docs."""

    #: seconds a live connect may take
    connect_timeout: float = 10.0
    #: the timeout given when connecting to the dead target
    dead_timeout: float = 1.0

    def exercise(self, obj: Any) -> None:
        """Use the live object the way a user would (override to do more)."""

    # --- helpers ------------------------------------------------------------------------------

    def _split(self, backend: Backend, target: Target) -> tuple[dict[str, Any], dict[str, Any]]:
        return backend.split_spec(target.spec, target.options)

    def _secrets(self, backend: Backend, target: Target) -> set[str]:
        _, secrets = self._split(backend, target)
        return secret_strings(secrets) | set(target.secret_values)

    @pytest.fixture
    def live(self, backend: Backend, live_target: Target) -> Iterator[Any]:
        params, secrets = self._split(backend, live_target)
        obj = backend.connect(params, secrets, timeout=self.connect_timeout)
        try:
            yield obj
        finally:
            backend.close(obj)

    # --- registry -----------------------------------------------------------------------------

    def test_is_a_registered_backend(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert isinstance(backend.kind, str)
        assert backend.kind
        assert backend.kind in available_backends()
        assert type(get_backend(backend.kind)) is type(backend)

    # --- split_spec and describe --------------------------------------------------------------

    def test_split_spec_separates_the_secret(self, backend: Backend, live_target: Target) -> None:
        params, secrets = self._split(backend, live_target)
        assert secrets, "the live target must carry a secret"
        shown = json.dumps(params)
        assert_no_secret(shown, self._secrets(backend, live_target), "params")
        # Both halves are stored as JSON and must survive it unchanged.
        assert json.loads(json.dumps(params)) == params
        assert json.loads(json.dumps(secrets)) == secrets

    def test_describe_never_shows_a_secret(self, backend: Backend, live_target: Target) -> None:
        params, secrets = self._split(backend, live_target)
        text = backend.describe(params, secrets)
        assert isinstance(text, str)
        assert text
        assert_no_secret(text, self._secrets(backend, live_target), "describe()")

    def test_invalid_spec_is_refused_without_the_secret(
        self, backend: Backend, invalid_target: Target
    ) -> None:
        with pytest.raises(InvalidSpec) as info:
            backend.split_spec(invalid_target.spec, invalid_target.options)
        assert_no_secret(str(info.value), invalid_target.secret_values, "InvalidSpec")

    def test_unknown_option_is_refused(self, backend: Backend, live_target: Target) -> None:
        with pytest.raises(InvalidSpec, match="no_such_option"):
            backend.split_spec(live_target.spec, {**live_target.options, "no_such_option": 1})

    def test_record_repr_and_table_hide_secrets(
        self, backend: Backend, live_target: Target
    ) -> None:
        params, secrets = self._split(backend, live_target)
        record = ConnectionRecord(name="c", kind=backend.kind, params=params, secrets=secrets)
        record.stats.last_error = f"failed with {json.dumps(secrets)}"
        hidden = self._secrets(backend, live_target)
        assert_no_secret(repr(record), hidden, "repr(record)")
        assert_no_secret(describe_record(record), hidden, "describe_record")
        rows = connection_rows({"c": record}, {"c": ConnectionState.FAILED})
        shown = json.dumps([dataclasses.asdict(row) for row in rows])
        assert_no_secret(shown, hidden, "connection_rows")

    # --- connect, is_alive, close -------------------------------------------------------------

    def test_connect_gives_a_live_object(self, backend: Backend, live: Any) -> None:
        assert backend.is_alive(live, timeout=self.connect_timeout) is True
        self.exercise(live)

    def test_close_is_safe_twice(self, backend: Backend, live_target: Target) -> None:
        params, secrets = self._split(backend, live_target)
        obj = backend.connect(params, secrets, timeout=self.connect_timeout)
        backend.close(obj)
        backend.close(obj)

    def test_stored_record_connects_again(self, backend: Backend, live_target: Target) -> None:
        params, secrets = self._split(backend, live_target)
        record = ConnectionRecord(name="again", kind=backend.kind, params=params, secrets=secrets)
        stored = json.loads(json.dumps(record.to_dict()))
        restored = ConnectionRecord.from_dict("again", stored, "connections.again")
        obj = connect_record(restored, timeout=self.connect_timeout)
        try:
            assert backend.is_alive(obj, timeout=self.connect_timeout)
            assert restored.stats.successes == 1
            assert restored.stats.last_used is not None
        finally:
            backend.close(obj)

    def test_is_alive_and_close_never_raise_on_foreign_objects(self, backend: Backend) -> None:
        assert isinstance(backend.is_alive(object(), timeout=0.5), bool)
        backend.close(object())

    def test_dead_target_fails_fast_without_the_secret(
        self, backend: Backend, dead_target: Target, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="ipysession")
        params, secrets = self._split(backend, dead_target)
        hidden = secret_strings(secrets) | set(dead_target.secret_values)
        # It gives up by itself (at its timeout, or sooner), never hanging on the dead target.
        with pytest.raises(ConnectFailed) as info:
            finishes(lambda: backend.connect(params, secrets, timeout=self.dead_timeout))
        error = info.value
        assert_no_secret(str(error), hidden, "ConnectFailed")
        # The driver's exception, whose text may hold a secret, is not chained into tracebacks.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__, "raise ... from None"
        assert_no_secret(_ipysession_log(caplog), hidden, "the log")

    def test_logs_never_contain_secrets(
        self, backend: Backend, live_target: Target, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="ipysession")
        params, secrets = self._split(backend, live_target)
        obj = backend.connect(params, secrets, timeout=self.connect_timeout)
        backend.is_alive(obj, timeout=self.connect_timeout)
        backend.close(obj)
        backend.close(obj)
        assert_no_secret(_ipysession_log(caplog), self._secrets(backend, live_target), "the log")

    def test_reconnector_brings_it_back(self, backend: Backend, live_target: Target) -> None:
        params, secrets = self._split(backend, live_target)
        record = ConnectionRecord(name="r", kind=backend.kind, params=params, secrets=secrets)
        with Reconnector(attempts=1, timeout=self.connect_timeout) as reconnector:
            reconnector.start([record])
            ready = reconnector.wait(GENEROUS)  # returns as soon as it is ready
            assert set(ready) == {"r"}
            try:
                assert reconnector.state("r") is ConnectionState.CONNECTED
                assert backend.is_alive(ready["r"], timeout=self.connect_timeout)
            finally:
                backend.close(ready["r"])
