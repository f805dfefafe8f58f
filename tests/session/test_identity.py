"""A session's stable id (issue 12): made with the session, kept across generations and
restarts, shown by `%session status` and `%session show`; older files (no id) still read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.keys import resolution
from ipysession.model import Session
from ipysession.session.manager import SessionManager
from tests.builders import make_session
from tests.shell import ipython_shell, restart, run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ID = re.compile(r"^Id:\s+([0-9a-f]{32})$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _no_cached_key() -> Any:
    resolution.clear_key_cache()
    yield
    resolution.clear_key_cache()


def manager_of(shell: Any) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


def test_the_id_round_trips_and_is_absent_from_documents_without_one() -> None:
    session = make_session("nb", id="ab" * 16)
    assert Session.from_dict(session.to_dict()).id == "ab" * 16
    older = make_session("nb").to_dict()
    assert "id" not in older
    assert Session.from_dict(older).id is None
    assert "id" not in Session.from_dict(older).extra


def test_a_session_keeps_its_id_across_saves_and_restarts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="/nb/identity.ipynb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "x = 1")
        run(shell, "%session save")
        run(shell, "%session status")
        [first] = ID.findall(capsys.readouterr().out)
        manager = manager_of(shell)
        assert manager.store.read(manager.name).session.id == first

        run(shell, "x = 2")
        run(shell, "%session save")
        restart(shell)
        run(shell, "%session status")
        [after_restart] = ID.findall(capsys.readouterr().out)
        manager = manager_of(shell)
        assert manager.store.read(manager.name).generation == 3  # the final save at restart too
        assert shell.user_ns["x"] == 2

        run(shell, "%session show identity.ipynb")  # a suffix selects it in the magic, too
        shown = capsys.readouterr().out
    assert after_restart == first
    assert f"id          {first}" in shown


def test_a_session_saved_before_ids_gets_one_at_its_next_save_and_keeps_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="/nb/older.ipynb") as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        manager.store.write(make_session("/nb/older.ipynb", variables={}))  # no id, as before
        restart(shell)
        manager = manager_of(shell)
        assert manager.store.read(manager.name).session.id is None
        run(shell, "y = 1")
        run(shell, "%session save")
        given = manager.store.read(manager.name).session.id
        run(shell, "y = 2")
        run(shell, "%session save")
        assert given is not None
        assert manager.store.read(manager.name).session.id == given


@pytest.mark.parametrize("version", [1, 2])
def test_released_fixtures_without_an_id_still_read(version: int) -> None:
    from ipysession.keys.crypto import MasterKey
    from ipysession.store import fileformat

    # TEST KEY, published on purpose (see tests/fixtures/make_fixtures.py); it protects nothing.
    key = MasterKey(b"test key only, not a secret!!!!!", description="fixture test key")
    doc = fileformat.decode_session((FIXTURES / f"v{version}-session.ipys").read_bytes(), key)
    doc.pop("format")
    session = Session.from_dict(doc)
    assert session.name == "fixtures/v1.ipynb"
    assert session.id is None
    assert "id" not in session.to_dict()  # written back as it was: no id invented on reading


def test_a_frontend_fetch_carries_the_session_name_and_id() -> None:
    from ipysession.capture.frontend import LayoutChannel

    channel = LayoutChannel()
    assert channel.handle({"action": "fetch"}) == {"status": "ok", "layout": None}
    channel.identity = lambda: {"session": "/nb/a.ipynb", "session_id": "cd" * 16}
    assert channel.handle({"action": "fetch"}) == {
        "status": "ok",
        "layout": None,
        "session": "/nb/a.ipynb",
        "session_id": "cd" * 16,
    }
