"""Bounded-cost measures of a value: its estimated size and a sampled fingerprint.

Both look at a bounded sample of the value, never at all of it, so their cost does not depend on
its size; neither imports numpy or pandas (a value can only be one of theirs if the user imported
them already).

Size estimate (:func:`estimate_size`)
-------------------------------------
A guess of the pickled size made without pickling, so that capture refuses an absurd value before
it copies it: numpy ``nbytes``, pandas ``memory_usage(deep=False)``, ``sys.getsizeof`` plus a
bounded sample of container items otherwise. The estimate of a container extrapolates from a sample
and counts an object shared by many items more than once: that errs towards refusing.

Fingerprint (:func:`fingerprint`)
---------------------------------
A digest that changes when the value (probably) changed in place, cheap by construction: the type,
the length/shape/dtype, and for buffers a blake2b hash of at most 64 evenly spaced 1 KiB slices
(numpy arrays, the blocks and index of a DataFrame, ``bytes``, ``str``); for containers and
objects, the identity and a short summary of a bounded sample of their items. The trade-off: an
in-place change that touches none of the sampled bytes (``arr[12345] = 0`` in a large array) goes
unseen; :class:`~ipysession.capture.tracker.ChangeTracker` makes up for it with full passes.

A fingerprint holds ids of the objects inside the value: it is meaningful only within one process.
``VariableRecord.fingerprint`` is informational; the tracker keeps its own.

:func:`is_immutable`, :func:`is_ndarray` and :func:`pandas_kind` are the tests both measures use;
the tracker uses them too, to choose how to check a value.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import Any

from ipysession.capture.describe import KiB, type_name

__all__ = [
    "estimate_size",
    "fingerprint",
    "imported",
    "is_immutable",
    "is_ndarray",
    "pandas_kind",
    "register_nbytes",
]

logger = logging.getLogger("ipysession")

_SLICE = 1 * KiB
_SLICES = 64
_ESTIMATE_SAMPLE = 32
_ESTIMATE_NODES = 256
_ESTIMATE_DEPTH = 3
_FP_SAMPLE = 32
_FP_NODES = 256
_FP_DEPTH = 2
_FP_MAX_ARRAYS = 64

# --- what kind of value -------------------------------------------------------------------------


def imported(name: str) -> Any:
    """Module ``name`` if it is imported, else None (never imports it). A module still being
    imported, on a thread restoring imports in the background, counts as not imported yet:
    its attributes are not all there, and importing it here would wait for that thread."""
    module = sys.modules.get(name)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


def _numpy() -> Any:
    # A value can only be an ndarray if numpy is already imported: never import it ourselves.
    return imported("numpy")


def _pandas() -> Any:
    return imported("pandas")


def is_ndarray(value: object) -> bool:
    """Whether ``value`` is a numpy array (never imports numpy)."""
    np = _numpy()
    return np is not None and isinstance(value, np.ndarray)


def pandas_kind(value: object) -> str | None:
    """``"frame"``, ``"series"`` or ``"index"`` for a pandas object, else None (no import)."""
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


# --- size estimates -----------------------------------------------------------------------------

#: Array types other than numpy's, by exact type: the bytes a value saves (a torch tensor: its
#: whole storage, out of band). Without it a 10 GB GPU tensor would be estimated at 80 bytes,
#: and copied to host memory in full before the real size refused it.
_NBYTES: dict[type, Callable[[Any], int]] = {}


def register_nbytes(cls: type, nbytes: Callable[[Any], int]) -> None:
    """Estimate instances of exactly ``cls`` as ``nbytes(value)`` bytes."""
    _NBYTES[cls] = nbytes


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
    if is_ndarray(value):
        array: Any = value
        return int(array.nbytes)
    nbytes = _NBYTES.get(type(value))
    if nbytes is not None:
        return int(nbytes(value))
    kind = pandas_kind(value)
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


def is_immutable(value: object) -> bool:
    """Whether ``value`` cannot change in place: a scalar, or a small tuple or frozenset of them."""
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
        if is_ndarray(value):
            self._ndarray(value)
            return
        kind = pandas_kind(value)
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
        elif depth < _FP_DEPTH and self._budget.nodes > 0 and not is_immutable(item):
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
        if is_ndarray(arr):
            self._ndarray(arr)
            return
        self._put(type_name(type(arr)), len(arr), str(getattr(arr, "dtype", "")))
        # pandas extension arrays keep their data in numpy arrays under these (stable) names.
        for attr in ("_ndarray", "_codes", "_data", "_mask"):
            part = getattr(arr, attr, None)
            if is_ndarray(part):
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
