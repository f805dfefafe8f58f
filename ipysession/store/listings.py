"""What the session store hands back from a listing and from maintenance.

``ipysession list`` and the snapshots of ``%session snapshots`` (:class:`SessionSummary`,
:class:`GenerationInfo`, :class:`CheckpointInfo`), ``ipysession doctor`` (:class:`RepairReport`,
:class:`DanglingReference`) and ``ipysession rekey`` (:class:`RekeyReport`). Apart from
:mod:`.results` (a write, a read): a kernel that only restores and saves never imports this.

Variable counts mean one thing everywhere: ``variables`` counts the variables whose value was
saved, ``skipped`` those the file lists with the reason they could not be saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipysession.errors import FileProblem

__all__ = [
    "CheckpointInfo",
    "DanglingReference",
    "GenerationInfo",
    "RekeyReport",
    "RepairReport",
    "SessionSummary",
]


@dataclass(frozen=True)
class DanglingReference:
    """A generation or checkpoint (``path``) refers to blob ``blob_id``, which is not on disk."""

    path: Path
    blob_id: str

    @property
    def message(self) -> str:
        return (
            f"{self.path.name} refers to stored value {self.blob_id}, which is missing: "
            "restoring it loses that variable"
        )


@dataclass(frozen=True)
class SessionSummary:
    """One line of ``ipysession list``. ``name`` is ``None`` when no generation could be read.

    ``variables`` and ``skipped`` count the saved and the skipped variables of the newest
    readable generation.
    """

    name: str | None
    slug: str
    path: Path
    updated: float | None
    size_bytes: int
    generations: int
    variables: int
    connections: int
    newest_readable: int | None
    problem: FileProblem | None = None
    skipped: int = 0


@dataclass(frozen=True)
class GenerationInfo:
    """One generation file; the decoded fields are ``None`` when ``problem`` is set."""

    number: int
    path: Path
    size: int
    mtime: float
    time: float | None = None
    cells: int | None = None
    variables: int | None = None
    writer_run_id: str | None = None
    writer_kernel_id: str | None = None
    writer_host: str | None = None
    writer_pid: int | None = None
    problem: FileProblem | None = None
    skipped: int | None = None

    @property
    def writer(self) -> str | None:
        """Who wrote it, for display: ``"host pid 123, kernel 1a2b3c4d"`` (``None`` if unknown)."""
        parts = []
        if self.writer_host:
            parts.append(self.writer_host)
        if self.writer_pid:
            parts.append(f"pid {self.writer_pid}")
        described = " ".join(parts)
        if self.writer_kernel_id:
            kernel = f"kernel {self.writer_kernel_id[:8]}"
            described = f"{described}, {kernel}" if described else kernel
        return described or None


@dataclass(frozen=True)
class CheckpointInfo:
    """One named checkpoint; the decoded fields are ``None`` when ``problem`` is set."""

    label: str
    path: Path
    size: int
    mtime: float
    time: float | None = None
    cells: int | None = None
    variables: int | None = None
    problem: FileProblem | None = None
    skipped: int | None = None


@dataclass
class RepairReport:
    """What :meth:`SessionStore.repair` did (``ipysession doctor --repair``)."""

    quarantined: list[FileProblem] = field(default_factory=list)
    left_in_place: list[FileProblem] = field(default_factory=list)
    temp_files_removed: list[Path] = field(default_factory=list)
    blobs_removed: list[Path] = field(default_factory=list)
    sessions_skipped: list[tuple[Path, str]] = field(default_factory=list)
    files_checked: int = 0


@dataclass
class RekeyReport:
    """What :meth:`SessionStore.rekey` did."""

    sessions: int = 0
    files_rewritten: int = 0
    blobs_rewritten: int = 0
    problems: list[FileProblem] = field(default_factory=list)
    #: Connections in the user-wide recent-connections list, re-sealed under the new key
    #: (0: there is no list).
    recent_resealed: int = 0
    #: Why the recent-connections list could not be re-sealed (it was left as it was, and is
    #: replaced at the next connect); it never holds the only copy of anything, so this does
    #: not keep the old key.
    recent_unreadable: str | None = None
