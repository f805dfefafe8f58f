"""``%session merge FORK``: a fork's work goes back into the session it forks, once that session
is free; a dry run first says what the merge would keep."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession.errors import SessionInUse
from ipysession.extension import get_manager
from ipysession.session.lease import LeaseHolder, RootDirs, acquire
from ipysession.session.manager import SessionManager
from tests.builders import wait_for
from tests.session.test_sharing import other
from tests.shell import ipython_shell, run


@pytest.fixture
def shown() -> Iterator[list[str]]:
    from ipysession import display

    messages: list[str] = []
    real = display.show
    display.show = lambda message: messages.append(message.text)  # type: ignore[assignment]
    yield messages
    display.show = real  # type: ignore[assignment]


def _manager(shell: Any) -> SessionManager:
    found = get_manager(shell)
    assert found is not None
    return found


def test_a_fork_merges_back_once_its_session_is_free(shown: list[str]) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with ipython_shell(autosave_interval=0.05) as shell:
        ipysession.load_ipython_extension(shell)
        manager = _manager(shell)
        original = manager.name
        run(shell, "a = 1\nshared = 'session'")
        run(shell, "%session save")
        ipysession.unload_ipython_extension(shell)
        shell.reset(new_session=True)
        theirs: LeaseHolder = other(sleeper.pid)
        assert acquire(RootDirs(Path(manager.root)), original, theirs, timeout=120).ours
        ipysession.load_ipython_extension(shell)  # a second kernel: it forks
        manager = _manager(shell)
        fork = manager.name
        assert manager.fork_of == original
        run(shell, "fork_work = 42\nshared = 'fork'")
        wait_for(lambda: manager.status().pending is False, "the fork saved")
        # While the session's kernel runs, merging is refused and nothing changes.
        with pytest.raises(SessionInUse, match="in use by"):
            manager.merge_fork(fork, write=True)
        sleeper.kill()
        sleeper.wait()
        shown.clear()
        run(shell, f"%session merge '{fork}'")  # a dry run
        dry = "\n".join(shown)
        assert f"Merging fork '{fork}' into '{original}' would keep" in dry
        assert "fork_work" in dry
        assert "replacing the session's shared" in dry
        assert "fork_work" not in manager.store.read(original).session.variables
        shown.clear()
        run(shell, f"%session merge '{fork}' --yes")
        assert f"Merged fork '{fork}' into '{original}'" in "\n".join(shown)
        merged = manager.store.read(original).session.variables
        assert {"a", "fork_work", "shared"} <= merged.keys()
        assert manager.store.exists(fork)  # the fork stays on disk
        ipysession.unload_ipython_extension(shell)
