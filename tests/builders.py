"""What tests build over and over: one session, one test key, the shells.

    from tests.builders import KEY, OTHER_KEY, make_session, memory_key

``make_session()`` is a small session (one cell, one small variable) written by this process;
``make_session(complete=True)`` fills every field (fixed times, writer versions, imports,
preferences with an environment secret, a connection with a secret, a skipped variable, a field
this version does not know). Keyword arguments named after ``Session`` fields replace that field.

``KEY`` and ``OTHER_KEY`` are TEST KEYS, published on purpose: they protect nothing.
``memory_key()`` is ``KEY`` as a key resolution (what a ``SessionManager`` holds), touching neither
the disk nor a keyring.

``wait_for(condition, what)`` waits for a condition, never for a duration: tests assert what
happened, and the deadline (generous, for a loaded machine) only bounds a test that fails.

``assert_uses_decrypted_memory(arr)`` checks that a restored numpy array is the memory its blob
was decrypted into, used as it is (no copy by unpickling).

Shells live in :mod:`tests.shell` and are re-exported here: ``ipython_shell`` (IPython's global
test shell with ipysession's ``SessionManager`` config, for tests of the extension) and
``ShellFactory`` behind the ``make_shell`` fixture of ``tests/conftest.py`` (fresh terminal shells
with their own config and ``tmp_path``, for tests of one capture part).
"""

from __future__ import annotations

import mmap
import os
import time
from typing import TYPE_CHECKING, Any

from ipysession.keys import memory_key as _memory_key
from ipysession.keys.crypto import MasterKey
from ipysession.model import (
    ConnectionRecord,
    ConnectionStats,
    HistoryEntry,
    ImportRecord,
    Preferences,
    Session,
    VariableRecord,
    WriterInfo,
)
from ipysession.store.fileformat import ID_TRAILER_SIZE
from tests.shell import ShellFactory, ipython_shell, restart, run

if TYPE_CHECKING:
    from collections.abc import Callable

    from ipysession.keys import KeyResolution

__all__ = [
    "BIG",
    "CONN_SECRET",
    "ENV_SECRET",
    "KEY",
    "OTHER_KEY",
    "ShellFactory",
    "ipython_shell",
    "make_session",
    "memory_key",
    "restart",
    "run",
    "wait_for",
]

#: TEST KEYS, not secrets: published so that tests can read what they write.
KEY = MasterKey(b"ipysession test key; public!!!!!", description="test key")
OTHER_KEY = MasterKey(b"another ipysession test key; pub", description="other test key")

#: Planted in ``make_session(complete=True)``; a test checks that they never appear in output.
CONN_SECRET = "hunter2-conn-secret-7c1f"
ENV_SECRET = "env-value-secret-93ab"

#: 256 KiB: above the store's blob threshold, so a variable of this size is stored as a blob.
BIG = bytes(range(256)) * 1024

#: Pickled ``1`` and ``42``: small values that stay inline in a generation.
_ONE = b"\x80\x04K\x01."
_FORTY_TWO = b"\x80\x04K*."


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` if it is not after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            msg = f"timed out waiting until {what}"
            raise AssertionError(msg)
        time.sleep(0.02)


def assert_uses_decrypted_memory(arr: Any) -> None:
    """``arr`` (a restored numpy array) uses the memory its blob was decrypted into, as it is."""
    import numpy as np

    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else base
    assert isinstance(owner, bytearray | mmap.mmap)  # memory.empty's: small, or mapped
    # Inflated (compressed) values fill memory of their own size; an uncompressed version-4 blob
    # decrypts its id trailer into the same memory, right after the value.
    assert len(owner) in (arr.nbytes, arr.nbytes + ID_TRAILER_SIZE)
    assert np.frombuffer(owner).ctypes.data == arr.ctypes.data


def memory_key(key: MasterKey = KEY) -> KeyResolution:
    """``key`` (``KEY`` by default) as an in-memory key resolution: no disk, no keyring."""
    return _memory_key(key.raw)


def make_session(
    name: str = "nb",
    cells: int | None = None,
    big: bytes | None = None,
    *,
    connections: int = 0,
    kernel: str | None = None,
    complete: bool = False,
    **fields: Any,
) -> Session:
    """A session to write, read, merge or show.

    ``cells``: that many history entries (``"cell 0"``, ``"cell 1"``, ...; default one, or the two
    cells of the complete session). ``big``: a variable ``big`` holding these bytes (give ``BIG``
    for one stored as a blob). ``connections``: that many jupyter connection records ``c0``,
    ``c1``, ... each with a secret. ``kernel``: the writer's kernel id (default ``k1``, or
    ``kernel-abcdef123456`` for the complete session). ``complete``: every field populated, with
    fixed times and values (see the module docstring). ``fields``: ``Session`` fields to replace
    (``history=[]``, ``variables={...}``, ``created=0.0``, ...).
    """
    if complete:
        session = _complete(name, kernel or "kernel-abcdef123456")
    else:
        kernel = kernel or "k1"
        session = Session(
            name=name,
            writer=WriterInfo(
                host="host", pid=os.getpid(), kernel_id=kernel, run_id=f"run-{kernel}"
            ),
            variables={"x": VariableRecord("x", "int", 5, encoding="pickle", data=_ONE)},
        )
    if cells is not None or not complete:
        count = 1 if cells is None else cells
        session.history = [HistoryEntry(f"cell {i}", i + 1, float(i)) for i in range(count)]
    if big is not None:
        session.variables["big"] = VariableRecord(
            "big", "bytes", len(big), encoding="pickle", data=big
        )
    for i in range(connections):
        name_i = f"c{i}"
        session.connections[name_i] = ConnectionRecord(
            name=name_i, kind="jupyter", secrets={"key": "k"}
        )
    for field_name, value in fields.items():
        if not hasattr(session, field_name):
            msg = f"Session has no field {field_name!r}"
            raise TypeError(msg)
        setattr(session, field_name, value)
    return session


def _complete(name: str, kernel: str) -> Session:
    return Session(
        name=name,
        created=1_700_000_000.0,
        updated=1_700_000_100.0,
        writer=WriterInfo(
            python="3.11.7",
            ipython="8.20.0",
            ipysession="0.1.0",
            host="lab",
            pid=4242,
            kernel_id=kernel,
            run_id="run-1",
        ),
        history=[
            HistoryEntry("import numpy as np", 1, 1_700_000_001.0),
            HistoryEntry("x = 42", 2, 1_700_000_002.0),
        ],
        variables={
            "x": VariableRecord("x", "int", 28, encoding="pickle", data=_FORTY_TWO),
            "fh": VariableRecord(
                "fh", "TextIOWrapper", 0, skipped="open file handles are not saved"
            ),
        },
        imports=[ImportRecord("np", "numpy"), ImportRecord("p", "os", "path")],
        preferences=Preferences(
            extensions=["autoreload"],
            magics={"autoreload": "2", "precision": "3"},
            env={"API_TOKEN": ENV_SECRET},
        ),
        cwd="/home/ada/project",
        layout={"panels": ["left"]},
        connections={
            "db": ConnectionRecord(
                "db",
                "sqlalchemy",
                params={"url": "postgresql://ada@db.example/prod"},
                secrets={"password": CONN_SECRET},
                variable="engine",
                stats=ConnectionStats(
                    created=1_700_000_003.0,
                    last_used=1_700_000_050.0,
                    successes=3,
                    failures=1,
                    last_error="timeout",
                ),
            ),
            "old": ConnectionRecord(
                "old",
                "jupyter",
                params={"kernel": "k1"},
                auto=False,
                stats=ConnectionStats(created=1_700_000_004.0),
            ),
        },
        extra={"future_field": {"kept": True}},
    )
