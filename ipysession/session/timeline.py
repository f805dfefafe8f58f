"""Time travel per cell: what each cell changed, kept so ``%session undo`` and ``checkout`` can go
back (and forth again) within this kernel's run.

Modelled on Kishu's commit per cell and checkout, kept in the kernel and per variable: after each
cell that changed something, :meth:`Timeline.record` keeps one :class:`Step` holding, for each
name the cell changed, the value it had *before* (the serialized record capture had made of it,
or the import records, or "absent"). The present is the workspace itself, so:

- the state after any kept step is the present with the ``before`` values of every later step put
  back, newest first (:meth:`Timeline.state_after`): going back N cells costs what those cells
  changed, not the size of the namespace;
- unchanged values are never copied: a record is shared by every step that needs it (records are
  immutable), so a step costs the bytes of what it replaced.

States are numbered by step index (``-1`` before the first step this run). A step made by the cell
that travelled (``%session undo`` rebinding ``df``) is recorded like any other, with, as its
*parent*, the parent of the state it went to, so ``undo`` twice goes two cells back, not back
and forth; the state before a travel stays reachable with ``%session checkout -``.

Memory is bounded by ``SessionManager.undo_max_bytes``, counting the values the kept steps
replaced and the copies of the values now current: past it the oldest steps are forgotten and
the states before them are out of reach. Values that cannot be saved (a generator, a lock)
have no past copy: a travel leaves them as they are and says so. The timeline lives in the kernel
only; across restarts ``%session restore --generation N`` goes back to what was saved.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ipysession.model import ImportRecord, VariableRecord

__all__ = ["ABSENT", "START", "Step", "Timeline", "Value"]

#: A name's value as the workspace holds it: its variable record, or its import records, or
#: (None, None) when the name is absent.
Value = tuple[VariableRecord | None, tuple[ImportRecord, ...] | None]

ABSENT: Value = (None, None)

#: The state before the first step kept.
START = -1


@dataclass(frozen=True)
class Step:
    """One cell that changed something: what each changed name was before it."""

    index: int
    count: int
    time: float
    before: Mapping[str, Value]
    after: Mapping[str, Value]
    #: The state `undo` goes to from here.
    parent: int
    #: Set on a step made by a travel: the state it went to.
    travelled_to: int | None = None

    @property
    def size(self) -> int:
        return sum(_bytes(value) for value in self.before.values())


def _bytes(value: Value) -> int:
    record = value[0]
    if record is None:
        return 0
    held = len(record.data) if record.data is not None else 0
    # Out-of-band buffers held in memory (not yet in a blob) are part of what a step keeps.
    return held + sum(len(b.data) for b in record.buffers if b.data is not None)


class Timeline:
    """The steps of this kernel's run, oldest first (main thread only)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._steps: collections.deque[Step] = collections.deque()
        self._next = 0
        self._bytes = 0
        self._latest_bytes = 0
        # The execution count of the newest step forgotten: states up to it are out of reach.
        self._trimmed_count: int | None = None
        # The values each name had after its latest step, as captured then (with their bytes:
        # the workspace later keeps only a blob reference for large values).
        self._latest: dict[str, Value] = {}
        self._travel: int | None = None
        #: The state the last travel left, for `checkout -`.
        self.before_travel: int | None = None

    # --- recording ---------------------------------------------------------------------------

    def record(
        self, count: int, before: Mapping[str, Value], after: Mapping[str, Value]
    ) -> Step | None:
        """Keep what a cell changed (``before``/``after`` of each name it changed)."""
        travel, self._travel = self._travel, None
        if self.max_bytes <= 0:
            # Off: what is kept would be stale if it were turned on again later.
            if self._steps or self._latest:
                self.clear()
            return None
        if not before:
            return None
        # A name's earlier value as captured then, not the blob reference it may be now.
        kept = {name: self._latest.get(name, value) for name, value in before.items()}
        if travel is None:
            parent = self.head
            travelled_to = None
        else:
            parent = self.parent_of(travel)
            travelled_to = travel
        index = self._next
        self._next += 1
        step = Step(
            index=index,
            count=count,
            time=time.time(),
            before=kept,
            after=dict(after),
            parent=parent,
            travelled_to=travelled_to,
        )
        self._steps.append(step)
        for name, value in after.items():
            self._latest_bytes += _bytes(value) - _bytes(self._latest.get(name, ABSENT))
            self._latest[name] = value
        self._bytes += step.size
        self._trim()
        return step

    def _trim(self) -> None:
        while self._steps and self._bytes + self._latest_bytes > self.max_bytes:
            gone = self._steps.popleft()
            self._bytes -= gone.size
            self._trimmed_count = gone.count
        # Still over with every step gone: the largest current values are no longer copied (a
        # later step takes their workspace record instead: a blob reference, read if needed).
        if self._latest_bytes <= self.max_bytes:
            return
        for name in sorted(self._latest, key=lambda n: -_bytes(self._latest[n])):
            if self._latest_bytes <= self.max_bytes:
                break
            self._latest_bytes -= _bytes(self._latest.pop(name))

    def travelling(self, target: int) -> None:
        """The cell running now goes to state ``target``: its step is a travel."""
        self.before_travel = self.head
        self._travel = target

    def clear(self) -> None:
        """Forget every step (after a restore: the namespace is another one now)."""
        self._steps.clear()
        self._latest.clear()
        self._bytes = self._latest_bytes = 0
        self._trimmed_count = None
        self._travel = None
        self.before_travel = None

    # --- reading -----------------------------------------------------------------------------

    @property
    def steps(self) -> list[Step]:
        return list(self._steps)

    @property
    def head(self) -> int:
        """The state the namespace is in: after the newest step (START when there is none)."""
        return self._steps[-1].index if self._steps else self.oldest

    @property
    def oldest(self) -> int:
        """The oldest state still reachable: the one before the first step kept."""
        return self._steps[0].index - 1 if self._steps else START + self._next

    @property
    def nbytes(self) -> int:
        """Bytes held: the values the kept steps replaced, and the copies of current values."""
        return self._bytes + self._latest_bytes

    def reachable(self, state: int) -> bool:
        return self.oldest <= state <= self.head

    def parent_of(self, state: int) -> int:
        for step in self._steps:
            if step.index == state:
                return step.parent
        return state - 1 if state > self.oldest else self.oldest

    def undo_target(self, n: int) -> int:
        """The state ``n`` cells back from now (following parents: undo twice goes back twice)."""
        state = self.head
        for _ in range(n):
            if state <= self.oldest:
                break
            state = self.parent_of(state)
        return max(state, self.oldest)

    def state_of_count(self, count: int) -> int | None:
        """The state after execution ``count``: its step, or the newest before it."""
        if self._trimmed_count is not None and count <= self._trimmed_count:
            return None
        found: int | None = None
        for step in self._steps:
            if step.count <= count:
                found = step.index
        if found is None:
            return self.oldest if self._steps and count < self._steps[0].count else None
        return found

    def state_after(self, state: int) -> dict[str, Value]:
        """What each name changed since ``state`` was then (reachable states only)."""
        values: dict[str, Value] = {}
        for step in reversed(self._steps):
            if step.index <= state:
                break
            values.update(step.before)
        return values

    def count_of(self, state: int) -> int | None:
        for step in self._steps:
            if step.index == state:
                return step.count
        return None
