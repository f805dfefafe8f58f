"""Which variables need capturing again, after a cell or at an interval: :class:`ChangeTracker`.

Autosave re-captures only what a cell may have changed, at a cost that grows with what the cell
touched, not with the size of the namespace:

- ``post_cell`` reports a name as *changed* when it is new, when its ``id()`` changed, when the
  cell binds it at module scope or stores through it (``df['x'] = 1``, ``a.b = 2``), as
  :func:`~ipysession.capture.cellnames.cell_names` reads the cell's source. A change through a name
  also marks every other tracked name bound to the same object (``b = a; b['k'] = 1`` changes ``a``
  too).
- A name the cell only *reads* (``df.head()``, ``print(x)``, ``lst.append(1)``) may have been
  mutated. Immutable values (numbers, strings, bytes, small tuples of those) and modules cannot
  be; a value estimated under ``recapture_below`` (256 KiB) is simply re-captured and reported in
  ``ChangeSet.recheck`` too, so the caller can compare the new bytes with the old ones before it
  writes; anything larger, and numpy/pandas objects, functions and classes of any size, are
  compared by :func:`~ipysession.capture.sizing.fingerprint` with the fingerprint taken when the
  tracker last reported them.
- A fingerprint samples: an in-place change that touches none of the sampled bytes
  (``arr[12345] = 0`` in a large array, made by a call, not an assignment in the cell) goes unseen
  by ``post_cell``. :meth:`ChangeTracker.full_pass` (the manager calls it at an interval) compares
  every variable, not only the names a cell mentioned, so it catches changes made through aliases,
  functions and threads; ``full_pass(deep=True)`` reports every variable for re-capture, which is
  what catches a change that every sample missed (the store's content addressing makes an
  unchanged value cost a pickle and a hash, not a write).
- Only names :func:`~ipysession.capture.names.is_persistable_name` accepts are tracked, with the
  tracker's ``exclude`` patterns and ``hidden`` names.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any, Literal

from ipysession.capture.cellnames import cell_names
from ipysession.capture.describe import KiB
from ipysession.capture.names import is_persistable_name
from ipysession.capture.sizing import (
    estimate_size,
    fingerprint,
    is_immutable,
    is_ndarray,
    pandas_kind,
)
from ipysession.model import ImportRecord, VariableRecord

__all__ = ["RECAPTURE_BELOW", "ChangeSet", "ChangeTracker"]

logger = logging.getLogger("ipysession")

_MISSING = object()

#: Below this estimated size a value a cell only read is re-captured instead of fingerprinted.
RECAPTURE_BELOW = 256 * KiB

_Policy = Literal["ignore", "fingerprint", "recapture"]


@dataclass
class ChangeSet:
    """What to re-capture after a cell (or a full pass), and what to drop.

    ``changed`` must be re-captured; ``recheck`` is the part of it that was only read and is
    cheap: its new bytes may well equal the saved ones, so compare before writing. ``deleted``
    left the namespace (or became excluded).
    """

    changed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    recheck: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted)


@dataclass
class _Tracked:
    obj_id: int
    fp: str | None = None
    unsaveable: bool = False
    is_import: bool = False


class ChangeTracker:
    """Tells, after each cell, which variables need capturing again.

    Call :meth:`post_cell` after every cell (``post_run_cell``), capture what it reports, and tell
    the tracker what capture made of it with :meth:`note_captured` (optional, but it stops the
    tracker from re-reporting an unsaveable or imported value every time a cell reads it). After
    a restore, :meth:`sync` takes the restored values as saved. :meth:`full_pass` re-checks every
    variable at an interval. All methods run on the main thread, between cells.
    """

    def __init__(
        self,
        *,
        exclude: Iterable[str] = (),
        hidden: Container[str] = frozenset(),
        recapture_below: int = RECAPTURE_BELOW,
    ) -> None:
        self._exclude: tuple[str, ...] = tuple(exclude)
        self.hidden: Container[str] = hidden
        self.recapture_below = recapture_below
        self._state: dict[str, _Tracked] = {}
        # Every key of the namespace seen so far, persistable or not: new keys are the difference.
        self._seen: set[str] = set()
        self._persistable_cache: dict[str, bool] = {}
        # Names whose fingerprint was taken during the current pass.
        self._fresh: set[str] = set()
        self._in_cell = False

    # configuration

    @property
    def exclude(self) -> tuple[str, ...]:
        """fnmatch patterns of names never saved (``SessionManager.exclude``)."""
        return self._exclude

    @exclude.setter
    def exclude(self, patterns: Iterable[str]) -> None:
        self._exclude = tuple(patterns)
        self._persistable_cache.clear()
        # Names skipped under the old patterns must be looked at again.
        self._seen = set(self._state)

    @property
    def tracked(self) -> frozenset[str]:
        """The names the tracker currently knows as saved."""
        return frozenset(self._state)

    def stored_fingerprint(self, name: str) -> str | None:
        """The fingerprint the tracker compares ``name`` against (None if it re-captures it)."""
        state = self._state.get(name)
        return state.fp if state is not None else None

    def persistable(self, name: str) -> bool:
        """:func:`is_persistable_name` with this tracker's patterns and hidden names."""
        cached = self._persistable_cache.get(name)
        if cached is None:
            cached = is_persistable_name(name, self._exclude)
            if len(self._persistable_cache) > 100_000:
                self._persistable_cache.clear()
            self._persistable_cache[name] = cached
        return cached and name not in self.hidden

    # the cell cycle

    def pre_cell(self, user_ns: Mapping[str, Any]) -> None:
        """Mark the start of a cell.

        Nothing is snapshotted: ``post_cell`` compares with what was last reported, not with the
        start of the cell, so changes made between cells (comm handlers, threads) are reported
        with the next cell. Kept so the hooks are symmetric and for diagnostics.
        """
        del user_ns
        self._in_cell = True

    def post_cell(
        self, user_ns: Mapping[str, Any], source: str, transformed: str | None = None
    ) -> ChangeSet:
        """What the cell that just ran may have changed. Cost grows with what it touched."""
        if not self._in_cell:
            logger.debug("post_cell without pre_cell: the hook was probably registered mid-cell")
        self._in_cell = False
        names = cell_names(source, transformed)
        changes = ChangeSet()
        for name in user_ns.keys() - self._seen:
            self._seen.add(name)
            if self.persistable(name):
                changes.changed.add(name)
        self._check_ids(user_ns, changes)
        through = set()
        for name in names.bound | names.mutated:
            if name in self._state and name in user_ns:
                changes.changed.add(name)
                if name in names.mutated:
                    through.add(name)
        self._add_aliases(user_ns, through, changes)
        for name in names.read:
            if name in self._state and name not in changes.changed and name in user_ns:
                self._check_read(name, user_ns[name], changes)
        self._refresh(user_ns, changes)
        return changes

    def full_pass(self, user_ns: Mapping[str, Any], *, deep: bool = False) -> ChangeSet:
        """Re-check every variable, cell or not (call at an interval).

        Fingerprints catch in-place changes made through aliases, functions or threads; small
        values are re-captured (``recheck``). With ``deep=True`` every variable is reported for
        re-capture, which also catches what every fingerprint sample missed.
        """
        changes = ChangeSet()
        self._seen = set(user_ns)
        for name in self._seen:
            if self.persistable(name) and name not in self._state:
                changes.changed.add(name)
        self._check_ids(user_ns, changes)
        for name, state in self._state.items():
            if name in changes.changed or name in changes.deleted:
                continue
            if deep:
                changes.changed.add(name)
                changes.recheck.add(name)
            elif not (state.unsaveable or state.is_import):
                self._check_read(name, user_ns[name], changes)
        self._refresh(user_ns, changes)
        return changes

    # what the caller tells us

    def sync(self, user_ns: Mapping[str, Any], names: Iterable[str] | None = None) -> None:
        """Take the current values of ``names`` (default: every persistable name) as saved."""
        self._seen = set(user_ns)
        if names is None:
            self._state.clear()
        selected = self._seen if names is None else set(names)
        for name in selected:
            if name in user_ns and self.persistable(name):
                self._remember(name, user_ns[name])

    def note_captured(self, name: str, record: VariableRecord | ImportRecord) -> None:
        """Tell what capture made of ``name``: imports and unsaveable values are only re-checked
        when rebound (or by a deep full pass), not whenever a cell reads them."""
        state = self._state.get(name)
        if state is None:
            return
        state.is_import = isinstance(record, ImportRecord)
        state.unsaveable = isinstance(record, VariableRecord) and record.skipped is not None

    def forget(self, name: str) -> None:
        """Drop what the tracker knows of ``name``.

        A name that is still in the namespace and persistable is reported again as new by the
        next ``post_cell``; to stop saving a name, exclude it.
        """
        self._state.pop(name, None)
        self._seen.discard(name)

    def reset(self) -> None:
        """Forget everything: the next ``post_cell`` reports every persistable name."""
        self._state.clear()
        self._seen.clear()

    # internals

    def _check_ids(self, user_ns: Mapping[str, Any], changes: ChangeSet) -> None:
        # Runs over every tracked name after every cell: the persistable test is inlined (a
        # cached answer, then the hidden names) rather than a method call per name.
        missing = _MISSING
        cached = self._persistable_cache
        hidden = self.hidden
        for name, state in self._state.items():
            value = user_ns.get(name, missing)
            known = cached.get(name)
            persistable = self.persistable(name) if known is None else known and name not in hidden
            if value is missing or not persistable:
                changes.deleted.add(name)
            elif id(value) != state.obj_id:
                changes.changed.add(name)

    def _add_aliases(
        self, user_ns: Mapping[str, Any], through: set[str], changes: ChangeSet
    ) -> None:
        if not through:
            return
        ids = {id(user_ns[name]) for name in through}
        for name, state in self._state.items():
            if state.obj_id in ids and name not in changes.deleted:
                changes.changed.add(name)

    def _check_read(self, name: str, value: object, changes: ChangeSet) -> None:
        state = self._state[name]
        if state.unsaveable or state.is_import:
            return
        policy = self._policy(value)
        if policy == "ignore":
            return
        if policy == "recapture":
            changes.changed.add(name)
            changes.recheck.add(name)
            return
        current = fingerprint(value)
        if current is None or current != state.fp:
            changes.changed.add(name)
            state.fp = current
            self._fresh.add(name)

    def _policy(self, value: object) -> _Policy:
        if is_immutable(value) or isinstance(value, (ModuleType, BuiltinFunctionType)):
            return "ignore"
        if isinstance(value, (FunctionType, type)) or is_ndarray(value):
            return "fingerprint"
        if pandas_kind(value) is not None:
            return "fingerprint"
        if estimate_size(value) < self.recapture_below:
            return "recapture"
        return "fingerprint"

    def _refresh(self, user_ns: Mapping[str, Any], changes: ChangeSet) -> None:
        """Make the tracker's state that of the values the caller is about to capture."""
        for name in changes.deleted:
            self._state.pop(name, None)
            self._seen.discard(name)
        changes.changed -= changes.deleted
        changes.recheck &= changes.changed
        for name in changes.changed:
            # A recheck is the same object, and a fingerprint just taken need not be taken twice.
            if name in self._state and (name in changes.recheck or name in self._fresh):
                continue
            self._remember(name, user_ns[name])
        self._fresh.clear()

    def _remember(self, name: str, value: object) -> None:
        fp = fingerprint(value) if self._policy(value) == "fingerprint" else None
        self._state[name] = _Tracked(obj_id=id(value), fp=fp)
