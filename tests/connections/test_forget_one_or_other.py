"""`%session forget NAME` forgets the connection or the variable, not both; asks when ambiguous."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipysession
from ipysession.extension import get_manager
from tests.shell import ipython_shell, restart, run


def test_forgetting_a_connection_keeps_saving_a_variable_of_that_name(
    tmp_path: Path, capsys: Any
) -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"%session connect lite sqlalchemy sqlite:///{tmp_path / 'lite.db'}")
        run(shell, "%session forget lite")
        assert "forgot connection 'lite'" in capsys.readouterr().out
        run(shell, "lite = 42")
        run(shell, "%session save")
        restart(shell)
        run(shell, "pass")
        assert shell.user_ns.get("lite") == 42


def test_a_name_that_is_both_is_refused_until_the_user_says_which(
    tmp_path: Path, capsys: Any
) -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "both = 7")
        run(shell, f"%session connect both sqlalchemy sqlite:///{tmp_path / 'b.db'} --as engine")
        capsys.readouterr()
        result = shell.run_cell("%session forget both")
        assert not result.success
        err = capsys.readouterr()
        assert "names both a connection and a saved variable" in err.out + err.err
        assert "--connection" in err.out + err.err
        assert "both" in get_manager(shell).connections.records  # nothing was forgotten
        run(shell, "%session forget both --variable")
        out = capsys.readouterr().out
        assert "no longer saving both" in out
        assert "both" in get_manager(shell).connections.records
        run(shell, "%session forget both --connection")
        assert "forgot connection 'both'" in capsys.readouterr().out
        assert "both" not in get_manager(shell).connections.records
