"""Reading a session back: the newest generation that can be read, and what to say when none can.

A newer file that fails authentication or validation is quarantined and the next older one is
tried; files under another key or from a newer release are skipped and left in place. So are, to
quarantine, files that authenticate but are not the generation their name says
(:class:`~ipysession.errors.SubstitutedFile`) and files named like generations under names no
ipysession writes. Every file that was skipped is reported, in the
:class:`~ipysession.store.results.ReadResult` or, when nothing could be read, in the
:attr:`~ipysession.errors.StoreError.problems` of the error raised. The generation read is then
checked against the session's head record (:mod:`ipysession.store.head`): newest generations
deleted or put back from an older copy are reported in :attr:`ReadResult.rollback`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ipysession.errors import (
    CorruptFile,
    FileFormatError,
    FileProblem,
    NewerFormat,
    ProblemKind,
    SessionNotFound,
    StoreError,
    WrongKey,
)
from ipysession.model import Session
from ipysession.store.disk import Disk
from ipysession.store.head import Head, head_path, judge, read_head, unbound_above_head
from ipysession.store.results import ReadResult
from ipysession.store.scan import (
    MAX_GENERATION,
    gen_name,
    scan_generations,
    scan_junk_generations,
)

__all__ = ["read_newest", "read_one"]

#: What reading a file may raise when the file, not the program, is at fault.
_BAD_FILE = (FileFormatError, OSError, LookupError)

#: When no generation can be read, the error raised is that of the most telling problem: a newer
#: release or another key explain more (and ask for a different fix) than damage does.
_RELEVANCE = {
    ProblemKind.NEWER_FORMAT: 3,
    ProblemKind.WRONG_KEY: 2,
    ProblemKind.CORRUPT: 1,
    ProblemKind.UNREADABLE: 0,
}


def read_one(disk: Disk, path: Path, sdir: Path) -> Session:
    """One named generation or checkpoint; if it is corrupt it is quarantined, and the error
    raised carries its problem."""
    try:
        return disk.load(path, sdir)[0]
    except _BAD_FILE as exc:
        problem = disk.problem(path, exc, sdir, quarantine=True)
        if isinstance(exc, StoreError):
            exc.problems = (problem,)
            raise
        raise _unreadable_error([problem], path) from exc


def read_newest(disk: Disk, name: str, sdir: Path) -> ReadResult:
    """The newest generation of ``sdir`` that can be read (see the module's docstring)."""
    problems: list[FileProblem] = []
    errors: list[BaseException] = []

    def skip(path: Path, exc: BaseException) -> None:
        problems.append(disk.problem(path, exc, sdir, quarantine=True))
        errors.append(exc)

    for path in scan_junk_generations(sdir):
        skip(path, _junk_name(path))
    head, head_failed = _head(disk, sdir, skip)
    on_disk = {number for number, _ in scan_generations(sdir)}
    failed: set[Path] = set()
    for _attempt in range(5):
        gens = [(n, p) for n, p in scan_generations(sdir) if p not in failed]
        if not gens and not problems:
            msg = f"Session {name!r} has no saved generation"
            raise SessionNotFound(
                msg,
                path=sdir,
                hint="Its checkpoints, if any, can be read with `--checkpoint LABEL`",
            )
        vanished = False
        for number, path in reversed(gens):
            try:
                session, meta = disk.load(path, sdir)
                refused = None if meta.bound else unbound_above_head(path, number, head)
                if refused is not None:
                    raise refused
            except FileNotFoundError:
                vanished = True  # rotated away by a concurrent writer: scan again
                break
            except _BAD_FILE as exc:
                skip(path, exc)
                failed.add(path)
                continue
            rollback = judge(
                disk, sdir, head, head_failed=head_failed, used=number, meta=meta, on_disk=on_disk
            )
            return ReadResult(session, number, path, problems, rollback)
        if not vanished:
            break
    raise _most_telling_error(disk, name, sdir, errors, problems)


def _head(
    disk: Disk, sdir: Path, skip: Callable[[Path, BaseException], None]
) -> tuple[Head | None, bool]:
    """The session's head record, and whether one exists but could not be used (then it is
    reported through ``skip``, and quarantined if it is corrupt)."""
    try:
        return read_head(disk, sdir), False
    except _BAD_FILE as exc:
        skip(head_path(sdir), exc)
        return None, True


def _junk_name(path: Path) -> CorruptFile:
    msg = (
        f"File {path.name} is named like a generation, but no ipysession writes that name "
        f"(generations are numbered 1 to {MAX_GENERATION}, written as {gen_name(7)}): it was "
        "not read and decides nothing"
    )
    return CorruptFile(
        msg, path=path, hint="If you put it there, rename it to the generation it is"
    )


def _most_telling_error(
    disk: Disk, name: str, sdir: Path, errors: list[BaseException], problems: list[FileProblem]
) -> StoreError:
    """:class:`NewerFormat`, then :class:`WrongKey`, then :class:`CorruptFile`, then unreadable."""
    if not problems:
        msg = f"Session {name!r} has no readable generation"
        return SessionNotFound(msg, path=sdir)
    best = max(problems, key=lambda p: _RELEVANCE[p.kind]).kind
    chosen = [e for e, p in zip(errors, problems, strict=True) if p.kind is best]
    error: StoreError
    if best is ProblemKind.NEWER_FORMAT:
        error = max((e for e in chosen if isinstance(e, NewerFormat)), key=lambda e: e.found)
    elif best is ProblemKind.WRONG_KEY:
        error = next(e for e in chosen if isinstance(e, WrongKey))
    elif best is ProblemKind.CORRUPT:
        msg = (
            f"No generation of session {name!r} could be read: {len(chosen)} file(s) failed "
            f"authentication or validation and were moved to {disk.quarantine_dir}"
        )
        error = CorruptFile(
            msg,
            path=sdir,
            hint="Checkpoints, if any, may still be readable; the moved files are kept",
        )
    else:
        error = _unreadable_error(problems, sdir)
    error.problems = tuple(problems)
    return error


def _unreadable_error(problems: list[FileProblem], where: Path) -> StoreError:
    msg = f"Session files cannot be read: {problems[0].message}"
    error = StoreError(msg, path=where, hint=f"Check permissions of {where}")
    error.problems = tuple(problems)
    return error
