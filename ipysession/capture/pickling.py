"""Pickling values with protocol 5 out-of-band buffers, and groups of values as one pickle.

What this module adds to ``pickle.dumps(value, protocol=5)``:

- **Out-of-band buffers.** A value that exposes its raw memory to pickle (numpy arrays, and so
  pandas columns; any library that supports protocol 5 out-of-band data) hands each buffer of
  at least :data:`OUT_OF_BAND_MIN` bytes to the writer apart from the pickle stream
  (:class:`Serialized` ``.buffers``). The store seals each one as its own blob, and on restore
  the array is rebuilt on the decrypted memory itself: no copy of a large array is ever made by
  unpickling. Smaller buffers stay in the stream.
- **Groups.** :func:`serialize_group` pickles the values of several variables as one tuple, so
  that objects they share (``b = a``, ``d["x"] = a``, a cycle between two objects) are pickled
  once and shared again when the tuple is unpickled. Within a group a numpy view of an array
  another member holds is pickled as a view of it (offset, shape, strides), so
  ``view.base is big`` holds again and the memory is not doubled.
- **A hook for other array types** (:func:`register_reducer`): a reducer registered for a type
  (torch tensors, JAX arrays, ...) returns a reduce tuple whose arguments may hold
  :class:`pickle.PickleBuffer` objects; those go out of band like numpy's. The function it names
  is imported on restore like any pickled reference, so a new reducer needs no format change.

Nothing here knows IPython or the store. cloudpickle is imported only for values plain pickle
cannot take by reference (notebook functions and classes).
"""

from __future__ import annotations

import contextvars
import io
import logging
import pickle
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ipysession import memory
from ipysession.capture.describe import KiB, type_name
from ipysession.capture.sizing import is_ndarray

__all__ = [
    "OUT_OF_BAND_MIN",
    "Serialized",
    "digest_parts",
    "guarded",
    "imports_when_called",
    "loads",
    "register_reducer",
    "serialize",
    "serialize_group",
]

logger = logging.getLogger("ipysession")

#: Buffers from this size up are kept out of band; smaller ones stay in the pickle stream (one
#: blob per small array would cost more in files than it saves in copies).
OUT_OF_BAND_MIN = 64 * KiB

Reducer = Callable[[Any], Any]
#: Reducers by exact type, checked before pickle's own (see :func:`register_reducer`).
_REDUCERS: dict[type, Reducer] = {}


def register_reducer(cls: type, reducer: Reducer) -> None:
    """Pickle instances of exactly ``cls`` with ``reducer`` (a ``__reduce__``-like function).

    The reduce tuple it returns may hold :class:`pickle.PickleBuffer` objects wrapping the value's
    raw memory: large ones are saved out of band, as their own blobs, and handed back on restore
    as writable buffers that the rebuilding function can use without a copy. The rebuilding
    function must be importable by name wherever the session is restored.
    """
    _REDUCERS[cls] = reducer


@dataclass(frozen=True)
class Serialized:
    """A pickled value: its encoding (``"pickle"`` or ``"cloudpickle"``), the pickle stream and
    the out-of-band buffers it refers to, in order."""

    encoding: str
    data: bytes
    buffers: tuple[bytes | memoryview, ...] = field(default=(), repr=False)

    @property
    def size(self) -> int:
        return len(self.data) + sum(len(b) for b in self.buffers)


class _Needs(Exception):
    """Plain pickle refers to ``__main__``: the value needs cloudpickle."""


def serialize(value: object) -> Serialized:
    """Pickle one value (protocol 5, large buffers out of band); cloudpickle when plain pickle
    fails or would refer to ``__main__``. Raises what the last attempt raised."""
    return _serialize(value, views_of=frozenset())


def serialize_group(values: Sequence[object], *, views_of: Collection[int]) -> Serialized:
    """Pickle ``values`` as one tuple, so the objects they share are shared again when it is
    unpickled. ``views_of`` are the ids of the arrays whose views (in any member) are pickled as
    views of them rather than as copies: arrays the group holds anyway."""
    return _serialize(tuple(values), views_of=frozenset(views_of))


def _serialize(value: object, *, views_of: frozenset[int]) -> Serialized:
    first_error: Exception | None = None
    try:
        return _dump(value, pickle.Pickler, views_of, refuse_main=True)
    except _Needs:
        pass
    except Exception as exc:  # noqa: BLE001 - any failure means "try cloudpickle"
        first_error = exc
    import cloudpickle  # heavy, and only needed for notebook definitions

    try:
        return _dump(value, cloudpickle.CloudPickler, views_of, refuse_main=False)
    except Exception:
        if first_error is not None:
            logger.debug("pickle failed first with %s", type(first_error).__name__)
        raise


def _dump(
    value: object, base: type[pickle.Pickler], views_of: frozenset[int], *, refuse_main: bool
) -> Serialized:
    buffers: list[bytes | memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        with buffer.raw() as raw:
            if raw.nbytes < OUT_OF_BAND_MIN:
                return True  # in band
            # A copy, made once: the writer seals it later, and the live array may change
            # meanwhile (bytes, and a reducer's own host copy, are kept as they are).
            buffers.append(memory.snapshot(raw))
        return False

    stream = io.BytesIO()
    pickler = _pickler_class(base, views_of)(stream, protocol=5, buffer_callback=out_of_band)
    if views_of:
        pickler.views_of = views_of  # type: ignore[attr-defined]
    pickler.dump(value)
    data = stream.getvalue()
    # The ``b"__main__"`` test is deliberately cheap: the stream holds no array data (that is
    # out of band), and a string that happens to contain it only costs a slower cloudpickle.
    if refuse_main and b"__main__" in data:
        raise _Needs
    encoding = "pickle" if base is pickle.Pickler else "cloudpickle"
    return Serialized(encoding, data, tuple(buffers))


_PICKLERS: dict[type, type[pickle.Pickler]] = {}


def _pickler_class(base: type[pickle.Pickler], views_of: frozenset[int]) -> type[pickle.Pickler]:
    """``base``, or a subclass that applies registered reducers and (in groups) view reduction.

    Plain ``base`` when neither applies: a Python ``reducer_override`` is a call per object.
    """
    if not views_of and not _REDUCERS:
        return base
    cls = _PICKLERS.get(base)
    if cls is None:
        cls = type(f"_Ipysession{base.__name__}", (base,), {"reducer_override": _reducer_override})
        _PICKLERS[base] = cls
    return cls


def _reducer_override(self: Any, obj: Any) -> Any:
    reducer = _REDUCERS.get(type(obj))
    if reducer is not None:
        return reducer(obj)
    views_of: frozenset[int] = getattr(self, "views_of", frozenset())
    if views_of and is_ndarray(obj):
        reduced = _as_view(obj, views_of)
        if reduced is not None:
            return reduced
    parent = super(type(self), self)
    if hasattr(parent, "reducer_override"):  # cloudpickle's own (functions, classes)
        return parent.reducer_override(obj)
    return NotImplemented


def _as_view(array: Any, views_of: frozenset[int]) -> tuple[Any, ...] | None:
    if array.dtype.hasobject:
        return None
    root = array_root(array)
    if root is array:
        return _as_root(array) if id(array) in views_of else None
    if id(root) not in views_of:
        return None
    try:
        offset = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    except (AttributeError, KeyError, TypeError):
        return None
    if offset < 0 or offset > root.nbytes:
        return None
    args = (root, array.dtype, array.shape, offset, array.strides)
    try:  # what the restore will do, done now: a view it could not rebuild is pickled as a copy
        _rebuild_view(*args)
    except Exception:  # noqa: BLE001 - any refusal means "not as a view"
        return None
    return (_rebuild_view, args)


def _as_root(array: Any) -> tuple[Any, ...] | None:
    """An array that views of it are pickled against: rebuilt directly on its buffer, so that
    it owns it (numpy's own reduction rebuilds it as a view of a flat array, and the views of
    it would then say ``.base`` is that flat array, not it)."""
    order: Literal["C", "F"]
    if array.flags.c_contiguous:
        order = "C"
    elif array.flags.f_contiguous:
        order = "F"
    else:
        return None
    args = (pickle.PickleBuffer(array), array.dtype, array.shape, order, array.flags.writeable)
    return (_rebuild_root, args)


def _rebuild_root(
    buffer: Any, dtype: Any, shape: Any, order: Literal["C", "F"], writeable: bool
) -> Any:
    """An array on ``buffer`` itself (pickled references this function by name: keep it)."""
    import numpy as np

    array = np.ndarray(shape, dtype=dtype, buffer=buffer, order=order)
    if not writeable:
        array.flags.writeable = False
    return array


def _rebuild_view(root: Any, dtype: Any, shape: Any, offset: int, strides: Any) -> Any:
    """A view of ``root`` as it was (pickled references this function by name: keep it)."""
    import numpy as np

    return np.ndarray(shape, dtype=dtype, buffer=root, offset=offset, strides=strides)


def array_root(array: Any) -> Any:
    """The array whose memory ``array`` uses: itself, or the last ndarray along ``.base``."""
    root = array
    base = getattr(root, "base", None)
    while base is not None and is_ndarray(base):
        root = base
        base = getattr(root, "base", None)
    return root


#: Called with the module of every global a :func:`loads` in this context looks up, before it
#: is imported (see :func:`guarded`); None: plain ``pickle.loads``.
_MODULE_CHECK: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "ipysession_module_check", default=None
)


@contextmanager
def guarded(check: Callable[[str], None] | None) -> Iterator[None]:
    """Within the block, :func:`loads` calls ``check(module)`` before importing the module of
    each class or function the stream names; ``check`` may raise to stop the unpickling.

    Why: while a module is imported on another thread, importing it here would wait on its
    import lock. The restore refuses such a value and binds it later instead
    (:mod:`ipysession.session.imports_loading`). ``None`` leaves :func:`loads` as it is.
    """
    token = _MODULE_CHECK.set(check)
    try:
        yield
    finally:
        _MODULE_CHECK.reset(token)


_Function = TypeVar("_Function", bound=Callable[..., Any])
_IMPORTS_WHEN_CALLED = "__ipysession_imports_when_called__"


def imports_when_called(library: str) -> Callable[[_Function], _Function]:
    """Mark a rebuilding function that imports ``library`` when called (capture/tensors.py:
    a tensor's storage is rebuilt before the stream names anything of torch). Unpickling under
    :func:`guarded` checks the library with the function, instead of importing a library still
    being imported in the background on the main thread."""

    def mark(function: _Function) -> _Function:
        setattr(function, _IMPORTS_WHEN_CALLED, library)
        return function

    return mark


class _CheckedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, check: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._check = check

    def find_class(self, module: str, name: str) -> Any:
        self._check(module)
        found = super().find_class(module, name)
        library = getattr(found, _IMPORTS_WHEN_CALLED, None)
        if isinstance(library, str):
            self._check(library)
        if name == "subimport" and module.startswith("cloudpickle"):
            # cloudpickle brings a module a function reads back by importing it by name.
            return self._checked_import(found)
        return found

    def _checked_import(self, subimport: Callable[[str], Any]) -> Callable[[str], Any]:
        def checked(name: str) -> Any:
            self._check(name)
            return subimport(name)

        return checked


def loads(data: bytes | bytearray | memoryview, buffers: Sequence[bytearray | memoryview]) -> Any:
    """Unpickle a stream with its out-of-band buffers (arrays are rebuilt on them, uncopied)."""
    check = _MODULE_CHECK.get()
    if check is None:
        return pickle.loads(data, buffers=buffers)
    # Only while a module is imported in the background: each global looked up is checked
    # first. The stream is read from a file object (a copy of it unless it is bytes: small,
    # as arrays' memory is out of band and never copied).
    return _CheckedUnpickler(io.BytesIO(data), check, buffers=buffers).load()


def digest_parts(
    value: object,
    encoding: str,
    hasher: Callable[[], Any],
) -> tuple[str, list[str]] | None:
    """The keyed hashes of what :func:`serialize` would store for ``value`` now: the stream's,
    and each out-of-band buffer's, computed without copying any buffer. ``None`` if ``value``
    does not serialize as ``encoding`` (then it is not what was stored).

    A value is still what its blobs hold when these match their ids: an unchanged 100 MB array
    costs a hash of it, not a second copy in memory.
    """
    if encoding == "pickle":
        base: type[pickle.Pickler] = pickle.Pickler
    elif encoding == "cloudpickle":
        import cloudpickle

        base = cloudpickle.CloudPickler
    else:
        return None
    buffer_ids: list[str] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        with buffer.raw() as raw:
            if raw.nbytes < OUT_OF_BAND_MIN:
                return True
            digest = hasher()
            digest.update(raw)
            buffer_ids.append(digest.hexdigest())
        return False

    stream = hasher()
    try:
        pickler = _pickler_class(base, frozenset())(
            _Feed(stream.update), protocol=5, buffer_callback=out_of_band
        )
        pickler.dump(value)
    except Exception:  # noqa: BLE001 - any failure means "not the stored bytes any more"
        logger.debug("serializing %s as %s failed", type_name(type(value)), encoding)
        return None
    return stream.hexdigest(), buffer_ids


class _Feed:
    """The file object a pickler writes to: each piece goes to ``update``, uncopied."""

    def __init__(self, update: Callable[[memoryview], object]) -> None:
        self._update = update

    def write(self, data: Any) -> int:
        # Large buffers arrive as pickle.PickleBuffer, which has no len().
        with memoryview(data) as view:
            if view.c_contiguous:
                self._update(view)
            else:  # a Fortran-ordered array: its bytes in memory order, as pickle stores them
                self._update(memoryview(view.tobytes(order="A")))
            return view.nbytes
