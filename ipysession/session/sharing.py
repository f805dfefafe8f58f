"""Sharing a session with other kernels: the lease decision, fork/read-only/takeover, merging.

(Over 500 lines on purpose: the lease policy and everything acting on it share one view of
who writes where -- this kernel's base generation, its fork, what it carried from other writers
-- and bringing a fork back (its restart, `%session merge`) needs that same state.)

Two notebooks on one session, the same notebook open twice, an ``ipysession import`` while a kernel
runs: several writers meet on one session. This module holds what follows, in two parts shaped
like jupyter_client's restarter (the policy small and pure, the mechanism acting on it):

* **The policy.** :func:`decide` turns what :func:`~ipysession.session.lease.acquire` found into
  a :class:`LeaseDecision`: write, never write (read-only), continue as a fork, or the lease was
  lost to another kernel (continue as a fork too). Pure: tested per value without a disk.
* **The mechanism.** :class:`Sharing` takes and refreshes the lease, acts on each decision
  (forks under the name ``'<name> (fork <kernel id>)'``, stays read-only, announces a takeover),
  and writes snapshots: on top of the generation this kernel's state builds on, merged with
  whatever another writer saved since (:func:`~ipysession.session.merge.merge_sessions`), and
  carrying that writer's work (its history, variables, imports, connections: the *foreign
  part*) in every later save until someone drops it.

Whatever the lease says, the store's generation check and the merge keep two writers from
overwriting each other: the lease only decides who continues the session under its name.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

from ipysession.errors import NewerFormat, SessionError, SessionInUse, WriteConflict
from ipysession.model import Session
from ipysession.session import lease as lease_mod
from ipysession.session.forks import fork_name, fork_work_is_newer
from ipysession.session.lease import LeaseHolder, LeaseOutcome
from ipysession.session.merge import MergeResult, history_key, merge_sessions

if TYPE_CHECKING:
    from ipysession.session.reports import RestoreReport
    from ipysession.session.workspace import Workspace
    from ipysession.store import SessionStore, WriteResult

__all__ = [
    "LeaseDecision",
    "Sharing",
    "SharingHost",
    "decide",
    "default_session_name",
    "foreign_part",
]

log = logging.getLogger("ipysession")

# Problems that mean nothing on disk can be read to merge with: the session is left untouched.
_UNREADABLE_KINDS = frozenset({"wrong-key", "newer-format"})


def default_session_name(
    configured: str,
    environ: Mapping[str, str],
    user_ns: Mapping[str, Any],
    *,
    kernel_id: str = "",
) -> str:
    """The session name: configured, else ``$IPYSESSION_NAME``, else the notebook path, else cwd.

    jupyter-server tells a kernel its notebook in ``JPY_SESSION_NAME``; VS Code puts
    ``__vsc_ipynb_file__`` in the user namespace. For a console, jupyter-server joins the
    console's name to its directory (``/home/me/proj/Console 1``): a name with no file suffix,
    which every server run hands out again, so every "Console 1" would share one session. Such
    a name gets this kernel's id (``kernel_id``, kept by Jupyter across a restart), so a console
    has a session of its own and comes back to it when its kernel restarts.
    """
    if configured:
        return configured
    env_name, jupyter_name = environ.get("IPYSESSION_NAME"), environ.get("JPY_SESSION_NAME")
    for candidate in (env_name, jupyter_name, user_ns.get("__vsc_ipynb_file__")):
        if isinstance(candidate, str) and candidate.strip():
            name = candidate.strip()
            if candidate is jupyter_name and kernel_id and not PurePath(name).suffix:
                return f"{name} (kernel {kernel_id[:8]})"
            return name
    return f"cwd:{Path.cwd()}"


class LeaseDecision(enum.Enum):
    """What this kernel does with its session, given who holds the lease."""

    #: Write: the lease is ours, or cannot be had at all (a read-only directory, no file locks),
    #: in which case the store's merge still keeps writers apart.
    WRITE = "ok"
    #: Never write: another live kernel holds it and ``on_conflict`` is ``'readonly'``.
    READ_ONLY = "readonly"
    #: Another live kernel holds it: continue as a new session named after it.
    FORK = "fork"
    #: This kernel held it and another took it over: continue as a fork too.
    LOST = "lost"


def decide(outcome: LeaseOutcome, *, held_before: bool, on_conflict: str) -> LeaseDecision:
    """The policy: what ``outcome`` (an acquisition of the lease) means for this kernel.

    ``held_before``: this kernel held the lease of this very session until now;
    ``on_conflict``: ``SessionManager.on_conflict`` (``'takeover'`` has already acted by then,
    as a forced acquisition).
    """
    if outcome.ours or outcome.state == "unavailable":
        return LeaseDecision.WRITE
    if held_before:
        return LeaseDecision.LOST
    if on_conflict == "readonly":
        return LeaseDecision.READ_ONLY
    return LeaseDecision.FORK


class SharingHost(Protocol):
    """What :class:`Sharing` reads from its manager, live (``%config`` may change the options)."""

    @property
    def root(self) -> str: ...
    @property
    def on_conflict(self) -> str: ...
    @property
    def lease_timeout(self) -> float: ...
    @property
    def max_history(self) -> int: ...
    @property
    def kernel_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def started(self) -> float: ...
    @property
    def store(self) -> SessionStore: ...


class Sharing:
    """This kernel's claim on its session, and its writes to it.

    Every method may run on the main thread (restore, ``%session save``) or the writer thread
    (autosave, heartbeat); one re-entrant lock keeps the lease state and the carried foreign part
    consistent between them. Nothing is printed: what the user must know goes to ``notify``.
    """

    def __init__(
        self,
        host: SharingHost,
        workspace: Workspace,
        *,
        default_name: Callable[[], str],
        notify: Callable[[str], None],
    ) -> None:
        self._host = host
        self._workspace = workspace
        self._default_name = default_name
        self._notify = notify
        self._lock = threading.RLock()
        self._name: str | None = None
        self._me: LeaseHolder | None = None
        # The session whose lease this kernel holds now (None: none).
        self._lease_name: str | None = None
        self.lease: LeaseOutcome | None = None
        self.read_only = False
        self.fork_of: str | None = None
        # Why this kernel forked (another kernel holds the session, another key...): for status.
        self.fork_reason: str | None = None
        # The generation our state builds on: a newer one on disk is another writer's.
        self._base_generation: int | None = None
        # What other writers added, kept in every later save (see foreign_part).
        self._foreign: Session | None = None
        self.merges = 0
        self.last_merge: str | None = None

    @property
    def name(self) -> str:
        """The session this kernel saves to: its own, or the fork it continues as."""
        if self._name is None:
            self._name = self._default_name()
        return self._name

    def fork_name(self, original: str) -> str:
        return fork_name(original, self._host.kernel_id or self._host.run_id)

    def other_holder(self) -> str:
        holder = self.lease.holder if self.lease is not None else None
        return holder.describe() if holder is not None else "another kernel"

    # --- the lease and what each decision does ---------------------------------------------------

    def _dirs(self) -> lease_mod.RootDirs:
        return lease_mod.RootDirs(Path(self._host.root))

    def _holder(self) -> LeaseHolder:
        host = self._host
        if self._me is None or self._me.kernel_id != host.kernel_id:
            self._me = LeaseHolder.this_process(
                kernel_id=host.kernel_id, run_id=host.run_id, started=host.started
            )
        return self._me

    def _check_lease(self, *, create: bool) -> LeaseDecision:
        """Take (or refresh) the lease of this kernel's session; the policy says what follows.

        ``create``: make the session directory if it is missing (before a write; a restore of a
        session that does not exist yet takes the lease at its first write). Call with the lock
        held."""
        if self.read_only:
            return LeaseDecision.READ_ONLY
        name = self.name
        held_before = self._lease_name == name
        on_conflict = self._host.on_conflict
        outcome = lease_mod.acquire(
            self._dirs(),
            name,
            self._holder(),
            timeout=self._host.lease_timeout,
            force=on_conflict == "takeover" and not held_before,
            create=create,
        )
        if outcome.state == "unavailable" and not create:
            return LeaseDecision.WRITE  # no directory yet: the lease is taken at the first write
        self.lease = outcome
        decision = decide(outcome, held_before=held_before, on_conflict=on_conflict)
        if decision is LeaseDecision.WRITE:
            self._lease_name = name if outcome.ours else None
            if outcome.state == "forced" and outcome.previous is not None:
                self._notify(
                    f"ipysession: this kernel took session '{name}' over from "
                    f"{outcome.previous.describe()} (on_conflict = 'takeover'); that kernel "
                    "continues as a fork of it from its next save."
                )
        elif decision is LeaseDecision.LOST:
            self._lease_name = None
        elif decision is LeaseDecision.READ_ONLY:
            self.read_only = True
        return decision

    def _may_write(self) -> bool:
        """Before a write: take or refresh the lease, act on the decision; False: do not write."""
        with self._lock:
            if self.read_only:
                return False
            decision = self._check_lease(create=True)
            if decision is LeaseDecision.READ_ONLY:
                self._notify(
                    f"ipysession: session '{self.name}' is in use by {self.other_holder()}; "
                    "this kernel will not save to it (on_conflict = 'readonly'). "
                    "`%session save NEW_NAME` saves a copy under another name."
                )
                return False
            if decision in (LeaseDecision.FORK, LeaseDecision.LOST):
                self._become_fork(lost=decision is LeaseDecision.LOST, restoring=False)
                self._check_lease(create=True)  # the fork's own lease
            return True

    def heartbeat(self) -> None:
        """From the writer thread while idle: keep our lease fresh (or notice it was lost)."""
        with self._lock:
            if self.read_only or self._lease_name != self.name:
                return  # no lease of ours to keep fresh: the next write takes one
            self._may_write()

    def claim_for_restore(self) -> LeaseDecision:
        """Before restoring this kernel's own session: whose is it?"""
        with self._lock:
            decision = self._check_lease(create=False)
            if decision is LeaseDecision.READ_ONLY:
                self._notify(
                    f"ipysession: session '{self.name}' is in use by {self.other_holder()}. "
                    "This kernel restored it read-only (on_conflict = 'readonly'): autosave is "
                    "off and it will never save to it. `%session save NEW_NAME` saves a copy "
                    "under another name."
                )
            return decision

    def restored(
        self,
        generation: int | None,
        *,
        latest: bool,
        decision: LeaseDecision,
        from_fork: bool = False,
    ) -> bool:
        """After restoring this kernel's own session: what our state now builds on.

        ``from_fork``: what was restored is this kernel's own fork from before a restart.
        Returns True when the restore made this kernel a new fork, whose copy must be saved.
        """
        with self._lock:
            if latest and generation is not None:
                self._base_generation = generation
            elif self._base_generation is None and generation is not None:
                # An older generation: later saves merge with what is newer, losing nothing.
                self._base_generation = generation
            if decision not in (LeaseDecision.FORK, LeaseDecision.LOST):
                return False
            self._become_fork(
                lost=decision is LeaseDecision.LOST, restoring=True, resumed=from_fork
            )
            if from_fork:
                self._base_generation = generation
            return not from_fork

    def newer_own_fork(self, name: str) -> str | None:
        """This kernel's own fork of session ``name``, if it holds work saved after this kernel's
        last save to ``name`` (else ``None``).

        Jupyter keeps a kernel's id across restarts, so a restarted kernel finds the fork it was
        writing before (continued as a fork after a takeover, or while another server held the
        session) under the same name. Only a kernel id names a kernel across restarts: a
        terminal IPython (no kernel id) forks under its run id, new at every start."""
        kernel_id = self._host.kernel_id
        if not kernel_id:
            return None
        fork = self.fork_name(name)
        store = self._host.store
        if not store.exists(fork):
            return None
        own = store.generations(name) if store.exists(name) else []
        newer = fork_work_is_newer(
            (info.time for info in store.generations(fork)),
            (info.time for info in own if info.writer_kernel_id == kernel_id),
        )
        return fork if newer else None

    def bring_in_own_fork(self, session: Session, report: RestoreReport, *, merge: bool) -> Session:
        """``session`` with this kernel's own fork merged in, when the fork holds work saved
        after this kernel's last save to the session (it continued as a fork, then came back to
        the session: a takeover, or the other server holding it stopped). ``merge`` False (a
        read-only restore): the fork is only named in the summary, with how to get it."""
        fork = self.fork_name(session.name)
        try:
            if self.newer_own_fork(session.name) is None:
                return session
            if not merge:
                report.newer_fork = fork
                return session
            merged, taken = self.with_own_fork(session, fork)
        except SessionError as exc:
            log.warning("Could not bring back this kernel's fork %r: %s", fork, exc)
            report.newer_fork = fork  # the summary says how to get it
            return session
        report.merged_fork = fork
        report.merged_fork_variables = taken
        return merged

    def with_own_fork(self, session: Session, fork: str) -> tuple[Session, list[str]]:
        """``session`` (just read) merged with this kernel's own ``fork``, for its restart.

        The merge rules are those of every merging write (:func:`merge_sessions`), the session
        saved last winning a name both hold (last writer wins). The fork's stored values are
        shared into the session's directory first, so the merged session's references resolve
        there. Returns the merged session (under ``session``'s name) and the variables that came
        from the fork. The fork itself stays on disk. Raises :class:`SessionError` when the fork
        cannot be read."""
        store = self._host.store
        forked = store.read(fork).session
        store.share_blobs(fork, session.name, forked.blob_ids())
        if forked.updated >= session.updated:
            merged = merge_sessions(session, forked, max_history=self._host.max_history)
        else:
            merged = merge_sessions(forked, session, max_history=self._host.max_history)
        taken = sorted(
            n
            for n, v in forked.variables.items()
            if merged.session.variables.get(n) == v and session.variables.get(n) != v
        )
        return dataclasses.replace(merged.session, name=session.name), taken

    def merge_back(self, fork: str, *, write: bool) -> tuple[str, MergeResult, int | None]:
        """Merge session ``fork`` into the session it forks, once that session is free.

        The merge rules are those of every merging write (:func:`merge_sessions`) with the fork
        as the last writer: its value wins a name both hold (the session's value stays in its
        previous generation). ``write`` False: a dry run, nothing on disk changes. Returns the
        parent's name, what the merge keeps, and the generation written (``None``: dry run).
        Refused while another live kernel holds the parent; the fork itself is left on disk."""
        from ipysession.errors import SessionNotFound
        from ipysession.session.discard import live_holder
        from ipysession.session.forks import fork_parent

        parent = fork_parent(fork)
        store = self._host.store
        if parent is None or not store.exists(fork):
            msg = f"'{fork}' is not a saved fork: a fork is named '<session> (fork <kernel id>)'"
            raise SessionNotFound(msg, hint="`%session list` shows forks under their session")
        holder = live_holder(Path(self._host.root), parent, timeout=self._host.lease_timeout)
        if holder is not None:
            msg = f"Session '{parent}' is in use by {holder.describe()}; nothing was merged"
            raise SessionInUse(msg, hint=f"Merge '{fork}' back once that kernel has stopped")
        forked = store.read(fork).session
        ours = dataclasses.replace(forked, name=parent)
        if not store.exists(parent):
            plan = merge_sessions(dataclasses.replace(ours, variables={}, history=[]), ours)
            base = None
        else:
            current = store.read(parent)
            plan = merge_sessions(current.session, ours, max_history=self._host.max_history)
            base = current.generation
        if not write:
            return parent, plan, None
        store.share_blobs(fork, parent, forked.blob_ids())
        result = store.write(
            plan.session,
            base_generation=base or 0,
            merge=lambda theirs, _ours: (
                merge_sessions(theirs, ours, max_history=self._host.max_history).session
            ),
        )
        return parent, plan, result.generation

    def unreadable(self, error: SessionError, *, resumed: bool = False) -> None:
        """Nothing of this kernel's session can be read (another key, a newer release): save
        this kernel's work as a fork, so the files it cannot read stay exactly as they are.

        ``resumed``: this kernel's own fork from before a restart is restored and continued."""
        with self._lock:
            if self._base_generation is not None or self.fork_of is not None:
                return
            kind = "newer ipysession" if isinstance(error, NewerFormat) else "different key"
            self._become_fork(
                lost=False,
                restoring=False,
                why=f"session '{self.name}' was saved with a {kind} and is left untouched",
                resumed=resumed,
            )

    def _become_fork(
        self, *, lost: bool, restoring: bool, why: str | None = None, resumed: bool = False
    ) -> None:
        """Continue as a new session named after this one; the original is left to its holder.

        ``resumed``: what was restored is this kernel's own fork from before a restart, whose
        directory already holds its blobs."""
        original = self.name
        fork = self.fork_name(original)
        self.fork_of = original
        self._name = fork
        self._base_generation = None
        self._lease_name = None
        blobs = self._workspace.blob_ids()
        if self._foreign is not None:
            blobs |= self._foreign.blob_ids()
        if blobs and not resumed:
            try:
                self._host.store.share_blobs(original, fork, blobs)
            except SessionError as exc:
                log.warning("Could not share stored values with the fork %r: %s", fork, exc)
        if why is not None:
            reason = why
        elif lost:
            reason = f"{self.other_holder()} took session '{original}' over"
        else:
            reason = f"session '{original}' is in use by {self.other_holder()}"
        self.fork_reason = reason
        if resumed:
            done = f"restored its own fork of it, '{fork}', and saves to it"
        elif restoring:
            done = f"restored a copy and saves it as a new session, '{fork}'"
        else:
            done = f"saves its work as a new session, '{fork}'"
        self._notify(
            f"ipysession: {reason}. This kernel {done}, so neither overwrites the other "
            "(c.SessionManager.on_conflict = 'readonly' or 'takeover' changes this)."
        )

    def read_only_error(self) -> SessionInUse:
        msg = f"This kernel opened session '{self.name}' read-only: {self.other_holder()} uses it"
        return SessionInUse(
            msg,
            hint=(
                "Save a copy with `%session save NEW_NAME`, or set "
                "c.SessionManager.on_conflict = 'fork' or 'takeover' and restart the kernel"
            ),
        )

    def conflict_original(self) -> str | None:
        """The session another kernel held when this one started (it forked from it or opened it
        read-only), or ``None`` when there was no conflict."""
        with self._lock:
            if self.fork_of is not None:
                return self.fork_of
            return self.name if self.read_only else None

    def undo_conflict(self) -> str:
        """Forget the conflict decision (the fork or read-only mode) and go back to the original
        session, so that a restore decides again; returns the original's name. The fork stays on
        disk with whatever it saved. SessionError when there was no conflict."""
        with self._lock:
            original = self.conflict_original()
            if original is None:
                msg = f"Session '{self.name}' has no conflict to resolve"
                raise SessionError(msg, hint="Nothing to do: this kernel holds its session")
            self.release()
            self._name = original
            self.fork_of = None
            self.fork_reason = None
            self.read_only = False
            self._base_generation = None
            self._foreign = None
            return original

    def release(self) -> None:
        with self._lock:
            name, self._lease_name = self._lease_name, None
            if name is not None:
                lease_mod.release(self._dirs(), name, self._holder())

    def forget(self, names: Iterable[str]) -> set[str]:
        """Stop carrying these variables of other writers; returns those that were carried."""
        with self._lock:
            if self._foreign is None:
                return set()
            dropped = set(names) & self._foreign.variables.keys()
            if dropped:
                variables = {n: v for n, v in self._foreign.variables.items() if n not in dropped}
                self._foreign = dataclasses.replace(self._foreign, variables=variables)
            return dropped

    # --- writing --------------------------------------------------------------------------------

    def write(self, session: Session) -> WriteResult | None:
        """Write one snapshot (the writer thread's job): lease first, then a merging write.

        ``None``: nothing was written, because this kernel is read-only."""
        store = self._host.store
        if session.name not in (self.name, self.fork_of):
            return store.write(session)  # an explicit save under another name
        with self._lock:
            if not self._may_write():
                return None
            if session.name != self.name:  # captured before this kernel became a fork
                session = dataclasses.replace(session, name=self.name)
        try:
            return self._write_merged(session)
        except WriteConflict as exc:
            from ipysession.store import problems_of

            if not {problem.kind for problem in problems_of(exc)} & _UNREADABLE_KINDS:
                raise
            # Nothing on disk can be read to merge with: never write over it, save as a fork.
            with self._lock:
                self._become_fork(
                    lost=False,
                    restoring=False,
                    why=(
                        f"session '{self.name}' on disk was saved with another key or by a "
                        "newer ipysession and is left untouched"
                    ),
                )
                self._check_lease(create=True)
                session = dataclasses.replace(session, name=self.name)
            return self._write_merged(session)

    def _write_merged(self, session: Session) -> WriteResult:
        """Write our capture ``session`` on top of the generation our state builds on; if
        another writer saved since, the store hands us theirs to merge with (counted)."""
        max_history = self._host.max_history
        with self._lock:
            base = self._base_generation or 0
            foreign = self._foreign
        ours = (
            session
            if foreign is None
            else merge_sessions(foreign, session, max_history=max_history).session
        )
        merges: list[MergeResult] = []

        def merge_with_theirs(theirs: Session, _carried: Session) -> Session:
            # Against our own capture only: what we carried for other writers is older than
            # theirs (theirs holds it unless a later writer dropped it), so it must not win.
            merged = merge_sessions(theirs, session, max_history=max_history)
            merges.append(merged)
            return self._without_forgotten(merged.session)

        result = self._host.store.write(
            self._without_forgotten(ours), base_generation=base, merge=merge_with_theirs
        )
        self._workspace.stored_in_blobs(result.stored, session)
        with self._lock:
            if session.name == self.name:
                self._base_generation = result.generation
            if result.merged and merges:
                self.merges += 1
                self.last_merge = merges[-1].details.summary()
                log.info("Merged session %r with another writer: %s", session.name, self.last_merge)
                self._foreign = foreign_part(merges[-1].session, session)
            elif foreign is not None:
                self._foreign = foreign_part(ours, session)
            if self._foreign is not None:  # a `%session forget` during this write wins
                self._foreign = self._without_forgotten(self._foreign)
        return result

    def _without_forgotten(self, session: Session) -> Session:
        """``session`` without the variables the user told this kernel to forget."""
        forgotten = self._workspace.forgotten & session.variables.keys()
        if not forgotten:
            return session
        variables = {n: v for n, v in session.variables.items() if n not in forgotten}
        return dataclasses.replace(session, variables=variables)


def foreign_part(written: Session, own: Session) -> Session:
    """What ``written`` holds that this kernel's own capture ``own`` does not: the other
    writers' history, variables, imports and winning connections, kept in every later save."""
    own_history = {history_key(e) for e in own.history}
    own_imports = {record.name for record in own.imports}
    return dataclasses.replace(
        written,
        history=[e for e in written.history if history_key(e) not in own_history],
        variables={n: v for n, v in written.variables.items() if n not in own.variables},
        imports=[i for i in written.imports if i.name not in own_imports],
        connections={n: c for n, c in written.connections.items() if own.connections.get(n) != c},
    )
