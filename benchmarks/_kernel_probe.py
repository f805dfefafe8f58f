"""Helpers that run *inside* the benchmarked kernel (standard library only).

The harness sends this file's source through a silent ``execute_request`` and execs it into a
module registered in ``sys.modules``; nothing is bound in the user namespace and no cell hook runs.
Entry point: ``call(function_name, json_arguments) -> json_text``.

Fingerprints say whether a variable came back *equal*: a SHA-256 over a canonical form of its
content that does not depend on the process (no addresses, no file names of cells). Functions and
lambdas compare by bytecode, constants and names; classes by their members; instances of
notebook-defined classes by class name and ``__dict__``; arrays and data frames by dtype, shape and
values; generators by code, state and position; open files by real path, mode, position and
closed flag; everything else by its pickle bytes, or its address-free ``repr`` when it cannot be
pickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import sys
import types
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 6


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def _user_ns() -> dict[str, Any]:
    ns: dict[str, Any] = _shell().user_ns
    return ns


def _code(code: types.CodeType, depth: int) -> bytes:
    consts = []
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            consts.append(_code(const, depth + 1))
        else:
            consts.append(repr(const).encode())
    parts = [
        code.co_name.encode(),
        code.co_code,
        b"|".join(consts),
        repr(code.co_names).encode(),
        repr(code.co_varnames).encode(),
        repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode(),
    ]
    return b"code(" + b";".join(parts) + b")"


def _canon(value: Any, depth: int = 0) -> bytes:
    if depth > _MAX_DEPTH:
        return _fallback(value)
    kind = type(value)
    if isinstance(value, types.ModuleType):
        return b"module:" + value.__name__.encode()
    if isinstance(value, (types.FunctionType, types.LambdaType)):
        defaults = b"|".join(_canon(d, depth + 1) for d in value.__defaults__ or ())
        return b"function:" + value.__qualname__.encode() + _code(value.__code__, depth) + defaults
    if isinstance(value, type):
        members = []
        for name in sorted(vars(value)):
            if name in {"__dict__", "__weakref__", "__module__", "__slotnames__"}:
                continue
            members.append(name.encode() + b"=" + _canon(vars(value)[name], depth + 1))
        return b"class:" + value.__qualname__.encode() + b"{" + b",".join(members) + b"}"
    if isinstance(value, types.GeneratorType):
        frame = value.gi_frame
        lasti = frame.f_lasti if frame is not None else -1
        state = (value.gi_running, frame is None, lasti)
        return b"generator:" + _code(value.gi_code, depth) + repr(state).encode()
    if isinstance(value, io.IOBase):
        closed = value.closed
        position = -1 if closed else value.tell()
        name = getattr(value, "name", None)
        if isinstance(name, str):  # the same file, whether reopened by relative or absolute path
            name = os.path.realpath(name)
        described = (name, getattr(value, "mode", None), closed, position)
        return b"file:" + kind.__qualname__.encode() + repr(described).encode()
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        array = numpy.ascontiguousarray(value)
        head = repr((str(array.dtype), array.shape)).encode()
        if array.dtype.hasobject:
            return b"ndarray:" + head + _canon(array.tolist(), depth + 1)
        return b"ndarray:" + head + hashlib.sha256(array.tobytes()).digest()
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series)):
        hashed = pandas.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
        described = repr((list(getattr(value, "columns", [])), [str(d) for d in value.dtypes]))
        if isinstance(value, pandas.Series):
            described = repr((value.name, str(value.dtype)))
        return b"pandas:" + described.encode() + hashlib.sha256(hashed).digest()
    if isinstance(value, (set, frozenset)):
        items = sorted(_canon(item, depth + 1) for item in value)
        return kind.__qualname__.encode() + b"{" + b",".join(items) + b"}"
    if getattr(kind, "__module__", None) == "__main__" and hasattr(value, "__dict__"):
        state = sorted((k, _canon(v, depth + 1)) for k, v in vars(value).items())
        return b"instance:" + kind.__qualname__.encode() + repr(state).encode()
    return _fallback(value)


def _fallback(value: Any) -> bytes:
    try:
        return b"pickle:" + pickle.dumps(value, protocol=4)
    except Exception:
        text = _ADDRESS.sub("", repr(value))
        return b"repr:" + type(value).__qualname__.encode() + b":" + text.encode()


def fingerprint(value: Any) -> str:
    return hashlib.sha256(_canon(value)).hexdigest()[:32]


def fingerprints(names: list[str]) -> dict[str, str | None]:
    ns = _user_ns()
    result: dict[str, str | None] = {}
    for name in names:
        if name not in ns:
            result[name] = None
            continue
        try:
            result[name] = fingerprint(ns[name])
        except Exception as exc:
            result[name] = f"error:{type(exc).__name__}"
    return result


def _describe(value: Any) -> str:
    kind = type(value).__qualname__
    if isinstance(value, io.IOBase):
        if value.closed:
            return f"closed {kind}"
        return f"{kind} {getattr(value, 'name', '?')!r} at position {value.tell()}"
    if isinstance(value, types.GeneratorType):
        return f"generator {'exhausted' if value.gi_frame is None else 'suspended'}"
    return kind


def describe(names: list[str]) -> dict[str, str | None]:
    """A short, value-free description of each variable, ``None`` where it is not defined."""
    ns = _user_ns()
    return {n: (_describe(ns[n]) if n in ns else None) for n in names}


def unpicklable(names: list[str], using: str = "pickle") -> dict[str, str]:
    """Names whose value ``using`` (``pickle`` or ``dill``) cannot dump, with the error."""
    dumps = __import__(using).dumps
    ns = _user_ns()
    failed: dict[str, str] = {}
    for name in names:
        if name not in ns:
            continue
        try:
            dumps(ns[name])
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


def extensions() -> list[str]:
    """Extensions the shell has loaded."""
    return sorted(_shell().extension_manager.loaded)


def call(function: str, payload: str) -> str:
    args = json.loads(payload)
    return json.dumps(globals()[function](*args))
