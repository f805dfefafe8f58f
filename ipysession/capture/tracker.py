"""Which variables need capturing again, after a cell or at an interval: :class:`ChangeTracker`.

Autosave re-captures only what a cell may have changed, at a cost that grows with what the cell
touched, not with the size of the namespace (10,000 variables cost a cell no more than 10):

- ``post_cell`` looks only at the names :func:`~ipysession.capture.cellnames.cell_names` reads
  in the cell's source (bound, stored through, read), the names that functions the cell calls
  declare ``global`` and store or delete (read from their bytecode, following the functions
  those call by name), and the keys added to the namespace since the last cell (a dict keeps
  insertion order, so they are the last ones). It reports a name as *changed* when it is new,
  when its ``id()`` changed, when the cell binds it at module scope or stores through it
  (``df['x'] = 1``, ``a.b = 2``). A change through a name also marks every other tracked name
  bound to the same object (``b = a; b['k'] = 1`` changes ``a`` too), found through an index
  by ``id()``.
- A cell whose source cannot tell what it bound (:attr:`CellNames.opaque`: a magic, ``exec``,
  ``globals()``, ``from m import *``, a cell that does not parse) is checked against every
  tracked name, as is a cell after the tracker's patterns change; that check compares ``id()``
  lists in C and costs well under a millisecond for 10,000 names. A function the cell calls
  that itself uses ``exec``, ``globals()`` and the like makes the cell opaque too.
- What a cell changed out of sight of all that (a rebinding by a module's code through
  ``sys.modules['__main__']``, by a method of an object, by a thread) is found by
  :meth:`ChangeTracker.full_pass`, which the manager calls every ``full_capture_interval``
  seconds and which checks every name as ``post_cell`` once did.
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

import dis
import logging
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, ne
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any, Literal

from ipysession.capture.cellnames import DYNAMIC_NAMES, cell_names
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

__all__ = ["RECAPTURE_BELOW", "ChangeSet", "ChangeTracker", "Counters"]

logger = logging.getLogger("ipysession")

_MISSING = object()

#: Below this estimated size a value a cell only read is re-captured instead of fingerprinted.
RECAPTURE_BELOW = 256 * KiB

_Policy = Literal["ignore", "fingerprint", "recapture"]

_obj_id = attrgetter("obj_id")

# Opcodes that bind, delete and read a module-level name from inside a function.
_GLOBAL_STORES = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_CODE_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class _CodeEffects:
    """What a function's code does to module-level names: from its bytecode, cached."""

    stores: frozenset[str]
    loads: frozenset[str]
    opaque: bool


@dataclass
class Counters:
    """How much work the tracker did, for tests and benchmarks (operations, never time).

    ``ids_checked`` counts the names whose ``id()`` was compared one by one, ``full_id_checks``
    the checks of every tracked name at once (opaque cells), ``keys_walked`` the namespace keys
    looked at to find new ones, ``full_key_scans`` the comparisons of every key.
    """

    ids_checked: int = 0
    full_id_checks: int = 0
    keys_walked: int = 0
    full_key_scans: int = 0


@dataclass
class ChangeSet:
    """What to re-capture after a cell (or a full pass), and what to drop.

    ``changed`` must be re-captured; ``recheck`` is the part of it that was only read and is
    cheap: its new bytes may well equal the saved ones, so compare before writing. ``deleted``
    left the namespace (or became excluded). ``rebound`` names what was bound anew and is still
    there: assigned at module scope by the cell or by a function it called, or found bound to
    another object; a name only read or stored through is never in it (``%session forget``
    lasts until a new assignment).
    """

    changed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    recheck: set[str] = field(default_factory=set)
    rebound: set[str] = field(default_factory=set)

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
        # Tracked names by the id() of their value: the aliases of a name stored through.
        self._by_id: dict[int, set[str]] = {}
        # Every key of the namespace seen so far, persistable or not: new keys are the difference.
        self._seen: set[str] = set()
        self._persistable_cache: dict[str, bool] = {}
        # Names whose fingerprint was taken during the current pass.
        self._fresh: set[str] = set()
        # Names to look at with the next cell whatever it mentions (forgotten ones), and
        # whether the next cell must look at every key (the exclude patterns changed).
        self._pending: set[str] = set()
        self._rescan = False
        self._code_effects: dict[CodeType, _CodeEffects] = {}
        self.counters = Counters()
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
        # Names skipped under the old patterns must be looked at again, by the next cell.
        self._seen = set(self._state)
        self._rescan = True

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
        stores, calls_opaque = self._global_effects(user_ns, names.read)
        candidates = names.bound | names.mutated | names.read | stores | self._pending
        self._pending = set()
        if self._rescan:
            # The patterns changed: every name is asked whether it is still to be saved.
            self._rescan = False
            self._scan_all_keys(user_ns, changes)
            self._check_ids(user_ns, changes)
        elif names.opaque or calls_opaque or not isinstance(user_ns, dict):
            self._scan_all_keys(user_ns, changes)
            self._check_all_ids(user_ns, changes)
        else:
            self._scan_new_keys(user_ns, candidates, changes)
            self._check_ids_of(user_ns, candidates, changes)
        changes.rebound |= {name for name in names.bound | stores if name in user_ns}
        through = set()
        for name in names.bound | names.mutated:
            if name in self._state and name in user_ns and name not in changes.deleted:
                changes.changed.add(name)
                if name in names.mutated:
                    through.add(name)
        self._add_aliases(user_ns, through, changes)
        for name in names.read:
            settled = name in changes.changed or name in changes.deleted
            if name in self._state and name in user_ns and not settled:
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
        self._rescan = False
        self._pending = set()
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
            self._by_id.clear()
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
        self._drop(name)
        self._seen.discard(name)
        self._pending.add(name)

    def reset(self) -> None:
        """Forget everything: the next ``post_cell`` reports every persistable name."""
        self._state.clear()
        self._by_id.clear()
        self._seen.clear()
        self._rescan = True

    # internals

    def _scan_all_keys(self, user_ns: Mapping[str, Any], changes: ChangeSet) -> None:
        self.counters.full_key_scans += 1
        for name in user_ns.keys() - self._seen:
            if self.persistable(name):
                changes.changed.add(name)
        # Also drops names deleted since: the walk in _scan_new_keys stops at a seen key.
        self._seen = set(user_ns)

    def _scan_new_keys(
        self, user_ns: dict[str, Any], candidates: Container[str], changes: ChangeSet
    ) -> None:
        """The keys added since the last cell, newest first: a dict keeps insertion order, so
        they follow every key that was there before. The walk stops at the first key seen
        before, except one the cell itself may have deleted and bound again (moved last)."""
        seen = self._seen
        walked = 0
        for name in reversed(user_ns):
            walked += 1
            if name in seen:
                if name in candidates:
                    continue
                break
            seen.add(name)
            if self.persistable(name):
                changes.changed.add(name)
        self.counters.keys_walked += walked

    def _check_ids_of(
        self, user_ns: Mapping[str, Any], candidates: Iterable[str], changes: ChangeSet
    ) -> None:
        missing = _MISSING
        checked = 0
        for name in candidates:
            value = user_ns.get(name, missing)
            state = self._state.get(name)
            if state is None:
                if value is missing:
                    self._seen.discard(name)
                elif name not in self._seen:
                    self._seen.add(name)
                    if self.persistable(name):
                        changes.changed.add(name)
                continue
            checked += 1
            if value is missing or not self.persistable(name):
                changes.deleted.add(name)
            elif id(value) != state.obj_id:
                changes.changed.add(name)
                changes.rebound.add(name)
        self.counters.ids_checked += checked

    def _check_all_ids(self, user_ns: Mapping[str, Any], changes: ChangeSet) -> None:
        """Every tracked name's id() against the namespace, compared in C (``map`` and list
        equality): a cell whose source does not tell what it bound pays a fraction of a
        millisecond for 10,000 names, not a Python loop over them."""
        self.counters.full_id_checks += 1
        names = list(self._state)
        before = list(map(_obj_id, self._state.values()))
        now = list(map(id, map(user_ns.get, names, repeat(_MISSING))))
        if now == before:
            return
        for name in compress(names, map(ne, now, before)):
            if name not in user_ns or not self.persistable(name):
                changes.deleted.add(name)
            else:
                changes.changed.add(name)
                changes.rebound.add(name)

    def _global_effects(
        self, user_ns: Mapping[str, Any], read: Iterable[str]
    ) -> tuple[set[str], bool]:
        """The module-level names that functions the cell may call store or delete (``global
        x; x = 1``), following the functions they call by name; and whether any of them uses
        ``exec``, ``globals()`` and the like (then nothing short of every name will do).

        Only functions defined in this namespace (their ``__globals__`` is it) and the methods
        of classes defined there are read; each code object once (cached)."""
        stores: set[str] = set()
        opaque = False
        visited: set[str] = set()
        todo = list(read)
        while todo:
            name = todo.pop()
            if name in visited:
                continue
            visited.add(name)
            for code in _own_code(user_ns.get(name), user_ns):
                effects = self._effects_of(code)
                stores |= effects.stores
                opaque |= effects.opaque
                todo.extend(effects.loads - visited)
        return stores, opaque

    def _effects_of(self, code: CodeType) -> _CodeEffects:
        effects = self._code_effects.get(code)
        if effects is None:
            if len(self._code_effects) >= _CODE_CACHE_LIMIT:
                self._code_effects.clear()
            effects = self._code_effects[code] = _read_code(code)
        return effects

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
                changes.rebound.add(name)

    def _add_aliases(
        self, user_ns: Mapping[str, Any], through: set[str], changes: ChangeSet
    ) -> None:
        if not through:
            return
        for obj_id in {id(user_ns[name]) for name in through}:
            for name in self._by_id.get(obj_id, ()):
                if name not in changes.deleted:
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
            self._drop(name)
            self._seen.discard(name)
        changes.changed -= changes.deleted
        changes.rebound -= changes.deleted
        changes.recheck &= changes.changed
        for name in changes.changed:
            # A recheck is the same object, and a fingerprint just taken need not be taken twice.
            if name in self._state and (name in changes.recheck or name in self._fresh):
                continue
            self._remember(name, user_ns[name])
        self._fresh.clear()

    def _remember(self, name: str, value: object) -> None:
        fp = fingerprint(value) if self._policy(value) == "fingerprint" else None
        self._drop(name)
        self._state[name] = _Tracked(obj_id=id(value), fp=fp)
        self._by_id.setdefault(id(value), set()).add(name)

    def _drop(self, name: str) -> None:
        state = self._state.pop(name, None)
        if state is None:
            return
        same = self._by_id.get(state.obj_id)
        if same is not None:
            same.discard(name)
            if not same:
                del self._by_id[state.obj_id]


def _own_code(value: object, user_ns: Mapping[str, Any]) -> list[CodeType]:
    """The code of ``value`` if it is a function (or method, or class) defined in ``user_ns``."""
    if isinstance(value, MethodType):
        value = value.__func__
    if isinstance(value, FunctionType):
        return [value.__code__] if value.__globals__ is user_ns else []
    if isinstance(value, type):
        codes = []
        for member in vars(value).values():
            # No getattr on the members: a class attribute may be any object, with side effects.
            function = (
                member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            )
            if isinstance(function, FunctionType) and function.__globals__ is user_ns:
                codes.append(function.__code__)
        return codes
    return []


def _read_code(code: CodeType) -> _CodeEffects:
    stores: set[str] = set()
    loads: set[str] = set()
    todo = [code]
    while todo:
        current = todo.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in _GLOBAL_STORES:
                stores.add(instruction.argval)
            elif instruction.opname in _GLOBAL_LOADS:
                loads.add(instruction.argval)
        # Nested functions, lambdas and comprehensions may declare the same globals.
        todo.extend(const for const in current.co_consts if isinstance(const, CodeType))
    return _CodeEffects(
        stores=frozenset(stores),
        loads=frozenset(loads),
        opaque=not DYNAMIC_NAMES.isdisjoint(loads),
    )
