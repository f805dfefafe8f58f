"""Capture and restore of the user namespace: which names are saved, how, and which changed.

This module works on a plain namespace dict (``shell.user_ns``) and cell source strings; it never
imports IPython, so all of it is tested without a shell.

What is saved
-------------
:func:`is_persistable_name` decides. Never saved: IPython's own names (``In``, ``Out``, ``_``,
``__``, ``___``, ``_i``, ``_ii``, ``_iii``, ``_i<N>``, ``_<N>``, ``_oh``, ``_dh``, ``_ih``,
``_exit_code``, ``exit``, ``quit``, ``get_ipython``), every name starting with ``__``, the names in
IPython's ``user_ns_hidden`` (passed as ``hidden``: what startup code defined is defined again by
startup code), and the names matching a pattern of ``SessionManager.exclude``. Patterns are
``fnmatch`` patterns matched case-sensitively (``fnmatchcase``), like Python names themselves.

How a value is saved (:func:`capture_value`)
--------------------------------------------
- Modules, and objects that are an attribute of an installed module under their own qualified name
  (``json.dumps``, ``collections.Counter``, ``numpy.add``), become an
  :class:`~ipysession.model.ImportRecord` and are imported again on restore, never pickled. The
  exact statement is better taken from the cell source: :func:`imports_in_source` turns
  ``from os import path as p`` into ``ImportRecord("p", "os", "path")``; pass those records as
  ``imports=`` and :func:`capture_value` uses one whenever it still resolves to the very object
  bound to the name (:func:`import_matches`), so a name rebound since its import is not mistaken for
  the import.
- Open files on a real path (``io.TextIOWrapper``, ``BufferedReader``/``Writer``/``Random``,
  ``FileIO``) are saved as encoding ``"file"``: a JSON document with the absolute path, the mode,
  the position (after a flush of what was written), text encoding and errors. On restore the file
  is reopened at the same position, never truncated: ``"w"``, ``"w+"`` and ``"x"`` reopen as
  ``"r+"``, ``"a"`` stays ``"a"``. A file that is gone, replaced or now shorter than the saved
  position is a failure with its reason, not a silently different handle.
- Everything else is pickled with protocol 5 (encoding ``"pickle"``). When that fails, or when the
  pickle refers to ``__main__`` (a function, class or instance of a class defined in the notebook:
  a reference to ``__main__`` is useless in the next kernel), cloudpickle serializes the value by
  value (encoding ``"cloudpickle"``). The ``b"__main__" in data`` test is deliberately cheap; a
  string that happens to contain ``__main__`` only costs a slower, equally correct cloudpickle.
- A value that neither can serialize (generators, locks, sockets, ...) is recorded as skipped, with
  a reason naming its type and the error: ``"generator objects cannot be saved (TypeError: cannot
  pickle 'generator' object)"``. Capture never raises for a bad value.
- Budgets (:class:`CaptureLimits`): the size is first *estimated* without pickling (numpy
  ``nbytes``, pandas ``memory_usage(deep=False)``, ``sys.getsizeof`` plus a bounded sample of
  container items otherwise), so an absurd value is refused before it is copied; then the real
  pickled size is checked. The reason names the size, the limit and the setting to raise
  (``SessionManager.max_variable_bytes`` / ``max_session_bytes``). The estimate of a container
  extrapolates from a sample and counts an object shared by many items more than once: that errs
  towards refusing, and the reason says the size was estimated.

Data stays inline in ``VariableRecord.data``; the store moves large values into blobs.

Restore
-------
:func:`restore_value` turns a record back into a value (raising
:class:`~ipysession.errors.CaptureError` with the reason) and :func:`restore_imports` imports each
record on its own, reporting ``None`` or the reason per record. Functions and classes that lived
in the notebook come back from cloudpickle with a private copy of the globals they used; given
``namespace=``, :func:`restore_value` rebinds them to the live namespace (only functions whose
globals were ``__main__``'s, so wrappers from libraries keep theirs), so that a restored function
sees later changes to the globals it reads, as it did before the restart. cloudpickle keeps one
class object per saved class within a process, so a restored instance is an instance of the
restored class.

Change tracking (:class:`ChangeTracker`)
----------------------------------------
Autosave re-captures only what a cell may have changed, at a cost that grows with what the cell
touched, not with the size of the namespace:

- ``post_cell`` reports a name as *changed* when it is new, when its ``id()`` changed, when the
  cell (parsed with :mod:`ast`) binds it at module scope (assignment, augmented assignment, ``del``,
  import, ``def``, ``class``, ``for``, ``with``, walrus, ``except ... as``, ``match`` captures,
  ``global``) or stores through it (the root of a subscript or attribute target: ``df['x'] = 1``,
  ``a.b = 2``, ``arr[3] += 1``, ``del d[k]``). A change through a name also marks every other
  tracked name bound to the same object (``b = a; b['k'] = 1`` changes ``a`` too).
- A name the cell only *reads* (``df.head()``, ``print(x)``, ``lst.append(1)``) may have been
  mutated. Immutable values (numbers, strings, bytes, small tuples of those) and modules cannot
  be; a value estimated under ``recapture_below`` (256 KiB) is simply re-captured and reported in
  ``ChangeSet.recheck`` too, so the caller can compare the new bytes with the old ones before it
  writes; anything larger, and numpy/pandas objects, functions and classes of any size, are
  compared by :func:`fingerprint` with the fingerprint taken when the tracker last reported them.
- A fingerprint is cheap by construction: the type, the length/shape/dtype, and for buffers a
  blake2b hash of at most 64 evenly spaced 1 KiB slices (numpy arrays, the blocks and index of a
  DataFrame, ``bytes``, ``str``); for containers and objects, the identity and a short summary of
  a bounded sample of their items. Its cost does not depend on the size of the value. The
  trade-off: an in-place change that touches none of the sampled bytes (``arr[12345] = 0`` in a
  large array, made by a call, not an assignment in the cell) goes unseen by ``post_cell``.
  :meth:`ChangeTracker.full_pass` (the manager calls it at an interval) compares every variable,
  not only the names a cell mentioned, so it catches changes made through aliases, functions and
  threads; ``full_pass(deep=True)`` reports every variable for re-capture, which is what catches a
  change that every sample missed (the store's content addressing makes an unchanged value cost a
  pickle and a hash, not a write).
- A cell that does not parse (a magic the caller did not transform, a syntax error) counts every
  identifier in its text as read. Pass IPython's transformed source too: magics then parse
  (``get_ipython().run_line_magic('time', 'x = f()')``), and the Python inside
  ``run_line_magic``/``run_cell_magic`` arguments is analysed as well (``%time x = f()`` binds
  ``x``).
- A fingerprint holds ids of the objects inside the value: it is meaningful only within one
  process. ``VariableRecord.fingerprint`` is informational; the tracker keeps its own.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import io
import itertools
import json
import logging
import os
import pickle
import re
import sys
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import IO, Any, Literal

from ..errors import CaptureError
from ..model import ImportRecord, VariableRecord

__all__ = [
    "DEFAULT_LIMITS",
    "RECAPTURE_BELOW",
    "CaptureLimits",
    "CellNames",
    "ChangeSet",
    "ChangeTracker",
    "capture_value",
    "cell_names",
    "estimate_size",
    "fingerprint",
    "import_matches",
    "imports_in_source",
    "is_persistable_name",
    "restore_imports",
    "restore_value",
    "type_name",
]

logger = logging.getLogger("ipysession")

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: Below this estimated size a value a cell only read is re-captured instead of fingerprinted.
RECAPTURE_BELOW = 256 * KiB

_SLICE = 1 * KiB
_SLICES = 64
_ESTIMATE_SAMPLE = 32
_ESTIMATE_NODES = 256
_ESTIMATE_DEPTH = 3
_FP_SAMPLE = 32
_FP_NODES = 256
_FP_DEPTH = 2
_FP_MAX_ARRAYS = 64
_MAGIC_DEPTH = 3
_REASON_ERROR_CHARS = 200

# --- which names --------------------------------------------------------------------------------

_IPYTHON_NAMES = frozenset(
    {
        "In",
        "Out",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_oh",
        "_dh",
        "_ih",
        "_sh",
        "_exit_code",
        "exit",
        "quit",
        "get_ipython",
    }
)
_NUMBERED = re.compile(r"_i?[0-9]+\Z")


def is_persistable_name(
    name: str,
    exclude_patterns: Iterable[str] = (),
    hidden: Container[str] = frozenset(),
) -> bool:
    """Whether the variable ``name`` of the user namespace is saved at all."""
    if not isinstance(name, str) or not name:
        return False
    if name.startswith("__") or name in _IPYTHON_NAMES or _NUMBERED.match(name):
        return False
    if name in hidden:
        return False
    return not any(fnmatchcase(name, pattern) for pattern in exclude_patterns)


# --- budgets and sizes --------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureLimits:
    """Size budgets for saved values.

    The defaults keep a 50 MB DataFrame comfortably: 256 MiB for one variable, 1 GiB for all the
    variables of a session together.
    """

    max_variable_bytes: int = 256 * MiB
    max_session_bytes: int = 1 * GiB

    def __post_init__(self) -> None:
        for name in ("max_variable_bytes", "max_session_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                msg = f"CaptureLimits.{name} must be a positive number of bytes, not {value!r}"
                raise ValueError(msg)


DEFAULT_LIMITS = CaptureLimits()


def type_name(cls: type) -> str:
    """``module.QualName`` of a type, as recorded in ``VariableRecord.type_name``."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}"


def _type_label(cls: type) -> str:
    # Users know `generator` and `int`, not `builtins.generator`.
    name = type_name(cls)
    return name.removeprefix("builtins.")


def _format_bytes(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _numpy() -> Any:
    # A value can only be an ndarray if numpy is already imported: never import it ourselves.
    return sys.modules.get("numpy")


def _pandas() -> Any:
    return sys.modules.get("pandas")


def _is_ndarray(value: object) -> bool:
    np = _numpy()
    return np is not None and isinstance(value, np.ndarray)


def _pandas_kind(value: object) -> str | None:
    pd = _pandas()
    if pd is None:
        return None
    if isinstance(value, pd.DataFrame):
        return "frame"
    if isinstance(value, pd.Series):
        return "series"
    if isinstance(value, pd.Index):
        return "index"
    return None


def _spaced(total: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in ``range(total)``, first and last included."""
    if total <= count:
        return list(range(total))
    if count == 1:
        return [0]
    last, gaps = total - 1, count - 1
    return [i * last // gaps for i in range(count)]


@dataclass
class _Budget:
    nodes: int
    slices: int = _SLICES


def estimate_size(value: object) -> int:
    """A cheap guess of how many bytes ``value`` takes once pickled, without pickling it.

    Exact enough for numpy arrays, pandas objects, strings and bytes; for containers and objects
    it adds ``sys.getsizeof`` to an extrapolation from a bounded sample of their items, so its
    cost does not depend on their size.
    """
    try:
        return _estimate(value, _Budget(nodes=_ESTIMATE_NODES), 0)
    except Exception:  # a guess must never fail a save; fall back to shallow
        logger.debug("size estimate failed for a %s", type_name(type(value)), exc_info=True)
        return _shallow_size(value)


def _shallow_size(value: object) -> int:
    try:
        return sys.getsizeof(value)
    except Exception:  # noqa: BLE001 - a broken __sizeof__ is the value's problem, not ours
        return 64


def _pandas_nbytes(value: Any, kind: str) -> int:
    if kind == "frame":
        return int(value.memory_usage(index=True, deep=False).sum())
    if kind == "series":
        return int(value.memory_usage(index=True, deep=False))
    return int(value.memory_usage(deep=False))


def _estimate(value: object, budget: _Budget, depth: int) -> int:
    budget.nodes -= 1
    if _is_ndarray(value):
        array: Any = value
        return int(array.nbytes)
    kind = _pandas_kind(value)
    if kind is not None:
        return _pandas_nbytes(value, kind)
    size = _shallow_size(value)
    if depth >= _ESTIMATE_DEPTH or budget.nodes <= 0:
        return size
    items = _sample_items(value)
    if items is None:
        return size
    total, sample = items
    if not sample:
        return size
    budget.nodes -= len(sample)
    seen: set[int] = set()
    sampled = 0
    for item in sample:
        if id(item) in seen:
            continue
        seen.add(id(item))
        sampled += _estimate(item, budget, depth + 1)
    return size + sampled * total // len(sample)


def _sample_items(value: object) -> tuple[int, list[object]] | None:
    """(number of items, a bounded sample of them) for containers and plain objects."""
    if isinstance(value, list):
        return len(value), [
            list.__getitem__(value, i) for i in _spaced(len(value), _ESTIMATE_SAMPLE)
        ]
    if isinstance(value, tuple):
        return len(value), [
            tuple.__getitem__(value, i) for i in _spaced(len(value), _ESTIMATE_SAMPLE)
        ]
    if isinstance(value, dict):
        pairs = itertools.islice(dict.items(value), _ESTIMATE_SAMPLE // 2)
        return len(value) * 2, [x for pair in pairs for x in pair]
    if isinstance(value, (set, frozenset)):
        return len(value), list(itertools.islice(iter(value), _ESTIMATE_SAMPLE))
    if isinstance(value, (type, ModuleType, FunctionType, str, bytes, bytearray)):
        return None
    attrs = _instance_dict(value)
    if attrs is None:
        return None
    return len(attrs), list(itertools.islice(attrs.values(), _ESTIMATE_SAMPLE))


def _instance_dict(value: object) -> dict[str, Any] | None:
    # object.__getattribute__ so that a class's own __getattr__/__getattribute__ never runs.
    try:
        attrs = object.__getattribute__(value, "__dict__")
    except AttributeError:
        return None
    return attrs if isinstance(attrs, dict) else None


# --- fingerprints -------------------------------------------------------------------------------

_IMMUTABLE_SCALARS: frozenset[type] = frozenset(
    {int, float, complex, bool, str, bytes, type(None), range, type(Ellipsis)}
)
_SIZED_BUILTINS = ("builtins", "collections", "array")


def _is_immutable(value: object) -> bool:
    cls = type(value)
    if cls in _IMMUTABLE_SCALARS:
        return True
    if isinstance(value, (tuple, frozenset)) and cls in (tuple, frozenset):
        return len(value) <= _FP_SAMPLE and all(type(x) in _IMMUTABLE_SCALARS for x in value)
    return False


def fingerprint(value: object) -> str | None:
    """A cheap digest that changes when ``value`` (probably) changed in place.

    Covers the type, the length/shape/dtype, a hash of at most 64 evenly spaced 1 KiB slices of
    any buffer (numpy arrays, pandas blocks and indexes, bytes, str), and for containers and
    objects a bounded sample of their items (identity and a shallow summary). Its cost does not
    depend on the size of the value. Holds object ids: meaningful only within one process.
    Returns ``None`` when the value could not be fingerprinted (treat it as changed).
    """
    digest = hashlib.blake2b(digest_size=16)
    try:
        _Fingerprinter(digest).feed(value, 0)
    except Exception:  # an odd object only costs a re-capture
        logger.debug("no fingerprint for a %s", type_name(type(value)), exc_info=True)
        return None
    return digest.hexdigest()


class _Fingerprinter:
    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._budget = _Budget(nodes=_FP_NODES)

    def _put(self, *parts: object) -> None:
        self._digest.update(repr(parts).encode("utf-8", "surrogatepass"))

    def feed(self, value: object, depth: int) -> None:
        self._budget.nodes -= 1
        cls = type(value)
        self._put(type_name(cls), id(cls))
        if _is_ndarray(value):
            self._ndarray(value)
            return
        kind = _pandas_kind(value)
        if kind == "frame":
            self._frame(value)
        elif kind == "series":
            self._series(value)
        elif kind == "index":
            self._index(value)
        elif isinstance(value, (str, bytes, bytearray)):
            self._text(value)
        elif cls in _IMMUTABLE_SCALARS:
            self._put(hash(value))
        elif isinstance(value, (list, tuple)):
            self._sequence(value, depth)
        elif isinstance(value, dict):
            self._mapping(dict.items(value), len(value), depth)
        elif isinstance(value, (set, frozenset)):
            self._put(len(value), [hash(x) for x in itertools.islice(iter(value), _FP_SAMPLE)])
        elif isinstance(value, FunctionType):
            self._function(value)
        elif isinstance(value, type):
            self._put([(k, id(v)) for k, v in itertools.islice(vars(value).items(), _FP_NODES)])
        elif isinstance(value, ModuleType):
            self._put(value.__name__)
        else:
            self._object(value, depth)

    def _item(self, item: object, depth: int) -> None:
        # Identity catches a replaced item; recursing (bounded) catches a mutated nested one.
        if type(item) in _IMMUTABLE_SCALARS and not isinstance(item, (str, bytes)):
            self._put(hash(item))
        elif depth < _FP_DEPTH and self._budget.nodes > 0 and not _is_immutable(item):
            self._put(id(item))
            self.feed(item, depth + 1)
        else:
            self._put(id(item), _safe_len(item))

    def _sequence(self, value: list[Any] | tuple[Any, ...], depth: int) -> None:
        n = len(value)
        self._put(n)
        getitem: Callable[[Any, int], Any] = (
            list.__getitem__ if isinstance(value, list) else tuple.__getitem__
        )
        for i in _spaced(n, _FP_SAMPLE):
            self._item(getitem(value, i), depth)

    def _mapping(self, items: Any, n: int, depth: int) -> None:
        self._put(n)
        head = itertools.islice(items, _FP_SAMPLE // 2)
        # Dicts keep insertion order: the newest entries are at the end.
        tail = itertools.islice(reversed(items), _FP_SAMPLE // 2) if n > _FP_SAMPLE // 2 else ()
        for key, item in itertools.chain(head, tail):
            self._put(_key_token(key))
            self._item(item, depth)

    def _function(self, func: FunctionType) -> None:
        cells: list[int | None] = []
        for cell in func.__closure__ or ():
            try:
                cells.append(id(cell.cell_contents))
            except ValueError:  # an empty cell
                cells.append(None)
        defaults = [id(x) for x in func.__defaults__ or ()]
        kwdefaults = [(k, id(v)) for k, v in (func.__kwdefaults__ or {}).items()]
        attrs = [(k, id(v)) for k, v in itertools.islice(func.__dict__.items(), _FP_SAMPLE)]
        self._put(id(func.__code__), defaults, kwdefaults, cells, attrs)

    def _object(self, value: object, depth: int) -> None:
        self._put(_safe_len(value))
        attrs = _instance_dict(value)
        if attrs is not None:
            self._mapping(attrs.items(), len(attrs), depth)
        for name in _slot_names(type(value)):
            try:
                slot = object.__getattribute__(value, name)
            except AttributeError:
                self._put(name, None)
            else:
                self._put(name)
                self._item(slot, depth)

    def _text(self, value: str | bytes | bytearray) -> None:
        n = len(value)
        self._put(n)
        if isinstance(value, str):
            # A str is immutable: a sample only needs to tell equal-length strings apart cheaply.
            for start in _spaced(max(n - _SLICE, 0) + 1, min(_SLICES, n // _SLICE + 1)):
                self._digest.update(value[start : start + _SLICE].encode("utf-8", "surrogatepass"))
            return
        self._buffer(memoryview(value).cast("B"))

    def _buffer(self, buf: memoryview) -> None:
        n = buf.nbytes
        self._put(n)
        slices = max(self._budget.slices, 1)
        if n <= slices * _SLICE:
            self._digest.update(buf)
            self._budget.slices -= -(-n // _SLICE)
            return
        offsets = _spaced(n - _SLICE + 1, slices)
        self._digest.update(b"".join(buf[o : o + _SLICE] for o in offsets))
        self._budget.slices -= slices

    def _ndarray(self, arr: Any) -> None:
        self._put(arr.shape, arr.dtype.str, arr.strides)
        if arr.size == 0:
            return
        if arr.dtype.hasobject:
            # An object array holds references: a replaced element has a new identity.
            items = arr.flat[_spaced(arr.size, _SLICES)]
            self._put([id(x) for x in items.tolist()])
            return
        np = _numpy()
        base = arr.view(np.ndarray)
        if base.flags.c_contiguous or base.flags.f_contiguous:
            self._buffer(memoryview(base.reshape(-1, order="A").view(np.uint8)))
            return
        count = max(1, min(arr.size, self._budget.slices * _SLICE // max(arr.itemsize, 1)))
        self._digest.update(base.flat[_spaced(arr.size, count)].tobytes())
        self._budget.slices -= max(self._budget.slices, 1)

    def _array_like(self, arr: Any) -> None:
        if _is_ndarray(arr):
            self._ndarray(arr)
            return
        self._put(type_name(type(arr)), len(arr), str(getattr(arr, "dtype", "")))
        # pandas extension arrays keep their data in numpy arrays under these (stable) names.
        for attr in ("_ndarray", "_codes", "_data", "_mask"):
            part = getattr(arr, attr, None)
            if _is_ndarray(part):
                self._ndarray(part)

    def _index(self, index: Any) -> None:
        pd = _pandas()
        self._put(len(index), str(index.dtype))
        if isinstance(index, pd.RangeIndex):
            self._put(index.start, index.stop, index.step)
            return
        if isinstance(index, pd.MultiIndex):
            self._put(index.nlevels)
            for codes in index.codes[:_FP_MAX_ARRAYS]:
                self._array_like(codes)
            return
        values = getattr(index, "_values", None)
        self._array_like(index.array if values is None else values)

    def _series(self, series: Any) -> None:
        self._put(len(series), str(series.dtype), _key_token(series.name))
        self._index(series.index)
        self._array_like(series._values)

    def _frame(self, frame: Any) -> None:
        self._put(frame.shape)
        self._index(frame.columns)
        self._index(frame.index)
        arrays = _frame_arrays(frame)
        picked = [arrays[i] for i in _spaced(len(arrays), _FP_MAX_ARRAYS)]
        self._put(len(arrays))
        # The blocks share one slice budget, so a wide frame costs no more than a long one.
        share = max(1, _SLICES // max(len(picked), 1))
        for arr in picked:
            self._budget.slices = share
            self._array_like(arr)
        self._budget.slices = 0


def _frame_arrays(frame: Any) -> list[Any]:
    manager = getattr(frame, "_mgr", None)
    arrays = getattr(manager, "arrays", None)
    if isinstance(arrays, list):
        return arrays
    # Without the block manager (a future pandas), one column at a time, bounded.
    columns = _spaced(frame.shape[1], _FP_MAX_ARRAYS)
    return [frame.iloc[:, i].array for i in columns]


def _key_token(key: object) -> object:
    if type(key) in _IMMUTABLE_SCALARS:
        return hash(key)
    return id(key)


def _safe_len(value: object) -> int | None:
    # len() of a foreign type may run arbitrary code; only ask types we know.
    if getattr(type(value), "__module__", None) in _SIZED_BUILTINS:
        try:
            return len(value)  # type: ignore[arg-type]
        except TypeError:
            return None
    return None


def _slot_names(cls: type) -> Iterator[str]:
    count = 0
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            yield name
            count += 1
            if count >= _FP_SAMPLE:
                return


# --- capture ------------------------------------------------------------------------------------

_FILE_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)


class _Unsaveable(Exception):
    """Raised inside capture with the reason a value is skipped."""


def capture_value(
    name: str,
    value: object,
    *,
    limits: CaptureLimits = DEFAULT_LIMITS,
    session_used: int = 0,
    imports: Mapping[str, ImportRecord] | None = None,
) -> VariableRecord | ImportRecord:
    """Classify and serialize one variable; never raises for a bad value.

    ``session_used`` is how many bytes the session's other variables already take, for the
    session budget. ``imports`` maps names to the records :func:`imports_in_source` found; one is
    used when it still resolves to ``value`` itself.
    """
    try:
        return _capture(name, value, limits, session_used, imports)
    except _Unsaveable as reason:
        logger.debug("variable %r (%s) is not saved", name, type_name(type(value)))
        return _skipped(name, value, str(reason))
    except Exception as exc:  # capture of one value never fails a save
        logger.debug("capture of %r (%s) failed", name, type_name(type(value)), exc_info=True)
        return _skipped(name, value, _cannot_save(value, exc))


def _skipped(name: str, value: object, reason: str) -> VariableRecord:
    return VariableRecord(name=name, type_name=type_name(type(value)), size=0, skipped=reason)


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > _REASON_ERROR_CHARS:
        text = text[: _REASON_ERROR_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cannot_save(value: object, exc: BaseException) -> str:
    return f"{_type_label(type(value))} objects cannot be saved ({_error_text(exc)})"


def _capture(
    name: str,
    value: object,
    limits: CaptureLimits,
    session_used: int,
    imports: Mapping[str, ImportRecord] | None,
) -> VariableRecord | ImportRecord:
    preferred = imports.get(name) if imports else None
    if preferred is not None and import_matches(preferred, value):
        return preferred
    if isinstance(value, ModuleType):
        return _module_import(name, value)
    as_import = _object_import(name, value)
    if as_import is not None:
        return as_import
    if isinstance(value, _FILE_TYPES):
        return _capture_file(name, value)
    label = _type_label(type(value))
    estimate = estimate_size(value)
    _check_budget(label, estimate, limits, session_used, estimated=True)
    encoding, data = _serialize(value)
    _check_budget(label, len(data), limits, session_used, estimated=False)
    return VariableRecord(
        name=name,
        type_name=type_name(type(value)),
        size=len(data),
        encoding=encoding,
        data=data,
        fingerprint=fingerprint(value),
    )


def _check_budget(
    label: str, size: int, limits: CaptureLimits, session_used: int, *, estimated: bool
) -> None:
    what = f"about {_format_bytes(size)} (estimated)" if estimated else _format_bytes(size)
    if size > limits.max_variable_bytes:
        msg = (
            f"{label} of {what} is over the per-variable limit of "
            f"{_format_bytes(limits.max_variable_bytes)}; raise "
            "SessionManager.max_variable_bytes to save it"
        )
        raise _Unsaveable(msg)
    if session_used + size > limits.max_session_bytes:
        msg = (
            f"{label} of {what} would take the session over its limit of "
            f"{_format_bytes(limits.max_session_bytes)} ({_format_bytes(session_used)} already "
            "used by other variables); raise SessionManager.max_session_bytes to save it"
        )
        raise _Unsaveable(msg)


def _serialize(value: object) -> tuple[str, bytes]:
    first_error: Exception | None = None
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception as exc:  # noqa: BLE001 - any failure means "try cloudpickle"
        first_error = exc
    else:
        if b"__main__" not in data:
            return "pickle", data
    import cloudpickle  # heavy, and only needed for notebook definitions

    try:
        return "cloudpickle", cloudpickle.dumps(value, protocol=5)
    except Exception as exc:  # the value is skipped with this reason
        if first_error is not None:
            logger.debug("pickle failed first with %s", type(first_error).__name__)
        raise _Unsaveable(_cannot_save(value, exc)) from exc


def _module_import(name: str, module: ModuleType) -> ImportRecord:
    module_name = getattr(module, "__name__", None)
    if not isinstance(module_name, str) or sys.modules.get(module_name) is not module:
        msg = (
            f"module {module_name!r} was not imported by name (it was built at run time), so it "
            "cannot be imported again"
        )
        raise _Unsaveable(msg)
    if module_name == "__main__":
        msg = "the __main__ module is the namespace itself and is not saved"
        raise _Unsaveable(msg)
    return ImportRecord(name=name, module=module_name)


def _object_import(name: str, value: object) -> ImportRecord | None:
    """An import record for a function, class, ufunc... that its module exports as itself."""
    if not callable(value):
        return None
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return None
    # `from m import A.B` is not a statement: nested objects are left to pickle, which refers to
    # them by module and qualified name anyway.
    if module_name == "__main__" or not qualname.isidentifier():
        return None
    module = sys.modules.get(module_name)
    if module is None or getattr(module, qualname, None) is not value:
        return None
    return ImportRecord(name=name, module=module_name, attribute=qualname)


def import_matches(record: ImportRecord, value: object) -> bool:
    """Whether importing ``record`` now would bind exactly ``value`` (without importing)."""
    module = sys.modules.get(record.module)
    if module is None:
        return False
    if record.attribute is None:
        top = record.module.split(".")[0]
        if record.name != record.module and "." in record.module and record.name == top:
            return sys.modules.get(top) is value
        return module is value
    target = getattr(module, record.attribute, _MISSING)
    if target is _MISSING:
        target = sys.modules.get(f"{record.module}.{record.attribute}", _MISSING)
    return target is value


_MISSING = object()


# --- files --------------------------------------------------------------------------------------


def _capture_file(name: str, handle: io.IOBase) -> VariableRecord:
    if handle.closed:
        msg = "closed file objects are not saved"
        raise _Unsaveable(msg)
    text = isinstance(handle, io.TextIOWrapper)
    buffered = getattr(handle, "buffer", handle) if text else handle
    raw = getattr(buffered, "raw", buffered)
    if not isinstance(raw, io.FileIO):
        msg = f"{_type_label(type(handle))} objects not backed by a file on disk cannot be saved"
        raise _Unsaveable(msg)
    if isinstance(raw.name, int):
        msg = "a file opened from a file descriptor (not a path) cannot be reopened"
        raise _Unsaveable(msg)
    if not handle.seekable():
        msg = "a file that is not seekable (a pipe, socket or terminal) cannot be reopened"
        raise _Unsaveable(msg)
    if handle.writable():
        # What the user wrote must be on disk before the position that follows it is saved.
        handle.flush()
    try:
        position = handle.tell()
    except OSError as exc:
        msg = f"the position of this file cannot be saved ({_error_text(exc)})"
        raise _Unsaveable(msg) from exc
    path = _file_path(raw)
    doc: dict[str, Any] = {
        "path": str(path),
        "mode": getattr(handle, "mode", raw.mode),
        "position": position,
        "binary": not text,
        "buffered": raw is not handle,
        "encoding": getattr(handle, "encoding", None) if text else None,
        "errors": getattr(handle, "errors", None) if text else None,
    }
    data = json.dumps(doc).encode("utf-8")
    return VariableRecord(
        name=name,
        type_name=type_name(type(handle)),
        size=len(data),
        encoding="file",
        data=data,
        fingerprint=hashlib.blake2b(data, digest_size=16).hexdigest(),
    )


def _file_path(raw: io.FileIO) -> Path:
    """The absolute path of an open file, checked to still be the file the handle has open."""
    fd = raw.fileno()
    proc = Path(f"/proc/self/fd/{fd}")
    path: Path | None = None
    # The name given to open() was relative to the cwd of that moment; Linux knows the real path.
    with contextlib.suppress(OSError):
        link = proc.readlink()
        if link.is_absolute() and not str(link).endswith(" (deleted)"):
            path = link
    if path is None:
        path = Path(os.fsdecode(raw.name)).absolute()
    opened = os.fstat(fd)
    try:
        current = path.stat()
    except OSError as exc:
        msg = f"the file {path} was deleted or moved since it was opened"
        raise _Unsaveable(msg) from exc
    if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
        msg = f"the file {path} was replaced by another file since it was opened"
        raise _Unsaveable(msg)
    return path


def _reopen_mode(mode: str) -> str:
    """The mode that reopens a file without ever truncating or refusing an existing file."""
    plus = "+" in mode
    if "a" in mode:
        return "a+" if plus else "a"
    if "w" in mode or "x" in mode:
        return "r+"
    return "r+" if plus else "r"


def _restore_file(record: VariableRecord, data: bytes) -> IO[Any]:
    try:
        doc = json.loads(data)
        path = Path(doc["path"])
        mode = str(doc["mode"])
        position = int(doc["position"])
        binary = bool(doc["binary"])
    except (ValueError, KeyError, TypeError) as exc:
        what = f"Variable '{record.name}' holds a damaged file description ({_error_text(exc)})"
        raise CaptureError(what) from exc
    if not path.exists():
        what = f"Variable '{record.name}' was an open file, and the file no longer exists"
        raise CaptureError(what, path=path, hint="Open it again if it was moved")
    reopen = _reopen_mode(mode)
    try:
        if binary:
            buffering = -1 if doc.get("buffered", True) else 0
            handle: IO[Any] = open(path, reopen + "b", buffering=buffering)  # noqa: SIM115
        else:
            handle = open(  # noqa: SIM115 - the open file is the restored value
                path, reopen, encoding=doc.get("encoding"), errors=doc.get("errors")
            )
    except OSError as exc:
        what = f"Variable '{record.name}': the file could not be reopened ({_error_text(exc)})"
        raise CaptureError(what, path=path) from exc
    try:
        _seek_saved(handle, path, position, binary=binary, append_only=reopen == "a")
    except BaseException:
        handle.close()
        raise
    return handle


def _seek_saved(
    handle: IO[Any], path: Path, position: int, *, binary: bool, append_only: bool
) -> None:
    # A text position is an opaque cookie; in CPython its low 64 bits are a byte offset at or
    # before the real one, which is all the length check needs.
    byte_position = position if binary else position & ((1 << 64) - 1)
    size = path.stat().st_size
    if byte_position > size:
        what = (
            f"The file is now {size} bytes, shorter than the saved position {byte_position}: it "
            "was truncated or replaced"
        )
        raise CaptureError(what, path=path, hint="Open it again to continue with the new content")
    if append_only:
        return  # every write goes to the end; the position of an "a" handle means nothing
    try:
        handle.seek(position)
    except (OSError, ValueError) as exc:
        what = f"The file could not be positioned where it was ({_error_text(exc)})"
        raise CaptureError(what, path=path) from exc


# --- restore ------------------------------------------------------------------------------------


def restore_value(
    record: VariableRecord,
    data: bytes,
    *,
    namespace: MutableMapping[str, Any] | None = None,
) -> Any:
    """Turn a saved variable back into a value.

    ``data`` is the record's bytes, wherever the store kept them. With ``namespace`` (the user
    namespace being restored), notebook functions and the methods of notebook classes are rebound
    to it, so they read live globals. Raises :class:`CaptureError` with the reason on failure.
    """
    if record.skipped is not None:
        what = f"Variable '{record.name}' was not saved: {record.skipped}"
        raise CaptureError(what)
    if record.encoding == "file":
        return _restore_file(record, data)
    if record.encoding not in ("pickle", "cloudpickle"):
        what = (
            f"Variable '{record.name}' was saved with encoding {record.encoding!r}, which this "
            "ipysession does not know"
        )
        raise CaptureError(what, hint="It was probably written by a newer ipysession: upgrade")
    try:
        # cloudpickle output is a pickle whose reconstructors import cloudpickle themselves.
        value = pickle.loads(data)
    except Exception as exc:  # any unpickling error becomes a reason
        what = (
            f"Variable '{record.name}' ({record.type_name}) could not be restored "
            f"({_error_text(exc)})"
        )
        hint = (
            "Install the package it needs"
            if isinstance(exc, ImportError)
            else "It may have been saved with another version of the library that defines it"
        )
        raise CaptureError(what, hint=hint) from exc
    if record.encoding == "cloudpickle" and namespace is not None:
        value = _rebind(value, namespace)
    return value


def _rebind(value: Any, namespace: MutableMapping[str, Any]) -> Any:
    if isinstance(value, FunctionType):
        return _rebound_function(value, namespace)
    cls = value if isinstance(value, type) else type(value)
    if cls.__module__ == "__main__":
        _rebind_class(cls, namespace)
    return value


def _rebound_function(func: FunctionType, namespace: MutableMapping[str, Any]) -> FunctionType:
    # Only functions whose globals were the notebook's: library wrappers (dataclass __repr__,
    # functools.wraps) carry __module__ == "__main__" but read their own module's globals.
    if func.__globals__ is namespace or func.__globals__.get("__name__") != "__main__":
        return func
    if not isinstance(namespace, dict):
        return func
    rebound = FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    rebound.__kwdefaults__ = func.__kwdefaults__
    rebound.__qualname__ = func.__qualname__
    rebound.__doc__ = func.__doc__
    rebound.__module__ = func.__module__
    rebound.__annotations__ = func.__annotations__
    rebound.__dict__.update(func.__dict__)
    if hasattr(func, "__type_params__"):  # Python 3.12+
        setattr(rebound, "__type_params__", func.__type_params__)  # noqa: B010
    return rebound


def _rebind_class(cls: type, namespace: MutableMapping[str, Any]) -> None:
    for attr, member in list(vars(cls).items()):
        replacement: object = member
        if isinstance(member, FunctionType):
            replacement = _rebound_function(member, namespace)
        elif isinstance(member, (staticmethod, classmethod)) and isinstance(
            member.__func__, FunctionType
        ):
            func = _rebound_function(member.__func__, namespace)
            if func is not member.__func__:
                replacement = type(member)(func)
        elif isinstance(member, property):
            accessors: list[Any] = [member.fget, member.fset, member.fdel]
            fget, fset, fdel = (
                _rebound_function(f, namespace) if isinstance(f, FunctionType) else f
                for f in accessors
            )
            if (fget, fset, fdel) != (member.fget, member.fset, member.fdel):
                replacement = property(fget, fset, fdel, member.__doc__)
        if replacement is not member:
            try:
                setattr(cls, attr, replacement)
            except (AttributeError, TypeError):
                logger.debug("could not rebind %s.%s", type_name(cls), attr, exc_info=True)


def restore_imports(
    records: Iterable[ImportRecord], user_ns: MutableMapping[str, Any]
) -> list[tuple[ImportRecord, str | None]]:
    """Import each record into ``user_ns``; ``None`` for success, else the reason it failed.

    One failure never stops the rest.
    """
    results: list[tuple[ImportRecord, str | None]] = []
    for record in records:
        try:
            value = _resolve_import(record)
        except ImportError as exc:
            results.append((record, str(exc) or type(exc).__name__))
            continue
        except Exception as exc:  # noqa: BLE001 - a module that fails at import is one failure
            results.append((record, _error_text(exc)))
            continue
        user_ns[record.name] = value
        results.append((record, None))
    return results


def _resolve_import(record: ImportRecord) -> Any:
    if record.module.startswith("."):
        msg = f"relative import {record.statement()!r} cannot be restored"
        raise ImportError(msg)
    module = importlib.import_module(record.module)
    if record.attribute is None:
        top = record.module.split(".")[0]
        if record.name != record.module and "." in record.module and record.name == top:
            return sys.modules[top]
        return module
    try:
        return getattr(module, record.attribute)
    except AttributeError:
        pass
    submodule = f"{record.module}.{record.attribute}"
    try:
        return importlib.import_module(submodule)
    except ModuleNotFoundError as exc:
        if exc.name != submodule:
            raise
    msg = f"cannot import name {record.attribute!r} from {record.module!r}"
    raise ImportError(msg)


# --- what a cell touches ------------------------------------------------------------------------


@dataclass(frozen=True)
class CellNames:
    """The names a cell binds, stores through, and otherwise mentions, at module scope.

    ``parsed`` is False when neither the source nor its transformed form parsed: then every
    identifier in the text is in ``read``.
    """

    bound: frozenset[str] = frozenset()
    mutated: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()
    parsed: bool = True


_IDENTIFIER = re.compile(r"[^\W\d]\w*")
_MAGIC_CALLS = {"run_line_magic": 1, "run_cell_magic": 2}


def cell_names(source: str, transformed: str | None = None) -> CellNames:
    """What a cell may have changed, from its source (and IPython's transformed source)."""
    for text in (transformed, source):
        if text is None:
            continue
        collector = _Collector(0)
        if collector.analyse(text):
            return collector.result()
    words = set(_IDENTIFIER.findall(source))
    if transformed is not None:
        words.update(_IDENTIFIER.findall(transformed))
    return CellNames(read=frozenset(words), parsed=False)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Collector(ast.NodeVisitor):
    def __init__(self, magic_depth: int) -> None:
        self.bound: set[str] = set()
        self.mutated: set[str] = set()
        self.read: set[str] = set()
        self._magic_depth = magic_depth
        # One set of `global` names per enclosing function or class body; empty at module scope.
        self._scopes: list[set[str]] = []
        self._in_comprehension_target = False

    def analyse(self, source: str) -> bool:
        tree = _parse(source)
        if tree is None:
            return False
        self.visit(tree)
        return True

    def result(self) -> CellNames:
        return CellNames(
            bound=frozenset(self.bound),
            mutated=frozenset(self.mutated - self.bound),
            read=frozenset(self.read - self.bound - self.mutated),
        )

    def _bind(self, name: str) -> None:
        if not self._scopes or name in self._scopes[-1]:
            self.bound.add(name)

    # bindings

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            if not self._in_comprehension_target:
                self._bind(node.id)
        else:
            self.read.add(node.id)

    def _store_through(self, node: ast.Attribute | ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node)
            if root is not None:
                # In a function body the store happens only if it is called: a possible change.
                (self.read if self._scopes else self.mutated).add(root)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._store_through(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._store_through(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        # A walrus binds in the enclosing scope, even inside a comprehension.
        if isinstance(node.target, ast.Name):
            self._bind(node.target.id)
        self.visit(node.value)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._in_comprehension_target = True
        self.visit(node.target)
        self._in_comprehension_target = False
        self.visit(node.iter)
        for condition in node.ifs:
            self.visit(condition)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        if self._scopes:
            self._scopes[-1].update(node.names)
        else:
            self.bound.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)

    # scopes

    def _visit_body(self, body: list[ast.stmt]) -> None:
        self._scopes.append(set())
        for statement in body:
            self.visit(statement)
        self._scopes.pop()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._bind(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._visit_body(node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def visit_arg(self, node: ast.arg) -> None:
        if node.annotation is not None:
            self.visit(node.annotation)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._scopes.append(set())
        self.visit(node.body)
        self._scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._visit_body(node.body)

    # magics, as IPython transforms them: get_ipython().run_line_magic('time', 'x = f()')

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in _MAGIC_CALLS:
            return
        position = _MAGIC_CALLS[func.attr]
        if len(node.args) <= position or self._magic_depth >= _MAGIC_DEPTH:
            return
        body = node.args[position]
        if not isinstance(body, ast.Constant) or not isinstance(body.value, str):
            return
        inner = _Collector(self._magic_depth + 1)
        inner._scopes = [set(s) for s in self._scopes]
        if inner.analyse(body.value):
            self.bound.update(inner.bound)
            self.mutated.update(inner.mutated)
            self.read.update(inner.read)
        else:
            self.read.update(_IDENTIFIER.findall(body.value))


def imports_in_source(source: str) -> list[ImportRecord]:
    """The imports a cell makes at module scope, in order, exactly as written.

    Imports inside ``if``/``try``/``with``/loops count; those in function and class bodies, star
    imports and relative imports do not. ``import a.b`` gives ``ImportRecord("a", "a.b")``, so
    several records may bind the same name (``import a.b; import a.c``): keep them all. Python in
    ``run_line_magic``/``run_cell_magic`` arguments of a transformed cell is read as well; check a
    record with :func:`import_matches` before trusting it (``capture_value`` does).
    """
    tree = _parse(source)
    if tree is None:
        return []
    records: list[ImportRecord] = []
    _collect_imports(tree.body, records, 0)
    return records


def _collect_imports(
    statements: Iterable[ast.stmt], records: list[ImportRecord], depth: int
) -> None:
    for statement in statements:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                name = alias.asname or alias.name.split(".")[0]
                records.append(ImportRecord(name=name, module=alias.name))
        elif isinstance(statement, ast.ImportFrom):
            if statement.level or statement.module is None:
                continue
            for alias in statement.names:
                if alias.name == "*":
                    continue
                records.append(
                    ImportRecord(
                        name=alias.asname or alias.name,
                        module=statement.module,
                        attribute=alias.name,
                    )
                )
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        elif isinstance(statement, ast.Expr) and depth < _MAGIC_DEPTH:
            body = _magic_body(statement.value)
            inner = _parse(body) if body is not None else None
            if inner is not None:
                _collect_imports(inner.body, records, depth + 1)
        else:
            for attr in ("body", "orelse", "finalbody"):
                _collect_imports(getattr(statement, attr, ()), records, depth)
            for handler in getattr(statement, "handlers", ()):
                _collect_imports(handler.body, records, depth)
            for case in getattr(statement, "cases", ()):
                _collect_imports(case.body, records, depth)


def _magic_body(node: ast.expr) -> str | None:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    position = _MAGIC_CALLS.get(node.func.attr)
    if position is None or len(node.args) <= position:
        return None
    body = node.args[position]
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        return body.value
    return None


# --- change tracking ----------------------------------------------------------------------------

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
        missing = _MISSING
        for name, state in self._state.items():
            value = user_ns.get(name, missing)
            if value is missing or not self.persistable(name):
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
        if _is_immutable(value) or isinstance(value, (ModuleType, BuiltinFunctionType)):
            return "ignore"
        if isinstance(value, (FunctionType, type)) or _is_ndarray(value):
            return "fingerprint"
        if _pandas_kind(value) is not None:
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
