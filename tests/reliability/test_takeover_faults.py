"""Two real kernels on ONE session in ``takeover`` mode, SIGKILLed at random: no acknowledged save
is ever lost, and the merging write runs under these faults.

With ``on_conflict = "takeover"`` a kernel that starts while the other holds the session takes it;
the other continues as its fork, ``'<name> (fork <kernel id>)'``, from its next save. A kernel
restarted by Jupyter keeps its kernel id, so a kernel displaced a second time continues as the
same fork, which already holds what it saved there before the kill: that save builds on nothing
(a new fork) while the fork on disk is newer, so the store hands it the fork's newest generation
to merge with. That is the merge path this test runs under faults.

Each round, each kernel binds a variable of its own and waits until the save is *acknowledged*:
its ``SessionManager.status()`` (asked with a user expression, outside the user's history, as a
frontend does) says nothing is pending and names the session and generation written. Then one
kernel, chosen by a seeded ``random.Random``, is SIGKILLed while both kernels may be writing
(each was just given a cell that is never waited for) and started again on the same session.
At the end every acknowledged variable is read back from disk with ``SessionStore``, in the
session its kernel reported, and the session's holder, SIGKILLed once more, restores every one
acknowledged under the session's own name.

The number of rounds is fixed: the test counts events and waits on conditions with generous
deadlines, so a slow or busy machine only makes it longer, never makes it fail.
"""

from __future__ import annotations

import ast
import os
import pickle
import random
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ipysession.keys.resolution import resolve_key
from ipysession.store import SessionStore
from tests.kernels import Kernel, start_kernel

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)"),
]

NAME = "/home/ada/takeover.ipynb"
ROUNDS = 10  # each round but the last ends with one SIGKILL
SEED_VARIABLE = "IPYSESSION_FAULT_SEED"
WAIT = 60.0  # seconds per wait: generous, only a deadline, never a measurement
CONFIG = (
    "c.SessionManager.autosave_interval = 0.05",
    'c.SessionManager.on_conflict = "takeover"',
)
LABELS = ("k1", "k2")

MANAGER = "__import__('ipysession.extension').extension.get_manager(get_ipython())"
FIELDS = ("session", "last_generation", "pending", "last_error", "merges", "fork_of", "lease_ours")
# One user expression: evaluated after an empty silent cell, so no cell runs (no history, no
# change to save) and the session is left exactly as the kernel's own saves made it.
PROBE = (
    f"(lambda m: dict({{f: getattr(m.status(), f) for f in {FIELDS!r}}}, "
    f"run_id=m.run_id, pid=__import__('os').getpid()))({MANAGER})"
)


@dataclass(frozen=True)
class Ack:
    """One acknowledged save: ``variable = value`` is on disk in ``session``."""

    kernel: str
    run_id: str
    variable: str
    value: int
    session: str
    generation: int


def probe(kernel: Kernel, *, timeout: float = WAIT) -> dict[str, Any]:
    """The kernel's save status, asked as a frontend asks: a user expression, no cell run."""
    kc = kernel.client
    msg_id = kc.execute("", silent=True, store_history=False, user_expressions={"s": PROBE})
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.1))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    result = reply["content"]["user_expressions"]["s"]
    assert result["status"] == "ok", result
    state: dict[str, Any] = ast.literal_eval(result["data"]["text/plain"])
    return state


def wait_acknowledged(kernel: Kernel, what: str) -> dict[str, Any]:
    """Wait until everything the kernel ran is written: nothing pending, a generation named.

    A change is handed to the writer when its cell ends (before the kernel reports idle), so
    ``pending`` is true from then until a write that holds it returned; a failed write stays
    pending (and is retried)."""
    deadline = time.monotonic() + WAIT
    while True:
        state = probe(kernel)
        if not state["pending"] and state["last_generation"] is not None:
            return state
        if time.monotonic() > deadline:
            msg = f"the save of {what} was never acknowledged: {state}"
            raise AssertionError(msg)
        time.sleep(0.05)


def disk_values(shared: dict[str, str], session: str) -> dict[str, Any]:
    """The variables of the newest generation of ``session`` on disk, read as the CLI reads it
    (a fresh store each time: nothing cached from an earlier read)."""
    key = resolve_key(backend="file", config_dir=Path(shared["IPYSESSION_CONFIG_DIR"]))
    with SessionStore(Path(shared["IPYSESSION_DIR"]), key=key.key) as store:
        saved = store.read(session).session
    return {
        n: pickle.loads(r.data)
        for n, r in saved.variables.items()
        if r.data is not None and r.encoding == "pickle"
    }


@pytest.fixture
def shared(tmp_path: Path) -> dict[str, str]:
    """One store, one key (a key file) and one session name for both kernels."""
    return {
        "IPYSESSION_DIR": str(tmp_path / "data"),
        "IPYSESSION_CONFIG_DIR": str(tmp_path / "config"),
        "IPYSESSION_NAME": NAME,
    }


@pytest.fixture
def kernels(tmp_path: Path, shared: dict[str, str]) -> Iterator[dict[str, Kernel]]:
    """k1 starts and saves the session first; k2 then starts and takes it over."""
    with ExitStack() as stack:
        started: dict[str, Kernel] = {}
        for label in LABELS:
            home = tmp_path / label
            started[label] = stack.enter_context(start_kernel(home, *CONFIG, env=shared))
            if label == "k1":
                started[label].run("started = 1")
                wait_acknowledged(started[label], "k1's first save")
        yield started


def test_random_sigkills_of_two_takeover_kernels_lose_no_acknowledged_save(
    kernels: dict[str, Kernel], shared: dict[str, str]
) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or int.from_bytes(os.urandom(4), "big"))
    rng = random.Random(seed)
    context = f"(seed {seed}: {SEED_VARIABLE}={seed} replays this kill schedule)"
    # Who dies each round: the kernel holding the session ("holder": its restart finds its own
    # stale lease and keeps the session) or the one continuing as a fork ("fork": its restart
    # takes the session over and displaces the holder). Two fork kills make a kernel be
    # displaced a second time (the merge path); the rest are drawn at random, and so is the order.
    roles = ["fork", "fork", "holder"] + [rng.choice(("fork", "holder")) for _ in range(ROUNDS - 4)]
    rng.shuffle(roles)

    acks: list[Ack] = []
    merges: dict[tuple[str, str], int] = {}  # (kernel, run id) -> merges that process reported
    takeovers = 0
    last: dict[str, dict[str, Any]] = {}
    for rnd in range(ROUNDS):
        for index, label in enumerate(LABELS, start=1):
            kernel = kernels[label]
            variable, value = f"{label}_{rnd}", 1000 * index + rnd
            kernel.run(f"{variable} = {value}")
            state = wait_acknowledged(kernel, f"{variable} (round {rnd}) {context}")
            last[label] = state
            merges[label, state["run_id"]] = state["merges"]
            ack = Ack(
                label, state["run_id"], variable, value, state["session"], state["last_generation"]
            )
            acks.append(ack)
            # Acknowledged means on disk, now: the kernel's word is checked at once.
            on_disk = disk_values(shared, ack.session)
            assert on_disk.get(variable) == value, (
                f"{ack} acknowledged but not in the newest generation of {ack.session!r}: "
                f"{sorted(on_disk)} {context}"
            )
        if rnd == ROUNDS - 1:
            break
        on_name = [label for label in LABELS if last[label]["session"] == NAME]
        assert len(on_name) == 1, f"round {rnd}: {last} {context}"
        holder = on_name[0]
        victim = holder if roles[rnd] == "holder" else next(x for x in LABELS if x != holder)
        # Both kernels get a change that is never waited for, so a write (or a merge) may be
        # under way when the victim is killed, at a random moment.
        for label in LABELS:
            kernels[label].client.execute(f"unacknowledged = {rnd}")
        time.sleep(rng.uniform(0.0, 0.2))
        kernels[victim].kill_hard()  # SIGKILL, then the same kernel id starts again
        kernels[victim].run("pass")  # its first cell: the restore has run
        after = probe(kernels[victim])
        assert after["session"] == NAME, (
            f"round {rnd}: {victim} restarted on {after['session']!r}, not on the session it "
            f"takes over {context}"
        )
        if victim != holder:
            takeovers += 1

    # Every acknowledged save is still on disk, in the session its kernel reported.
    newest = {session: disk_values(shared, session) for session in {a.session for a in acks}}
    lost = [a for a in acks if newest[a.session].get(a.variable, "MISSING") != a.value]
    forks = sorted(s for s in newest if s != NAME)
    summary = (
        f"{len(acks)} acknowledged saves, {ROUNDS - 1} SIGKILLs ({roles}), {takeovers} "
        f"takeovers, merges per kernel run {sorted(merges.items())}, forks {forks} {context}"
    )
    assert lost == [], f"acknowledged saves lost: {lost}; {summary}"
    # Not vacuous: sessions really were taken over, both kernels continued as forks, and some
    # kernel process wrote onto a session another writer (its own killed run) had advanced
    # since it last read it, so its save went through the merge.
    assert takeovers >= 2, summary
    assert len(forks) == 2, summary
    assert sum(merges.values()) > 0, f"no save was merged: {summary}"

    # A restore brings back every variable acknowledged under the session's own name: the
    # holder is SIGKILLed once more (its lease is stale to its restart, which keeps the session).
    holder = next(label for label in LABELS if last[label]["session"] == NAME)
    kernels[holder].kill_hard()
    expected = {a.variable: a.value for a in acks if a.session == NAME}
    restored = kernels[holder].value(f"{{n: globals().get(n) for n in {sorted(expected)!r}}}")
    assert restored == expected, summary
    print(f"\ntakeover under SIGKILL: 0 acknowledged saves lost; {summary}")


def test_a_killed_fork_kernel_gets_back_what_it_saved_in_its_fork(
    kernels: dict[str, Kernel], shared: dict[str, str]
) -> None:
    # Found by the takeover fault test: a kernel that continued as a fork after a takeover and
    # was then SIGKILLed came back (same kernel id) on the session itself, restored from the
    # session only: what it saved in its fork was on disk, but not in the restarted kernel. Its
    # restart now merges its own fork in (newer than its last save to the session).
    k1, k2 = kernels["k1"], kernels["k2"]
    try:  # what leads up to it
        k2.run("shared_value = 1")
        assert wait_acknowledged(k2, "shared_value")["session"] == NAME
        k1.run("fork_work = 42")
        saved = wait_acknowledged(k1, "fork_work")
        assert saved["fork_of"] == NAME  # k1 lost the session to k2 and continues as its fork
        assert disk_values(shared, saved["session"])["fork_work"] == 42  # acknowledged: on disk
        k1.kill_hard()  # SIGKILL; Jupyter starts the same kernel id again
        k1.run("pass")
        assert probe(k1)["session"] == NAME  # it took the session back over
        assert k1.value("shared_value") == 1
    except AssertionError as exc:
        pytest.fail(f"the scenario did not unfold as described: {exc}")
    # What it acknowledged before the kill is back in the restarted kernel, and saved to the
    # session it continues on.
    assert k1.value("globals().get('fork_work')") == 42
    wait_acknowledged(k1, "the merged fork")
    assert disk_values(shared, NAME).get("fork_work") == 42
