"""The commands that move sessions or their key: ``export``, ``import`` and ``rekey``.

Exports are one self-contained file sealed with a passphrase read from an environment variable;
``rekey`` re-encrypts the whole store under a new master key.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ipysession.atomic import write_atomically
from ipysession.cli.common import EXIT_DATA, EXIT_OK, Context, UsageError, count_files
from ipysession.errors import (
    CorruptFile,
    ModelError,
    SessionError,
    SessionNotFound,
    StoreWriteError,
    UnsafeFile,
    WrongKey,
)
from ipysession.formatting import count, format_size
from ipysession.model import BufferRecord, Session, VariableRecord
from ipysession.safe_open import read_regular

if TYPE_CHECKING:
    import argparse

    from ipysession.store import SessionStore


# --- export / import ----------------------------------------------------------------------------


def _passphrase(variable: str) -> str:
    """The passphrase from environment variable ``variable``; never from the command line."""
    value = os.environ.get(variable)
    if value is None:
        msg = (
            f"environment variable {variable} is not set; put the passphrase in it "
            f"(for example `read -rs {variable} && export {variable}`)"
        )
        raise UsageError(msg)
    if not value.strip():
        msg = f"environment variable {variable} is empty; an empty passphrase protects nothing"
        raise UsageError(msg)
    return value


def _write_private_file(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (temp file in its dir, fsync, rename), 0600."""
    try:
        write_atomically(target, data)
    except OSError as exc:
        msg = f"Cannot write the export: {exc.strerror or exc}"
        raise StoreWriteError(
            msg,
            path=target,
            hint=f"Check that {target.parent} exists, is writable and has free space",
            errno=exc.errno,
        ) from exc


def _inline_values(ctx: Context, store: SessionStore, name: str, session: Session) -> Session:
    """The session with every blob's bytes put back into its variable: one self-contained doc.

    A value that cannot be read is recorded as skipped (with the reason) and reported, as a
    restore would: one bad value never stops the rest.
    """
    variables: dict[str, VariableRecord] = {}
    for var, record in session.variables.items():
        if record.blob_refs():
            try:
                data = record.data if record.blob is None else store.read_blob(name, record.blob)
                buffers = tuple(
                    BufferRecord(b.size, data=bytes(store.read_blob(name, b.blob)))
                    if b.blob is not None
                    else b
                    for b in record.buffers
                )
            except SessionError as exc:
                ctx.warn(f"variable {var!r} is not exported: {exc}")
                record = dataclasses.replace(
                    record,
                    data=None,
                    blob=None,
                    encoding=None,
                    buffers=(),
                    members=(),
                    skipped=f"not exported: {exc.what}",
                )
            else:
                record = dataclasses.replace(
                    record, data=None if data is None else bytes(data), blob=None, buffers=buffers
                )
        variables[var] = record
    return dataclasses.replace(session, variables=variables)


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    passphrase = _passphrase(args.passphrase_env)
    target: Path = args.file.expanduser()
    if target.exists() and not args.force:
        msg = f"{target} exists; add --force to replace it"
        raise UsageError(msg)
    if target.is_dir():
        msg = f"{target} is a directory; give the path of the file to write"
        raise UsageError(msg)
    args.name = ctx.resolve_session(args.name)
    store = ctx.store()
    result = store.read(args.name, generation=args.generation)
    for problem in result.problems:
        ctx.warn(f"skipped {problem.path} ({problem.kind}: {problem.message})")
    session = _inline_values(ctx, store, args.name, result.session)

    from ipysession.keys.crypto import PassphraseKey
    from ipysession.store import fileformat

    key = PassphraseKey(passphrase, description=f"passphrase from ${args.passphrase_env}")
    data = fileformat.encode_session(session.to_dict(), key)
    _write_private_file(target, data)
    saved = sum(1 for r in session.variables.values() if r.saved)
    ctx.say(
        f"Exported session {session.name!r} (generation {result.generation}, "
        f"{count(saved, 'variable')}, {count(len(session.history), 'history cell')}, "
        f"{count(len(session.connections), 'connection')}) to {target} "
        f"({format_size(len(data))}), "
        f"sealed with the passphrase in ${args.passphrase_env}."
    )
    ctx.say(f"Import it with: ipysession import {target} --passphrase-env {args.passphrase_env}")
    return EXIT_OK


def _read_export(path: Path, passphrase: str, variable: str) -> Session:
    from ipysession.keys.crypto import PassphraseKey
    from ipysession.store import fileformat

    try:
        # The user named this file, so a link they made to it is followed (resolve); a FIFO, a
        # device such as /dev/zero, or a file over the limit is refused before it is read.
        data = read_regular(path.resolve(), limit=fileformat.DEFAULT_MAX_DOCUMENT_BYTES)
    except UnsafeFile:
        raise
    except FileNotFoundError:
        msg = "No such file"
        raise SessionNotFound(msg, path=path, hint="Check the path of the exported file") from None
    except IsADirectoryError:
        msg = "This is a directory, not an exported session"
        raise CorruptFile(msg, path=path, hint="Give the file `ipysession export` wrote") from None
    except OSError as exc:
        msg = f"Cannot read the file: {exc.strerror or exc}"
        raise CorruptFile(msg, path=path, hint="Check its permissions") from exc
    key = PassphraseKey(passphrase, description=f"passphrase from ${variable}")
    try:
        doc = fileformat.decode_session(data, key, path=path)
    except WrongKey as exc:
        header = fileformat.read_header(data, path=path)
        if header.uses_passphrase:
            what = "The passphrase does not open this file"
            hint = f"Put the passphrase it was exported with in ${variable}"
        else:
            what = "This file is sealed with a master key, not a passphrase: it is not an export"
            hint = "Create one with `ipysession export NAME FILE --passphrase-env VAR`"
        raise WrongKey(what, path=path, hint=hint) from exc
    doc.pop("format", None)
    try:
        return Session.from_dict(doc)
    except ModelError as exc:
        msg = f"File is authentic but does not hold a valid session: {exc.what}"
        raise CorruptFile(msg, path=path) from None


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    passphrase = _passphrase(args.passphrase_env)
    source: Path = args.file.expanduser()
    session = _read_export(source, passphrase, args.passphrase_env)
    if args.name is not None:
        if not args.name.strip():
            msg = "--name must not be empty"
            raise UsageError(msg)
        session = dataclasses.replace(session, name=args.name)
    store = ctx.store()
    replaced = store.exists(session.name)
    if replaced and not args.force:
        msg = (
            f"a session named {session.name!r} already exists; add --force to save the "
            "import as its newest generation (older generations stay, see `ipysession "
            "snapshots`), or choose another name with --name"
        )
        raise UsageError(msg)
    written = store.write(session)
    saved = sum(1 for r in session.variables.values() if r.saved)
    verb = "as the newest generation of the existing session" if replaced else "as a new session"
    ctx.say(
        f"Imported {source} {verb} {session.name!r} (generation {written.generation}, "
        f"{count(saved, 'variable')}, {count(len(session.history), 'history cell')}, "
        f"{count(len(session.connections), 'connection')}), sealed with the local key."
    )
    return EXIT_OK


# --- rekey --------------------------------------------------------------------------------------

#: Problems that may hide a file sealed under the old key: committing would orphan it.
_BLOCKING = frozenset({"unreadable", "newer-format"})


def cmd_rekey(ctx: Context, args: argparse.Namespace) -> int:
    from ipysession.keys.resolution import commit_rotation, rotate_key
    from ipysession.store.names import QUARANTINE_DIR

    resolution = ctx.resolution()
    old, new = rotate_key(resolution)
    ctx.say(
        f"Re-encrypting every session under a new master key ({old.key_id_hex} -> "
        f"{new.key_id_hex}); files stay readable throughout."
    )
    store = ctx.open_store(resolution.key)
    try:
        report = store.rekey(new)
    finally:
        store.close()
    for problem in report.problems:
        moved = f"; moved to {problem.quarantined_to}" if problem.quarantined_to else ""
        ctx.warn(f"not re-encrypted: {problem.path} ({problem.kind}: {problem.message}){moved}")
    ctx.say(
        f"Re-encrypted {count(report.sessions, 'session')}: "
        f"{count(report.files_rewritten, 'session file')}, "
        f"{count(report.blobs_rewritten, 'blob')}; "
        f"{count(len(report.problems), 'file')} not re-encrypted."
    )
    if report.recent_resealed:
        ctx.say(
            f"Re-encrypted the recent-connections list "
            f"({count(report.recent_resealed, 'connection')})."
        )
    if report.recent_unreadable is not None:
        ctx.warn(
            f"the recent-connections list could not be re-encrypted ({report.recent_unreadable})"
            "; it is left as it is and replaced at the next `%session connect`."
        )
    blocking = [p for p in report.problems if p.kind in _BLOCKING]
    if blocking:
        ctx.warn(
            f"the old key is kept: {count(len(blocking), 'file')} could not be read and may be "
            "sealed with it. Fix them (see above), then run `ipysession rekey` again; until "
            "then both keys open your sessions."
        )
        return EXIT_DATA
    committed = commit_rotation(resolution, new)
    ctx.say(
        f"The master key is now {new.key_id_hex} ({committed.backend}: "
        f"{committed.location or committed.reason}); the old key {old.key_id_hex} is gone."
    )
    ctx.say(
        "Running kernels switch to the new key before their next save; one that cannot read it "
        "saves nothing and says why in `%session status`."
    )
    if committed.backend == "file":
        ctx.say("Back up the key file again: the old backup no longer opens your sessions.")
    if count_files(ctx.root / QUARANTINE_DIR):
        ctx.say(
            f"Files in {ctx.root / QUARANTINE_DIR} were not re-encrypted; those sealed with the "
            "old key can no longer be opened."
        )
    return EXIT_OK
