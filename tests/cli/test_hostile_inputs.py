"""The command line never hangs on a planted FIFO or a device given as a file (issue 11).

Each command runs in a real process with a generous deadline, so a regression fails here
instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipysession.keys import resolve_key
from ipysession.store import SessionStore
from ipysession.store.names import session_dir_for
from tests.builders import make_session

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")

DEADLINE = 60


def ipysession(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "IPYSESSION_PASSPHRASE"}
    # $IPYSESSION_DIR and $IPYSESSION_CONFIG_DIR are this test's own (tests/conftest.py).
    env.update(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", PW="a passphrase")
    return subprocess.run(
        [sys.executable, "-m", "ipysession", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def saved_session(name: str) -> Path:
    """A session saved with the key file the command line will find; its directory."""
    with SessionStore(key=resolve_key(backend="file").key) as store:
        store.write(make_session(name))
        return session_dir_for(store.root, name)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_import_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        planted = tmp_path / "export.ipys"
        os.mkfifo(planted)
    else:
        planted = Path("/dev/zero")
        if not planted.exists():
            pytest.skip("no /dev/zero here")
    done = ipysession(tmp_path, "import", str(planted), "--passphrase-env", "PW")
    assert done.returncode != 0
    assert str(planted) in done.stderr
    assert "not a regular file" in done.stderr or "regular" in done.stderr
    assert "Traceback" not in done.stderr


def test_import_follows_a_link_the_user_made_to_a_real_export(tmp_path: Path) -> None:
    saved_session("linked")
    exported = tmp_path / "real.ipys"
    done = ipysession(tmp_path, "export", "linked", str(exported), "--passphrase-env", "PW")
    assert done.returncode == 0, done.stderr
    link = tmp_path / "link.ipys"
    link.symlink_to(exported)
    done = ipysession(tmp_path, "import", str(link), "--passphrase-env", "PW", "--name", "copy")
    assert done.returncode == 0, done.stderr
    assert "copy" in ipysession(tmp_path, "list").stdout


def test_show_and_list_with_a_fifo_as_the_lease(tmp_path: Path) -> None:
    os.mkfifo(saved_session("planted") / "lease.json")
    for command in (("show", "planted"), ("list",), ("snapshots", "planted"), ("doctor",)):
        done = ipysession(tmp_path, *command)
        # Answered (doctor may report a problem with exit 1), never hung, never crashed.
        assert done.returncode in (0, 1), (command, done.stderr)
        assert "Traceback" not in done.stderr, command
    assert "planted" in ipysession(tmp_path, "show", "planted").stdout
