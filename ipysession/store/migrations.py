"""Upgrading session documents from older format versions.

A reader accepts every older version: the document is passed through each registered step,
``v1 -> v2 -> ...``, up to :data:`CURRENT_VERSION`. Each step is a pure function from one
document dict to the next; it must keep fields it does not know. Fixture files of every released
version live in ``tests/fixtures/`` and are read by the tests forever.

To add version N+1: bump :data:`CURRENT_VERSION`, register ``@step(N)`` that turns a version N
document into a version N+1 document, and add a fixture written by the last release of version N.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ipysession.errors import NewerFormat

__all__ = ["CURRENT_VERSION", "Document", "Step", "step", "upgrade"]

CURRENT_VERSION = 4

Document = dict[str, Any]
Step = Callable[[Document], Document]

#: from-version -> the step that produces a document of from-version + 1
STEPS: dict[int, Step] = {}


def step(from_version: int, registry: dict[int, Step] | None = None) -> Callable[[Step], Step]:
    """Register ``fn`` as the migration from ``from_version`` to ``from_version + 1``."""
    target = STEPS if registry is None else registry

    def register(fn: Step) -> Step:
        if from_version in target:
            msg = f"a migration from version {from_version} is already registered"
            raise ValueError(msg)
        target[from_version] = fn
        return fn

    return register


def upgrade(
    doc: Document,
    from_version: int,
    *,
    to_version: int = CURRENT_VERSION,
    steps: Mapping[int, Step] | None = None,
) -> Document:
    """Bring ``doc`` from ``from_version`` up to ``to_version``, one registered step at a time."""
    chain = STEPS if steps is None else steps
    if from_version > to_version:
        raise NewerFormat(found=from_version, supported=to_version)
    version = from_version
    while version < to_version:
        migrate = chain.get(version)
        if migrate is None:
            msg = f"no migration registered from format version {version} to {version + 1}"
            raise LookupError(msg)
        doc = migrate(doc)
        version += 1
        doc["format"] = version
    return doc


@step(1)
def _unbound(doc: Document) -> Document:
    """Version 2 binds each file to its place (``"bound"``: a generation number, a checkpoint
    label, or ``{}`` for an export; see docs/file-format.md). A version 1 file was bound to
    nothing, whatever it holds: ``None`` says so, and the store reads it as before, without the
    rollback checks a binding allows. Nothing else in the document changed."""
    doc["bound"] = None
    return doc


@step(2)
def _covariables(doc: Document) -> Document:
    """Version 3 adds co-variable groups (a variable record's ``"members"`` and ``"group"``) and
    out-of-band buffers (``"buffers"``), and blobs that hold one buffer each (see
    docs/file-format.md). A version 2 document has none of them: each variable was pickled on
    its own, in band, and reads exactly as before. Nothing in the document changes."""
    return doc


@step(3)
def _blobs_name_themselves(doc: Document) -> Document:
    """Version 4 changes blob files only: a blob's sealed plaintext ends with its content id,
    so a reader proves the name by authentication instead of hashing the value again (see
    docs/file-format.md). Session documents and head records are unchanged."""
    return doc
