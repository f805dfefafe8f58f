"""Capture and restore of the user namespace: how each value is saved, and how it comes back.

(About 500 lines: it is the facade of capture/, and most of it is the one decision of how a
value is saved -- pickle, cloudpickle, re-import, reopen, or skipped with its reason.)

This module and the ones beside it work on a plain namespace dict (``shell.user_ns``) and cell
source strings; none of them imports IPython, so all of it is tested without a shell. This module is
the entry point: every name in its ``__all__`` can be imported from here, wherever it is defined.

Where the parts live
--------------------
- :mod:`~ipysession.capture.names`: which names are saved at all (:func:`is_persistable_name`).
- :mod:`~ipysession.capture.cellnames`: what a cell binds, stores through, reads and imports
  (:func:`cell_names`, :func:`imports_in_source`).
- :mod:`~ipysession.capture.sizing`: estimated sizes and sampled fingerprints
  (:func:`estimate_size`, :func:`fingerprint`).
- :mod:`~ipysession.capture.tracker`: which variables to capture again after a cell
  (:class:`ChangeTracker`, :class:`ChangeSet`).
- :mod:`~ipysession.capture.files`: open file objects, saved and reopened.
- :mod:`~ipysession.capture.covars`: which variables share objects (:class:`CoVariables`).
- :mod:`~ipysession.capture.pickling`: protocol 5 with out-of-band buffers; groups as one pickle.
- :mod:`~ipysession.capture.describe`: type names, sizes and errors as records and reasons show
  them (:func:`type_name`).
- this module: the budgets (:class:`CaptureLimits`), :func:`capture_value`, :func:`restore_value`,
  :func:`restore_imports`, and whether a value is an import (:func:`import_matches`).

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
- Open files on a real path are saved as encoding ``"file"`` (the path, mode and position) and
  reopened at the same position on restore, never truncated: see :mod:`~ipysession.capture.files`.
- Everything else is pickled with protocol 5 (encoding ``"pickle"``). When that fails, or when the
  pickle refers to ``__main__`` (a function, class or instance of a class defined in the notebook:
  a reference to ``__main__`` is useless in the next kernel), cloudpickle serializes the value by
  value (encoding ``"cloudpickle"``). The ``b"__main__" in data`` test is deliberately cheap; a
  string that happens to contain ``__main__`` only costs a slower, equally correct cloudpickle.
- Buffers of 64 KiB and more that a value hands to pickle (numpy arrays, pandas columns) are kept
  out of band (``VariableRecord.buffers``): the store seals each as its own blob, and
  :func:`restore_value` rebuilds the array on the decrypted memory itself (see
  :mod:`~ipysession.capture.pickling`).
- Variables that share objects are captured together by :func:`capture_group` (found by
  :mod:`~ipysession.capture.covars`): one record holds the pickle of the tuple of their values,
  the others refer to it, and :func:`restore_group` brings them back sharing those objects.
- A value that neither can serialize (generators, locks, sockets, ...) is recorded as skipped, with
  a reason naming its type and the error: ``"generator objects cannot be saved (TypeError: cannot
  pickle 'generator' object)"``. Capture never raises for a bad value.
- Budgets (:class:`CaptureLimits`): the size is first *estimated* without pickling
  (:func:`estimate_size`), so an absurd value is refused before it is copied; then the real pickled
  size is checked. The reason names the size, the limit and the setting to raise
  (``SessionManager.max_variable_bytes`` / ``max_session_bytes``). An estimate errs towards
  refusing, and the reason says the size was estimated.

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
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Collection, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import Any

from ipysession.capture import pickling, tensors
from ipysession.capture.cellnames import CellNames, cell_names, imports_in_source
from ipysession.capture.describe import (
    GiB,
    MiB,
    Unsaveable,
    budget_hint,
    error_text,
    format_bytes,
    type_label,
    type_name,
)
from ipysession.capture.files import FILE_TYPES, capture_file, restore_file
from ipysession.capture.names import is_persistable_name
from ipysession.capture.remote import remote_handle_reason
from ipysession.capture.sizing import estimate_size, fingerprint
from ipysession.capture.tracker import RECAPTURE_BELOW, ChangeSet, ChangeTracker
from ipysession.errors import CaptureError
from ipysession.model import BufferRecord, ImportRecord, VariableRecord

__all__ = [
    "DEFAULT_LIMITS",
    "RECAPTURE_BELOW",
    "CaptureLimits",
    "CellNames",
    "ChangeSet",
    "ChangeTracker",
    "capture_group",
    "capture_value",
    "cell_names",
    "classify",
    "estimate_size",
    "fingerprint",
    "import_matches",
    "imports_in_source",
    "is_persistable_name",
    "merge_imports",
    "resolve_import",
    "restore_group",
    "restore_imports",
    "restore_value",
    "type_name",
]

logger = logging.getLogger("ipysession")

# --- budgets ------------------------------------------------------------------------------------


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


# --- capture ------------------------------------------------------------------------------------


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
    tensors.register_loaded()
    try:
        return _capture(name, value, limits, session_used, imports)
    except Unsaveable as reason:
        logger.debug("variable %r (%s) is not saved", name, type_name(type(value)))
        return _skipped(name, value, str(reason))
    except Exception as exc:  # capture of one value never fails a save
        logger.debug("capture of %r (%s) failed", name, type_name(type(value)), exc_info=True)
        return _skipped(name, value, _cannot_save(value, exc))


def _skipped(name: str, value: object, reason: str) -> VariableRecord:
    return VariableRecord(name=name, type_name=type_name(type(value)), size=0, skipped=reason)


def _cannot_save(value: object, exc: BaseException) -> str:
    return f"{type_label(type(value))} objects cannot be saved ({error_text(exc)})"


def _capture(
    name: str,
    value: object,
    limits: CaptureLimits,
    session_used: int,
    imports: Mapping[str, ImportRecord] | None,
) -> VariableRecord | ImportRecord:
    not_pickled = _not_pickled(name, value, imports)
    if not_pickled is not None:
        return not_pickled
    label = type_label(type(value))
    estimate = estimate_size(value)
    _check_budget(label, estimate, limits, session_used, estimated=True)
    serialized = _serialize(value)
    _check_budget(label, serialized.size, limits, session_used, estimated=False)
    return VariableRecord(
        name=name,
        type_name=type_name(type(value)),
        size=serialized.size,
        encoding=serialized.encoding,
        data=serialized.data,
        buffers=_buffer_records(serialized),
        fingerprint=fingerprint(value),
    )


def _buffer_records(serialized: pickling.Serialized) -> tuple[BufferRecord, ...]:
    return tuple(BufferRecord(len(b), data=b) for b in serialized.buffers)


def classify(
    name: str, value: object, *, imports: Mapping[str, ImportRecord] | None = None
) -> VariableRecord | ImportRecord | None:
    """What :func:`capture_value` makes of a value that is not pickled (an import, an open
    file, a module that cannot be imported again), or ``None`` for a value it would pickle."""
    try:
        return _not_pickled(name, value, imports)
    except Unsaveable as reason:
        return _skipped(name, value, str(reason))
    except Exception as exc:  # noqa: BLE001 - classifying one value never fails a save
        return _skipped(name, value, _cannot_save(value, exc))


def _not_pickled(
    name: str, value: object, imports: Mapping[str, ImportRecord] | None
) -> VariableRecord | ImportRecord | None:
    preferred = imports.get(name) if imports else None
    if preferred is not None and import_matches(preferred, value):
        return preferred
    if isinstance(value, ModuleType):
        return _module_import(name, value)
    as_import = _object_import(name, value)
    if as_import is not None:
        return as_import
    if isinstance(value, FILE_TYPES):
        return capture_file(name, value)
    remote = remote_handle_reason(name, value)
    if remote is not None:
        raise Unsaveable(remote)
    return None


def capture_group(
    values: Mapping[str, object],
    *,
    views_of: Collection[int] = (),
    limits: CaptureLimits = DEFAULT_LIMITS,
    session_used: int = 0,
) -> dict[str, VariableRecord] | None:
    """Pickle variables that share objects as one unit (see :mod:`.covars`).

    The first name (in sorted order) holds the pickle of the tuple of all the values, and
    ``members`` names them in the tuple's order; the other records say only ``group``. The
    per-variable budget applies to the group as a whole. ``None`` when the group cannot be
    pickled together (one value refuses, or together they are over a budget): the caller
    captures each value on its own, so such a group loses the sharing, never the values that
    can be saved.
    """
    tensors.register_loaded()
    names = sorted(values)
    ordered = [values[n] for n in names]
    holder = names[0]
    label = "a group of variables sharing objects (" + ", ".join(names) + ")"
    try:
        estimate = sum(estimate_size(v) for v in ordered)
        _check_budget(label, estimate, limits, session_used, estimated=True)
        serialized = pickling.serialize_group(ordered, views_of=views_of)
        _check_budget(label, serialized.size, limits, session_used, estimated=False)
    except Unsaveable:
        # Over a budget together: each is captured alone, so that what fits is still saved.
        logger.debug("variables %s are over a budget together", names)
        return None
    except Exception:  # one member that refuses: each is captured alone
        logger.debug("variables %s cannot be pickled together", names, exc_info=True)
        return None
    records = {
        holder: VariableRecord(
            name=holder,
            type_name=type_name(type(values[holder])),
            size=serialized.size,
            encoding=serialized.encoding,
            data=serialized.data,
            buffers=_buffer_records(serialized),
            members=tuple(names),
            fingerprint=fingerprint(values[holder]),
        )
    }
    for name in names[1:]:
        records[name] = VariableRecord(
            name=name,
            type_name=type_name(type(values[name])),
            size=0,
            group=holder,
            fingerprint=fingerprint(values[name]),
        )
    return records


def _check_budget(
    label: str, size: int, limits: CaptureLimits, session_used: int, *, estimated: bool
) -> None:
    what = f"about {format_bytes(size)} (estimated)" if estimated else format_bytes(size)
    if size > limits.max_variable_bytes:
        msg = (
            f"{label} of {what} is over the per-variable limit of "
            f"{format_bytes(limits.max_variable_bytes)}; "
            + budget_hint("max_variable_bytes", size, "saves it")
        )
        raise Unsaveable(msg)
    if session_used + size > limits.max_session_bytes:
        msg = (
            f"{label} of {what} would take the session over its limit of "
            f"{format_bytes(limits.max_session_bytes)} ({format_bytes(session_used)} already "
            "used by other variables); "
            + budget_hint("max_session_bytes", session_used + size, "saves it")
        )
        raise Unsaveable(msg)


def _serialize(value: object) -> pickling.Serialized:
    try:
        return pickling.serialize(value)
    except Exception as exc:  # the value is skipped with this reason
        raise Unsaveable(_cannot_save(value, exc)) from exc


def _module_import(name: str, module: ModuleType) -> ImportRecord:
    module_name = getattr(module, "__name__", None)
    if not isinstance(module_name, str) or sys.modules.get(module_name) is not module:
        msg = (
            f"module {module_name!r} was not imported by name (it was built at run time), so it "
            "cannot be imported again"
        )
        raise Unsaveable(msg)
    if module_name == "__main__":
        msg = "the __main__ module is the namespace itself and is not saved"
        raise Unsaveable(msg)
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


def merge_imports(
    previous: Sequence[ImportRecord], new: Iterable[ImportRecord]
) -> tuple[ImportRecord, ...]:
    """The import records that together make one name what it is, after ``new`` ones.

    ``import scipy.stats`` then ``import scipy.optimize`` bind the one name ``scipy``, and code
    using it needs both submodules loaded: both records are kept, and both imported on restore.
    Any other import (``import numpy as np``, ``from os import path``) replaces what the name held.
    """
    merged = tuple(previous)
    for record in new:
        same_package = _binds_package(record) and all(
            _binds_package(kept) and kept.name == record.name for kept in merged
        )
        kept_ones = [kept for kept in merged if kept != record] if same_package else []
        merged = (*kept_ones, record)
    return merged


def _binds_package(record: ImportRecord) -> bool:
    """``import a`` or ``import a.b.c``: both bind ``a`` itself."""
    return record.attribute is None and record.name == record.module.split(".")[0]


# --- restore ------------------------------------------------------------------------------------


def restore_value(
    record: VariableRecord,
    data: bytes | bytearray | memoryview,
    *,
    buffers: Sequence[bytearray | memoryview] = (),
    namespace: MutableMapping[str, Any] | None = None,
) -> Any:
    """Turn a saved variable back into a value.

    ``data`` is the record's bytes, wherever the store kept them, and ``buffers`` its
    out-of-band buffers, in order, as writable memory: arrays are rebuilt on them without a
    copy. With ``namespace`` (the user namespace being restored), notebook functions and the
    methods of notebook classes are rebound to it, so they read live globals. Raises
    :class:`CaptureError` with the reason on failure.
    """
    if record.group is not None:
        what = f"Variable '{record.name}' is restored with its group (held by '{record.group}')"
        raise CaptureError(what)
    if record.skipped is not None:
        what = f"Variable '{record.name}' was not saved: {record.skipped}"
        raise CaptureError(what)
    if record.encoding == "file":
        return restore_file(record, bytes(data))
    if record.encoding not in ("pickle", "cloudpickle"):
        what = (
            f"Variable '{record.name}' was saved with encoding {record.encoding!r}, which this "
            "ipysession does not know"
        )
        raise CaptureError(what, hint="It was probably written by a newer ipysession: upgrade")
    try:
        # cloudpickle output is a pickle whose reconstructors import cloudpickle themselves.
        if len(buffers) != len(record.buffers):
            msg = f"{len(record.buffers)} out-of-band buffers expected, {len(buffers)} given"
            raise ValueError(msg)
        value = pickling.loads(data, buffers)
    except Exception as exc:  # any unpickling error becomes a reason
        what = (
            f"Variable '{record.name}' ({record.type_name}) could not be restored "
            f"({error_text(exc)})"
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


def restore_group(
    record: VariableRecord,
    data: bytes | bytearray | memoryview,
    *,
    buffers: Sequence[bytearray | memoryview] = (),
    namespace: MutableMapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of the group ``record`` holds (see :func:`capture_group`), by name.

    Unpickled as one tuple, so objects the variables shared are shared again. Raises
    :class:`CaptureError` with the reason on failure, for the whole group.
    """
    values = restore_value(record, data, buffers=buffers)
    if not isinstance(values, tuple) or len(values) != len(record.members):
        what = (
            f"Variables {', '.join(record.members)} (a group held by '{record.name}') could not "
            "be restored: the stored value is not the group's"
        )
        raise CaptureError(what)
    restored = dict(zip(record.members, values, strict=True))
    if record.encoding == "cloudpickle" and namespace is not None:
        restored = {name: _rebind(value, namespace) for name, value in restored.items()}
    return restored


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
            value = resolve_import(record)
        except ImportError as exc:
            results.append((record, str(exc) or type(exc).__name__))
            continue
        except Exception as exc:  # noqa: BLE001 - a module that fails at import is one failure
            results.append((record, error_text(exc)))
            continue
        user_ns[record.name] = value
        results.append((record, None))
    return results


def resolve_import(record: ImportRecord) -> Any:
    """What ``record`` binds, imported as its statement would (raises as the import would)."""
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
