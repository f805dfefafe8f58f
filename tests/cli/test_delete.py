"""`ipysession delete` of a session a running kernel holds, and `doctor` on dangling references.

The kernel is played by a real live process (a child that sleeps) holding the session's lease,
as a kernel's lease records it: liveness is decided by that process existing, not mocked.
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
from ipysession.keys import resolution as keystore
from ipysession.session import lease
from ipysession.session.discard import DEFAULT_LEASE_TIMEOUT
from ipysession.session.options import SessionOptions
from ipysession.store import SessionStore
from ipysession.store.blobs import blob_path
from tests.builders import BIG, make_session


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "root"
    monkeypatch.setenv("IPYSESSION_DIR", str(root))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("IPYSESSION_PASSPHRASE", raising=False)
    keystore.clear_key_cache()
    yield root
    keystore.clear_key_cache()


def local_store() -> SessionStore:
    return SessionStore(key=keystore.resolve_key().key)


@pytest.fixture
def held(env: Path) -> Iterator[lease.LeaseHolder]:
    """Session 'analysis' saved, and held by a live process (the 'kernel')."""
    with local_store() as store:
        store.write(make_session("analysis", big=BIG))
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        holder = lease.LeaseHolder(
            host=socket.gethostname(),
            pid=kernel.pid,
            kernel_id="0badc0de-1234",
            run_id="run-1",
            started=time.time(),
        )
        outcome = lease.acquire(
            lease.RootDirs(env), "analysis", holder, timeout=DEFAULT_LEASE_TIMEOUT
        )
        assert outcome.ours
        yield holder
        # This process recorded the lease as one it holds: forget it, for the tests that follow.
        lease.release(lease.RootDirs(env), "analysis", holder)
    finally:
        kernel.kill()
        kernel.wait()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_delete_refuses_a_session_a_live_kernel_holds_naming_it(
    capsys: pytest.CaptureFixture[str], held: lease.LeaseHolder
) -> None:
    code, out, err = run(capsys, "delete", "analysis", "--yes")
    assert code == EXIT_USAGE
    assert "in use by kernel 0badc0de" in err
    assert f"pid {held.pid}" in err
    assert f"host {held.host}" in err
    assert "--force" in err
    assert "%session discard" in err
    assert "Deleted" not in out
    with local_store() as store:
        assert store.exists("analysis")


def test_delete_force_deletes_it_and_says_what_the_kernel_will_do(
    capsys: pytest.CaptureFixture[str], held: lease.LeaseHolder
) -> None:
    code, out, _ = run(capsys, "delete", "analysis", "--yes", "--force")
    assert code == EXIT_OK
    assert "Deleted session 'analysis'" in out
    assert "stops saving it at its next cell" in out
    with local_store() as store:
        assert not store.exists("analysis")


def test_delete_of_a_session_whose_kernel_is_gone_needs_no_force(
    capsys: pytest.CaptureFixture[str], held: lease.LeaseHolder, env: Path
) -> None:
    # The same lease, left by a process that has ended: stale, so it holds nothing.
    gone = lease.LeaseHolder(host=held.host, pid=_a_finished_pid(), run_id="run-2")
    lease.acquire(lease.RootDirs(env), "analysis", gone, timeout=1e9, force=True)
    code, out, _ = run(capsys, "delete", "analysis", "--yes")
    assert code == EXIT_OK
    assert "Deleted session 'analysis'" in out
    assert "stops saving" not in out
    lease.release(lease.RootDirs(env), "analysis", gone)  # this process forgets it too


def _a_finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_cli_default_lease_timeout_is_the_managers() -> None:
    assert SessionOptions.class_traits()["lease_timeout"].default_value == DEFAULT_LEASE_TIMEOUT


def test_doctor_reports_a_generation_that_refers_to_a_missing_blob(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    with local_store() as store:
        result = store.write(make_session("analysis", big=BIG))
        blob_id = result.blobs["big"]
        blob_path(store.session_dir("analysis"), blob_id).unlink()
    code, out, err = run(capsys, "doctor")
    assert code == EXIT_DATA
    assert f"MISSING BLOB: {result.path.name} refers to stored value {blob_id}" in out
    assert "doctor found 1 problem" in err
