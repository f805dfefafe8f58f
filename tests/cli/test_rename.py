"""`ipysession rename OLD NEW`: a renamed or moved notebook keeps its session.

A kernel holding the session is played by a real live process (a child that sleeps) holding its
lease, as in test_delete.py: liveness is decided by that process existing, not mocked.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipysession.cli.app import EXIT_DATA, EXIT_OK, EXIT_USAGE, main
from ipysession.cli.rename import new_name
from ipysession.keys import resolution as keystore
from ipysession.session import lease
from ipysession.session.discard import DEFAULT_LEASE_TIMEOUT
from ipysession.store import SessionStore
from tests.builders import BIG, make_session

OLD = "/work/proj/analysis.ipynb"
NEW = "/work/proj/renamed.ipynb"


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "root"
    monkeypatch.setenv("IPYSESSION_DIR", str(root))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("IPYSESSION_PASSPHRASE", raising=False)
    keystore.clear_key_cache()
    with local_store() as store:
        store.write(make_session(OLD, cells=2, big=BIG, id="b" * 32))
        store.checkpoint(OLD, "first")
    yield root
    keystore.clear_key_cache()


def local_store() -> SessionStore:
    return SessionStore(key=keystore.resolve_key().key)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def held(env: Path) -> Iterator[lease.LeaseHolder]:
    """Session OLD held by a live process (the 'kernel')."""
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        holder = lease.LeaseHolder(
            host=socket.gethostname(),
            pid=kernel.pid,
            kernel_id="0badc0de-1234",
            run_id="run-1",
            started=time.time(),
        )
        outcome = lease.acquire(lease.RootDirs(env), OLD, holder, timeout=DEFAULT_LEASE_TIMEOUT)
        assert outcome.ours
        yield holder
        lease.release(lease.RootDirs(env), OLD, holder)
    finally:
        kernel.kill()
        kernel.wait()


def test_rename_by_suffix_moves_everything_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "rename", "analysis.ipynb", NEW)
    assert code == EXIT_OK, err
    assert f"Renamed session {OLD!r} to {NEW!r}" in out
    assert "1 checkpoint(s)" in out
    assert "restores it" in out
    with local_store() as store:
        assert not store.exists(OLD)
        result = store.read(NEW)
        assert result.session.id == "b" * 32
        assert len(result.session.history) == 2
        blob_id = result.session.variables["big"].blob
        assert blob_id is not None
        assert store.read_blob(NEW, blob_id) == BIG
        assert [c.label for c in store.checkpoints(NEW)] == ["first"]


def test_a_relative_new_name_is_taken_from_the_current_directory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "rename", "analysis.ipynb", "moved/new.ipynb")
    assert code == EXIT_OK, err
    with local_store() as store:
        assert store.exists(str(tmp_path / "moved" / "new.ipynb"))


def test_new_name_rules() -> None:
    assert new_name("b.ipynb", "/p/a.ipynb", cwd="/q") == "/q/b.ipynb"
    assert new_name("../r/b.ipynb", "/p/a.ipynb", cwd="/q/s") == "/q/r/b.ipynb"
    assert new_name("/x/b.ipynb", "/p/a.ipynb", cwd="/q") == "/x/b.ipynb"
    assert new_name("~/b.ipynb", "/p/a.ipynb") == str(Path("~/b.ipynb").expanduser())
    assert new_name("Console 2", "Console 1", cwd="/q") == "Console 2"


def test_rename_refuses_an_existing_target(capsys: pytest.CaptureFixture[str]) -> None:
    with local_store() as store:
        store.write(make_session(NEW, cells=7))
    code, out, err = run(capsys, "rename", OLD, NEW)
    assert code == EXIT_DATA
    assert "exists already" in err
    assert "nothing was renamed" in err
    assert "Renamed" not in out
    with local_store() as store:
        assert len(store.read(NEW).session.history) == 7
        assert len(store.read(OLD).session.history) == 2


def test_rename_of_a_missing_session_says_how_to_list_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "rename", "/nowhere/gone.ipynb", NEW)
    assert code == EXIT_DATA
    assert "No session named" in err
    assert "ipysession list" in err


def test_rename_refuses_a_session_a_live_kernel_holds_naming_it(
    capsys: pytest.CaptureFixture[str], held: lease.LeaseHolder
) -> None:
    code, out, err = run(capsys, "rename", OLD, NEW)
    assert code == EXIT_USAGE
    assert "in use by kernel 0badc0de" in err
    assert f"pid {held.pid}" in err
    assert "nothing was renamed" in err
    assert "--force" in err
    assert "Renamed" not in out
    with local_store() as store:
        assert store.exists(OLD)
        assert not store.exists(NEW)


def test_rename_force_renames_it_and_says_what_the_kernel_will_do(
    capsys: pytest.CaptureFixture[str], held: lease.LeaseHolder
) -> None:
    code, out, err = run(capsys, "rename", OLD, NEW, "--force")
    assert code == EXIT_OK, err
    assert "Renamed session" in out
    assert "stops saving it at its next cell" in out
    with local_store() as store:
        assert not store.exists(OLD)
        assert store.read(NEW).session.id == "b" * 32


def test_rename_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    assert "rename" in out
    assert "move a session to a renamed or moved notebook" in out
    code, out, _ = run(capsys, "rename", "--help")
    assert code == EXIT_OK
    assert "--force" in out
    assert "%session adopt" in out
