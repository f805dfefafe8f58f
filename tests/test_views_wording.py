"""What `%session status`, `%session history` and `ipysession doctor` say agrees with itself: no
pointer from status to status, every history column named, no missing directory next to
"Everything is in order"."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import ipysession
from ipysession.cli import main as cli_main
from ipysession.keys import resolution
from tests.shell import ipython_shell, run


def test_status_does_not_tell_the_user_to_run_status(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "g = (i for i in range(3))")
        run(shell, "%session save")
        capsys.readouterr()
        run(shell, "%session restore")
        # The notice shown after a restore says where to see it again...
        assert "Run `%session status` to see this again." in capsys.readouterr().out

        run(shell, "%session status")

        status = capsys.readouterr().out
        assert "Last restore:" in status
        assert "g: not saved:" in status  # the restore's details are there...
        assert "%session status" not in status  # ...without a pointer to the view being read


def test_every_history_column_has_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = 1")
        shell.run_cell("1 / 0", store_history=True)
        capsys.readouterr()

        run(shell, "%session history")

        header, *rows = capsys.readouterr().out.splitlines()
        headers = re.split(r"\s{2,}", header.strip())
        assert headers == ["run", "#", "time", "result", "source"]
        results = {re.split(r"\s{2,}", row.strip())[3] for row in rows if "(this run)" in row}
        assert results == {"ok", "error"}


def test_doctor_never_calls_a_directory_missing_when_all_is_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IPYSESSION_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    resolution.clear_key_cache()
    try:
        cli_main(["doctor"])
        out = capsys.readouterr().out
        cli_main(["doctor", "--json"])
        report = json.loads(capsys.readouterr().out)
    finally:
        resolution.clear_key_cache()

    assert report["ok"] is True
    assert report["paths"]["quarantine dir"]["state"] == "missing"  # the JSON keeps its word
    assert "Everything is in order." in out
    [line] = [line for line in out.splitlines() if line.startswith("quarantine dir")]
    assert "not created yet" in line
    assert "missing" not in out
