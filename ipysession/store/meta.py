"""What the session store remembers of a generation or checkpoint: the summary fields of one
sealed session file (name, times, counts, blob references, writer), keyed by the file's stat so a
changed file is decoded again. ``list()`` and blob collection are answered from these records.

``variables`` counts the variables whose value was saved and ``skipped`` those recorded with the
reason they were not, as ``%session status`` counts them. ``digest`` (SHA-256 of the file's bytes)
and ``bound`` (the file says which generation or checkpoint it is, format 2 on) are what the head
record is checked against.
"""

from __future__ import annotations

import builtins
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ipysession.errors import CorruptFile
from ipysession.model import Session
from ipysession.store.files import StatKey, stat_key

__all__ = ["FileMeta", "digest_of"]


def digest_of(data: bytes) -> str:
    """The digest the head record keeps of a generation file: SHA-256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileMeta:
    """What the store remembers of a generation or checkpoint it wrote or read."""

    stat_key: StatKey
    size: int
    name: str
    updated: float
    cells: int
    variables: int
    skipped: int
    connections: int
    blob_refs: frozenset[str]
    run_id: str
    kernel_id: str
    host: str
    pid: int
    digest: str
    bound: bool

    @classmethod
    def from_doc(
        cls,
        doc: dict[str, object],
        st: os.stat_result,
        path: Path,
        *,
        digest: str,
        bound: bool,
    ) -> FileMeta:
        """Summary fields of an authenticated document, without building the whole session.

        ``list()`` must be fast, and building every history entry of every session is what
        costs; full validation happens when a session is read.
        """
        name = doc.get("name")
        updated = doc.get("updated", 0.0)
        history = doc.get("history", [])
        variables = doc.get("variables", {})
        connections = doc.get("connections", {})
        writer = doc.get("writer", {})
        if not (
            isinstance(name, str)
            and isinstance(updated, (int, float))
            and isinstance(history, builtins.list)
            and isinstance(variables, dict)
            and isinstance(connections, dict)
            and isinstance(writer, dict)
            and all(isinstance(v, dict) for v in variables.values())
        ):
            msg = "File is authentic but does not hold a valid session"
            raise CorruptFile(msg, path=path)
        refs = frozenset(blob for v in variables.values() if isinstance(blob := v.get("blob"), str))
        # A record with a "skipped" reason is one whose value was not saved (VariableRecord.saved).
        skipped = sum(1 for v in variables.values() if v.get("skipped") is not None)
        run_id, kernel_id, host, pid = (
            writer.get(k) for k in ("run_id", "kernel_id", "host", "pid")
        )
        return cls(
            stat_key=stat_key(st),
            size=st.st_size,
            name=name,
            updated=float(updated),
            cells=len(history),
            variables=len(variables) - skipped,
            skipped=skipped,
            connections=len(connections),
            blob_refs=refs,
            run_id=run_id if isinstance(run_id, str) else "",
            kernel_id=kernel_id if isinstance(kernel_id, str) else "",
            host=host if isinstance(host, str) else "",
            pid=pid if isinstance(pid, int) else 0,
            digest=digest,
            bound=bound,
        )

    @classmethod
    def of(cls, session: Session, st: os.stat_result, *, digest: str, bound: bool) -> FileMeta:
        saved = sum(1 for record in session.variables.values() if record.saved)
        return cls(
            stat_key=stat_key(st),
            size=st.st_size,
            name=session.name,
            updated=session.updated,
            cells=len(session.history),
            variables=saved,
            skipped=len(session.variables) - saved,
            connections=len(session.connections),
            blob_refs=frozenset(session.blob_ids()),
            run_id=session.writer.run_id,
            kernel_id=session.writer.kernel_id,
            host=session.writer.host,
            pid=session.writer.pid,
            digest=digest,
            bound=bound,
        )
