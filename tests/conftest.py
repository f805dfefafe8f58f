"""Shared fixtures: every test gets its own session root and config dir; nothing touches $HOME.

Builders (sessions, the test key, shells) are in ``tests/builders.py``; ``make_shell`` here hands
out fresh terminal shells (``tests.shell.ShellFactory``) and cleans up after them. The real
servers (``postgres``, ``dask_cluster``, ``jupyter_server``) come from ``tests/servers/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.fixtures import (  # noqa: F401 - the real servers, session-scoped, by name
    _dask_cluster,
    _jupyter_server,
    _postgres_server,
    dask_cluster,
    jupyter_server,
    postgres,
)
from tests.shell import ShellFactory


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ipysession-data"
    monkeypatch.setenv("IPYSESSION_DIR", str(root))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "ipysession-config"))
    # The log file too: no test writes into the user's log directory.
    monkeypatch.setenv("IPYSESSION_LOG_DIR", str(tmp_path / "ipysession-logs"))
    for name in ("IPYSESSION_NAME", "IPYSESSION_PASSPHRASE", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def make_shell(tmp_path: Path) -> Iterator[ShellFactory]:
    """Fresh terminal shells (not IPython's global one); what they change is put back after."""
    factory = ShellFactory(tmp_path / "ipython")
    yield factory
    factory.close()
