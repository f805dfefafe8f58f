"""Co-variables: which variables share objects, so that they are pickled together.

Each variable pickled on its own comes back with its own copies: after ``b = a``,
``d = {"x": a}``, ``c.ref = a`` or ``view = big[2:5]`` a restart would leave ``b is a``,
``d["x"] is a``, ``c.ref is a`` and ``view.base is big`` all False, and ``a.append(3)`` would no
longer show in ``b``. Variables that reach a common object are one *group*, pickled as one tuple
(:func:`~ipysession.capture.pickling.serialize_group`), so they share it again.

How sharing is found (:class:`CoVariables`), cheaply and between cells:

- When a variable is captured (the change tracker says which), the ids of the objects it reaches
  are collected: the value itself, the items of lists, tuples, sets and dicts, the ``__dict__``
  of instances, for a numpy array the array whose memory it uses (``.base``), and for the array
  types :mod:`.tensors` registers, the object owning their memory (a torch tensor's storage, so
  ``view = t[2:5]``, ``sd = model.state_dict()`` and ``w = model.weight`` group with what they
  share memory with; a large model can exceed the walk's budget). The walk looks at
  :data:`MAX_NODES` objects per variable at most, breadth first, so its cost is bounded
  whatever the value holds.
  Immutable atoms (numbers, strings, bytes, ``None``), modules, classes, functions and open files
  are not counted: sharing them changes nothing (and ``x = 1; y = 1`` share an interned 1).
  Tuples and frozensets are walked but not counted (identity of an immutable container is
  rarely meaningful, and ``()`` is one object everywhere). pandas objects are counted but not
  walked: a column taken from a frame is a copy under Copy-on-Write (pandas 3), and pickling
  both restores exactly that; ``df2 = df`` is still one object.
- An index maps each object id to the variables that reach it; a group is a connected component
  of that relation. Only the variables a cell changed are walked again.

What this does not see: sharing deeper than the walk's budget, and sharing created by a change
the tracker did not report (a fingerprint that missed an in-place change) until the variable is
captured again (full passes do that). Ids are only compared while the objects are alive, within
one process.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

from ipysession.capture.files import FILE_TYPES
from ipysession.capture.pickling import array_root
from ipysession.capture.sizing import is_ndarray, pandas_kind

__all__ = ["MAX_NODES", "CoVariables", "reached_ids", "register_memory_owner"]

logger = logging.getLogger("ipysession")

#: Objects visited per variable, at most.
MAX_NODES = 1_000

_ATOMS = (
    int,
    float,
    complex,
    str,
    bytes,
    bool,
    type(None),
    type(Ellipsis),
    type(NotImplemented),
    range,
    slice,
)
_OPAQUE = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, *FILE_TYPES)
_SKIPPED = (*_ATOMS, *_OPAQUE)
_ATOM_TYPES = frozenset(_ATOMS)
_WALKED_UNCOUNTED = (tuple, frozenset)

#: For array types other than numpy's, by exact type: the object that owns a value's memory
#: (a torch tensor's storage), counted as shared by every view of it.
_MEMORY_OWNERS: dict[type, Callable[[Any], object]] = {}


def register_memory_owner(cls: type, owner: Callable[[Any], object]) -> None:
    """Count ``owner(value)`` among what a ``cls`` instance reaches (``cls`` exactly), so
    that variables whose values share memory through it are one group."""
    _MEMORY_OWNERS[cls] = owner


def reached_ids(value: object, *, max_nodes: int = MAX_NODES) -> frozenset[int]:
    """The ids of the shareable objects ``value`` reaches, looking at ``max_nodes`` at most.

    Every object looked at counts, atoms included, and a container hands over at most as many
    items as the budget has left: a list of a million numbers costs the same as one of a
    thousand.
    """
    found: set[int] = set()
    seen: set[int] = set()
    todo: deque[object] = deque([value])
    budget = max_nodes
    while todo and budget > 0:
        obj = todo.popleft()
        budget -= 1
        if type(obj) in _ATOM_TYPES or isinstance(obj, _SKIPPED) or id(obj) in seen:
            continue
        seen.add(id(obj))
        try:
            _visit(obj, found, todo, budget)
        except Exception:  # noqa: BLE001 - a strange object ends the walk of itself, not capture
            logger.debug("walking a %s for shared objects failed", type(obj).__name__)
    return frozenset(found)


def _visit(obj: object, found: set[int], todo: deque[object], budget: int) -> None:
    kind = type(obj)
    # Exact builtin containers first: most of what a walk meets, and none has a __dict__.
    if kind is list or kind is set:
        found.add(id(obj))
        todo.extend(islice(obj, budget))  # type: ignore[call-overload]
        return
    if kind is dict:
        found.add(id(obj))
        todo.extend(islice(obj.values(), budget))  # type: ignore[attr-defined]
        return
    if isinstance(obj, _WALKED_UNCOUNTED):
        todo.extend(islice(obj, budget))
        return
    found.add(id(obj))
    if is_ndarray(obj):
        found.add(id(array_root(obj)))
        return
    owner = _MEMORY_OWNERS.get(type(obj))
    if owner is not None:
        found.add(id(owner(obj)))
        return
    if pandas_kind(obj) is not None:
        return
    if isinstance(obj, dict):
        todo.extend(islice(obj.values(), budget))
    elif isinstance(obj, (list, set, deque)):
        todo.extend(islice(obj, budget))
    attrs = _instance_dict(obj)
    if attrs is not None:
        todo.extend(islice(attrs.values(), budget))


def _instance_dict(obj: object) -> dict[str, Any] | None:
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return attrs if isinstance(attrs, dict) else None


class CoVariables:
    """Which variables share objects, kept up to date as variables are captured.

    :meth:`update` a variable when it is captured (it walks the value), :meth:`remove` it when it
    leaves the namespace, and ask :meth:`group` for the variables that share objects with it,
    directly or through others. Main thread only.
    """

    def __init__(self, *, max_nodes: int = MAX_NODES) -> None:
        self.max_nodes = max_nodes
        self._reach: dict[str, frozenset[int]] = {}
        self._names_of: dict[int, set[str]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._reach

    def update(self, name: str, value: object) -> None:
        """Walk ``value``, the value of ``name`` now."""
        self.remove(name)
        reach = reached_ids(value, max_nodes=self.max_nodes)
        self._reach[name] = reach
        for obj_id in reach:
            self._names_of.setdefault(obj_id, set()).add(name)

    def remove(self, name: str) -> None:
        reach = self._reach.pop(name, None)
        if not reach:
            return
        for obj_id in reach:
            names = self._names_of.get(obj_id)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._names_of[obj_id]

    def clear(self) -> None:
        self._reach.clear()
        self._names_of.clear()

    def group(self, name: str) -> set[str]:
        """``name`` and every variable that shares an object with it, directly or not."""
        group = {name}
        todo = [name]
        while todo:
            for obj_id in self._reach.get(todo.pop(), ()):
                for other in self._names_of.get(obj_id, ()):
                    if other not in group:
                        group.add(other)
                        todo.append(other)
        return group

    def shared_ids(self, names: Iterable[str]) -> set[int]:
        """The ids reached by two or more of ``names``: the objects a group shares."""
        counts: dict[int, int] = {}
        for name in names:
            for obj_id in self._reach.get(name, ()):
                counts[obj_id] = counts.get(obj_id, 0) + 1
        return {obj_id for obj_id, count in counts.items() if count > 1}
