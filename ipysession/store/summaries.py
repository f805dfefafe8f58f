"""What ``list``, ``generations`` and ``checkpoints`` say of each session and file.

Answered from each file's remembered summary (:class:`~ipysession.store.meta.FileMeta`): a file is
decoded once per change, and no session is built, so listing stays cheap for the command line.
A listing never moves a file and never raises for a bad one: the file's problem is reported in
its row instead.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ipysession.errors import FileFormatError, FileProblem, ProblemKind, SessionError
from ipysession.store.disk import Disk
from ipysession.store.listings import CheckpointInfo, GenerationInfo, SessionSummary
from ipysession.store.names import BLOB_SUFFIX, BLOBS_DIR, GENERATION_SUFFIX
from ipysession.store.scan import scan_checkpoints, scan_generations

__all__ = ["checkpoint_infos", "generation_infos", "summarize"]

logger = logging.getLogger("ipysession")

#: What reading a file may raise when the file, not the program, is at fault.
_BAD_FILE = (FileFormatError, OSError, LookupError)


def summarize(disk: Disk, sdir: Path) -> SessionSummary:
    """One session as ``ipysession list`` shows it: from its newest readable generation."""
    gens: list[tuple[int, Path]] = []
    first_problem: FileProblem | None = None
    try:
        gens = scan_generations(sdir)
        for number, path in reversed(gens):
            try:
                meta = disk.meta_for(path, sdir)
            except FileNotFoundError:
                continue
            except _BAD_FILE as exc:
                if first_problem is None:
                    first_problem = disk.problem(path, exc, sdir, quarantine=False)
                continue
            size = meta.size
            for blob_id in meta.blob_refs:
                with contextlib.suppress(OSError):
                    size += (sdir / BLOBS_DIR / f"{blob_id}{BLOB_SUFFIX}").stat().st_size
            return SessionSummary(
                name=meta.name,
                slug=sdir.name,
                path=sdir,
                updated=meta.updated,
                size_bytes=size,
                generations=len(gens),
                variables=meta.variables,
                skipped=meta.skipped,
                connections=meta.connections,
                newest_readable=number,
                problem=first_problem,
            )
    except OSError as exc:
        first_problem = disk.problem(sdir, exc, sdir, quarantine=False)
    except SessionError as exc:  # a bug surfacing as one of ours: report, never raise
        logger.exception("Could not summarize session %s", sdir)
        first_problem = disk.problem(sdir, exc, sdir, quarantine=False)
    if first_problem is None:
        first_problem = FileProblem(
            path=sdir, kind=ProblemKind.UNREADABLE, message=f"{sdir} holds no generation file"
        )
    updated: float | None = None
    size = 0
    for _, path in gens:
        with contextlib.suppress(OSError):
            st = path.stat()
            size += st.st_size
            updated = max(updated or 0.0, st.st_mtime)
    return SessionSummary(
        name=None,
        slug=sdir.name,
        path=sdir,
        updated=updated,
        size_bytes=size,
        generations=len(gens),
        variables=0,
        connections=0,
        newest_readable=None,
        problem=first_problem,
    )


def generation_infos(disk: Disk, sdir: Path) -> list[GenerationInfo]:
    """Every generation of a session, newest first; a bad one carries its problem."""
    infos: list[GenerationInfo] = []
    for number, path in reversed(scan_generations(sdir)):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            problem = disk.problem(path, exc, sdir, quarantine=False)
            infos.append(GenerationInfo(number, path, 0, 0.0, problem=problem))
            continue
        try:
            meta = disk.meta_for(path, sdir)
        except FileNotFoundError:
            continue
        except _BAD_FILE as exc:
            problem = disk.problem(path, exc, sdir, quarantine=False)
            infos.append(GenerationInfo(number, path, st.st_size, st.st_mtime, problem=problem))
            continue
        infos.append(
            GenerationInfo(
                number=number,
                path=path,
                size=st.st_size,
                mtime=st.st_mtime,
                time=meta.updated,
                cells=meta.cells,
                variables=meta.variables,
                skipped=meta.skipped,
                writer_run_id=meta.run_id,
                writer_kernel_id=meta.kernel_id,
                writer_host=meta.host,
                writer_pid=meta.pid,
            )
        )
    return infos


def checkpoint_infos(disk: Disk, sdir: Path) -> list[CheckpointInfo]:
    """Named checkpoints of a session, newest first; a bad one carries its problem."""
    infos: list[CheckpointInfo] = []
    for path in scan_checkpoints(sdir):
        label = path.name[: -len(GENERATION_SUFFIX)]
        try:
            st = path.stat()
            meta = disk.meta_for(path, sdir)
        except FileNotFoundError:
            continue
        except _BAD_FILE as exc:
            problem = disk.problem(path, exc, sdir, quarantine=False)
            size, mtime = 0, 0.0
            with contextlib.suppress(OSError):
                st = path.stat()
                size, mtime = st.st_size, st.st_mtime
            infos.append(CheckpointInfo(label, path, size, mtime, problem=problem))
            continue
        infos.append(
            CheckpointInfo(
                label=label,
                path=path,
                size=st.st_size,
                mtime=st.st_mtime,
                time=meta.updated,
                cells=meta.cells,
                variables=meta.variables,
                skipped=meta.skipped,
            )
        )
    infos.sort(key=lambda info: info.mtime, reverse=True)
    return infos
