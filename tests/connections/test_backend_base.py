"""What every backend relies on: redaction, call_with_timeout, options, the backend registry and
third-party backends through entry points."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import pytest

from ipysession.connections.backends import (
    available_backends,
    call_with_timeout,
    check_options,
    get_backend,
    redact_text,
)
from ipysession.connections.records import (
    connect_record,
    describe_record,
    make_record,
)
from ipysession.errors import BackendNotFound, InvalidSpec
from tests.connections.peers import (
    SECRET,
)


def test_redact_text() -> None:
    secrets = {"password": "p@ss word", "query": {"token": ["t1-abc", "t2-def"]}, "port": 54321}
    text = (
        "postgresql://u:p%40ss%20word@h/db?token=t1-abc&token=t2-def port 54321 "
        "'p@ss word' p%40ss+word"
    )
    assert redact_text(text, secrets) == (
        "postgresql://u:***@h/db?token=***&token=*** port *** '***' ***"
    )
    assert (
        redact_text("a secret and a secret-longer", ["secret", "secret-longer"])
        == "a *** and a ***"
    )
    assert redact_text("nothing here", None) == "nothing here"
    assert redact_text("keep True and empty", {"flag": True, "empty": "", "none": None}) == (
        "keep True and empty"
    )
    assert redact_text("bytes key", {"key": b"key"}) == "bytes ***"


def test_call_with_timeout() -> None:
    assert call_with_timeout(lambda: 7, 1.0) == 7
    with pytest.raises(KeyError):
        call_with_timeout(lambda: {}["x"], 1.0)
    late: list[str] = []
    release = threading.Event()
    done = threading.Event()

    def blocked() -> str:
        release.wait(60)
        return "late value"

    def on_late(value: str) -> None:
        late.append(value)
        done.set()

    with pytest.raises(TimeoutError):
        call_with_timeout(blocked, 0.05, on_late=on_late)
    # The timeout ended the wait while the call was still blocked; its value, when it comes,
    # goes to on_late.
    assert late == []
    release.set()
    assert done.wait(60.0)
    assert late == ["late value"]


def test_check_options() -> None:
    check_options("x", {"secrets": {}, "a": 1}, ("a",))
    with pytest.raises(InvalidSpec, match="does not understand the option"):
        check_options("x", {"b": 1}, ("a",))


def test_builtin_backends() -> None:
    builtin = {"dask", "factory", "jupyter", "jupyter_server", "sqlalchemy"}
    assert builtin | {"jupysql"} <= set(available_backends())
    assert get_backend("jupyter") is get_backend("jupyter")
    assert get_backend("sqlalchemy").kind == "sqlalchemy"


def test_unknown_backend_names_the_installed_ones() -> None:
    with pytest.raises(BackendNotFound) as info:
        get_backend("mongodb")
    message = str(info.value)
    assert "No connection backend named 'mongodb'" in message
    assert "dask, factory, jupysql, jupyter, jupyter_server, sqlalchemy" in message
    assert "ipysession.backends" in message


PLUGIN = textwrap.dedent(
    """
    class MemoryBackend:
        kind = "ipys-test-memory"

        def split_spec(self, spec, options):
            return {"name": spec}, dict(options.get("secrets") or {})

        def connect(self, params, secrets, *, timeout):
            return {"name": params["name"]}

        def is_alive(self, obj, *, timeout):
            return True

        def close(self, obj):
            pass

        def describe(self, params, secrets):
            return "memory " + params["name"]


    class NotABackend:
        kind = "nope"


    class NeedsMissing(MemoryBackend):
        requires = ("ipys_module_that_is_not_installed",)
    """
)


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution declaring entry points in the ipysession.backends group."""
    (tmp_path / "ipys_test_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "ipys_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ipys-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ipysession.backends]\n"
        "ipys-test-memory = ipys_test_plugin:MemoryBackend\n"
        "ipys-test-broken = ipys_module_that_does_not_exist:Backend\n"
        "ipys-test-notabackend = ipys_test_plugin:NotABackend\n"
        "ipys-test-needsmissing = ipys_test_plugin:NeedsMissing\n"
        "jupyter = ipys_test_plugin:MemoryBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("plugin_dist")
def test_third_party_backends_through_entry_points() -> None:
    memory = get_backend("ipys-test-memory")
    assert type(memory).__name__ == "MemoryBackend"
    record = make_record("m", "ipys-test-memory", "scratch", {"secrets": {"k": SECRET}})
    assert describe_record(record) == "memory scratch"
    assert connect_record(record, timeout=1.0) == {"name": "scratch"}
    kinds = available_backends()
    assert "ipys-test-memory" in kinds
    assert "ipys-test-broken" not in kinds
    assert "ipys-test-notabackend" not in kinds
    assert "ipys-test-needsmissing" not in kinds
    with pytest.raises(BackendNotFound, match="failed to load"):
        get_backend("ipys-test-broken")
    with pytest.raises(BackendNotFound, match="does not implement the Backend protocol"):
        get_backend("ipys-test-notabackend")
    with pytest.raises(BackendNotFound, match="needs ipys_module_that_is_not_installed"):
        get_backend("ipys-test-needsmissing")
    # A plugin cannot take over a built-in kind.
    assert type(get_backend("jupyter")).__name__ == "JupyterBackend"
