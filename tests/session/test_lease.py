"""The lease: who uses a session now, when a claim is stale, and racing kernels."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from ipysession.session import lease
from ipysession.session.lease import LeaseHolder, RootDirs, acquire, holder, refresh, release

TIMEOUT = 120.0


@pytest.fixture
def dirs(tmp_path: Path) -> RootDirs:
    return RootDirs(tmp_path / "root")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host that is not us."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def me(run_id: str = "run-me", kernel_id: str = "") -> LeaseHolder:
    return LeaseHolder.this_process(kernel_id=kernel_id, run_id=run_id)


def other(pid: int, *, run_id: str = "run-other", **kwargs: object) -> LeaseHolder:
    base = LeaseHolder.this_process(run_id=run_id)
    return LeaseHolder(
        host=str(kwargs.get("host", base.host)),
        pid=pid,
        kernel_id=str(kwargs.get("kernel_id", "")),
        run_id=run_id,
        started=time.time(),
        process_start=str(kwargs.get("process_start", lease._process_start(pid) or "")),
    )


def test_a_free_lease_is_acquired_written_privately_and_renewed(dirs: RootDirs) -> None:
    mine = me()
    outcome = acquire(dirs, "nb", mine, timeout=TIMEOUT)
    assert outcome.state == "acquired"
    assert outcome.ours
    path = dirs.session_dir("nb") / lease.LEASE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(dirs.root.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc["session"] == "nb"
    assert doc["pid"] == os.getpid()
    assert doc["run_id"] == "run-me"
    first = holder(dirs, "nb")
    assert first is not None
    assert first.same_as(mine)
    time.sleep(0.01)
    again = refresh(dirs, "nb", mine, timeout=TIMEOUT)
    assert again.state == "renewed"
    second = holder(dirs, "nb")
    assert second is not None
    assert second.heartbeat > first.heartbeat
    assert not list(path.parent.glob(".tmp-*"))
    assert release(dirs, "nb", mine)
    assert holder(dirs, "nb") is None


def test_a_live_holder_keeps_it_unless_forced(
    dirs: RootDirs, sleeper: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    theirs = other(sleeper.pid)
    assert acquire(dirs, "nb", theirs, timeout=TIMEOUT).ours
    outcome = acquire(dirs, "nb", me(), timeout=TIMEOUT)
    assert outcome.state == "held"
    assert not outcome.ours
    assert outcome.holder is not None
    assert outcome.holder.same_as(theirs)
    assert not release(dirs, "nb", me())  # not ours: left alone
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        forced = acquire(dirs, "nb", me(), timeout=TIMEOUT, force=True)
    assert forced.state == "forced"
    assert forced.previous is not None
    assert forced.previous.same_as(theirs)
    assert "Took over the lease" in caplog.text
    # The former holder finds out at its next refresh, and writes nothing.
    lost = refresh(dirs, "nb", theirs, timeout=TIMEOUT)
    assert lost.state == "held"
    current = holder(dirs, "nb")
    assert current is not None
    assert current.same_as(me())


def test_a_dead_process_lease_is_taken_over_with_a_log_line(
    dirs: RootDirs, caplog: pytest.LogCaptureFixture
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    acquire(dirs, "nb", other(proc.pid, process_start=""), timeout=TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        outcome = acquire(dirs, "nb", me(), timeout=TIMEOUT)
    assert outcome.state == "taken-over"
    assert f"process {proc.pid} is gone" in outcome.reason
    assert "Took over the lease of session 'nb'" in caplog.text


def test_permission_error_means_alive(dirs: RootDirs, sleeper: subprocess.Popen[bytes]) -> None:
    acquire(dirs, "nb", other(sleeper.pid, process_start=""), timeout=TIMEOUT)

    def kill(pid: int, sig: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    with pytest.MonkeyPatch.context() as patch:  # undone before the sleeper is killed
        patch.setattr(os, "kill", kill)
        assert acquire(dirs, "nb", me(), timeout=TIMEOUT).state == "held"


def test_a_reused_process_id_is_stale(dirs: RootDirs, sleeper: subprocess.Popen[bytes]) -> None:
    if lease._process_start(sleeper.pid) is None:
        pytest.skip("process start times need /proc")
    acquire(dirs, "nb", other(sleeper.pid, process_start="1"), timeout=TIMEOUT)
    outcome = acquire(dirs, "nb", me(), timeout=TIMEOUT)
    assert outcome.state == "taken-over"
    assert "now belongs to another process" in outcome.reason


def test_an_old_heartbeat_is_stale_even_on_another_host(dirs: RootDirs) -> None:
    theirs = other(12345, host="elsewhere.example")
    acquire(dirs, "nb", theirs, timeout=TIMEOUT)
    assert acquire(dirs, "nb", me(), timeout=TIMEOUT).state == "held"
    outcome = acquire(dirs, "nb", me(), timeout=0.0)
    time.sleep(0.01)
    assert outcome.state == "taken-over"
    assert "last heartbeat" in outcome.reason


def test_an_earlier_run_of_the_same_kernel_is_stale(
    dirs: RootDirs, sleeper: subprocess.Popen[bytes]
) -> None:
    # A kernel restarted by Jupyter keeps its kernel id; the old process may linger a moment.
    acquire(dirs, "nb", other(sleeper.pid, kernel_id="k-1"), timeout=TIMEOUT)
    outcome = acquire(dirs, "nb", me(kernel_id="k-1"), timeout=TIMEOUT)
    assert outcome.state == "taken-over"
    assert "earlier run of this kernel" in outcome.reason


def test_this_process_knows_which_of_its_leases_are_live(dirs: RootDirs) -> None:
    first, second = me("run-1"), me("run-2")
    assert acquire(dirs, "nb", first, timeout=TIMEOUT).ours
    assert acquire(dirs, "nb", second, timeout=TIMEOUT).state == "held"
    lease._remember(dirs.session_dir("nb"), first, held=False)  # its manager is gone
    assert acquire(dirs, "nb", second, timeout=TIMEOUT).state == "taken-over"
    release(dirs, "nb", second)


def lease_doc(**fields: object) -> bytes:
    """A lease as this module writes it, from a live-looking kernel on another host (nothing
    but its heartbeat could ever make it stale), with ``fields`` replaced (None: left out)."""
    doc = {
        "version": 1,
        "session": "nb",
        "host": "elsewhere",
        "pid": 4242,
        "kernel_id": "k",
        "run_id": "run-them",
        "started": time.time(),
        "heartbeat": time.time(),
        "process_start": "",
    }
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


DAMAGED_LEASES = {
    "empty": b"",
    "not-json": b"not json",
    "binary": bytes(range(256)),
    "cut": lease_doc()[:40],
    "list": b"[1, 2]",
    "host-not-text": b'{"host": 1}',
    "too-large": b"x" * 70_000,
    # Each of these once parsed as a live lease that never turns stale, or raised out of acquire.
    "no-heartbeat": lease_doc(heartbeat=None),
    "heartbeat-not-a-number": lease_doc(heartbeat="soon"),
    "heartbeat-nan": lease_doc().replace(b'"heartbeat": ', b'"heartbeat": NaN, "x": '),
    "heartbeat-infinite": lease_doc().replace(b'"heartbeat": ', b'"heartbeat": Infinity, "x": '),
    "heartbeat-in-a-year": lease_doc(heartbeat=time.time() + 365 * 86400),
    "pid-too-large": lease_doc(host=socket.gethostname(), pid=10**30),
    "pid-zero": lease_doc(pid=0),
    "pid-true": lease_doc(pid=True),
    "run-id-not-text": lease_doc(run_id=7),
    "started-nan": lease_doc().replace(b'"started": ', b'"started": NaN, "x": '),
    "int-of-5000-digits": b'{"host": "elsewhere", "pid": ' + b"1" * 5000 + b"}",
    "nested-100000-deep": b"[" * 100_000,
}


@pytest.mark.parametrize("content", DAMAGED_LEASES.values(), ids=DAMAGED_LEASES.keys())
def test_a_damaged_lease_is_no_lease_logged_and_replaced(
    dirs: RootDirs, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    sdir = dirs.session_dir("nb")
    sdir.mkdir(parents=True)
    path = sdir / lease.LEASE_FILE
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        assert holder(dirs, "nb") is None
        assert acquire(dirs, "nb", me(), timeout=TIMEOUT).state == "acquired"
    if content:  # an empty file is what a crash mid-write leaves: not worth a warning
        assert str(path) in caplog.text
    replaced = holder(dirs, "nb")
    assert replaced is not None
    assert replaced.same_as(me())
    release(dirs, "nb", me())


def test_a_well_formed_lease_of_a_live_kernel_elsewhere_still_holds(dirs: RootDirs) -> None:
    sdir = dirs.session_dir("nb")
    sdir.mkdir(parents=True)
    doc = lease_doc(pid=2**32 - 1)  # the largest process id any system gives
    (sdir / lease.LEASE_FILE).write_bytes(doc)
    outcome = acquire(dirs, "nb", me(), timeout=TIMEOUT)
    assert outcome.state == "held"
    assert outcome.holder == LeaseHolder.from_dict(json.loads(doc))


def test_trouble_is_unavailable_never_an_exception(
    dirs: RootDirs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert acquire(dirs, "nb", me(), timeout=TIMEOUT, create=False).state == "unavailable"
    assert not dirs.session_dir("nb").exists()
    acquire(dirs, "nb", me(), timeout=TIMEOUT)

    def no_locks(self: filelock.BaseFileLock, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(filelock.FileLock, "acquire", no_locks)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        outcome = acquire(dirs, "nb", me(), timeout=TIMEOUT)
    assert outcome.state == "unavailable"
    assert "No locks available" in outcome.reason
    assert "carrying on without it" in caplog.text
    assert not release(dirs, "nb", me())


def test_describe_names_kernel_host_and_pid() -> None:
    text = LeaseHolder("host-a", 42, kernel_id="1a2b3c4d5e6f", run_id="r").describe()
    assert text == "kernel 1a2b3c4d (host host-a, pid 42)"
    assert "run abc" in LeaseHolder("h", 1, run_id="abc").describe()
    assert LeaseHolder.from_dict({"host": "h", "pid": True}) is None


RACER = """
import sys, time
from pathlib import Path
from ipysession.session.lease import LeaseHolder, RootDirs, acquire
root, go = Path(sys.argv[1]), Path(sys.argv[2])
me = LeaseHolder.this_process(run_id=sys.argv[3])
while not go.exists():
    time.sleep(0.001)
print(acquire(RootDirs(root), "nb", me, timeout=120).state, flush=True)
sys.stdin.read()  # stay alive (a live holder) until the test is done
"""


def test_racing_kernels_get_one_consistent_answer(tmp_path: Path) -> None:
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path / "root"), str(go), f"racer-{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        time.sleep(0.5)
        go.touch()
        states = []
        for proc in racers:
            assert proc.stdout is not None
            states.append(proc.stdout.readline().strip())
    finally:
        for proc in racers:
            proc.communicate("", timeout=30)
    assert sorted(states) == ["acquired", "held", "held", "held"]


@pytest.mark.skipif(os.name != "posix", reason="FIFOs as on POSIX")
def test_a_fifo_planted_as_the_lease_is_no_lease_and_never_blocks(dirs: RootDirs) -> None:
    sdir = dirs.session_dir("nb")
    sdir.mkdir(parents=True)
    os.mkfifo(sdir / lease.LEASE_FILE)
    outcome: list[object] = []
    # In a daemon thread: a blocking open would fail the test at the deadline, not hang it.
    worker = threading.Thread(
        target=lambda: outcome.append(acquire(dirs, "nb", me(), timeout=TIMEOUT)), daemon=True
    )
    worker.start()
    worker.join(60)
    assert outcome, "acquire blocked on a FIFO planted as lease.json"
    assert getattr(outcome[0], "ours", False)
    assert (sdir / lease.LEASE_FILE).is_file()  # replaced by a real lease


@pytest.mark.skipif(os.name != "posix", reason="symbolic links as on POSIX")
def test_a_link_planted_as_the_lease_lock_is_refused_and_its_target_kept(
    dirs: RootDirs, tmp_path: Path
) -> None:
    sdir = dirs.session_dir("nb")
    sdir.mkdir(parents=True)
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's data")
    (sdir / lease.LEASE_LOCK_FILE).symlink_to(precious)
    outcome = acquire(dirs, "nb", me(), timeout=TIMEOUT)
    assert outcome.state == "unavailable"
    assert str(sdir / lease.LEASE_LOCK_FILE) in outcome.reason
    # filelock opens its lock file with O_TRUNC: through the link, this would be empty now.
    assert precious.read_text() == "the user's data"
