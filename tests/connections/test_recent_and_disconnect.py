"""Connection history across notebooks: a new notebook's `%session connect db` takes the record
from the user-wide recent list; failed connects are in it with their error (redacted);
`disconnect` is remembered across restarts until the next `connect`. Real shells, real SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipysession
from ipysession.extension import get_manager
from tests.builders import wait_for
from tests.shell import ipython_shell, restart, run

SECRET = "recent-secret-5c1d9e"


def test_a_new_notebook_connects_by_name_from_the_recent_list(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///file:{tmp_path / 'sales.db'}?uri=true&token={SECRET}"
    with ipython_shell(autosave_interval=0.0, session_name="first.ipynb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"%session connect db sqlalchemy '{url}'")
        # A connect that fails is remembered too, with its error, secrets redacted.
        bad = f"sqlite:///file:{tmp_path / 'no' / 'dir.db'}?uri=true&token={SECRET}"
        shell.run_cell(f"%session connect broken sqlalchemy '{bad}'")
        run(shell, "%session connections --recent")
        listing = capsys.readouterr().out
        assert "db" in listing
        assert "broken" in listing
        assert SECRET not in listing
        ipysession.unload_ipython_extension(shell)
    with ipython_shell(autosave_interval=0.0, session_name="second.ipynb") as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None
        assert "db" not in manager.connections.records
        run(shell, "%session connect db")  # no KIND, no SPEC: from the recent list
        assert "connected 'db'" in capsys.readouterr().out
        assert shell.user_ns["db"].url.database.endswith("sales.db")
        broken = next(r for r in manager.connections.recent() if r.name == "broken")
        assert broken.stats.failures == 1
        assert broken.stats.last_error
        assert SECRET not in broken.stats.last_error


def test_disconnect_is_remembered_across_restarts_until_the_next_connect(
    tmp_path: Path, capsys: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    with ipython_shell(autosave_interval=0.0, session_name="disc.ipynb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"%session connect db sqlalchemy {url}")
        run(shell, "%session disconnect db")
        run(shell, "%session save")
        restart(shell)
        run(shell, "pass")
        manager = get_manager(shell)
        assert manager is not None
        assert "db" in manager.connections.records
        assert "db" not in shell.user_ns  # not reconnected: the user disconnected it
        assert manager.connections.states()["db"] == "disconnected"
        capsys.readouterr()
        run(shell, "%session connections db")
        assert "disconnected, until the next `%session connect`" in capsys.readouterr().out
        run(shell, "%session connect db")
        run(shell, "%session save")
        restart(shell)
        run(shell, "pass")
        manager = get_manager(shell)
        assert manager is not None
        manager.connections.reconnector.wait_for("db", 60.0)

        def bound_at_a_cell() -> bool:
            # Objects are bound on the main thread at a cell boundary; the worker may hand it
            # over just after the state said connected, so a later cell binds it.
            run(shell, "pass")
            return "db" in shell.user_ns

        wait_for(bound_at_a_cell, "db bound again after the next connect and a restart")
