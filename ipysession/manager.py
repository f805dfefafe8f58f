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

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from traitlets import Bool, Enum, Float, Int, List, Unicode, default, observe
from traitlets.config import Configurable

from . import paths
from ._version import __version__
from .capture import history as history_capture
from .capture import namespace as ns_capture
from .capture import preferences as pref_capture
from .errors import SessionError, SessionNotFound
from .model import HistoryEntry, ImportRecord, Preferences, Session, VariableRecord, WriterInfo
from .writer import AutosaveWriter

if TYPE_CHECKING:
    from .keystore import BackendChoice, KeyResolution
    from .store import FileProblem, SessionStore

__all__ = ["RestoreReport", "SaveReport", "SessionManager", "Status", "default_session_name"]

log = logging.getLogger("ipysession")

RESTORE_PARTS = ("preferences", "cwd", "imports", "variables", "history", "layout")
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


@dataclass
class RestoreReport:
    """What a restore brought back, what it skipped and why."""

    session: str
    generation: int | None = None
    checkpoint: str | None = None
    path: str | None = None
    seconds: float = 0.0
    variables: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    cwd: str | None = None
    history: int = 0
    layout: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    found: bool = True

    @property
    def complete(self) -> bool:
        return not self.skipped and not self.problems


@dataclass
class SaveReport:
    session: str
    generation: int | None
    path: str | None
    variables: int
    skipped: list[tuple[str, str]]
    checkpoint: str | None = None
    error: str | None = None


@dataclass
class Status:
    session: str
    root: str
    key: str
    autosave: bool
    autosave_interval: float
    last_save: float | None
    last_generation: int | None
    last_error: str | None
    pending: bool
    variables: int
    skipped: list[tuple[str, str]]
    history: int
    restore: RestoreReport | None
    disabled: str | None


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
        changes too small for the sampled fingerprints of the regular re-check to see.""",
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
        self._imports: dict[str, ImportRecord] = {}
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
        # The shell's own hidden-names dict, live: names IPython adds later stay hidden too.
        hidden = getattr(shell, "user_ns_hidden", None)
        self._tracker = ns_capture.ChangeTracker(
            exclude=tuple(self.exclude), hidden=hidden if hidden is not None else frozenset()
        )
        self._history = history_capture.HistoryRecorder(self.run_id, max_history=self.max_history)
        self._writer = AutosaveWriter(
            self._write_snapshot,
            interval=self.autosave_interval,
            on_error=self._on_write_error,
            on_written=self._on_written,
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
                from .keystore import resolve_key

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
                from .store import SessionStore

                self._store = SessionStore(Path(self.root), key=key, keep=self.keep_generations)
            return self._store

    def has_saved_session(self, name: str | None = None) -> bool:
        """Cheap check (no key, no decryption) whether a session directory exists."""
        from .store import session_dir_for

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
        self._apply_changes(changes.changed, changes.deleted, source)
        self._capture_shell_state()
        self._dirty = True
        if self.autosave:
            self._writer.submit(self.snapshot())

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
        return name not in self._forgotten and self._tracker.persistable(name)

    def _apply_changes(self, changed: Iterable[str], deleted: Iterable[str], source: str) -> None:
        user_ns = self._user_ns
        for name in deleted:
            self._records.pop(name, None)
            self._imports.pop(name, None)
        # Imports written in this cell win over ones inferred from the value; either is used
        # only while it still resolves to the very object bound to the name.
        known_imports = {**self._imports}
        known_imports.update((rec.name, rec) for rec in ns_capture.imports_in_source(source))
        limits = ns_capture.CaptureLimits(
            max_variable_bytes=self.max_variable_bytes, max_session_bytes=self.max_session_bytes
        )
        for name in sorted(changed):
            if name not in user_ns or not self._is_persistable(name):
                continue
            captured = ns_capture.capture_value(
                name, user_ns[name], limits=limits, imports=known_imports
            )
            self._tracker.note_captured(name, captured)
            if isinstance(captured, ImportRecord):
                self._records.pop(name, None)
                self._imports[name] = captured
            else:
                self._imports.pop(name, None)
                self._records[name] = captured
        self._enforce_session_budget()

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
            imports=list(self._imports.values()),
            preferences=self._preferences,
            cwd=self._cwd,
            layout=self._layout,
            connections={},
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
        self._apply_changes(full.changed | set(self._persistable_names()), full.deleted, "")
        self._capture_shell_state()

    def _persistable_names(self) -> list[str]:
        return [name for name in self._user_ns if self._is_persistable(name)]

    def save(self, name: str | None = None, *, checkpoint: str | None = None) -> SaveReport:
        """Capture everything and write it now (synchronously, in order with autosaves)."""
        self.capture_all()
        target = name or self.name
        snapshot = self.snapshot(target)
        if target == self.name:
            outcome = self._writer.flush(snapshot)
            if outcome.error is not None:
                raise outcome.error
            result = outcome.result
        else:
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
        return self.store.write(session)

    def _on_written(self, result: object) -> None:
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
        if enabled:
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
        try:
            result = self.store.read(target, generation=generation, checkpoint=checkpoint)
        except SessionNotFound:
            report.found = False
            report.seconds = time.perf_counter() - started
            return report
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
                self._outcome(report, report.imports, record.name, reason)
                if reason is None:
                    self._imports[record.name] = record
        if "variables" in parts:
            self._restore_variables(session, target, report, variables)
        if "history" in parts and target == self.name:
            self._previous_history = list(session.history)
            report.history = len(session.history)
        if "layout" in parts and session.layout is not None:
            self._layout = session.layout
            report.layout = True
        if target == self.name:
            self._created = session.created or self._created
            self._extra = dict(session.extra)
        # What was just restored is what is saved: only later changes need capturing again.
        self._tracker.sync(self._user_ns)
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
        )

    def start(self) -> None:
        if self.autosave:
            self._writer.start()

    def close(self, *, final_save: bool = True) -> None:
        """Final save (if anything changed) and stop the writer. Safe to call twice."""
        if final_save and self._dirty and not self.disabled:
            try:
                self._writer.submit(self.snapshot())
            except Exception:
                log.exception("ipysession could not build the final snapshot")
        self._writer.stop()
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
