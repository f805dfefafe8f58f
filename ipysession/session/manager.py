"""SessionManager: the one orchestrator between a shell, the capture modules and the store.

Configure it from ``ipython_config.py`` like any IPython component::

    c.InteractiveShellApp.extensions = ["ipysession"]
    c.SessionManager.autorestore = "always"      # or "notify", "never"
    c.SessionManager.autosave_interval = 5.0
    c.SessionManager.exclude = ["tmp_*", "*_cache"]

Every option's help text below is also what ``ipython --help-all`` and docs/configuration.md show.

The manager never prints: it returns reports (:class:`RestoreReport`, :class:`SaveReport`,
:class:`Status`) and collects :attr:`notices` that the extension layer shows between cells. It
knows the shell only as an object handed to the capture modules, so it imports no IPython module.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import queue
import socket
import sys
import threading
import time
import uuid
from collections.abc import Container, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from traitlets import Bool, Enum, Float, Int, List, Unicode, default, observe
from traitlets.config import Configurable

from ipysession import paths
from ipysession._version import __version__
from ipysession.capture import history as history_capture
from ipysession.capture import namespace as ns_capture
from ipysession.capture import preferences as pref_capture
from ipysession.connections.live import ConnectionSet, ConnectionSettings
from ipysession.errors import (
    KeyStoreError,
    NewerFormat,
    SessionError,
    SessionInUse,
    SessionNotFound,
    WriteConflict,
    WrongKey,
)
from ipysession.model import (
    HistoryEntry,
    ImportRecord,
    Preferences,
    Session,
    VariableRecord,
    WriterInfo,
)
from ipysession.session import lease as lease_mod
from ipysession.session.lease import LeaseHolder, LeaseOutcome
from ipysession.session.merge import MergeResult, history_key, merge_sessions
from ipysession.session.reports import RESTORE_PARTS, RestoreReport, SaveReport, Status
from ipysession.session.writer import AutosaveWriter

if TYPE_CHECKING:
    from ipysession.keys.resolution import BackendChoice, KeyResolution
    from ipysession.store.session_store import FileProblem, SessionStore

__all__ = ["SessionManager", "default_session_name"]

log = logging.getLogger("ipysession")

_HOOK_FAILURE_LIMIT = 3


def default_session_name(
    configured: str, environ: dict[str, str] | os._Environ[str], user_ns: dict[str, Any]
) -> str:
    """The session name: configured, else ``$IPYSESSION_NAME``, else the notebook path, else cwd.

    jupyter-server tells a kernel its notebook in ``JPY_SESSION_NAME``; VS Code puts
    ``__vsc_ipynb_file__`` in the user namespace.
    """
    if configured:
        return configured
    for candidate in (
        environ.get("IPYSESSION_NAME"),
        environ.get("JPY_SESSION_NAME"),
        user_ns.get("__vsc_ipynb_file__"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return f"cwd:{Path.cwd()}"


class SessionManager(Configurable):
    """Saves the workspace between cells and brings it back when a kernel starts."""

    session_name = Unicode(
        "",
        help="""Name of the session this kernel saves to and restores from. Empty means: the
        IPYSESSION_NAME environment variable, else the notebook path (JPY_SESSION_NAME from
        jupyter-server, __vsc_ipynb_file__ from VS Code), else the working directory.""",
    ).tag(config=True)

    root = Unicode(
        "",
        help="""Directory holding all sessions. Empty means $IPYSESSION_DIR, else the platform's
        user data directory (platformdirs user_data_dir('ipysession')).""",
    ).tag(config=True)

    autorestore = Enum(
        ["always", "notify", "never"],
        default_value="always",
        help="""What a starting kernel does with a saved session of the same name: 'always'
        restores it, 'notify' says it exists and how to restore it, 'never' ignores it.""",
    ).tag(config=True)

    autosave = Bool(
        True, help="Save what changed after each cell (at most once per autosave_interval)."
    ).tag(config=True)

    autosave_interval = Float(
        5.0,
        help="""Minimum seconds between two autosave writes. A pending change is written when the
        interval has passed, even if no further cell runs, and at shutdown.""",
    ).tag(config=True)

    full_capture_interval = Float(
        60.0,
        help="""Seconds between full re-checks of every variable, which catch in-place changes
        made where a cell did not name the variable (by a thread, a callback, a module).""",
    ).tag(config=True)

    deep_capture_interval = Float(
        600.0,
        help="""Seconds between deep re-checks that re-serialize every variable, catching in-place
        changes too small for the sampled fingerprints of the regular re-check to see. A value
        already stored in a blob is hashed as it is serialized and compared with the blob's id,
        so this costs a hash of the data, not a copy of it.""",
    ).tag(config=True)

    exclude = List(
        Unicode(),
        help="fnmatch patterns of variable names never to save, e.g. ['tmp_*', 'secret*'].",
    ).tag(config=True)

    max_history = Int(
        2000, help="Cells of input history kept in the session (oldest dropped first)."
    ).tag(config=True)

    max_variable_bytes = Int(
        256 * 1024 * 1024,
        help="""Largest serialized size of one variable (bytes). Bigger values are listed as
        skipped with their size; raise this to keep them.""",
    ).tag(config=True)

    max_session_bytes = Int(
        1024 * 1024 * 1024,
        help="""Largest total serialized size of all variables (bytes). Variables past it are
        listed as skipped; raise this to keep them.""",
    ).tag(config=True)

    keep_generations = Int(
        5, help="How many of the newest generations of each session to keep on disk."
    ).tag(config=True)

    key_backend = Enum(
        ["auto", "passphrase", "keyring", "file"],
        default_value="auto",
        help="""Where the encryption key comes from. 'auto': $IPYSESSION_PASSPHRASE if set, else
        the OS keyring if a real one is available, else a key file in the user config dir.""",
    ).tag(config=True)

    keyring_timeout = Float(
        3.0, help="Seconds to wait for the OS keyring before falling back (or reporting it)."
    ).tag(config=True)

    allow_plaintext_keyring = Bool(
        False, help="Accept keyring backends that store secrets in plaintext (keyrings.alt)."
    ).tag(config=True)

    on_conflict = Enum(
        ["fork", "readonly", "takeover"],
        default_value="fork",
        help="""What this kernel does when another live kernel already uses its session (two
        notebooks on one session, the same notebook open twice). 'fork': restore a copy and
        save it as a new session named after the first, '<name> (fork <kernel id>)'. 'readonly':
        restore it, never write to it (autosave stays off; %session save refuses). 'takeover':
        take the session over; the other kernel continues as a fork when it next saves. Whatever
        the choice, concurrent saves of one session are merged, never overwritten.""",
    ).tag(config=True)

    lease_timeout = Float(
        120.0,
        help="""Seconds after which a kernel's claim on its session (its lease) counts as stale
        when its heartbeat stopped: another kernel may then take the session over. The
        heartbeat is refreshed by every autosave and every lease_timeout/4 seconds while idle,
        so keep this well above autosave_interval. A lease of a process that is gone on this
        host is stale at once.""",
    ).tag(config=True)

    reconnect_wait = Float(
        1.0,
        help="""Seconds a restored session waits, in total, for its auto connections before the
        first cell runs. Kernel start itself never waits: connections start in the background
        just after the kernel is up (or at the first cell). What is not ready by then is bound at
        a later cell, with a notice.""",
    ).tag(config=True)

    reconnect_attempts = Int(
        3, help="Connect attempts per connection at restore or on `%session reconnect`."
    ).tag(config=True)

    reconnect_backoff = Float(
        0.5,
        help="""Seconds before the second connect attempt, doubled after each failure (with
        random jitter of +-50%).""",
    ).tag(config=True)

    connect_timeout = Float(5.0, help="Seconds one connect attempt may take.").tag(config=True)

    heartbeat_interval = Float(
        30.0,
        help="""Seconds between liveness checks of live connections (0 turns them off). A
        connection that stops answering is reconnected with backoff; a remote kernel is never
        restarted.""",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shell = shell
        self.run_id = uuid.uuid4().hex[:12]
        self.kernel_id = ""
        self.started = time.time()
        self.notices: list[str] = []
        self._notice_lock = threading.Lock()
        self._store: SessionStore | None = None
        self._key: KeyResolution | None = None
        self._store_lock = threading.Lock()
        self._name: str | None = None
        self._created = time.time()
        self._records: dict[str, VariableRecord] = {}
        # (name, record, blob id) from the writer thread: values now safely in a blob, whose
        # bytes the main thread can drop (a 50 MB DataFrame would otherwise be held twice).
        self._stored_in_blobs: queue.SimpleQueue[tuple[str, VariableRecord, str]] = (
            queue.SimpleQueue()
        )
        # Each name's import records: several for `import a.b` + `import a.c` (see merge_imports).
        self._imports: dict[str, tuple[ImportRecord, ...]] = {}
        self._forgotten: set[str] = set()
        self._previous_history: list[HistoryEntry] = []
        self._preferences = Preferences()
        self._cwd: str | None = None
        self._layout: Any = None
        self._extra: dict[str, Any] = {}
        self._env_baseline = dict(os.environ)
        self._dirty = False
        self._last_full_pass = self._last_deep_pass = time.monotonic()
        self._hook_failures = 0
        self.disabled: str | None = None
        self.last_restore: RestoreReport | None = None
        self.last_save: float | None = None
        self.last_generation: int | None = None
        self.last_error: str | None = None
        self._error_reported = False
        # Several kernels on one session: the lease, the generation our state builds on, what
        # other writers added (kept in every later save), and the conflict mode we are in.
        self._lease_lock = threading.RLock()
        self._me: LeaseHolder | None = None
        self._lease_name: str | None = None
        self.lease: LeaseOutcome | None = None
        self.read_only = False
        self.fork_of: str | None = None
        self._base_generation: int | None = None
        self._foreign: Session | None = None
        self.merges = 0
        self.last_merge: str | None = None
        self._restored_names: set[str] = set()
        # The shell's own hidden-names dict, live: names IPython adds later stay hidden too.
        hidden = getattr(shell, "user_ns_hidden", None)
        self._tracker = ns_capture.ChangeTracker(
            exclude=tuple(self.exclude), hidden=hidden if hidden is not None else frozenset()
        )
        self.connections = ConnectionSet(
            ConnectionSettings(
                wait=self.reconnect_wait,
                attempts=self.reconnect_attempts,
                backoff=self.reconnect_backoff,
                timeout=self.connect_timeout,
                heartbeat=self.heartbeat_interval or None,
            ),
            bind=self._bind_variable,
            unbind=self._unbind_variable,
            notify=self._notify,
        )
        self._history = history_capture.HistoryRecorder(
            self.run_id, max_history=self.max_history, redact=self.connections.redact
        )
        self._writer = AutosaveWriter(
            self._write_snapshot,
            interval=self.autosave_interval,
            on_error=self._on_write_error,
            on_written=self._on_written,
            heartbeat=self._heartbeat,
            heartbeat_interval=self.lease_timeout / 4,
        )

    # --- names, store, key --------------------------------------------------------------------

    @default("root")
    def _default_root(self) -> str:
        return str(paths.session_root())

    @property
    def name(self) -> str:
        if self._name is None:
            user_ns = getattr(self.shell, "user_ns", {}) or {}
            self._name = default_session_name(self.session_name, os.environ, user_ns)
        return self._name

    @property
    def key(self) -> KeyResolution:
        """The key in use, resolved on first need (never at load when nothing is stored)."""
        with self._store_lock:
            if self._key is None:
                from ipysession.keys.resolution import resolve_key

                self._key = resolve_key(
                    backend=cast("BackendChoice", self.key_backend),
                    keyring_timeout=self.keyring_timeout,
                    allow_plaintext_keyring=self.allow_plaintext_keyring,
                )
                if self._key.notice:
                    self._notify(self._key.notice)
            return self._key

    @property
    def store(self) -> SessionStore:
        key = self.key.key
        with self._store_lock:
            if self._store is None:
                from ipysession.store.session_store import SessionStore

                self._store = SessionStore(Path(self.root), key=key, keep=self.keep_generations)
            return self._store

    def has_saved_session(self, name: str | None = None) -> bool:
        """Cheap check (no key, no decryption) whether a session directory exists."""
        from ipysession.store.names import session_dir_for

        return session_dir_for(Path(self.root), name or self.name).is_dir()

    @observe("exclude")
    def _exclude_changed(self, change: Any) -> None:
        self._tracker.exclude = tuple(change["new"])

    # --- notices (shown by the extension between cells; never printed from a thread) -----------

    def _notify(self, message: str) -> None:
        with self._notice_lock:
            self.notices.append(message)

    def take_notices(self) -> list[str]:
        with self._notice_lock:
            taken, self.notices = self.notices, []
        return taken

    # --- cell hooks ---------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        if self.disabled:
            return
        self._guard(self._pre_run_cell, info, ends_cell=False)

    def post_run_cell(self, result: Any) -> None:
        if self.disabled:
            return
        self._guard(self._post_run_cell, result, ends_cell=True)

    def _guard(self, hook: Any, arg: Any, *, ends_cell: bool) -> None:
        # A hook never raises into the user's cell; after a few failures in a row capture stops
        # and the user is told once, instead of every cell paying for a broken hook.
        try:
            hook(arg)
        except Exception as exc:
            self._hook_failures += 1
            log.warning("ipysession hook failed: %s", exc, exc_info=True)
            if self._hook_failures >= _HOOK_FAILURE_LIMIT:
                self.disabled = f"{type(exc).__name__}: {exc}"
                self._notify(
                    "ipysession stopped capturing after repeated errors "
                    f"({self.disabled}). Your session so far is saved; run "
                    "`%reload_ext ipysession` to try again, and see the log for details."
                )
        else:
            if ends_cell:
                self._hook_failures = 0

    def _pre_run_cell(self, info: Any) -> None:
        if self._restored_names:
            self._unhide_restored()
        self._drop_stored_bytes()
        self.settle_connections()
        self._history.pre_run_cell(info)
        self._tracker.pre_cell(self._user_ns)

    def _post_run_cell(self, result: Any) -> None:
        self._history.post_run_cell(result)
        info = getattr(result, "info", None)
        source = getattr(info, "raw_cell", "") or ""
        transformed = getattr(info, "transformed_cell", None)
        changes = self._tracker.post_cell(self._user_ns, source, transformed=transformed)
        now = time.monotonic()
        if now - self._last_deep_pass >= self.deep_capture_interval:
            self._merge_changes(changes, self._tracker.full_pass(self._user_ns, deep=True))
            self._last_deep_pass = self._last_full_pass = now
        elif now - self._last_full_pass >= self.full_capture_interval:
            self._merge_changes(changes, self._tracker.full_pass(self._user_ns))
            self._last_full_pass = now
        self._apply_changes(changes.changed, changes.deleted, source, verify=changes.recheck)
        self._capture_shell_state()
        self._dirty = True
        if self.autosave and not self.read_only:
            self._writer.submit(self.snapshot())

    def _drop_stored_bytes(self) -> None:
        """Keep only the blob reference of values the writer has stored (main thread)."""
        while True:
            try:
                name, written, blob_id = self._stored_in_blobs.get_nowait()
            except queue.Empty:
                return
            if self._records.get(name) is written:  # not captured again since that write
                self._records[name] = dataclasses.replace(written, data=None, blob=blob_id)

    @staticmethod
    def _merge_changes(into: ns_capture.ChangeSet, more: ns_capture.ChangeSet) -> None:
        into.changed |= more.changed
        into.deleted |= more.deleted
        into.recheck |= more.recheck

    @property
    def _user_ns(self) -> dict[str, Any]:
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    def _is_persistable(self, name: str) -> bool:
        return (
            name not in self._forgotten
            and self._tracker.persistable(name)
            and name not in self.connections.variables()
        )

    # --- connections --------------------------------------------------------------------------

    def _bind_variable(self, variable: str, obj: Any) -> None:
        self._user_ns[variable] = obj

    def _unbind_variable(self, variable: str, obj: Any) -> None:
        if obj is not None and self._user_ns.get(variable) is obj:
            del self._user_ns[variable]

    def settle_connections(self) -> None:
        """Bind connections that became ready in the background (main thread, between cells)."""
        if self.connections.settle():
            self._connections_changed()

    def _connections_changed(self) -> None:
        self._dirty = True
        if self.autosave and not self.disabled:
            self._writer.submit(self.snapshot())

    def connect(
        self,
        name: str,
        kind: str | None,
        spec: Any,
        options: dict[str, Any] | None = None,
        *,
        variable: str | None = None,
        auto: bool | None = None,
    ) -> Any:
        """Connect ``name`` now and bind it; the record (secrets encrypted) joins the session."""
        self.settle_connections()
        try:
            record, _ = self.connections.connect(
                name, kind, spec, options, variable=variable, auto=auto
            )
        finally:
            self._connections_changed()  # a failure is history too
        return record

    def reconnect(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """Connect these (default: all) connections afresh; returns each one's state."""
        self.settle_connections()
        states = self.connections.reconnect(names, wait=self.connect_timeout)
        self._connections_changed()
        return states

    def disconnect(self, name: str) -> None:
        """Close a live connection and unbind its variable; the record stays in the session."""
        self.connections.disconnect(name)

    def forget_connection(self, name: str) -> None:
        """Close a connection and drop its record (and its secrets) from the session."""
        self.connections.forget(name)
        self._connections_changed()

    def ping(self, names: Sequence[str] | None = None) -> dict[str, bool]:
        return self.connections.ping(names)

    def _apply_changes(
        self,
        changed: Iterable[str],
        deleted: Iterable[str],
        source: str,
        *,
        verify: Container[str] = (),
    ) -> None:
        """Capture ``changed`` again and drop ``deleted``. Names in ``verify`` may well be
        unchanged (a deep pass, an explicit save): one still equal to its stored blob keeps it."""
        user_ns = self._user_ns
        for name in deleted:
            self._records.pop(name, None)
            self._imports.pop(name, None)
        # Imports written in this cell win over ones inferred from the value; either is used
        # only while it still resolves to the very object bound to the name.
        cell_imports = ns_capture.imports_in_source(source)
        known_imports = {name: records[-1] for name, records in self._imports.items()}
        known_imports.update((rec.name, rec) for rec in cell_imports)
        limits = ns_capture.CaptureLimits(
            max_variable_bytes=self.max_variable_bytes, max_session_bytes=self.max_session_bytes
        )
        for name in sorted(changed):
            if name not in user_ns or not self._is_persistable(name):
                continue
            if name in verify and self._still_stored(name, user_ns[name]):
                continue
            captured = ns_capture.capture_value(
                name, user_ns[name], limits=limits, imports=known_imports
            )
            self._tracker.note_captured(name, captured)
            if isinstance(captured, ImportRecord):
                self._records.pop(name, None)
                value = user_ns[name]
                this_cell = [
                    r
                    for r in cell_imports
                    if r.name == name and ns_capture.import_matches(r, value)
                ]
                self._imports[name] = ns_capture.merge_imports(
                    self._imports.get(name, ()), [*this_cell, captured]
                )
            else:
                self._imports.pop(name, None)
                self._records[name] = captured
        self._enforce_session_budget()

    def _still_stored(self, name: str, value: object) -> bool:
        """Whether ``value`` serializes to exactly the large value its record holds.

        Checked by feeding the serialized pieces to the keyed hash blob ids are made of, against
        the record's blob id (or, for bytes the writer has not stored yet, their id), so an
        unchanged 100 MB DataFrame costs a hash of its data, not a second copy of it in memory
        (which a re-capture would hold until the writer had deduplicated it). Small values are
        simply captured again."""
        record = self._records.get(name)
        if record is None or record.encoding is None:
            return False
        key = self.store.key
        if record.blob is not None:
            stored_id = record.blob
        elif record.data is not None and len(record.data) > self.store.blob_threshold:
            stored_id = key.content_id(record.data)
        else:
            return False
        hasher = key.content_hasher()
        if not ns_capture.serialize_into(value, record.encoding, hasher.update):
            return False
        return hmac.compare_digest(hasher.hexdigest(), stored_id)

    def _enforce_session_budget(self) -> None:
        total = 0
        for name, record in sorted(self._records.items(), key=lambda item: item[1].size):
            if not record.saved or record.data is None:
                continue
            total += record.size
            if total > self.max_session_bytes:
                self._records[name] = VariableRecord(
                    name=name,
                    type_name=record.type_name,
                    size=record.size,
                    skipped=(
                        f"the session is over max_session_bytes ({self.max_session_bytes:,} "
                        "bytes); raise SessionManager.max_session_bytes to keep it"
                    ),
                )

    def _capture_shell_state(self) -> None:
        self._preferences = pref_capture.capture_preferences(
            self.shell, env_baseline=self._env_baseline
        )
        self._cwd = pref_capture.capture_cwd()

    # --- snapshot and save --------------------------------------------------------------------

    def snapshot(self, name: str | None = None) -> Session:
        """An immutable picture of the workspace as captured so far (cheap: no pickling)."""
        history = self._history.merge(self._previous_history)
        return Session(
            name=name or self.name,
            created=self._created,
            updated=time.time(),
            writer=self._writer_info(),
            history=history,
            variables=dict(self._records),
            imports=[record for records in self._imports.values() for record in records],
            preferences=self._preferences,
            cwd=self._cwd,
            layout=self._layout,
            connections=self.connections.snapshot(),
            extra=dict(self._extra),
        )

    def _writer_info(self) -> WriterInfo:
        ipython = sys.modules.get("IPython")
        return WriterInfo(
            python=sys.version.split()[0],
            ipython=getattr(ipython, "__version__", ""),
            ipysession=__version__,
            host=socket.gethostname(),
            pid=os.getpid(),
            kernel_id=self.kernel_id,
            run_id=self.run_id,
        )

    def capture_all(self) -> None:
        """Capture every variable now (used before an explicit save and at the first save)."""
        full = self._tracker.full_pass(self._user_ns)
        names = set(self._persistable_names())
        self._apply_changes(
            full.changed | names, full.deleted, "", verify=(names - full.changed) | full.recheck
        )
        self._capture_shell_state()

    def _persistable_names(self) -> list[str]:
        return [name for name in self._user_ns if self._is_persistable(name)]

    def save(self, name: str | None = None, *, checkpoint: str | None = None) -> SaveReport:
        """Capture everything and write it now (synchronously, in order with autosaves)."""
        if self.read_only and (name is None or name == self.name):
            raise self._read_only_error()
        self.capture_all()
        target = name or self.name
        snapshot = self.snapshot(target)
        if target == self.name:
            outcome = self._writer.flush(snapshot)
            if outcome.error is not None:
                raise outcome.error
            result = outcome.result
        else:
            # Values kept as blob references live in this session's directory: link them over.
            self.store.share_blobs(self.name, target, snapshot.blob_ids())
            result = self.store.write(snapshot)
        generation = getattr(result, "generation", None)
        path = getattr(result, "path", None)
        checkpoint_path = None
        if checkpoint:
            checkpoint_path = self.store.checkpoint(target, checkpoint, snapshot)
        return SaveReport(
            session=target,
            generation=generation,
            path=str(checkpoint_path or path) if (checkpoint_path or path) else None,
            variables=sum(1 for r in snapshot.variables.values() if r.saved),
            skipped=[(n, r.skipped) for n, r in snapshot.variables.items() if r.skipped],
            checkpoint=checkpoint,
        )

    def _write_snapshot(self, session: Session) -> object:
        """Write one snapshot (on the writer thread): lease first, then a merging write."""
        if session.name != self.name and session.name != self.fork_of:
            return self.store.write(session)  # an explicit save under another name
        with self._lease_lock:
            if not self._hold_lease(when="write"):
                return None  # read-only: this kernel never writes its session
            if session.name != self.name:  # captured before this kernel became a fork
                session = dataclasses.replace(session, name=self.name)
        try:
            return self._write_merged(session)
        except WriteConflict as exc:
            from ipysession.store.session_store import problems_of

            kinds = {problem.kind for problem in problems_of(exc)}
            if not kinds & {"wrong-key", "newer-format"}:
                raise
            # Nothing on disk can be read to merge with: never write over it, save as a fork.
            with self._lease_lock:
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

    def _write_merged(self, session: Session) -> object:
        """Write our capture ``session`` on top of the generation our state builds on; if
        another writer saved since, merge theirs with our own capture (counted)."""
        with self._lease_lock:
            base = self._base_generation or 0
            foreign = self._foreign
        ours = (
            session
            if foreign is None
            else merge_sessions(foreign, session, max_history=self.max_history).session
        )
        merges: list[MergeResult] = []

        def merge(theirs: Session, _ours: Session) -> Session:
            # Against our own capture only: what we carried for other writers is older than
            # theirs (theirs holds it unless a later writer dropped it), so it must not win.
            merged = merge_sessions(theirs, session, max_history=self.max_history)
            merges.append(merged)
            return self._without_forgotten(merged.session)

        result = self.store.write(self._without_forgotten(ours), base_generation=base, merge=merge)
        for name, blob_id in result.blobs.items():
            record = session.variables.get(name)
            if record is not None and record.data is not None:
                self._stored_in_blobs.put((name, record, blob_id))
        with self._lease_lock:
            if session.name == self.name:
                self._base_generation = result.generation
            if result.merged and merges:
                self.merges += 1
                self.last_merge = merges[-1].details.summary()
                log.info("Merged session %r with another writer: %s", session.name, self.last_merge)
                self._foreign = _foreign_part(merges[-1].session, session)
            elif foreign is not None:
                self._foreign = _foreign_part(ours, session)
            if self._foreign is not None:  # a `%session forget` during this write wins
                self._foreign = self._without_forgotten(self._foreign)
        return result

    def _without_forgotten(self, session: Session) -> Session:
        """``session`` without the variables the user told this kernel to forget."""
        forgotten = self._forgotten & session.variables.keys()
        if not forgotten:
            return session
        variables = {n: v for n, v in session.variables.items() if n not in forgotten}
        return dataclasses.replace(session, variables=variables)

    def _on_written(self, result: object) -> None:
        if result is None:
            return  # nothing was written (read-only)
        self.last_save = time.time()
        self.last_generation = getattr(result, "generation", None)
        self.last_error = None
        self._error_reported = False

    def _on_write_error(self, error: BaseException) -> None:
        self.last_error = str(error)
        if not self._error_reported:
            self._error_reported = True
            self._notify(
                f"ipysession could not save the session: {error}. Your work is unaffected; "
                "autosave will try again."
            )

    def set_autosave(self, *, enabled: bool, interval: float | None = None) -> None:
        self.autosave = enabled
        if interval is not None:
            self.autosave_interval = interval
            self._writer.interval = interval
        if enabled and not self.read_only:
            self._writer.start()

    @property
    def layout(self) -> Any:
        """The frontend layout kept with the session (opaque JSON), or None."""
        return self._layout

    def set_layout(self, layout: Any) -> None:
        """Keep the frontend's layout (sent over the ``ipysession`` comm) with the session."""
        self._layout = layout
        self._dirty = True
        if self.autosave:
            self._writer.submit(self.snapshot())

    def forget(self, names: Sequence[str]) -> list[str]:
        """Stop persisting these variables (until ``forget`` is undone by a new assignment)."""
        forgotten = []
        for name in names:
            self._forgotten.add(name)
            self._tracker.forget(name)
            had_value = self._records.pop(name, None) is not None
            had_import = self._imports.pop(name, None) is not None
            with self._lease_lock:
                if self._foreign is not None and name in self._foreign.variables:
                    variables = {n: v for n, v in self._foreign.variables.items() if n != name}
                    self._foreign = dataclasses.replace(self._foreign, variables=variables)
                    had_value = True
            if had_value or had_import:
                forgotten.append(name)
        if self.autosave:
            self._writer.submit(self.snapshot())
        return forgotten

    # --- restore ------------------------------------------------------------------------------

    def restore(
        self,
        name: str | None = None,
        *,
        generation: int | None = None,
        checkpoint: str | None = None,
        only: Sequence[str] | None = None,
        variables: Sequence[str] | None = None,
    ) -> RestoreReport:
        """Read a session and apply it to the shell, part by part; never raises for one item."""
        started = time.perf_counter()
        target = name or self.name
        report = RestoreReport(session=target, checkpoint=checkpoint)
        parts = set(only) if only else set(RESTORE_PARTS)
        unknown = parts - set(RESTORE_PARTS)
        if unknown:
            msg = f"unknown part(s) {', '.join(sorted(unknown))}; choose from {RESTORE_PARTS}"
            raise ValueError(msg)
        own = target == self.name
        decision = self._claim_for_restore() if own else "ok"
        source = target
        # A kernel restarted by Jupyter keeps its id, so its fork keeps its name: it comes back
        # to its own fork, not to a fresh copy of the session another kernel holds.
        latest = generation is None and checkpoint is None
        if decision == "fork" and latest and self.has_saved_session(self._fork_name(target)):
            source = self._fork_name(target)
        try:
            result = self.store.read(source, generation=generation, checkpoint=checkpoint)
        except SessionNotFound:
            report.found = False
            report.seconds = time.perf_counter() - started
            return report
        except KeyStoreError as exc:
            self._key_failed(exc)
            raise
        except (WrongKey, NewerFormat) as exc:
            if own and generation is None and checkpoint is None:
                self._unreadable_session(exc)
            raise
        session = result.session
        report.generation = result.generation
        report.path = str(result.path)
        report.problems = [_describe_problem(p) for p in result.problems]
        shell = self.shell
        if "preferences" in parts:
            for item, reason in pref_capture.apply_preferences(shell, session.preferences):
                self._outcome(report, report.preferences, item, reason)
        if "cwd" in parts and session.cwd:
            reason = pref_capture.apply_cwd(session.cwd)
            if reason is None:
                report.cwd = session.cwd
            else:
                report.skipped.append(("cwd", reason))
        if "imports" in parts:
            selected = [i for i in session.imports if variables is None or i.name in variables]
            for record, reason in ns_capture.restore_imports(selected, self._user_ns):
                if reason is not None or record.name not in report.imports:  # `a.b`, `a.c`: one
                    self._outcome(report, report.imports, record.name, reason)
                if reason is None:
                    self._imports[record.name] = ns_capture.merge_imports(
                        self._imports.get(record.name, ()), [record]
                    )
        if "variables" in parts:
            self._restore_variables(session, source, report, variables)
        if "history" in parts and target == self.name:
            self._previous_history = list(session.history)
            report.history = len(session.history)
        if "layout" in parts and session.layout is not None:
            self._layout = session.layout
            report.layout = True
        if "connections" in parts and session.connections:
            report.connections = self.connections.load(session.connections)
        if target == self.name:
            self._created = session.created or self._created
            self._extra = dict(session.extra)
        # What was just restored is what is saved: only later changes need capturing again.
        self._tracker.sync(self._user_ns)
        self._restored_names.update(report.variables, report.imports)
        if own:
            latest = generation is None and checkpoint is None
            self._restored_own(
                result.generation, latest=latest, decision=decision, from_fork=source != target
            )
        report.seconds = time.perf_counter() - started
        self.last_restore = report
        return report

    @staticmethod
    def _outcome(report: RestoreReport, done: list[str], item: str, reason: str | None) -> None:
        if reason is None:
            done.append(item)
        else:
            report.skipped.append((item, reason))

    def _restore_variables(
        self,
        session: Session,
        name: str,
        report: RestoreReport,
        only: Sequence[str] | None,
    ) -> None:
        user_ns = self._user_ns
        for var_name, record in session.variables.items():
            if only is not None and var_name not in only:
                continue
            if record.skipped is not None:
                report.skipped.append((var_name, f"not saved: {record.skipped}"))
                continue
            try:
                data = record.data
                if data is None and record.blob is not None:
                    data = self.store.read_blob(name, record.blob)
                if data is None:  # pragma: no cover - the model forbids it
                    continue
                user_ns[var_name] = ns_capture.restore_value(record, data, namespace=user_ns)
            except Exception as exc:  # noqa: BLE001 - unpickling can raise anything; one bad value never stops the rest
                report.skipped.append((var_name, _reason(exc)))
                # Carried forward so the next save does not drop a value that failed to load
                # here (a missing package, say) but may load elsewhere.
                self._records[var_name] = record
                continue
            report.variables.append(var_name)
            self._records[var_name] = record

    def _unhide_restored(self) -> None:
        """Names this kernel restored are the user's, not IPython's own.

        A kernel restores while IPython loads its extensions; right after, IPython hides every
        name then in the namespace from ``%who`` (``hide_initial_ns``), which would also stop
        capture from saving them. Unhide those still bound to the restored object.
        """
        names, self._restored_names = self._restored_names, set()
        hidden = getattr(self.shell, "user_ns_hidden", None)
        if not isinstance(hidden, dict):
            return
        user_ns = self._user_ns
        for name in names:
            if name in hidden and name in user_ns and hidden[name] is user_ns[name]:
                del hidden[name]

    # --- several kernels on one session -------------------------------------------------------

    def _lease_dirs(self) -> lease_mod.RootDirs:
        return lease_mod.RootDirs(Path(self.root))

    def _holder(self) -> LeaseHolder:
        if self._me is None or self._me.kernel_id != self.kernel_id:
            self._me = LeaseHolder.this_process(
                kernel_id=self.kernel_id, run_id=self.run_id, started=self.started
            )
        return self._me

    def _check_lease(self, *, create: bool) -> str:
        """Take (or refresh) the lease of this kernel's session; say what must happen.

        ``"ok"``: write (the lease is ours, or cannot be had at all: the store's merge still
        keeps writers apart); ``"readonly"``: never write; ``"fork"``: another live kernel holds
        it; ``"lost"``: we held it and another kernel took it over. Call with the lease lock held.
        """
        if self.read_only:
            return "readonly"
        name = self.name
        had = self._lease_name == name
        outcome = lease_mod.acquire(
            self._lease_dirs(),
            name,
            self._holder(),
            timeout=self.lease_timeout,
            force=self.on_conflict == "takeover" and not had,
            create=create,
        )
        if outcome.state == "unavailable" and not create:
            return "ok"  # no directory yet: the lease is taken at the first write
        self.lease = outcome
        if outcome.ours or outcome.state == "unavailable":
            self._lease_name = name if outcome.ours else None
            if outcome.state == "forced" and outcome.previous is not None:
                self._notify(
                    f"ipysession: this kernel took session '{name}' over from "
                    f"{outcome.previous.describe()} (on_conflict = 'takeover'); that kernel "
                    "continues as a fork of it from its next save."
                )
            return "ok"
        if had:
            self._lease_name = None
            return "lost"
        if self.on_conflict == "readonly":
            self.read_only = True
            return "readonly"
        return "fork"

    def _other_holder(self) -> str:
        holder = self.lease.holder if self.lease is not None else None
        return holder.describe() if holder is not None else "another kernel"

    def _hold_lease(self, *, when: str) -> bool:
        """Before a write (or on a heartbeat): False if this kernel must not write."""
        with self._lease_lock:
            if self.read_only:
                return False
            if when == "heartbeat" and self._lease_name != self.name:
                return True
            decision = self._check_lease(create=True)
            if decision == "readonly":
                self._notify(
                    f"ipysession: session '{self.name}' is in use by {self._other_holder()}; "
                    "this kernel will not save to it (on_conflict = 'readonly'). "
                    "`%session save NEW_NAME` saves a copy under another name."
                )
                return False
            if decision in ("fork", "lost"):
                self._become_fork(lost=decision == "lost", restoring=False)
                self._check_lease(create=True)  # the fork's own lease
            return True

    def _heartbeat(self) -> None:
        """Called by the writer thread while idle: keep the lease fresh (or notice its loss)."""
        self._hold_lease(when="heartbeat")

    def _claim_for_restore(self) -> str:
        with self._lease_lock:
            decision = self._check_lease(create=False)
            if decision == "readonly":
                self._notify(
                    f"ipysession: session '{self.name}' is in use by {self._other_holder()}. "
                    "This kernel restored it read-only (on_conflict = 'readonly'): autosave is "
                    "off and it will never save to it. `%session save NEW_NAME` saves a copy "
                    "under another name."
                )
            return decision

    def _restored_own(
        self, generation: int | None, *, latest: bool, decision: str, from_fork: bool = False
    ) -> None:
        """After restoring this kernel's own session: what our state now builds on."""
        with self._lease_lock:
            if latest and generation is not None:
                self._base_generation = generation
            elif self._base_generation is None and generation is not None:
                # An older generation: later saves merge with what is newer, losing nothing.
                self._base_generation = generation
            if decision in ("fork", "lost"):
                self._become_fork(lost=decision == "lost", restoring=True, resumed=from_fork)
                if from_fork:
                    self._base_generation = generation

    def _fork_name(self, original: str) -> str:
        return f"{original} (fork {(self.kernel_id or self.run_id)[:8]})"

    def _become_fork(
        self, *, lost: bool, restoring: bool, why: str | None = None, resumed: bool = False
    ) -> None:
        """Continue as a new session named after this one; the original is left to its holder.

        ``resumed``: what was restored is this kernel's own fork from before a restart.
        """
        original = self.name
        fork = self._fork_name(original)
        self.fork_of = original
        self._name = fork
        self._base_generation = None
        self._lease_name = None
        blobs = {r.blob for r in self._records.values() if r.blob is not None}
        if self._foreign is not None:
            blobs |= self._foreign.blob_ids()
        if blobs and not resumed:
            try:
                self.store.share_blobs(original, fork, blobs)
            except SessionError as exc:
                log.warning("Could not share stored values with the fork %r: %s", fork, exc)
        if why is not None:
            reason = why
        elif lost:
            reason = f"{self._other_holder()} took session '{original}' over"
        else:
            reason = f"session '{original}' is in use by {self._other_holder()}"
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
        if restoring and not resumed:
            self._dirty = True
            if self.autosave:
                self._writer.submit(self.snapshot())

    def _unreadable_session(self, error: SessionError) -> None:
        """Nothing of this kernel's session can be read (another key, a newer release): save
        this kernel's work as a fork, so the files it cannot read stay exactly as they are."""
        with self._lease_lock:
            if self._base_generation is not None or self.fork_of is not None:
                return
            kind = "newer ipysession" if isinstance(error, NewerFormat) else "different key"
            self._become_fork(
                lost=False,
                restoring=False,
                why=f"session '{self.name}' was saved with a {kind} and is left untouched",
            )

    def _key_failed(self, error: KeyStoreError) -> None:
        # The user is told about the key once, where it failed (the restore); autosave keeps
        # retrying quietly, and saves (merging with what is on disk) once the key is available.
        self.last_error = str(error)
        if not self._error_reported:
            self._error_reported = True
            self._notify(
                "Meanwhile this kernel works as usual; autosave keeps trying and, once the key "
                "can be read, saves this kernel's work merged with the saved session (nothing "
                "of it is lost). `%session restore` then brings the saved session back."
            )

    def _read_only_error(self) -> SessionInUse:
        msg = f"This kernel opened session '{self.name}' read-only: {self._other_holder()} uses it"
        return SessionInUse(
            msg,
            hint=(
                "Save a copy with `%session save NEW_NAME`, or set "
                "c.SessionManager.on_conflict = 'fork' or 'takeover' and restart the kernel"
            ),
        )

    def _release_lease(self) -> None:
        with self._lease_lock:
            name, self._lease_name = self._lease_name, None
            if name is not None:
                lease_mod.release(self._lease_dirs(), name, self._holder())

    # --- status and lifecycle -----------------------------------------------------------------

    def status(self) -> Status:
        return Status(
            session=self.name,
            root=self.root,
            key=self._key.backend if self._key else "not loaded yet",
            autosave=self.autosave,
            autosave_interval=self.autosave_interval,
            last_save=self.last_save,
            last_generation=self.last_generation,
            last_error=self.last_error,
            pending=self._writer.pending,
            variables=sum(1 for r in self._records.values() if r.saved),
            skipped=[(n, r.skipped) for n, r in self._records.items() if r.skipped],
            history=len(self._history.merge(self._previous_history)),
            restore=self.last_restore,
            disabled=self.disabled,
            lease_holder=self.lease.holder if self.lease is not None else None,
            lease_ours=self.lease is not None and self.lease.ours,
            lease_problem=(
                self.lease.reason
                if self.lease is not None and self.lease.state == "unavailable"
                else None
            ),
            read_only=self.read_only,
            fork_of=self.fork_of,
            merges=self.merges,
            last_merge=self.last_merge,
            connections=self.connections.table(),
        )

    def start(self) -> None:
        if self.autosave and not self.read_only:
            self._writer.start()

    def close(self, *, final_save: bool = True) -> None:
        """Final save (if anything changed) and stop the writer. Safe to call twice."""
        if final_save and self._dirty and not self.disabled:
            try:
                self._writer.submit(self.snapshot())
            except Exception:
                log.exception("ipysession could not build the final snapshot")
        self._writer.stop()
        self._release_lease()
        self.connections.close()
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def search_history(
        self, *, n: int | None = None, grep: str | None = None
    ) -> list[HistoryEntry]:
        entries = self._history.merge(self._previous_history)
        return history_capture.search(entries, n=n, grep=grep)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, SessionError) else f"{type(exc).__name__}: {text}"


def _describe_problem(problem: FileProblem) -> str:
    return f"{problem.kind}: {problem.message}"


def _foreign_part(written: Session, own: Session) -> Session:
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
