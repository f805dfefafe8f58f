"""Two real kernels on one notebook session (the same notebook opened twice, say).

The second kernel finds the first one's lease. By default it forks (restores a copy and saves it
as a new session) and both keep saving without clobbering each other; with ``"readonly"`` it
restores and never writes; with ``"takeover"`` it takes the session and the first kernel continues
as a fork from its next save.
"""

from __future__ import annotations

import ast
import pickle
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from ipysession.keys.resolution import resolve_key
from ipysession.store import GenerationInfo, SessionStore
from tests.kernels import Kernel, start_kernel

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

NAME = "/home/ada/shared.ipynb"
FAST_AUTOSAVE = "c.SessionManager.autosave_interval = 0.05"
MANAGER = "__import__('ipysession.extension').extension.get_manager(get_ipython())"


@pytest.fixture
def shared(tmp_path: Path) -> dict[str, str]:
    """One store and one key for every kernel of a test, and one session name."""
    return {
        "IPYSESSION_DIR": str(tmp_path / "data"),
        "IPYSESSION_CONFIG_DIR": str(tmp_path / "config"),
        "IPYSESSION_NAME": NAME,
    }


@pytest.fixture
def kernels(tmp_path: Path, shared: dict[str, str]) -> Iterator[Any]:
    with ExitStack() as stack:

        def start(label: str, *config: str) -> Kernel:
            home = tmp_path / label
            return stack.enter_context(start_kernel(home, FAST_AUTOSAVE, *config, env=shared))

        yield start


def store(shared: dict[str, str]) -> SessionStore:
    key = resolve_key(backend="file", config_dir=Path(shared["IPYSESSION_CONFIG_DIR"]))
    return SessionStore(Path(shared["IPYSESSION_DIR"]), key=key.key)


def status(kernel: Kernel) -> dict[str, Any]:
    fields = (
        "session",
        "last_generation",
        "pending",
        "read_only",
        "fork_of",
        "lease_ours",
        "merges",
        "last_error",
    )
    expression = f"(lambda s: {{f: getattr(s, f) for f in {fields!r}}})({MANAGER}.status())"
    result = kernel.run(f"print(repr({expression}))")
    SHOWN.setdefault(id(kernel), []).extend(o["data"].get("text/plain", "") for o in result.outputs)
    value: dict[str, Any] = ast.literal_eval(result.stdout.strip())
    return value


#: What each kernel displayed (ipysession's notices) under the cells status() ran.
SHOWN: dict[int, list[str]] = {}


def shown(kernel: Kernel) -> str:
    return "\n".join(SHOWN.get(id(kernel), []))


def wait_saved(kernel: Kernel, *, after: int | None = None, timeout: float = 30) -> dict[str, Any]:
    """Wait until the kernel's autosave has written everything (a generation newer than after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = status(kernel)
        done = state["last_generation"] and not state["pending"]
        if done and (after is None or state["last_generation"] > after):
            return state
        time.sleep(0.1)
    raise AssertionError(f"autosave did not complete: {status(kernel)}")


def settle(shared: dict[str, str], timeout: float = 30) -> dict[str, tuple[int, int]]:
    """Wait, running no cell (a cell is a change to save), until the files stop changing."""
    deadline = time.monotonic() + timeout
    last = disk_state(shared)
    while time.monotonic() < deadline:
        time.sleep(0.5)  # many autosave intervals: a write under way has finished
        now = disk_state(shared)
        if now == last:
            return now
        last = now
    raise AssertionError("the session files keep changing")


def values(shared: dict[str, str], name: str) -> dict[str, Any]:
    with store(shared) as st:
        session = st.read(name).session
        return {
            n: pickle.loads(r.data)
            for n, r in session.variables.items()
            if r.data is not None and r.encoding == "pickle"
        }


def writers(shared: dict[str, str], name: str) -> set[tuple[str | None, int | None]]:
    with store(shared) as st:
        infos: list[GenerationInfo] = st.generations(name)
        return {(info.writer_run_id, info.writer_pid) for info in infos}


def disk_state(shared: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Every file under the store (but leases), with size and mtime."""
    root = Path(shared["IPYSESSION_DIR"])
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("lease.")
    }


def test_the_second_kernel_forks_and_both_keep_saving(kernels: Any, shared: dict[str, str]) -> None:
    first = kernels("first")
    first.run("a = 1\nb = 'first'")
    saved = wait_saved(first)
    assert saved["session"] == NAME
    assert saved["lease_ours"]
    me1 = first.value(f"({MANAGER}.run_id, __import__('os').getpid())")

    second = kernels("second")
    assert second.startup is not None
    notice = second.startup.text
    assert f"session '{NAME}' is in use by" in notice
    assert "restored a copy" in notice
    fork = status(second)["session"]
    assert fork.startswith(f"{NAME} (fork ")
    assert f"as a new session, '{fork}'" in notice
    assert second.value("a, b") == (1, "first")  # the copy was restored
    assert status(second)["fork_of"] == NAME

    # Both keep saving, interleaved, each to its own session.
    for i in range(5):
        first.run(f"a = {10 + i}\nonly_first = {i}")
        second.run(f"a = {20 + i}\nonly_second = {i}")
    s1, s2 = wait_saved(first), wait_saved(second)
    assert s1["session"] == NAME
    assert s2["session"] == fork
    assert s1["merges"] == 0
    assert s2["merges"] == 0
    assert values(shared, NAME) == {"a": 14, "b": "first", "only_first": 4}
    assert values(shared, fork) == {"a": 24, "b": "first", "only_second": 4}
    # Nobody wrote into the other's session.
    assert writers(shared, NAME) == {tuple(me1)}
    me2 = second.value(f"({MANAGER}.run_id, __import__('os').getpid())")
    assert writers(shared, fork) == {tuple(me2)}
    text = second.run("%session status").text
    assert f"Fork of:   '{NAME}'" in text
    assert "Lease:     held by this kernel" in text
    assert second.value(f"{MANAGER}.kernel_id")[:8] in fork  # Jupyter's kernel id names it

    # Restarted (Jupyter keeps the kernel id), the second kernel comes back to its own fork.
    second.kill_hard()
    assert "restored its own fork of it" in second.run("pass").text  # the first cell shows it
    assert second.value("a, only_second") == (24, 4)
    assert status(second)["session"] == fork
    first.run("a = 99")
    assert wait_saved(first)["session"] == NAME
    assert values(shared, NAME)["a"] == 99


def test_readonly_never_writes(kernels: Any, shared: dict[str, str]) -> None:
    first = kernels("first")
    first.run("a = 1")
    wait_saved(first)
    before = settle(shared)

    reader = kernels("reader", 'c.SessionManager.on_conflict = "readonly"')
    assert reader.startup is not None
    assert "restored it read-only" in reader.startup.text
    assert reader.value("a") == 1
    reader.run("a = 2\nnew_in_reader = [1, 2, 3]")
    refused = reader.run("%session save").text
    assert "read-only" in refused
    assert "%session save NEW_NAME" in refused
    reader.run("import time; time.sleep(0.5)")  # several autosave intervals
    state = status(reader)
    assert state["read_only"]
    assert state["last_generation"] is None
    assert state["pending"] is False
    assert "read-only" in reader.run("%session status").text  # whatever the wording
    reader.shutdown(now=False)  # a graceful shutdown runs atexit: no final save either
    assert disk_state(shared) == before
    # The first kernel still owns the session and saves on.
    gen = status(first)["last_generation"]
    first.run("a = 3")
    assert wait_saved(first, after=gen)["session"] == NAME
    assert values(shared, NAME) == {"a": 3}


def test_takeover_moves_the_first_kernel_to_a_fork(kernels: Any, shared: dict[str, str]) -> None:
    first = kernels("first")
    first.run("a = 1")
    wait_saved(first)
    taker = kernels("taker", 'c.SessionManager.on_conflict = "takeover"')
    assert taker.startup is not None
    assert "took session" in taker.startup.text
    assert taker.value("a") == 1
    taker.run("a = 2")
    assert wait_saved(taker)["session"] == NAME
    # The first kernel finds out at its next save and continues as a fork, never fighting back.
    first.run("a = 3")
    state = wait_saved(first)
    assert state["fork_of"] == NAME
    # Said once, where the user looks for it, never under one of their own cells.
    assert first.run("pass").text == ""
    notice = first.run("%session status").text
    assert f"took session '{NAME}' over" in notice
    assert f"as a new session, '{state['session']}'" in notice
    assert values(shared, state["session"])["a"] == 3
    gen = status(taker)["last_generation"]
    taker.run("a = 4")
    wait_saved(taker, after=gen)
    assert values(shared, NAME)["a"] == 4


def test_what_a_restarted_kernel_restored_is_saved_again(
    kernels: Any, shared: dict[str, str]
) -> None:
    # IPython hides every name bound while a kernel starts (hide_initial_ns), restored ones
    # included; they must still be saved with the next change, or a second restart loses them.
    kernel = kernels("one")
    kernel.run("import json as j\nkept = [1, 2]")
    wait_saved(kernel)
    kernel.restart()
    assert kernel.value("kept") == [1, 2]
    kernel.run("later = 3")
    wait_saved(kernel)
    assert values(shared, NAME) == {"kept": [1, 2], "later": 3}
    with store(shared) as st:
        assert "j" in [i.name for i in st.read(NAME).session.imports]
    assert "kept" in kernel.run("%who").text


def test_a_fork_kernel_restarts_on_its_fork_and_merge_brings_the_work_home(
    kernels: Any, shared: dict[str, str]
) -> None:
    """Issue 12's Must-show: the fork kernel's restart restores the fork; merge brings its
    variables into the original."""
    first = kernels("first")
    first.run("a = 1")
    wait_saved(first)
    second = kernels("second")
    fork = status(second)["session"]
    assert fork.startswith(f"{NAME} (fork ")
    second.run("fork_work = 42")
    wait_saved(second)

    second.kill_hard()  # Jupyter keeps the kernel id: the restart comes back to its own fork
    assert status(second)["session"] == fork
    assert second.value("fork_work, a") == (42, 1)

    first.shutdown(now=False)  # the original session is free again
    dry_run = second.run(f"%session merge '{fork}'").text
    assert "Nothing was changed" in dry_run
    assert "fork_work" in dry_run
    assert "fork_work" not in values(shared, NAME)
    merged = second.run(f"%session merge '{fork}' --yes").text
    assert f"Merged fork '{fork}' into '{NAME}'" in merged
    assert values(shared, NAME) == {"a": 1, "fork_work": 42}

    third = kernels("third")  # a kernel for the notebook now gets the fork's work
    assert status(third)["session"] == NAME
    assert third.value("fork_work, a") == (42, 1)
