"""`ipysession prune`: old forks and sessions, a dry run first, never one a live kernel holds.

Ages come from the sessions' own save times (written into the saved documents), so nothing waits
for a clock; the live kernel is a real child process holding the lease, as in test_delete.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipysession.cli.app import EXIT_OK, EXIT_USAGE, main
from ipysession.cli.prune import parse_age
from ipysession.keys import resolution as keystore
from ipysession.session import lease
from ipysession.session.forks import fork_name
from ipysession.store import SessionStore
from tests.builders import make_session

DAY = 86400.0
OLD_FORK = fork_name("analysis.ipynb", "aaaa1111")
NEW_FORK = fork_name("analysis.ipynb", "bbbb2222")
HELD_FORK = fork_name("analysis.ipynb", "cccc3333")


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


@pytest.fixture
def sessions(env: Path) -> Iterator[None]:
    """An old session, an old fork, a new fork, and an old fork a live kernel holds."""
    now = time.time()
    with SessionStore(key=keystore.resolve_key().key) as store:
        for name, age in (
            ("analysis.ipynb", 30 * DAY),
            (OLD_FORK, 10 * DAY),
            (NEW_FORK, 0.0),
            (HELD_FORK, 20 * DAY),
        ):
            store.write(make_session(name, created=now - age, updated=now - age))
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    holder = lease.LeaseHolder(
        host=socket.gethostname(),
        pid=kernel.pid,
        kernel_id="cccc3333-live",
        run_id="run-live",
        started=now,
    )
    try:
        outcome = lease.acquire(lease.RootDirs(env), HELD_FORK, holder, timeout=3600)
        assert outcome.ours
        yield
    finally:
        kernel.kill()
        kernel.wait()


def names() -> set[str]:
    with SessionStore(key=keystore.resolve_key().key) as store:
        return {s.name for s in store.list() if s.name is not None}


def test_a_dry_run_lists_and_removes_nothing(
    sessions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = names()
    assert main(["prune", "--older-than", "7d", "--forks-only"]) == EXIT_OK
    out = capsys.readouterr().out
    assert OLD_FORK in out
    assert NEW_FORK not in out
    assert "analysis.ipynb  last saved" not in out  # not a fork
    assert f"{HELD_FORK}  last saved 20 d ago  (kept: in use by" in out
    assert "Would remove 1 fork." in out
    assert "--yes" in out
    assert names() == before


def test_yes_removes_old_forks_but_never_a_held_one(
    sessions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--older-than", "7d", "--forks-only", "--yes"]) == EXIT_OK
    assert "Removed 1 fork." in capsys.readouterr().out
    assert names() == {"analysis.ipynb", NEW_FORK, HELD_FORK}


def test_without_forks_only_old_sessions_go_too(
    sessions: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--older-than", "1w", "--yes"]) == EXIT_OK
    assert "Removed 2 sessions." in capsys.readouterr().out
    assert names() == {NEW_FORK, HELD_FORK}


def test_nothing_old_enough(sessions: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--older-than", "365d"]) == EXIT_OK
    assert "No sessions last saved more than 365d ago." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400.0), ("12h", 43200.0), ("2w", 1209600.0)]
)
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["7", "days", "-1d", "1y", ""])
def test_a_bad_age_is_a_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", f"--older-than={text}"]) == EXIT_USAGE
    assert "--older-than takes a number and a unit" in capsys.readouterr().err
