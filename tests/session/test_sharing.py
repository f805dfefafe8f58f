"""Sharing a session with other kernels: the lease decision (per value, without a disk), and the
manager acting on it in an in-process shell: fork, read-only, takeover, a lost lease, a fresh
kernel forking at its first save. Real kernels racing for one session: tests/reliability."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.model import HistoryEntry, VariableRecord
from ipysession.session import lease
from ipysession.session.forks import fork_name, fork_parent, fork_work_is_newer
from ipysession.session.lease import LeaseHolder, LeaseOutcome, RootDirs, acquire, holder
from ipysession.session.manager import SessionManager
from ipysession.session.sharing import LeaseDecision, decide, default_session_name, foreign_part
from tests.builders import make_session, wait_for
from tests.shell import ipython_shell, restart, run

TIMEOUT = 120.0


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host that is not us."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def other(pid: int, *, run_id: str = "run-other") -> LeaseHolder:
    base = LeaseHolder.this_process(run_id=run_id)
    return dataclasses.replace(base, pid=pid, process_start=lease._process_start(pid) or "")


def variable(name: str, value: object) -> VariableRecord:
    data = pickle.dumps(value)
    return VariableRecord(name, type(value).__name__, len(data), encoding="pickle", data=data)


def beat_of(dirs: RootDirs, name: str) -> float:
    current = holder(dirs, name)
    return current.heartbeat if current is not None else 0.0


# --- the policy: one outcome of acquire() -> one decision ---------------------------------------

SOMEONE = LeaseHolder("elsewhere", 4242, run_id="run-them")


@pytest.mark.parametrize("state", ["acquired", "renewed", "taken-over", "forced"])
@pytest.mark.parametrize("held_before", [False, True])
@pytest.mark.parametrize("on_conflict", ["fork", "readonly", "takeover"])
def test_a_lease_of_ours_means_write(state: Any, held_before: bool, on_conflict: str) -> None:
    outcome = LeaseOutcome(state, SOMEONE)
    decision = decide(outcome, held_before=held_before, on_conflict=on_conflict)
    assert decision is LeaseDecision.WRITE


@pytest.mark.parametrize("held_before", [False, True])
def test_a_lease_that_cannot_be_had_means_write_and_let_the_merge_keep_writers_apart(
    held_before: bool,
) -> None:
    outcome = LeaseOutcome("unavailable", None, reason="No locks available")
    assert decide(outcome, held_before=held_before, on_conflict="fork") is LeaseDecision.WRITE


@pytest.mark.parametrize("on_conflict", ["fork", "readonly", "takeover"])
def test_a_lease_we_held_and_another_kernel_holds_now_is_lost(on_conflict: str) -> None:
    outcome = LeaseOutcome("held", SOMEONE)
    decision = decide(outcome, held_before=True, on_conflict=on_conflict)
    assert decision is LeaseDecision.LOST


def test_a_lease_another_kernel_holds_means_read_only_when_so_configured() -> None:
    outcome = LeaseOutcome("held", SOMEONE)
    decision = decide(outcome, held_before=False, on_conflict="readonly")
    assert decision is LeaseDecision.READ_ONLY


@pytest.mark.parametrize("on_conflict", ["fork", "takeover"])
def test_a_lease_another_kernel_holds_means_fork_otherwise(on_conflict: str) -> None:
    # 'takeover' forces the acquisition before deciding; a holder it could not displace
    # (it took the lease back in between) leaves this kernel a fork, never a second writer.
    outcome = LeaseOutcome("held", SOMEONE)
    assert decide(outcome, held_before=False, on_conflict=on_conflict) is LeaseDecision.FORK


def test_the_decisions_keep_the_words_they_had_as_strings() -> None:
    assert {d.value for d in LeaseDecision} == {"ok", "readonly", "fork", "lost"}


def test_the_session_name_comes_from_config_then_environment_then_notebook_then_cwd() -> None:
    vscode = {"__vsc_ipynb_file__": " /home/ada/b.ipynb "}
    assert default_session_name("mine", {"IPYSESSION_NAME": "env"}, vscode) == "mine"
    both = {"IPYSESSION_NAME": "env", "JPY_SESSION_NAME": "a.ipynb"}
    assert default_session_name("", both, vscode) == "env"
    assert default_session_name("", {"JPY_SESSION_NAME": "a.ipynb"}, vscode) == "a.ipynb"
    assert default_session_name("", {"IPYSESSION_NAME": "  "}, vscode) == "/home/ada/b.ipynb"
    assert default_session_name("", {}, {}) == f"cwd:{Path.cwd()}"


def test_the_foreign_part_is_what_another_writer_saved_that_this_kernel_did_not() -> None:
    shared = HistoryEntry("x = 1", 1, 1.0, True, "run-me")
    theirs = HistoryEntry("y = 2", 1, 2.0, True, "run-them")
    own = make_session(history=[shared], variables={"x": variable("x", 1)})
    written = make_session(
        history=[shared, theirs],
        variables={"x": variable("x", 1), "y": variable("y", 2)},
    )
    carried = foreign_part(written, own)
    assert carried.history == [theirs]
    assert set(carried.variables) == {"y"}


# --- the manager acting on it, in an in-process shell (real kernels: tests/reliability) ---------


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


def _saved_session(**config: Any) -> tuple[Any, SessionManager]:
    """A shell that saved ``a = 1`` and a large ``big``, then stopped (extension unloaded)."""
    context = ipython_shell(autosave_interval=0.05, **config)
    shell = context.__enter__()
    ipysession.load_ipython_extension(shell)
    run(shell, "a = 1\nbig = b'x' * 100_000")
    run(shell, "%session save")
    manager = _manager(shell)
    ipysession.unload_ipython_extension(shell)
    shell.reset(new_session=True)
    shell._test_context = context
    return shell, manager


def _other_holds(manager: SessionManager, pid: int, name: str | None = None) -> LeaseHolder:
    theirs = other(pid)
    outcome = acquire(RootDirs(Path(manager.root)), name or manager.name, theirs, timeout=TIMEOUT)
    assert outcome.ours
    return theirs


@pytest.fixture
def stopped_shell() -> Iterator[tuple[Any, SessionManager]]:
    shell, manager = _saved_session()
    yield shell, manager
    shell._test_context.__exit__(None, None, None)


def test_a_kernel_forks_a_session_another_live_kernel_holds(
    stopped_shell: tuple[Any, SessionManager],
    sleeper: subprocess.Popen[bytes],
    shown: list[str],
) -> None:
    shell, first = stopped_shell
    original = first.name
    _other_holds(first, sleeper.pid)
    ipysession.load_ipython_extension(shell)  # a second kernel starts
    manager = _manager(shell)
    assert manager.fork_of == original
    assert manager.name == f"{original} (fork {manager.run_id[:8]})"
    assert shell.user_ns["big"] == b"x" * 100_000
    notice = "\n".join(shown)
    assert f"session '{original}' is in use by run run-othe" in notice
    assert f"restored a copy and saves it as a new session, '{manager.name}'" in notice
    wait_for(lambda: manager.last_generation is not None, "the fork saved")
    # The fork stands alone: its large value was shared into its own directory.
    fork = manager.store.read(manager.name).session
    blob = fork.variables["big"].blob
    assert blob is not None
    assert pickle.loads(manager.store.read_blob(manager.name, blob)) == b"x" * 100_000
    current = holder(RootDirs(Path(manager.root)), original)
    assert current is not None
    assert current.pid == sleeper.pid  # the original is left to its holder
    mine = holder(RootDirs(Path(manager.root)), manager.name)
    assert mine is not None
    assert mine.run_id == manager.run_id
    status = manager.status()
    assert status.fork_of == original
    assert status.lease_ours


def test_a_readonly_kernel_never_writes(
    stopped_shell: tuple[Any, SessionManager],
    sleeper: subprocess.Popen[bytes],
    shown: list[str],
) -> None:
    shell, first = stopped_shell
    _other_holds(first, sleeper.pid)
    sdir = first.store.session_dir(first.name)
    before = sorted(p.name for p in sdir.iterdir())
    shell.config.SessionManager.on_conflict = "readonly"
    ipysession.load_ipython_extension(shell)
    manager = _manager(shell)
    assert manager.read_only
    assert shell.user_ns["a"] == 1
    run(shell, "a = 2")
    run(shell, "%session save")
    run(shell, "%session autosave on")
    run(shell, "%session status")
    text = "\n".join(shown)
    assert "restored it read-only" in text
    assert "read-only: run run-othe" in text
    assert "read-only" in shown[-1]  # the status
    manager.set_layout({"panels": []})  # a change, but not one this kernel may write
    assert manager.status().pending is False
    ipysession.unload_ipython_extension(shell)  # no final save either
    assert sorted(p.name for p in sdir.iterdir()) == before
    shell.config.SessionManager.on_conflict = "fork"


def test_takeover_and_the_loser_continues_as_a_fork(
    stopped_shell: tuple[Any, SessionManager],
    sleeper: subprocess.Popen[bytes],
    shown: list[str],
) -> None:
    shell, first = stopped_shell
    theirs = _other_holds(first, sleeper.pid)
    shell.config.SessionManager.on_conflict = "takeover"
    try:
        ipysession.load_ipython_extension(shell)
        manager = _manager(shell)
        assert manager.fork_of is None
        assert f"took session '{manager.name}' over from run run-othe" in "\n".join(shown)
        original = manager.name
        # Now the other one takes it back: this kernel notices at its next heartbeat or save.
        forced = acquire(
            RootDirs(Path(manager.root)), original, theirs, timeout=TIMEOUT, force=True
        )
        assert forced.state == "forced"
        run(shell, "b = 2")
        wait_for(lambda: manager.fork_of == original, "this kernel continued as a fork")
        wait_for(lambda: manager.status().pending is False, "saved")
        run(shell, "pass")
        assert f"took session '{original}' over" in "\n".join(shown)
        assert f"saves its work as a new session, '{manager.name}'" in "\n".join(shown)
    finally:
        shell.config.SessionManager.on_conflict = "fork"


def test_the_lease_is_taken_at_the_first_save_and_kept_fresh_while_idle(
    shown: list[str], sleeper: subprocess.Popen[bytes]
) -> None:
    with ipython_shell(autosave_interval=0.05, lease_timeout=0.4) as shell:
        ipysession.load_ipython_extension(shell)
        manager = _manager(shell)
        dirs = RootDirs(Path(manager.root))
        assert holder(dirs, manager.name) is None  # nothing saved, nothing claimed
        assert manager.status().lease_holder is None
        run(shell, "a = 1")
        wait_for(lambda: manager.last_generation is not None, "saved")
        first = holder(dirs, manager.name)
        assert first is not None
        assert first.run_id == manager.run_id
        # Idle: the writer's heartbeat (every lease_timeout / 4) refreshes the lease.
        wait_for(lambda: beat_of(dirs, manager.name) > first.heartbeat, "a heartbeat while idle")
        # Lost to another kernel while idle: noticed by the heartbeat, before any save.
        name = manager.name
        acquire(dirs, name, other(sleeper.pid), timeout=TIMEOUT, force=True)
        wait_for(lambda: manager.fork_of == name, "the heartbeat noticed")
        ipysession.unload_ipython_extension(shell)
        kept = holder(dirs, name)
        assert kept is not None
        assert kept.pid == sleeper.pid  # releasing never removes someone else's lease


def test_a_fresh_kernel_forks_at_its_first_save_when_the_session_is_held(
    shown: list[str], sleeper: subprocess.Popen[bytes]
) -> None:
    with ipython_shell(autosave_interval=0.05) as shell:
        ipysession.load_ipython_extension(shell)
        manager = _manager(shell)
        name = manager.name
        _other_holds(manager, sleeper.pid)  # another kernel claimed it, saved nothing yet
        run(shell, "a = 1")
        wait_for(lambda: manager.fork_of == name, "forked at the first save")
        wait_for(lambda: manager.last_generation is not None, "saved")
        run(shell, "pass")
        assert f"saves its work as a new session, '{manager.name}'" in "\n".join(shown)
        assert manager.store.read(manager.name).session.variables.keys() >= {"a"}
        assert not (manager.store.session_dir(name) / "gen-00000001.ipys").exists()


# --- a damaged lease ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b"\x00\xff lease? \x89PNG\r\n", id="binary-junk"),
        pytest.param(b"lease: yes", id="not-json"),
        pytest.param(b'{"version": 1, "session": "nb", "host": "elsewhere", "pid": 42', id="cut"),
        pytest.param(b'{"host": "elsewhere", "pid": 4242, "heartbeat": "soon"}', id="wrong-type"),
        pytest.param(b'{"host": "elsewhere", "pid": 4242}', id="no-heartbeat"),
        pytest.param(b'{"host": "elsewhere", "pid": 4242, "heartbeat": NaN}', id="nan"),
        pytest.param(b'{"host": "elsewhere", "pid": 4242, "heartbeat": 1e300}', id="future"),
    ],
)
def test_a_damaged_lease_is_no_lease_and_the_next_kernel_keeps_the_session(
    stopped_shell: tuple[Any, SessionManager],
    caplog: pytest.LogCaptureFixture,
    damage: bytes,
) -> None:
    # Each of these once read as "another kernel holds it" for ever: every later kernel forked,
    # and the user's new work never came back under the session's own name.
    shell, first = stopped_shell
    original = first.name
    path = first.store.session_dir(original) / lease.LEASE_FILE
    path.write_bytes(damage)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        ipysession.load_ipython_extension(shell)  # the next kernel starts and restores
    manager = _manager(shell)
    assert (manager.name, manager.fork_of) == (original, None)
    assert shell.user_ns["a"] == 1
    assert f"Ignoring the damaged lease file {path}" in caplog.text
    mine = holder(RootDirs(Path(manager.root)), original)
    assert mine is not None
    assert mine.run_id == manager.run_id  # replaced by this kernel's lease
    run(shell, "a = 2\nnew_work = 'kept'")
    run(shell, "%session save")
    on_disk = manager.store.read(original).session
    assert on_disk.variables.keys() >= {"a", "new_work"}
    assert [s.name for s in manager.store.list()] == [original]  # no fork beside it


# --- a restarted kernel comes back to the work it was saving, fork or not ----------------------


def test_fork_names_say_which_session_they_fork() -> None:
    name = fork_name("/home/ada/a (1).ipynb", "1a2b3c4d-5e6f")
    assert name == "/home/ada/a (1).ipynb (fork 1a2b3c4d)"
    assert fork_parent(name) == "/home/ada/a (1).ipynb"
    assert fork_parent("/home/ada/a (1).ipynb") is None
    assert fork_parent(fork_name(name, "99999999")) == name  # a fork of a fork


def test_a_fork_is_newer_than_the_last_save_of_its_own_kernel_to_the_session() -> None:
    assert fork_work_is_newer([5.0, 9.0], [3.0, None])
    assert fork_work_is_newer([5.0], [])  # forked at once: never saved to the session
    assert not fork_work_is_newer([5.0], [6.0])  # saved to the session after the fork
    assert not fork_work_is_newer([None], [])  # nothing readable in the fork


@pytest.fixture
def kernel_id(monkeypatch: pytest.MonkeyPatch) -> str:
    """The id Jupyter gives a kernel and keeps across its restarts (an in-process shell has
    none: the extension reads it from the kernel's connection file, which is not there)."""
    monkeypatch.setattr("ipysession.extension._kernel_id", lambda: "5e551011-fork-test")
    return "5e551011-fork-test"


def test_a_restarted_fork_kernel_gets_its_fork_back_once_the_session_is_free(
    stopped_shell: tuple[Any, SessionManager],
    shown: list[str],
    kernel_id: str,
) -> None:
    # Seen: two JupyterLab servers on the same files; the second server's kernel forked; the
    # first server stopped; restarting the fork's kernel restored the original session and the
    # fork's work raised NameError, with nothing said about the newer fork.
    shell, first = stopped_shell
    original = first.name
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _other_holds(first, sleeper.pid)  # the first server's kernel
        ipysession.load_ipython_extension(shell)
        manager = _manager(shell)
        assert manager.fork_of == original
        run(shell, "fork_work = 42")
        wait_for(lambda: manager.store.exists(manager.name), "the fork saved")
        wait_for(lambda: manager.status().pending is False, "the fork saved fork_work")
    finally:
        sleeper.kill()  # the first server stops: its lease is stale from now on
        sleeper.wait()
    shown.clear()
    restart(shell)  # the same kernel id, as Jupyter restarts it
    manager = _manager(shell)
    assert manager.name == original
    assert manager.fork_of is None
    assert shell.user_ns["fork_work"] == 42
    assert shell.user_ns["a"] == 1
    report = manager.last_restore
    assert report is not None
    assert report.merged_fork == f"{original} (fork {kernel_id[:8]})"
    assert report.merged_fork_variables == ["fork_work"]
    run(shell, "pass")
    assert f"Merged in this kernel's own fork '{report.merged_fork}'" in "\n".join(shown)
    # What came from the fork is saved to the session itself, at once.
    wait_for(
        lambda: "fork_work" in manager.store.read(original).session.variables,
        "the merged state saved to the session",
    )
    # Merged once: the session now holds this kernel's newest work, and a stale fork never
    # overrides what the kernel did since.
    run(shell, "fork_work = 43")
    wait_for(lambda: manager.status().pending is False, "saved fork_work = 43")
    restart(shell)
    manager = _manager(shell)
    assert shell.user_ns["fork_work"] == 43
    report = manager.last_restore
    assert report is not None
    assert report.merged_fork is None
    assert report.newer_fork is None


def test_a_read_only_restart_names_its_newer_fork_and_how_to_get_it(
    stopped_shell: tuple[Any, SessionManager],
    sleeper: subprocess.Popen[bytes],
    shown: list[str],
    kernel_id: str,
) -> None:
    shell, first = stopped_shell
    original = first.name
    _other_holds(first, sleeper.pid)
    ipysession.load_ipython_extension(shell)
    manager = _manager(shell)
    run(shell, "fork_work = 42")
    wait_for(lambda: manager.store.exists(manager.name), "the fork saved")
    fork = manager.name
    shell.config.SessionManager.on_conflict = "readonly"
    try:
        shown.clear()
        restart(shell)
        manager = _manager(shell)
        assert manager.read_only
        assert "fork_work" not in shell.user_ns  # read-only: nothing merged, nothing written
        report = manager.last_restore
        assert report is not None
        assert report.newer_fork == fork
        run(shell, "pass")
        assert f"`%session restore '{fork}'` brings it into this kernel" in "\n".join(shown)
        assert "fork_work" not in manager.store.read(original).session.variables
    finally:
        shell.config.SessionManager.on_conflict = "fork"
