"""What a session is: plain dataclasses, their JSON form, and validation on load.

This module knows nothing of IPython, files or encryption. ``Session.to_dict()`` gives the JSON
document that :mod:`ipysession.store.fileformat` seals; ``Session.from_dict()`` validates a document
and raises :class:`~ipysession.errors.ModelError` naming the offending field. Fields this version
does not know are kept in each record's ``extra`` and written back unchanged, so a file written by a
newer minor release survives a round trip through an older one.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from dataclasses import replace as dataclasses_replace
from typing import Any, TypeVar

from ipysession.errors import ModelError

__all__ = [
    "BufferRecord",
    "ConnectionRecord",
    "ConnectionStats",
    "HistoryEntry",
    "ImportRecord",
    "Preferences",
    "Session",
    "VariableRecord",
    "WriterInfo",
    "redact",
]

REDACTED = "***"

_T = TypeVar("_T")


def redact(value: object) -> str:
    """What a secret looks like wherever it is shown."""
    return REDACTED if value not in (None, "") else ""


# --- validation helpers -------------------------------------------------------------------------


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        msg = f"Session document is missing '{where}.{key}'"
        raise ModelError(msg)
    return _check(doc[key], kind, f"{where}.{key}")


def _optional(
    doc: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = None,
) -> Any:
    if doc.get(key) is None:
        return default
    return _check(doc[key], kind, f"{where}.{key}")


def _check(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int in Python; a count or a time must not silently accept True.
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        msg = f"Session document field '{where}' must be a number, not a boolean"
        raise ModelError(msg)
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        msg = f"Session document field '{where}' must be {expected}, not {type(value).__name__}"
        raise ModelError(msg)
    return value


def _extra(doc: Mapping[str, Any], cls: type) -> dict[str, Any]:
    known = {f.name for f in fields(cls)} | getattr(cls, "_renamed", set())
    return {k: v for k, v in doc.items() if k not in known}


def _b64decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        msg = f"Session document field '{where}' is not valid base64"
        raise ModelError(msg) from exc


def _b64encode(data: bytes | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


def _list_of(
    doc: Mapping[str, Any], key: str, where: str, build: Callable[[Any, str], _T]
) -> list[_T]:
    items = _optional(doc, key, list, where, default=[])
    return [build(item, f"{where}.{key}[{i}]") for i, item in enumerate(items)]


def _str_map(value: Any, where: str) -> dict[str, str]:
    mapping = _check(value, dict, where)
    for k, v in mapping.items():
        _check(v, str, f"{where}.{k}")
    return dict(mapping)


# --- records ------------------------------------------------------------------------------------


@dataclass
class WriterInfo:
    """Who wrote a generation: versions, host and process, kernel."""

    python: str = ""
    ipython: str = ""
    ipysession: str = ""
    host: str = ""
    pid: int = 0
    kernel_id: str = ""
    run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "python": self.python,
            "ipython": self.ipython,
            "ipysession": self.ipysession,
            "host": self.host,
            "pid": self.pid,
            "kernel_id": self.kernel_id,
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str = "writer") -> WriterInfo:
        doc = _check(doc, dict, where)
        return cls(
            python=_optional(doc, "python", str, where, ""),
            ipython=_optional(doc, "ipython", str, where, ""),
            ipysession=_optional(doc, "ipysession", str, where, ""),
            host=_optional(doc, "host", str, where, ""),
            pid=_optional(doc, "pid", int, where, 0),
            kernel_id=_optional(doc, "kernel_id", str, where, ""),
            run_id=_optional(doc, "run_id", str, where, ""),
            extra=_extra(doc, cls),
        )


@dataclass
class HistoryEntry:
    """One executed cell."""

    source: str
    execution_count: int
    time: float
    success: bool = True
    run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "source": self.source,
            "execution_count": self.execution_count,
            "time": self.time,
            "success": self.success,
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> HistoryEntry:
        doc = _check(doc, dict, where)
        return cls(
            source=_require(doc, "source", str, where),
            execution_count=_require(doc, "execution_count", int, where),
            time=_require(doc, "time", float, where),
            success=_optional(doc, "success", bool, where, True),
            run_id=_optional(doc, "run_id", str, where, ""),
            extra=_extra(doc, cls),
        )


@dataclass(frozen=True)
class BufferRecord:
    """One out-of-band buffer of a pickled value (format version 3 on): the raw memory of a
    numpy array or a pandas column, kept apart from the pickle stream so that on restore the
    array uses the decrypted memory itself instead of a copy of it.

    Exactly one of ``data`` (in memory, or inline in an export) and ``blob`` (the id of the blob
    that holds it) is set; ``size`` is its length in bytes.
    """

    size: int
    data: bytes | memoryview | None = field(default=None, repr=False)
    blob: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.blob is None):
            msg = "A buffer must have exactly one of data or blob"
            raise ModelError(msg)

    def to_dict(self) -> dict[str, Any]:
        if self.data is not None:
            return {"size": self.size, "data": _b64encode(self.data)}
        return {"size": self.size, "blob": self.blob}

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> BufferRecord:
        doc = _check(doc, dict, where)
        data = _optional(doc, "data", str, where)
        return cls(
            size=_require(doc, "size", int, where),
            data=_b64decode(data, f"{where}.data") if data is not None else None,
            blob=_optional(doc, "blob", str, where),
        )


@dataclass
class VariableRecord:
    """One user variable: its serialized value (inline or in a blob), or why it was skipped.

    ``encoding`` names how ``data`` (or the blob) turns back into a value: ``"pickle"``,
    ``"cloudpickle"``, or another scheme that capture registers (``"file"`` for open files).
    Exactly one of ``data``, ``blob``, ``skipped`` and ``group`` is set.

    Co-variables (format version 3 on): variables that share objects (``b = a``,
    ``d = {"x": a}``, ``view = big[2:5]``) are pickled together, as one tuple, so that they share
    them again after a restore. The record of the group's first name holds the pickle and lists
    every name of the group in ``members``, in the order of the tuple; the other names' records
    say only ``group``: the name whose record holds them. ``buffers`` are the pickle's
    out-of-band buffers (:class:`BufferRecord`), in the order pickle asks for them.
    """

    name: str
    type_name: str
    size: int
    encoding: str | None = None
    data: bytes | None = field(default=None, repr=False)
    blob: str | None = None
    skipped: str | None = None
    fingerprint: str | None = None
    buffers: tuple[BufferRecord, ...] = ()
    members: tuple[str, ...] = ()
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_count = sum(x is not None for x in (self.data, self.blob, self.skipped, self.group))
        if set_count != 1:
            msg = (
                f"Variable '{self.name}' must have exactly one of data, blob, skipped or group "
                f"(has {set_count})"
            )
            raise ModelError(msg)
        if self.skipped is None and self.group is None and not self.encoding:
            msg = f"Variable '{self.name}' has a value but no encoding"
            raise ModelError(msg)
        if (self.buffers or self.members) and self.data is None and self.blob is None:
            msg = f"Variable '{self.name}' has buffers or members but no value"
            raise ModelError(msg)
        if self.members and self.name not in self.members:
            msg = f"Variable '{self.name}' holds a group it is not a member of"
            raise ModelError(msg)

    @property
    def saved(self) -> bool:
        return self.skipped is None

    @property
    def holds_group(self) -> bool:
        """Whether this record's pickle is the tuple of a group's values (see ``members``)."""
        return bool(self.members)

    def blob_refs(self) -> set[str]:
        """The blobs this record refers to: its value's and its buffers'."""
        refs = {b.blob for b in self.buffers if b.blob is not None}
        if self.blob is not None:
            refs.add(self.blob)
        return refs

    def with_blobs_renamed(self, renamed: Mapping[str, str]) -> VariableRecord:
        """This record with every blob id found in ``renamed`` replaced (rekey, follow)."""
        if not renamed or not (self.blob_refs() & renamed.keys()):
            return self
        buffers = tuple(
            BufferRecord(b.size, blob=renamed[b.blob])
            if b.blob is not None and b.blob in renamed
            else b
            for b in self.buffers
        )
        blob = renamed.get(self.blob, self.blob) if self.blob is not None else None
        return dataclasses_replace(self, blob=blob, buffers=buffers)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            **self.extra,
            "type": self.type_name,
            "size": self.size,
            "encoding": self.encoding,
            "fingerprint": self.fingerprint,
        }
        if self.data is not None:
            doc["data"] = _b64encode(self.data)
        if self.blob is not None:
            doc["blob"] = self.blob
        if self.skipped is not None:
            doc["skipped"] = self.skipped
        if self.buffers:
            doc["buffers"] = [b.to_dict() for b in self.buffers]
        if self.members:
            doc["members"] = list(self.members)
        if self.group is not None:
            doc["group"] = self.group
        return doc

    _renamed = {"type"}

    @classmethod
    def from_dict(cls, name: str, doc: Any, where: str) -> VariableRecord:
        doc = _check(doc, dict, where)
        data = _optional(doc, "data", str, where)
        members = _optional(doc, "members", list, where, [])
        for i, member in enumerate(members):
            _check(member, str, f"{where}.members[{i}]")
        return cls(
            name=name,
            type_name=_require(doc, "type", str, where),
            size=_optional(doc, "size", int, where, 0),
            encoding=_optional(doc, "encoding", str, where),
            data=_b64decode(data, f"{where}.data") if data is not None else None,
            blob=_optional(doc, "blob", str, where),
            skipped=_optional(doc, "skipped", str, where),
            fingerprint=_optional(doc, "fingerprint", str, where),
            buffers=tuple(_list_of(doc, "buffers", where, BufferRecord.from_dict)),
            members=tuple(members),
            group=_optional(doc, "group", str, where),
            extra=_extra(doc, cls),
        )


@dataclass(frozen=True)
class ImportRecord:
    """A name bound by an import: ``import numpy as np`` or ``from os import path as p``.

    ``attribute`` is ``None`` for ``import module [as name]``. Modules and objects imported from
    installed modules are recorded as imports and imported again, never pickled.
    """

    name: str
    module: str
    attribute: str | None = None

    def statement(self) -> str:
        if self.attribute is None:
            if self.name == self.module:
                return f"import {self.module}"
            if "." in self.module and self.name == self.module.split(".")[0]:
                return f"import {self.module}"
            return f"import {self.module} as {self.name}"
        if self.name == self.attribute:
            return f"from {self.module} import {self.attribute}"
        return f"from {self.module} import {self.attribute} as {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "attribute": self.attribute}

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> ImportRecord:
        doc = _check(doc, dict, where)
        return cls(
            name=_require(doc, "name", str, where),
            module=_require(doc, "module", str, where),
            attribute=_optional(doc, "attribute", str, where),
        )


@dataclass
class Preferences:
    """Shell state replayed before anything else on restore.

    ``magics`` maps a line magic to the argument that restores its state, in the order to replay
    (``{"autoreload": "2", "precision": "3", "xmode": "Verbose", "matplotlib": "inline"}``).
    ``env`` holds only the variables set during the session with ``%env``/``%set_env``.
    """

    extensions: list[str] = field(default_factory=list)
    magics: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "extensions": list(self.extensions),
            "magics": dict(self.magics),
            "env": dict(self.env),
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str = "preferences") -> Preferences:
        doc = _check(doc, dict, where)
        extensions = _optional(doc, "extensions", list, where, [])
        for i, ext in enumerate(extensions):
            _check(ext, str, f"{where}.extensions[{i}]")
        return cls(
            extensions=list(extensions),
            magics=_str_map(doc.get("magics", {}), f"{where}.magics"),
            env=_str_map(doc.get("env", {}), f"{where}.env"),
            extra=_extra(doc, cls),
        )


@dataclass
class ConnectionStats:
    """How a connection has fared: used for most-recently-used order and for status."""

    created: float = field(default_factory=time.time)
    last_used: float | None = None
    successes: int = 0
    failures: int = 0
    last_error: str | None = None
    #: When ``last_error`` happened (epoch seconds); an optional field added in 0.x without a
    #: format bump: older readers keep it among the fields they do not know.
    last_error_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "created": self.created,
            "last_used": self.last_used,
            "successes": self.successes,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> ConnectionStats:
        doc = _check(doc, dict, where)
        return cls(
            created=_optional(doc, "created", float, where, 0.0),
            last_used=_optional(doc, "last_used", float, where),
            successes=_optional(doc, "successes", int, where, 0),
            failures=_optional(doc, "failures", int, where, 0),
            last_error=_optional(doc, "last_error", str, where),
            last_error_at=_optional(doc, "last_error_at", float, where),
            extra=_extra(doc, cls),
        )


@dataclass
class ConnectionRecord:
    """A connection to a remote backend, as persisted.

    ``params`` are non-secret and may be shown; ``secrets`` are only ever written inside the
    encrypted session and are redacted in every repr, log line and output.
    """

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)
    variable: str = ""
    auto: bool = True
    stats: ConnectionStats = field(default_factory=ConnectionStats)
    #: Closed by `%session disconnect`: not reconnected after a restart until the next connect.
    #: Optional, like ``stats.last_error_at``: files without it read as False.
    disconnected: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.variable:
            self.variable = self.name

    def __repr__(self) -> str:
        secrets = {k: redact(v) for k, v in self.secrets.items()}
        return (
            f"ConnectionRecord(name={self.name!r}, kind={self.kind!r}, params={self.params!r}, "
            f"secrets={secrets!r}, variable={self.variable!r}, auto={self.auto!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "kind": self.kind,
            "params": self.params,
            "secrets": self.secrets,
            "variable": self.variable,
            "auto": self.auto,
            "stats": self.stats.to_dict(),
            "disconnected": self.disconnected,
        }

    @classmethod
    def from_dict(cls, name: str, doc: Any, where: str) -> ConnectionRecord:
        doc = _check(doc, dict, where)
        return cls(
            name=name,
            kind=_require(doc, "kind", str, where),
            params=dict(_optional(doc, "params", dict, where, {})),
            secrets=dict(_optional(doc, "secrets", dict, where, {})),
            variable=_optional(doc, "variable", str, where, name),
            auto=_optional(doc, "auto", bool, where, True),
            stats=ConnectionStats.from_dict(doc.get("stats", {}), f"{where}.stats"),
            disconnected=_optional(doc, "disconnected", bool, where, False),
            extra=_extra(doc, cls),
        )


@dataclass
class Session:
    """Everything that comes back after a restart.

    ``variables`` and ``connections`` are keyed by name; ``history`` is in execution order.
    ``extra`` holds top-level fields this version does not know.
    """

    name: str
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    writer: WriterInfo = field(default_factory=WriterInfo)
    history: list[HistoryEntry] = field(default_factory=list)
    variables: dict[str, VariableRecord] = field(default_factory=dict)
    imports: list[ImportRecord] = field(default_factory=list)
    preferences: Preferences = field(default_factory=Preferences)
    cwd: str | None = None
    layout: Any = None
    connections: dict[str, ConnectionRecord] = field(default_factory=dict)
    #: A stable id (uuid4 hex), made with the session and kept across generations and renames,
    #: so a notebook's metadata can name its session whatever its path. ``None`` in files
    #: written before ids existed.
    id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def blob_ids(self) -> set[str]:
        """Blobs this session refers to (for garbage collection)."""
        return {ref for v in self.variables.values() for ref in v.blob_refs()}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "name": self.name,
            "created": self.created,
            "updated": self.updated,
            "writer": self.writer.to_dict(),
            "history": [h.to_dict() for h in self.history],
            "variables": {name: v.to_dict() for name, v in self.variables.items()},
            "imports": [i.to_dict() for i in self.imports],
            "preferences": self.preferences.to_dict(),
            "cwd": self.cwd,
            "layout": self.layout,
            "connections": {name: c.to_dict() for name, c in self.connections.items()},
            **({"id": self.id} if self.id is not None else {}),
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Session:
        where = "session"
        doc = _check(doc, dict, where)
        variables = _optional(doc, "variables", dict, where, {})
        connections = _optional(doc, "connections", dict, where, {})
        return cls(
            name=_require(doc, "name", str, where),
            created=_optional(doc, "created", float, where, 0.0),
            updated=_optional(doc, "updated", float, where, 0.0),
            writer=WriterInfo.from_dict(doc.get("writer", {})),
            history=_list_of(doc, "history", where, HistoryEntry.from_dict),
            variables={
                name: VariableRecord.from_dict(name, v, f"{where}.variables.{name}")
                for name, v in variables.items()
            },
            imports=_list_of(doc, "imports", where, ImportRecord.from_dict),
            preferences=Preferences.from_dict(doc.get("preferences", {})),
            cwd=_optional(doc, "cwd", str, where),
            layout=doc.get("layout"),
            connections={
                name: ConnectionRecord.from_dict(name, c, f"{where}.connections.{name}")
                for name, c in connections.items()
            },
            id=_optional(doc, "id", str, where),
            extra=_extra(doc, cls),
        )
