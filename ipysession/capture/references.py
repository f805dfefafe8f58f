"""Which global names a value's code may read: the imports a restored function needs.

``%session restore --vars f`` brings back ``f`` and the imports ``f`` uses, nothing else (not the
cwd, not ``%precision``). Which imports those are is known only from the restored values
themselves: :func:`global_names` walks them for code and collects the names it reads. Plain
Python over objects, no IPython.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from types import CellType, CodeType, FunctionType, MethodType

__all__ = ["global_names"]


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


def _inner_objects(value: object, names: set[str]) -> Iterable[object]:
    """The objects inside ``value`` that may hold code; adds the names ``value``'s code reads."""
    if isinstance(value, FunctionType):
        names.update(_code_names(value.__code__))
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


def _code_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):  # nested functions, lambdas, comprehensions, classes
            names |= _code_names(const)
    return names


def _cell_is_set(cell: CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - reading it is the check: an empty cell raises
    except ValueError:
        return False
    return True
