"""The lease: which kernel uses a session now, recorded in ``lease.json`` in the session directory.

A kernel that restores or saves a session records itself in the lease (host, process id, kernel
id, run id, when it started, and a heartbeat it refreshes with every autosave and while idle). A
second kernel opening the same session finds the lease held and follows its
``SessionManager.on_conflict`` policy (fork, read-only or take over); that policy lives in
:mod:`ipysession.session.sharing`. This module only answers "who holds it, and may I have it?",
without IPython and without the encryption key (the lease holds no secret and no user data)::

    {"version": 1, "session": "analysis.ipynb", "host": "ada-laptop", "pid": 4242,
     "kernel_id": "1a2b3c4d-...", "run_id": "9f8e7d6c5b4a", "started": 1750000000.0,
     "heartbeat": 1750000123.4, "process_start": "123456"}

A lease is **stale**, and is taken over with a log line, when

* it was written by an earlier run of the same kernel on this host (a kernel restarted by Jupyter
  keeps its kernel id; only one process runs a kernel id at a time),
* its process is gone on this host (``os.kill(pid, 0)`` raises ``ProcessLookupError``; a
  ``PermissionError`` means the process exists under another user, so it is alive), or its
  process id now belongs to a process started at another time (the id was reused),
* it belongs to this very process but to no lease this process still holds, or
* its heartbeat is older than ``timeout`` seconds (the only test that works across hosts, for
  sessions on a network home directory).

Reads, acquisitions, refreshes and releases are serialized between processes by a dedicated file
lock, ``lease.lock``, so two kernels racing for one session get one consistent answer; the session's
write lock is not involved, so a long write never delays a kernel starting. ``lease.json`` is
written atomically (temp file, rename), ``0600``. It is advisory: the store's optimistic
concurrency and merge keep two writers from clobbering each other whatever the lease says. A lease
that cannot be read or written (read-only directory, a filesystem without locks) is reported as
``"unavailable"`` and never stops a kernel. A ``lease.json`` that does not parse as a lease (junk,
cut short, a field missing, of the wrong type or out of range) is no lease: it is logged, naming
the file, and the kernel that takes the session writes its own lease over it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeGuard

from ipysession import paths, safe_open
from ipysession.atomic import write_atomically
from ipysession.errors import UnsafeFile
from ipysession.store.names import SESSIONS_DIR, session_dir_for

__all__ = [
    "LEASE_FILE",
    "LEASE_LOCK_FILE",
    "LeaseHolder",
    "LeaseOutcome",
    "LeaseState",
    "RootDirs",
    "SessionDirs",
    "acquire",
    "holder",
    "refresh",
    "release",
    "stale_reason",
]

logger = logging.getLogger("ipysession")

LEASE_FILE = "lease.json"
LEASE_LOCK_FILE = "lease.lock"
LEASE_VERSION = 1
#: Seconds to wait for another process reading or writing the lease (it holds the lock briefly).
LOCK_TIMEOUT = 10.0
_MAX_LEASE_BYTES = 64 * 1024

#: Process ids are at most 32 bits (a Windows DWORD; Linux stops at 2**22): a larger one is
#: damage, and os.kill would raise OverflowError on it.
_MAX_PID = 2**32 - 1
#: How far ahead of this host's clock a heartbeat may be (another host's clock, on a shared home
#: directory). Further ahead it is damage: the lease would look live until that time came.
_MAX_CLOCK_SKEW = 24 * 3600.0

LeaseState = Literal["acquired", "renewed", "taken-over", "forced", "held", "unavailable"]

# Leases this process holds now: (session directory, run id). A lease written by this process
# for a run id not in here was left by a manager that is gone (never closed): it is stale.
_held: set[tuple[str, str]] = set()
_held_lock = threading.Lock()


class SessionDirs(Protocol):
    """Anything that knows where a session's directory is (a ``SessionStore`` does)."""

    def session_dir(self, name: str) -> Path: ...


class RootDirs:
    """Session directories under ``root``, without a key: leases never need one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def session_dir(self, name: str) -> Path:
        return session_dir_for(self.root, name)


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds (or wants) a lease. Identity is host, process id and run id."""

    host: str
    pid: int
    kernel_id: str = ""
    run_id: str = ""
    started: float = 0.0
    heartbeat: float = 0.0
    process_start: str = ""

    @classmethod
    def this_process(
        cls, *, kernel_id: str = "", run_id: str = "", started: float = 0.0
    ) -> LeaseHolder:
        """A holder describing the calling process."""
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            pid=pid,
            kernel_id=kernel_id,
            run_id=run_id,
            started=started or time.time(),
            heartbeat=0.0,
            process_start=_process_start(pid) or "",
        )

    def same_as(self, other: LeaseHolder) -> bool:
        return (self.host, self.pid, self.run_id) == (other.host, other.pid, other.run_id)

    def describe(self) -> str:
        """For messages: ``"kernel 1a2b3c4d (host ada-laptop, pid 4242)"``."""
        who = f"kernel {self.kernel_id[:8]}" if self.kernel_id else f"run {self.run_id[:8]}"
        return f"{who} (host {self.host}, pid {self.pid})"

    def to_dict(self, session: str) -> dict[str, Any]:
        return {
            "version": LEASE_VERSION,
            "session": session,
            "host": self.host,
            "pid": self.pid,
            "kernel_id": self.kernel_id,
            "run_id": self.run_id,
            "started": self.started,
            "heartbeat": self.heartbeat,
            "process_start": self.process_start,
        }

    @classmethod
    def from_dict(cls, doc: object, *, now: float | None = None) -> LeaseHolder | None:
        """The holder recorded in a lease document, or ``None`` if it is not one.

        Strict, because a lease that is believed holds the session: a document that only half
        parses (a heartbeat that is missing, not a number, NaN, infinite or far in the future; a
        process id no system has) would never turn stale, and every later kernel would fork
        for ever. Every lease this module writes has all of these fields.
        """
        if not isinstance(doc, dict):
            return None
        now = time.time() if now is None else now
        host, pid, heartbeat = doc.get("host"), doc.get("pid"), doc.get("heartbeat")
        texts = {key: doc.get(key, "") for key in ("kernel_id", "run_id", "process_start")}
        started = doc.get("started", 0.0)
        if (
            not isinstance(host, str)
            or not host
            or not _is_int(pid)
            or not 0 < pid <= _MAX_PID
            or not _is_number(heartbeat)
            or not 0 < heartbeat <= now + _MAX_CLOCK_SKEW
            or not _is_number(started)
            or not 0 <= started <= now + _MAX_CLOCK_SKEW
            or not all(isinstance(value, str) for value in texts.values())
        ):
            return None
        return cls(
            host=host,
            pid=pid,
            kernel_id=texts["kernel_id"],
            run_id=texts["run_id"],
            started=float(started),
            heartbeat=float(heartbeat),
            process_start=texts["process_start"],
        )


@dataclass(frozen=True)
class LeaseOutcome:
    """What :func:`acquire` or :func:`refresh` found and did.

    ``state``: ``"acquired"`` (it was free), ``"renewed"`` (it was already ours; heartbeat
    refreshed), ``"taken-over"`` (a stale lease was replaced; ``previous`` and ``reason`` say whose
    and why), ``"forced"`` (a live holder's lease was taken because the caller asked), ``"held"``
    (another live holder has it: ``holder``), ``"unavailable"`` (the lease could not be read or
    written: ``reason``).
    """

    state: LeaseState
    holder: LeaseHolder | None
    previous: LeaseHolder | None = None
    reason: str = ""

    @property
    def ours(self) -> bool:
        return self.state in ("acquired", "renewed", "taken-over", "forced")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    # isfinite: json.loads reads NaN and Infinity, which never compare older than a deadline.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- process liveness -----------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or ``None`` off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool | None:
    """Whether a process with this id exists here; ``None`` where that cannot be asked."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return None
    return True


def stale_reason(
    current: LeaseHolder, me: LeaseHolder, *, timeout: float, now: float | None = None
) -> str | None:
    """Why ``current`` (held by someone other than ``me``) is stale, or ``None`` if it is live."""
    now = time.time() if now is None else now
    if current.host == me.host:
        if current.kernel_id and current.kernel_id == me.kernel_id:
            return "it was held by an earlier run of this kernel"
        if current.pid == me.pid:
            with _held_lock:
                live = any(run_id == current.run_id for _, run_id in _held)
            if not live:
                return "it was left by this process, which no longer holds it"
        else:
            alive = _pid_alive(current.pid)
            if alive is False:
                return f"process {current.pid} is gone"
            if alive and current.process_start:
                started = _process_start(current.pid)
                if started is not None and started != current.process_start:
                    return f"process id {current.pid} now belongs to another process"
    if current.heartbeat and now - current.heartbeat > timeout:
        return f"its last heartbeat was {now - current.heartbeat:.0f} s ago (limit {timeout:g} s)"
    return None


# --- file handling --------------------------------------------------------------------------------


def _lease_path(dirs: SessionDirs, name: str) -> Path:
    return dirs.session_dir(name) / LEASE_FILE


def _ensure_dirs(sdir: Path) -> None:
    # Each level private, as the store makes them (mkdir(parents=True) would not apply the mode).
    sessions = sdir.parent
    root = sessions.parent
    if sessions.name == SESSIONS_DIR and not root.exists():
        paths.ensure_private_dir(root)
    if sessions.name == SESSIONS_DIR:
        paths.ensure_private_dir(sessions)
    paths.ensure_private_dir(sdir)


@contextlib.contextmanager
def _locked(sdir: Path) -> Iterator[None]:
    import filelock  # only when a lease is taken: keeps extension load cheap

    lock_path = sdir / LEASE_LOCK_FILE
    safe_open.refuse_special(
        lock_path
    )  # filelock opens with O_TRUNC: a link's target would be emptied
    lock = filelock.FileLock(lock_path, timeout=LOCK_TIMEOUT, mode=paths.PRIVATE_FILE_MODE)
    with lock:
        yield


def _read(path: Path) -> LeaseHolder | None:
    """The holder in ``path``; ``None`` if missing, empty, damaged or not a lease."""
    try:
        data = safe_open.read_regular(path, limit=_MAX_LEASE_BYTES)  # a FIFO must not block
    except (FileNotFoundError, NotADirectoryError):
        return None
    except UnsafeFile as exc:  # a FIFO, a link, a directory, a huge file: no lease
        logger.warning("Ignoring %s: %s", path, exc)
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    # ValueError: not UTF-8, not JSON, or an integer of thousands of digits; RecursionError:
    # brackets nested thousands deep. Junk must never escape as an error, or decide anything.
    except (ValueError, RecursionError):
        if data:
            _damaged(path, "it is not JSON")
        return None
    found = LeaseHolder.from_dict(doc)
    if found is None:
        _damaged(path, "its fields are missing, of the wrong type or out of range")
    return found


def _damaged(path: Path, why: str) -> None:
    """A lease that does not parse is no lease: the session counts as free, and the kernel that
    takes it next writes its own lease over this file."""
    logger.warning(
        "Ignoring the damaged lease file %s (%s): the session counts as free, and the kernel "
        "that takes it replaces the file",
        path,
        why,
    )


def _write(path: Path, holder: LeaseHolder, name: str) -> None:
    """Atomically replace ``path`` with a lease for ``holder`` (0600).

    Not fsynced: a lease is advisory, and one lost in a power cut only looks staler than it was.
    """
    data = json.dumps(holder.to_dict(name), indent=1).encode("utf-8")
    write_atomically(path, data, fsync=False)


def _remember(sdir: Path, holder: LeaseHolder, *, held: bool) -> None:
    key = (str(sdir), holder.run_id)
    with _held_lock:
        if held:
            _held.add(key)
        else:
            _held.discard(key)


def _unavailable(path: Path, exc: BaseException) -> LeaseOutcome:
    import filelock

    if isinstance(exc, filelock.Timeout):
        reason = f"the lease lock {exc.lock_file} stayed busy for {LOCK_TIMEOUT:g} s"
    elif isinstance(exc, OSError):
        reason = f"{path}: {exc.strerror or exc}"
    else:
        reason = f"{path}: {type(exc).__name__}: {exc}"
    logger.warning(
        "Could not read or write the lease %s (%s); carrying on without it", path, reason
    )
    return LeaseOutcome("unavailable", None, reason=reason)


# --- the API --------------------------------------------------------------------------------------


def acquire(
    dirs: SessionDirs,
    name: str,
    me: LeaseHolder,
    *,
    timeout: float,
    force: bool = False,
    create: bool = True,
) -> LeaseOutcome:
    """Take the lease of session ``name`` for ``me`` unless another live holder has it.

    A stale lease is taken over (logged at warning level, with why it was stale). With
    ``force=True`` a live holder's lease is taken too (``on_conflict = "takeover"``). The session
    directory is created if needed unless ``create=False``. Never raises for file-system trouble:
    that is an ``"unavailable"`` outcome.
    """
    sdir = dirs.session_dir(name)
    path = sdir / LEASE_FILE
    try:
        if create:
            _ensure_dirs(sdir)
        elif not sdir.is_dir():
            return LeaseOutcome("unavailable", None, reason=f"{sdir} does not exist")
        with _locked(sdir):
            current = _read(path)
            fresh = dataclasses.replace(me, heartbeat=time.time())
            state: LeaseState
            reason = ""
            if current is None:
                state = "acquired"
            elif current.same_as(me):
                state = "renewed"
            else:
                stale = stale_reason(current, me, timeout=timeout)
                if stale is not None:
                    state, reason = "taken-over", stale
                elif force:
                    state, reason = "forced", "on_conflict is 'takeover'"
                else:
                    return LeaseOutcome("held", current)
            _write(path, fresh, name)
    except (OSError, NotImplementedError) as exc:  # filelock.Timeout is an OSError
        return _unavailable(path, exc)
    _remember(sdir, fresh, held=True)
    if state in ("taken-over", "forced") and current is not None:
        logger.warning(
            "Took over the lease of session %r from %s: %s", name, current.describe(), reason
        )
    elif state == "acquired":
        logger.debug("Acquired the lease of session %r", name)
    previous = current if state in ("taken-over", "forced") else None
    return LeaseOutcome(state, fresh, previous=previous, reason=reason)


def refresh(dirs: SessionDirs, name: str, me: LeaseHolder, *, timeout: float) -> LeaseOutcome:
    """Refresh ``me``'s heartbeat (cheap: one small file, no fsync).

    If the lease is gone or stale it is taken again; if another live holder took it meanwhile the
    outcome is ``"held"`` and nothing is written: the caller has lost the lease.
    """
    return acquire(dirs, name, me, timeout=timeout)


def release(dirs: SessionDirs, name: str, me: LeaseHolder) -> bool:
    """Remove the lease if it is still ``me``'s; True if it was. Never raises."""
    sdir = dirs.session_dir(name)
    path = sdir / LEASE_FILE
    _remember(sdir, me, held=False)
    if not sdir.is_dir():
        return False
    try:
        with _locked(sdir):
            current = _read(path)
            if current is None or not current.same_as(me):
                return False
            path.unlink()
    except FileNotFoundError:
        return False
    except (OSError, NotImplementedError) as exc:  # filelock.Timeout is an OSError
        _unavailable(path, exc)
        return False
    logger.debug("Released the lease of session %r", name)
    return True


def holder(dirs: SessionDirs, name: str) -> LeaseHolder | None:
    """Who holds the lease of session ``name`` now, as recorded (stale or not); no lock taken."""
    try:
        return _read(_lease_path(dirs, name))
    except OSError as exc:
        logger.debug("Could not read the lease of %r: %s", name, exc)
        return None
