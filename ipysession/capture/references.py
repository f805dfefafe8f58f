"""Which global names a value's code may read: the imports a restored function needs.

``%session restore --vars f`` brings back ``f`` and the imports ``f`` uses, nothing else (not the
cwd, not ``%precision``). Which imports those are is known only from the restored values
themselves: :func:`global_names` walks them for code and collects the names it reads. Plain
Python over objects, no IPython.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping
from types import CellType, CodeType, FunctionType, MethodType

__all__ = ["code_names", "global_names", "names_reached"]


#: How many objects global_names looks at: it walks values only to find code, and a list of a
#: million numbers holds none worth the time.
_MAX_OBJECTS_WALKED = 10_000


def global_names(values: Iterable[object]) -> set[str]:
    """The global names that the code inside ``values`` may read (an over-approximation).

    A function's names are its code's ``co_names`` (globals and attribute names alike; an extra
    name can only bring back an import the session already holds), nested code included; a
    function is also reached through methods, ``functools.partial``, closures, defaults,
    ``__wrapped__``, the members of notebook classes (``__main__``) and their instances, and
    the items of lists, tuples, sets and dicts, up to :data:`_MAX_OBJECTS_WALKED` objects.
    """
    names: set[str] = set()
    seen: set[int] = set()
    stack = list(values)
    budget = _MAX_OBJECTS_WALKED
    while stack and budget > 0:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        budget -= 1
        stack.extend(itertools.islice(_inner_objects(value, names), budget))
    return names


#: How many notebook functions and classes names_reached follows from one cell.
_MAX_FUNCTIONS_FOLLOWED = 1_000


def names_reached(names: Iterable[str], namespace: Mapping[str, object]) -> set[str]:
    """``names`` and every global name the notebook code they name may read, transitively.

    The rule a cell waiting for arriving names follows: a name bound to a function or a class
    defined in the notebook (``__module__ == "__main__"``) adds the names its code reads
    (:func:`global_names`: nested code, closures, defaults, ``__wrapped__``, methods); a name
    reached that is itself a notebook function or class is followed in turn. What it does not
    cover: code reached only through objects that are neither (a library's callback holding a
    notebook function, an instance's bound method stored in a dict), names built at run time
    (``globals()[name]``, ``eval``), and code outside the notebook that reads ``__main__``.
    Over-approximating is safe: an extra name only makes a cell wait for a value it may use.
    """
    reached = set(names)
    todo = list(reached)
    followed = 0
    while todo and followed < _MAX_FUNCTIONS_FOLLOWED:
        value = namespace.get(todo.pop())
        if not _notebook_code(value):
            continue
        followed += 1
        for name in global_names([value]):
            if name not in reached:
                reached.add(name)
                todo.append(name)
    return reached


def _notebook_code(value: object) -> bool:
    if isinstance(value, (FunctionType, functools.partial)):
        func = value.func if isinstance(value, functools.partial) else value
        return getattr(func, "__module__", None) == "__main__"
    return isinstance(value, type) and value.__module__ == "__main__"


def _inner_objects(value: object, names: set[str]) -> Iterable[object]:
    """The objects inside ``value`` that may hold code; adds the names ``value``'s code reads."""
    if isinstance(value, FunctionType):
        names.update(code_names(value.__code__))
        cells = [cell for cell in value.__closure__ or () if _cell_is_set(cell)]
        wrapped = getattr(value, "__wrapped__", None)
        return [
            *(cell.cell_contents for cell in cells),
            *(value.__defaults__ or ()),
            *((wrapped,) if wrapped is not None else ()),
        ]
    if isinstance(value, (MethodType, staticmethod, classmethod)):
        return [value.__func__]
    if isinstance(value, functools.partial):
        return [value.func, *value.args, *value.keywords.values()]
    if isinstance(value, property):
        return [value.fget, value.fset, value.fdel]
    if isinstance(value, type):
        if value.__module__ != "__main__":
            return []
        return [*vars(value).values(), *value.__bases__]
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    if isinstance(value, dict):
        return value.values()
    cls = type(value)
    if cls.__module__ != "__main__":
        return []
    return [cls, *getattr(value, "__dict__", {}).values()]


def code_names(code: CodeType) -> set[str]:
    """Every global or attribute name ``code`` may read, its nested code included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):  # nested functions, lambdas, comprehensions, classes
            names |= code_names(const)
    return names


def _cell_is_set(cell: CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - reading it is the check: an empty cell raises
    except ValueError:
        return False
    return True
