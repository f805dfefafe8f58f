"""Notebook sessions by short names (issue 12, "Identity follows the notebook").

A session named after its notebook is stored under the notebook's absolute path; the command
shows it relative to the home directory and takes any unambiguous suffix of it, and every
session carries a stable id that `show --json` reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipysession.cli.app import EXIT_DATA, EXIT_OK, main
from ipysession.keys import resolution as keystore
from ipysession.store import SessionStore
from tests.builders import make_session


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("IPYSESSION_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("IPYSESSION_PASSPHRASE", raising=False)
    keystore.clear_key_cache()
    yield home
    keystore.clear_key_cache()


def save(*names: str, session_id: str | None = None) -> None:
    with SessionStore(key=keystore.resolve_key().key) as store:
        for name in names:
            store.write(make_session(name, id=session_id))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--key-backend", "file", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_notebook_paths_relative_to_home(
    capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    save(str(home / "proj" / "analysis.ipynb"), "/srv/elsewhere/report.ipynb")
    code, out, _ = run(capsys, "list")
    assert code == EXIT_OK
    assert "~/proj/analysis.ipynb" in out
    assert str(home) not in out
    assert "/srv/elsewhere/report.ipynb" in out  # not under home: shown in full
    code, out, _ = run(capsys, "list", "--json")
    rows = {row["display_name"]: row["name"] for row in json.loads(out)}
    assert rows["~/proj/analysis.ipynb"] == str(home / "proj" / "analysis.ipynb")  # stored in full


@pytest.mark.parametrize(
    "typed", ["analysis.ipynb", "proj/analysis.ipynb", "~/proj/analysis.ipynb"]
)
def test_show_and_snapshots_take_any_unambiguous_suffix(
    capsys: pytest.CaptureFixture[str], home: Path, typed: str
) -> None:
    full = str(home / "proj" / "analysis.ipynb")
    save(full, str(home / "proj" / "report.ipynb"))
    code, out, err = run(capsys, "show", typed, "--json")
    assert code == EXIT_OK, err
    document = json.loads(out)
    assert document["name"] == full
    assert document["display_name"] == "~/proj/analysis.ipynb"
    code, out, err = run(capsys, "snapshots", typed)
    assert code == EXIT_OK, err
    assert "generation" in out


def test_an_ambiguous_suffix_names_every_match_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    save(str(home / "a" / "analysis.ipynb"), str(home / "b" / "analysis.ipynb"))
    for argv in (["show", "analysis.ipynb"], ["delete", "analysis.ipynb", "--yes"]):
        code, out, err = run(capsys, *argv)
        assert code == EXIT_DATA
        assert "'analysis.ipynb' matches 2 sessions" in err
        assert "'~/a/analysis.ipynb'" in err
        assert "'~/b/analysis.ipynb'" in err
    code, out, _ = run(capsys, "list")
    assert "~/a/analysis.ipynb" in out
    assert "~/b/analysis.ipynb" in out


def test_delete_and_export_by_suffix_act_on_the_full_name(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = str(home / "proj" / "analysis.ipynb")
    save(full, str(home / "proj" / "report.ipynb"))
    monkeypatch.setenv("EXPORT_PASS", "correct horse battery staple")
    out_file = str(tmp_path / "out.ipysx")
    code, _, err = run(
        capsys, "export", "analysis.ipynb", out_file, "--passphrase-env", "EXPORT_PASS"
    )
    assert code == EXIT_OK, err
    assert (tmp_path / "out.ipysx").is_file()
    code, out, err = run(capsys, "delete", "analysis.ipynb", "--yes")
    assert code == EXIT_OK, err
    assert f"Deleted session {full!r}" in out
    code, out, _ = run(capsys, "list")
    assert "analysis.ipynb" not in out
    assert "~/proj/report.ipynb" in out


def test_show_reports_the_stable_id_and_a_session_from_before_ids_has_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    save("with-id", session_id="0123456789abcdef0123456789abcdef")
    save("older")  # written as a release before ids would have written it
    code, out, _ = run(capsys, "show", "with-id", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["id"] == "0123456789abcdef0123456789abcdef"
    code, out, _ = run(capsys, "show", "with-id")
    assert "id          0123456789abcdef0123456789abcdef" in out
    code, out, _ = run(capsys, "show", "older", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["id"] is None
