"""Input history: record each cell, keep the lineage across kernel restarts, search it.

A :class:`HistoryRecorder` is fed from IPython's ``pre_run_cell`` and ``post_run_cell`` events.
Each cell the user runs becomes one :class:`~ipysession.model.HistoryEntry`: its source (with
URL passwords, secret query parameters and ``%env`` values blanked by
:func:`~ipysession.redaction.redact_source`, then the optional ``redact`` callback), its
execution count, the time it finished, whether it succeeded, and the id of the kernel run it
came from. Empty cells, silent executions and
executions with ``store_history=False`` (what frontends run behind the user's back: variable
explorers, widget sync, ``user_expressions``) are not recorded, nor are bare ``exit``/``quit``
lines (IPython leaves those out of its own history too).

The manager builds the whole lineage for every snapshot with :meth:`HistoryRecorder.merge`: the
entries of earlier kernel runs first, then this run's, at most ``max_history`` of them, the
oldest dropped first. (:meth:`HistoryRecorder.take_delta` hands out only the entries not taken
yet; the manager does not use it today, since each generation holds the whole lineage.)

How restored history is offered to the user
-------------------------------------------
Restored history is shown by ``%session history [-n N] [--grep PATTERN]`` (see :func:`search`).
It is deliberately **not** fed into IPython's ``history_manager``:

- IPython already keeps every kernel run's input in its own SQLite database (``history.sqlite``
  in the profile: one row per kernel run in the ``sessions`` table, one row per cell in
  ``history(session, line, source, source_raw)``). When that database is enabled (the default,
  for terminal IPython and ipykernel alike), ``%history -g``, ``%history ~1/`` and the terminal's
  up-arrow (``PtkHistoryAdapter`` loads ``history_manager.get_tail(...)``) already reach the cells
  of the run before the restart. Writing our entries there again would list every cell twice.
- Appending to the current run's ``input_hist_raw``/``In`` would shift ``In[n]`` away from the
  execution counts the user sees, and break ``%rerun``/``%recall``/``_i<n>``.
- Inserting a synthetic past session into the database is not possible either: session numbers
  come from an autoincrement key, so it would get a number *after* the current run, reorder
  ``get_tail`` and the meaning of ``~N/`` ranges, and it would do so in a database that every
  IPython process of the profile shares.

What is safe is to say where the history lives: :func:`ipython_keeps_history` tells whether
IPython's own database holds previous runs (so the restore summary can mention ``%history -g``),
and ``%session history`` works everywhere, including when the session was restored on another
machine or IPython's history is disabled or in memory.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ipysession.errors import CaptureError
from ipysession.model import HistoryEntry
from ipysession.redaction import redact_source

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell

__all__ = ["HistoryRecorder", "ipython_keeps_history", "search"]

log = logging.getLogger("ipysession")

DEFAULT_MAX_HISTORY = 2000

_MAX_NESTING = 32

# IPython's HistoryManager does not store these either (``HistoryManager._exit_re``).
_EXIT_RE = re.compile(r"(exit|quit)(\s*\(.*\))?$")


class HistoryRecorder:
    """Records the cells of one kernel run.

    ``run_id`` identifies this kernel run in every entry it records. ``max_history`` caps both
    what is kept in memory and the lineage :meth:`merge` builds. Every cell's source is passed
    through :func:`~ipysession.redaction.redact_source`, then through ``redact`` when given (the
    connections' own secrets); if that raises, the cell is dropped rather than kept unredacted.

    Connect it with ``shell.events.register("pre_run_cell", recorder.pre_run_cell)`` and
    ``shell.events.register("post_run_cell", recorder.post_run_cell)``. Both hooks log and
    swallow their own errors: recording history never breaks a user's cell.
    """

    def __init__(
        self,
        run_id: str,
        *,
        max_history: int = DEFAULT_MAX_HISTORY,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if max_history < 0:
            msg = f"max_history must be 0 or more, not {max_history}"
            raise ValueError(msg)
        self.run_id = run_id
        self.max_history = max_history
        self.redact = redact
        self._lock = threading.Lock()
        self._entries: deque[HistoryEntry] = deque(maxlen=max_history)
        self._pending: deque[HistoryEntry] = deque(maxlen=max_history)
        # Cells started but not finished; a stack because run_cell can nest (%run, run_cell()).
        # Bounded, in case post_run_cell is not wired: it is only a fallback for result.info.
        self._started: deque[Any] = deque(maxlen=_MAX_NESTING)

    # --- IPython event hooks ------------------------------------------------------------------

    def pre_run_cell(self, info: ExecutionInfo) -> None:
        """``pre_run_cell`` hook: remember the cell being started."""
        self._started.append(info)

    def post_run_cell(self, result: ExecutionResult) -> None:
        """``post_run_cell`` hook: record the cell that just finished."""
        started = self._started.pop() if self._started else None
        try:
            info = getattr(result, "info", None) or started
            if info is None:
                return
            self.record(
                getattr(info, "raw_cell", None),
                execution_count=result.execution_count,
                success=bool(result.success),
                silent=bool(getattr(info, "silent", False)),
                store_history=bool(getattr(info, "store_history", True)),
            )
        except Exception:
            log.warning("Could not record a cell in the session history", exc_info=True)

    # --- recording ----------------------------------------------------------------------------

    def record(
        self,
        source: str | None,
        *,
        execution_count: int | None,
        success: bool = True,
        silent: bool = False,
        store_history: bool = True,
    ) -> HistoryEntry | None:
        """Record one executed cell and return its entry (``None`` when it is not kept).

        The hooks call this; it is public so that a manager can record a cell it ran itself.
        """
        if silent or not store_history or not isinstance(source, str):
            return None
        if not source.strip() or _EXIT_RE.match(source.strip()):
            return None
        source = redact_source(source)
        if self.redact is not None:
            try:
                source = self.redact(source)
            except Exception:
                log.warning(
                    "The history redaction callback failed; cell %s is not recorded",
                    execution_count,
                    exc_info=True,
                )
                return None
        entry = HistoryEntry(
            source=source,
            execution_count=execution_count if isinstance(execution_count, int) else 0,
            time=time.time(),
            success=success,
            run_id=self.run_id,
        )
        with self._lock:
            self._entries.append(entry)
            self._pending.append(entry)
        return entry

    # --- what the manager reads ---------------------------------------------------------------

    @property
    def entries(self) -> list[HistoryEntry]:
        """This run's entries (at most ``max_history``), oldest first."""
        with self._lock:
            return list(self._entries)

    def take_delta(self) -> list[HistoryEntry]:
        """Entries recorded since the previous call (oldest first), for incremental autosave.

        Each entry is handed out once. If more than ``max_history`` cells ran between two calls,
        only the newest ``max_history`` are returned (the others would be capped away anyway).
        """
        with self._lock:
            delta = list(self._pending)
            self._pending.clear()
        return delta

    def merge(self, previous: Iterable[HistoryEntry]) -> list[HistoryEntry]:
        """The lineage across restarts: ``previous`` runs' entries, then this run's, capped.

        ``previous`` is the history read from the store. Entries of this run that it already
        holds (same run id, execution count and time: a generation written earlier by this
        very run) are not repeated. At most ``max_history`` entries are returned; the oldest
        are dropped first.
        """
        current = self.entries
        mine = {_key(e) for e in current}
        lineage = [e for e in previous if _key(e) not in mine]
        lineage.extend(current)
        if self.max_history == 0:
            return []
        return lineage[-self.max_history :]


def _key(entry: HistoryEntry) -> tuple[str, int, float]:
    return (entry.run_id, entry.execution_count, entry.time)


def search(
    entries: Iterable[HistoryEntry], *, n: int | None = None, grep: str | None = None
) -> list[HistoryEntry]:
    """Select entries for ``%session history [-n N] [--grep PATTERN]``.

    ``grep`` is a regular expression searched anywhere in each cell's source (``re.search``);
    ``n`` keeps the last ``n`` of the entries that match. The result stays in execution order,
    oldest first. Raises :class:`~ipysession.errors.CaptureError` for a negative ``n`` or a
    pattern that is not a valid regular expression.
    """
    if n is not None and n < 0:
        msg = f"The number of history entries to show must be 0 or more, not {n}"
        raise CaptureError(msg, hint="Use %session history -n N with N >= 0")
    selected = list(entries)
    if grep is not None:
        try:
            pattern = re.compile(grep)
        except re.error as exc:
            msg = f"Invalid --grep pattern {grep!r}: {exc}"
            raise CaptureError(
                msg, hint="--grep takes a Python regular expression; escape special characters"
            ) from exc
        selected = [e for e in selected if pattern.search(e.source)]
    if n is not None:
        selected = selected[len(selected) - n :] if n else []
    return selected


def ipython_keeps_history(shell: InteractiveShell) -> bool:
    """Whether IPython's own history database persists this shell's input across runs.

    True when the shell's ``HistoryManager`` is enabled and writes to a file (not ``:memory:``):
    then ``%history -g`` and the terminal's up-arrow reach cells of earlier kernel runs by
    themselves, as long as they ran on this machine with the same profile.
    """
    manager = getattr(shell, "history_manager", None)
    if manager is None or not getattr(manager, "enabled", False):
        return False
    return str(getattr(manager, "hist_file", ":memory:")) != ":memory:"
