"""Rebuild what could not be saved by running again the cells that made it.

Generators, locks, hash objects, open database connections, objects holding open files: capture
names them with the reason they cannot be pickled (a skipped record). On restore, the session's
history says how each was made. :func:`plan_replay` finds, for each missing name, the shortest
chain of recorded cells that produces it, with every other input taken from what was restored:

- the last successful cell that binds the name (its *defining* cell);
- the later successful cells that use the name without binding it (``h.update(b"...")``,
  ``next(gen)``), so a hash object comes back with everything it was fed and a generator as far
  along as cells had taken it (a generator advanced by code outside the recorded cells, a
  callback or a thread, starts again from its cell);
- for each input of those cells that is missing too, its own chain, recursively.

Cells are read with :func:`~ipysession.capture.cellnames.cell_names` (what they bind, store
through and read, at module scope) and :func:`~ipysession.session.effects.cell_effects` (whether
they do more than compute). Missing names whose chains share a cell form one
:class:`ReplayGroup`, run together; groups are independent, so one that fails leaves the others.

:func:`run_group` runs a group's cells in the user namespace, quietly (what they print is
dropped: the user's cells show nothing of it) and under a time limit. Names the cells bind besides
the group's targets are put back as restored afterwards (or removed, if they were not there), so
a replay changes nothing but the names it rebuilds. A cell whose update of a name has side effects
is never replayed (it is named, as left out); a defining cell with side effects needs consent,
given by the caller.

Kishu's restore plan is the same idea at the level of a whole checkpoint: it orders "load
variable" and "rerun cell" actions by cell number (``kishu/planning/plan.py``), falling back to
rerunning cells for what it cannot deserialize. Here the stored values are loaded first (they are
the inputs) and only what is missing is rerun, with the side-effect check Kishu does not make.

History entries whose source had a secret blanked (``redaction.REDACTED`` in it) are not replayed:
their source is no longer the code that ran.
"""

from __future__ import annotations

import _thread
import builtins
import contextlib
import io
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ipysession.capture.cellnames import CellNames
from ipysession.model import HistoryEntry
from ipysession.redaction import redact_source
from ipysession.session.effects import CellEffects
from ipysession.session.reports import ReplayOutcome, ReplayState

__all__ = [
    "NO_CELLS",
    "ReplayCell",
    "ReplayGroup",
    "ReplayPlan",
    "plan_replay",
    "run_group",
]

log = logging.getLogger("ipysession")

#: Why a name cannot be rebuilt when no cell binding it is left in the history.
NO_CELLS = (
    "no cell that assigns it is left in the history (SessionManager.max_history keeps the "
    "newest cells); run its cell again"
)


@dataclass(frozen=True)
class ReplayCell:
    """One recorded cell, read for replay: its place in the history and what it does."""

    position: int
    count: int
    code: str
    names: CellNames
    effects: CellEffects

    @property
    def inputs(self) -> frozenset[str]:
        return self.names.read | self.names.mutated


@dataclass(frozen=True)
class ReplayGroup:
    """Missing names rebuilt together, the cells to run (in order) and the cells left out."""

    targets: tuple[str, ...]
    cells: tuple[ReplayCell, ...]
    left_out: tuple[ReplayCell, ...] = ()

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(cell.count for cell in self.cells)

    @property
    def consent_reason(self) -> str | None:
        """Why running this group needs the user's consent (the first cell with side effects)."""
        for cell in self.cells:
            if not cell.effects.pure:
                return f"cell {cell.count} {cell.effects.describe()}"
        return None

    def outcome(
        self, state: ReplayState, *, seconds: float = 0.0, reason: str = ""
    ) -> ReplayOutcome:
        return ReplayOutcome(
            names=self.targets,
            cells=self.counts,
            state=state,
            seconds=seconds,
            reason=reason,
            left_out=tuple((c.count, c.effects.describe()) for c in self.left_out),
        )


@dataclass
class ReplayPlan:
    """The groups to run, and the names no recorded cell can rebuild (with why)."""

    groups: list[ReplayGroup] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def plan_replay(
    entries: Sequence[HistoryEntry],
    targets: Iterable[str],
    *,
    present: Callable[[str], bool],
    prepare: Callable[[int, HistoryEntry], ReplayCell | None],
) -> ReplayPlan:
    """The shortest chains of ``entries`` (the history, oldest first) that rebuild ``targets``.

    ``present(name)`` says whether a name is in the namespace now (restored or imported): such
    inputs are taken as they are. ``prepare(position, entry)`` reads one entry (``None``: it
    cannot be replayed); each entry is read at most once, and only entries whose text mentions
    a name being looked for.
    """
    finder = _Finder(entries, present, prepare)
    plan = ReplayPlan()
    chains: dict[str, tuple[set[int], set[int]]] = {}
    for target in dict.fromkeys(targets):
        chain = finder.chain(target)
        if chain is None:
            plan.unavailable[target] = NO_CELLS
        else:
            chains[target] = chain
    # Targets whose chains share a cell run together: union-find over the cells' positions.
    owner: dict[int, str] = {}
    parent = {target: target for target in chains}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for target, (required, _) in chains.items():
        for position in required:
            other = owner.setdefault(position, target)
            if root(other) != root(target):
                parent[root(other)] = root(target)
    groups: dict[str, list[str]] = {}
    for target in chains:
        groups.setdefault(root(target), []).append(target)
    for members in groups.values():
        required = set().union(*(chains[t][0] for t in members))
        left_out = set().union(*(chains[t][1] for t in members)) - required
        plan.groups.append(
            ReplayGroup(
                targets=tuple(sorted(members)),
                cells=tuple(finder.cell(p) for p in sorted(required)),
                left_out=tuple(finder.cell(p) for p in sorted(left_out)),
            )
        )
    plan.groups.sort(key=lambda g: g.cells[0].position if g.cells else 0)
    return plan


class _Finder:
    def __init__(
        self,
        entries: Sequence[HistoryEntry],
        present: Callable[[str], bool],
        prepare: Callable[[int, HistoryEntry], ReplayCell | None],
    ) -> None:
        self._entries = entries
        self._present = present
        self._prepare = prepare
        self._cells: dict[int, ReplayCell | None] = {}

    def cell(self, position: int) -> ReplayCell:
        cell = self._cells[position]
        assert cell is not None, "only cells read for a chain are part of it"
        return cell

    def _read(self, position: int, name: str) -> ReplayCell | None:
        entry = self._entries[position]
        # Cheap first: a cell that binds or uses `name` has it in its text.
        if not entry.success or name not in entry.source:
            return None
        if position not in self._cells:
            self._cells[position] = self._prepare(position, entry)
        return self._cells[position]

    def _definition(self, name: str, before: int) -> ReplayCell | None:
        for position in range(before - 1, -1, -1):
            cell = self._read(position, name)
            if cell is not None and name in cell.names.bound:
                return cell
        return None

    def chain(self, target: str) -> tuple[set[int], set[int]] | None:
        """(cells to run, cells with side effects left out) for ``target``; None if no cell
        binds it."""
        required: set[int] = set()
        left_out: set[int] = set()
        seen: set[tuple[str, int]] = set()
        todo: list[tuple[str, int]] = [(target, len(self._entries))]
        found_target = False
        while todo:
            name, before = todo.pop()
            if (name, before) in seen:
                continue
            seen.add((name, before))
            definition = self._definition(name, before)
            if definition is None:
                # An input no cell binds may well be local to its cell (a comprehension's
                # variable): running the cell tells.
                continue
            if name == target and before == len(self._entries):
                found_target = True
            added = [definition]
            for position in range(definition.position + 1, before):
                cell = self._read(position, name)
                if cell is None or name in cell.names.bound or name not in cell.inputs:
                    continue
                if cell.effects.pure:
                    added.append(cell)
                else:
                    left_out.add(position)
            for cell in added:
                if cell.position in required:
                    continue
                required.add(cell.position)
                for needed in cell.inputs:
                    if not self._present(needed) and not hasattr(builtins, needed):
                        todo.append((needed, cell.position))
        return (required, left_out) if found_target else None


# --- running a group ------------------------------------------------------------------------


def run_group(group: ReplayGroup, user_ns: dict[str, Any], *, time_limit: float) -> ReplayOutcome:
    """Run ``group``'s cells in ``user_ns`` (main thread), quietly, within ``time_limit`` seconds
    (0: no limit). Only the group's targets stay changed; on failure they are removed again."""
    bound: set[str] = set()
    for cell in group.cells:
        bound |= cell.names.bound
    targets = set(group.targets)
    before = {name: user_ns[name] for name in bound if name in user_ns}
    started = time.perf_counter()
    error: str | None = None
    current = group.cells[0] if group.cells else None
    limit = _TimeLimit(time_limit)
    try:
        with _quiet(), limit:
            for current in group.cells:
                name = f"<ipysession replay of cell {current.count}>"
                exec(compile(current.code, name, "exec"), user_ns)  # noqa: S102 - the user's own cell
    except KeyboardInterrupt:
        where = current.count if current is not None else "?"
        if limit.fired:
            error = (
                f"stopped in cell {where} after the time limit of {time_limit:g} s "
                "(SessionManager.replay_time_limit)"
            )
        else:  # the user interrupted the kernel: this group stops, the restore goes on
            error = f"interrupted in cell {where}"
    except Exception as exc:  # noqa: BLE001 - a replayed cell can raise anything; it is reported
        where = f"cell {current.count}" if current is not None else "replay"
        error = redact_source(f"{where} raised {type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    for name in bound - targets:
        if name in before:
            user_ns[name] = before[name]
        else:
            user_ns.pop(name, None)
    if error is None:
        missing = [t for t in group.targets if t not in user_ns]
        if missing:
            error = f"the cells ran but did not bind {', '.join(missing)}"
    if error is not None:
        for name in targets:
            if name in before:
                user_ns[name] = before[name]
            else:
                user_ns.pop(name, None)
        log.info("replay of %s failed: %s", ", ".join(group.targets), error)
        return group.outcome(ReplayState.FAILED, seconds=seconds, reason=error)
    return group.outcome(ReplayState.REBUILT, seconds=seconds)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """What replayed cells print or display is dropped: no cell asked for it."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), _no_display():
        yield


@contextlib.contextmanager
def _no_display() -> Iterator[None]:
    """``display(...)`` in a replayed cell goes nowhere (IPython's own capture, when a shell
    runs: it swaps the shell's display publisher for one that only collects)."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.utils.capture import capture_output
    except ImportError:  # pragma: no cover - IPython is a dependency
        yield
        return
    if not InteractiveShell.initialized():
        yield
        return
    with capture_output(stdout=False, stderr=False, display=True):
        yield


class _TimeLimit:
    """Interrupts the main thread (KeyboardInterrupt) after ``seconds``; 0 means no limit.

    The interrupt is sent under a lock that :meth:`__exit__` takes first, so none arrives once
    the block is left; one sent just before is received here, never by the user's next cell.
    SIGINT is handled by Python while the block runs (a starting kernel may ignore it).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._armed = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._previous: Any = None

    def __enter__(self) -> _TimeLimit:
        if self.seconds > 0 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            self._armed = True
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.name = "ipysession-replay-limit"
            self._timer.start()
        return self

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                _thread.interrupt_main()

    def __exit__(self, *exc: object) -> None:
        if self._timer is None:
            return
        try:
            with self._lock:
                self._armed = False
            self._timer.cancel()
            if self.fired and exc[0] is None:
                # Sent after the last cell ended but before the lock: it is taken here, so the
                # caller sees the limit as reached and the user's next cell never sees it.
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    time.sleep(0.001)
        finally:
            signal.signal(signal.SIGINT, self._previous)
