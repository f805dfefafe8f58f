"""The ``ipysession`` command: look at, check, repair and move saved sessions without a kernel.

Run ``ipysession --help`` (or ``python -m ipysession --help``) for the commands and
``ipysession COMMAND -h`` for each one; those help texts are the reference documentation::

    ipysession list                       saved sessions, newest first
    ipysession show NAME                  what a session holds (secrets shown as ***)
    ipysession snapshots NAME             its generations and checkpoints
    ipysession delete NAME [--yes]        delete it (asks first)
    ipysession doctor [--repair]          key, directories, every file; repair what fails
    ipysession export NAME FILE --passphrase-env VAR
    ipysession import FILE --passphrase-env VAR [--name NEW] [--force]
    ipysession rekey                      new master key, every session re-encrypted

The command works on :class:`~ipysession.store.SessionStore` directly, never through a shell: it
imports no IPython module, so it runs wherever the session files and the key are.

Exit codes: 0 success, 1 usage error (bad arguments; a confirmation that cannot be asked; an
operation that needs ``--force``), 2 a data problem (session not found, corrupt file, wrong key,
newer format, key unavailable, a problem ``doctor`` found); also 130 when interrupted and 141 when
the reader of the output went away (``ipysession list | head``), as a shell reports those
signals. Errors go to stderr as one line that names the file and the fix; ``--debug`` adds the
traceback and debug logging. Secrets (connection secrets, ``%env`` values, keys, passphrases) are
never printed: not in text or ``--json`` output, not in messages.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import stat
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from . import paths
from ._version import __version__
from .atomic import write_atomically
from .errors import (
    CorruptFile,
    KeyStoreError,
    ModelError,
    SessionError,
    SessionNotFound,
    StoreWriteError,
    WrongKey,
)
from .formatting import format_size, format_time
from .model import REDACTED, ConnectionRecord, Session, VariableRecord, WriterInfo, redact

if TYPE_CHECKING:
    from .crypto import SealingKey
    from .keystore import BackendChoice, KeyResolution
    from .store import FileProblem, SessionStore

__all__ = ["EXIT_DATA", "EXIT_OK", "EXIT_USAGE", "KEY_BACKENDS", "build_parser", "main"]

log = logging.getLogger("ipysession")

PROG = "ipysession"
EXIT_OK = 0
EXIT_USAGE = 1
EXIT_DATA = 2
EXIT_INTERRUPTED = 130  # as a shell reports SIGINT
EXIT_BROKEN_PIPE = 141  # as a shell reports SIGPIPE: `ipysession list | head`
#: The choices of ``--key-backend`` (``keystore.BackendChoice``; a test keeps them in step).
KEY_BACKENDS = ("auto", "passphrase", "keyring", "file")

_EPILOG = """\
environment:
  IPYSESSION_DIR          session store root (--root overrides it)
  IPYSESSION_CONFIG_DIR   where the key file lives when no OS keyring is usable
  IPYSESSION_PASSPHRASE   if set, sessions are sealed with a key derived from it

exit codes:
  0  success
  1  usage error: bad arguments, a confirmation that cannot be asked, --force needed
  2  data problem: session not found, corrupt file, wrong key, newer format, key
     unavailable, or a problem `doctor` found; the message names the file and the fix

Run `ipysession COMMAND -h` for the options of each command.
"""


class UsageError(Exception):
    """The command was called in a way it cannot run (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 1 for usage errors (argparse's own is 2, our data-problem code)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# --- context: where the store is, which key ----------------------------------------------------


@dataclass
class _Context:
    root: Path
    key_backend: str
    keyring_timeout: float
    _resolution: KeyResolution | None = field(default=None, repr=False)
    _store: SessionStore | None = field(default=None, repr=False)

    @property
    def out(self) -> TextIO:
        return sys.stdout

    def say(self, text: str = "") -> None:
        print(text, file=sys.stdout)

    def warn(self, text: str) -> None:
        print(f"{PROG}: {text}", file=sys.stderr)

    def resolution(self) -> KeyResolution:
        """The key, resolved once (on first use this may create it, with a notice on stderr)."""
        if self._resolution is None:
            from .keystore import resolve_key

            self._resolution = resolve_key(
                backend=cast("BackendChoice", self.key_backend),  # argparse checked it
                keyring_timeout=self.keyring_timeout,
            )
            if self._resolution.notice:
                print(self._resolution.notice, file=sys.stderr)
        return self._resolution

    def store(self) -> SessionStore:
        if self._store is None:
            self._store = self.open_store(self.resolution().key)
        return self._store

    def open_store(self, key: SealingKey) -> SessionStore:
        from .store import SessionStore

        return SessionStore(self.root, key=key)

    @property
    def sessions_dir(self) -> Path:
        from .layout import SESSIONS_DIR

        return self.root / SESSIONS_DIR

    def has_sessions(self) -> bool:
        """Whether any session directory exists; answered without the key."""
        try:
            with os.scandir(self.sessions_dir) as entries:
                return any(not e.name.startswith(".") for e in entries)
        except OSError:
            return False

    def require_session(self, name: str) -> None:
        """Raise :class:`SessionNotFound` early (before any key is needed) if nothing is stored."""
        if not self.has_sessions():
            msg = f"No session named {name!r}: there are no saved sessions in {self.root}"
            raise SessionNotFound(
                msg,
                path=self.sessions_dir,
                hint="Check --root or $IPYSESSION_DIR; `ipysession list` shows what is saved",
            )

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()


# --- formatting ---------------------------------------------------------------------------------


def _when_or_dash(timestamp: float | None) -> str:
    return format_time(timestamp, missing="-")


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _emit_json(ctx: _Context, value: object) -> None:
    json.dump(value, ctx.out, indent=2, default=str)
    ctx.out.write("\n")


def _writer_text(writer: WriterInfo) -> str:
    versions = [
        f"{label} {version}"
        for label, version in (
            ("ipysession", writer.ipysession),
            ("IPython", writer.ipython),
            ("Python", writer.python),
        )
        if version
    ]
    where = [
        text
        for text, present in (
            (f"host {writer.host}", writer.host),
            (f"pid {writer.pid}", writer.pid),
            (f"kernel {writer.kernel_id}", writer.kernel_id),
        )
        if present
    ]
    text = ", ".join(versions) or "unknown"
    return f"{text} ({', '.join(where)})" if where else text


def _writer_json(writer: WriterInfo) -> dict[str, Any]:
    return {
        "python": writer.python,
        "ipython": writer.ipython,
        "ipysession": writer.ipysession,
        "host": writer.host,
        "pid": writer.pid,
        "kernel_id": writer.kernel_id,
        "run_id": writer.run_id,
    }


def _redacted_secrets(record: ConnectionRecord) -> dict[str, str]:
    return {key: redact(value) for key, value in record.secrets.items()}


def _by_recent_use(session: Session) -> list[ConnectionRecord]:
    """Connections, most recently used first (never-used ones last, newest created first)."""
    return sorted(
        session.connections.values(),
        key=lambda c: (c.stats.last_used or 0.0, c.stats.created or 0.0),
        reverse=True,
    )


def _problem_json(problem: FileProblem) -> dict[str, Any]:
    return {
        "path": str(problem.path),
        "kind": problem.kind,
        "message": problem.message,
        "quarantined_to": str(problem.quarantined_to) if problem.quarantined_to else None,
    }


def _short(identifier: str | None) -> str:
    return identifier[:8] if identifier else ""


# --- list ---------------------------------------------------------------------------------------


def _cmd_list(ctx: _Context, args: argparse.Namespace) -> int:
    summaries = ctx.store().list() if ctx.has_sessions() else []
    if args.json:
        _emit_json(
            ctx,
            [
                {
                    "name": s.name,
                    "slug": s.slug,
                    "path": str(s.path),
                    "updated": s.updated,
                    "size_bytes": s.size_bytes,
                    "generations": s.generations,
                    "variables": s.variables,
                    "connections": s.connections,
                    "newest_readable": s.newest_readable,
                    "state": s.problem.kind if s.problem else "ok",
                    "problem": _problem_json(s.problem) if s.problem else None,
                }
                for s in summaries
            ],
        )
        return EXIT_OK
    if not summaries:
        ctx.say(f"No saved sessions in {ctx.root}.")
        return EXIT_OK
    rows = []
    for s in summaries:
        if s.problem is None:
            state = "ok"
        elif s.newest_readable is not None:
            state = f"ok (generation {s.newest_readable}; a newer one is {s.problem.kind})"
        else:
            state = s.problem.kind
        rows.append(
            [
                s.name if s.name is not None else f"? ({s.slug})",
                _when_or_dash(s.updated),
                format_size(s.size_bytes),
                s.generations,
                s.variables if s.newest_readable is not None else "?",
                s.connections if s.newest_readable is not None else "?",
                state,
            ]
        )
    headers = ["session", "updated", "size", "generations", "variables", "connections", "state"]
    ctx.say(_table(headers, rows))
    if any(s.problem for s in summaries):
        ctx.say("\nRun `ipysession doctor` for details about the files that do not read.")
    return EXIT_OK


# --- show ---------------------------------------------------------------------------------------


def _variable_state(record: VariableRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type_name,
        "size": record.size,
        "state": "saved" if record.saved else "skipped",
        "stored": None if not record.saved else ("blob" if record.blob else "inline"),
        "encoding": record.encoding,
        "skipped": record.skipped,
    }


def _connection_json(record: ConnectionRecord) -> dict[str, Any]:
    stats = record.stats
    return {
        "name": record.name,
        "kind": record.kind,
        "variable": record.variable,
        "auto": record.auto,
        "params": dict(record.params),
        "secrets": _redacted_secrets(record),
        "stats": {
            "created": stats.created,
            "last_used": stats.last_used,
            "successes": stats.successes,
            "failures": stats.failures,
            "last_error": stats.last_error,
        },
    }


def _show_document(session: Session, generation: int | None, path: Path) -> dict[str, Any]:
    """Everything ``show`` reports, secrets redacted: the ``--json`` form and the text's source.

    Built field by field (never from ``to_dict()``), so values, history sources, secrets and
    unknown fields cannot leak into it.
    """
    prefs = session.preferences
    return {
        "name": session.name,
        "generation": generation,
        "path": str(path),
        "created": session.created,
        "updated": session.updated,
        "writer": _writer_json(session.writer),
        "cwd": session.cwd,
        "history": {"cells": len(session.history)},
        "variables": [_variable_state(record) for record in session.variables.values()],
        "imports": [
            {
                "name": imp.name,
                "module": imp.module,
                "attribute": imp.attribute,
                "statement": imp.statement(),
            }
            for imp in session.imports
        ],
        "preferences": {
            "extensions": list(prefs.extensions),
            "magics": dict(prefs.magics),
            "env": {name: REDACTED for name in prefs.env},
        },
        "connections": [_connection_json(record) for record in _by_recent_use(session)],
    }


def _show_text(doc: dict[str, Any], session: Session, checkpoint: str | None) -> str:
    which = f"checkpoint {checkpoint!r}" if checkpoint else f"generation {doc['generation']}"
    lines = [
        f"Session {session.name!r}",
        f"  snapshot    {which}: {doc['path']}",
        f"  created     {_when_or_dash(session.created)}",
        f"  updated     {_when_or_dash(session.updated)}",
        f"  written by  {_writer_text(session.writer)}",
        f"  cwd         {session.cwd or '-'}",
        f"  history     {_count(len(session.history), 'cell')}",
        "",
        f"Variables ({len(doc['variables'])})",
    ]
    if doc["variables"]:
        rows = [
            [
                v["name"],
                v["type"],
                format_size(v["size"]),
                f"saved ({v['stored']})" if v["state"] == "saved" else f"skipped: {v['skipped']}",
            ]
            for v in doc["variables"]
        ]
        lines.append(_table(["name", "type", "size", "state"], rows, indent="  "))
    lines += ["", f"Imports ({len(doc['imports'])})"]
    lines += [f"  {imp['statement']}" for imp in doc["imports"]]
    prefs = doc["preferences"]
    magics = ", ".join(f"%{k} {v}".rstrip() for k, v in prefs["magics"].items())
    lines += [
        "",
        "Preferences",
        f"  extensions  {', '.join(prefs['extensions']) or '-'}",
        f"  magics      {magics or '-'}",
        f"  env         {', '.join(f'{k}={v}' for k, v in prefs['env'].items()) or '-'}",
        "",
        f"Connections ({len(doc['connections'])}, most recently used first)",
    ]
    for conn in doc["connections"]:
        stats = conn["stats"]
        auto = "" if conn["auto"] else ", no auto-reconnect"
        params = ", ".join(f"{k}={v!r}" for k, v in conn["params"].items()) or "-"
        hidden = ", ".join(f"{k}={v}" for k, v in conn["secrets"].items()) or "-"
        lines += [
            f"  {conn['name']} [{conn['kind']}] -> variable {conn['variable']}{auto}",
            f"    params      {params}",
            f"    secrets     {hidden}",
            f"    created     {_when_or_dash(stats['created'])}",
            f"    last used   {_when_or_dash(stats['last_used'])}",
            f"    outcomes    {_count(stats['successes'], 'success', 'successes')}, "
            f"{_count(stats['failures'], 'failure')}",
        ]
        if stats["last_error"]:
            lines.append(f"    last error  {stats['last_error']}")
    return "\n".join(lines)


def _cmd_show(ctx: _Context, args: argparse.Namespace) -> int:
    ctx.require_session(args.name)
    result = ctx.store().read(args.name, generation=args.generation, checkpoint=args.checkpoint)
    for problem in result.problems:
        moved = f"; moved to {problem.quarantined_to}" if problem.quarantined_to else ""
        ctx.warn(f"skipped {problem.path} ({problem.kind}: {problem.message}){moved}")
    doc = _show_document(result.session, result.generation, result.path)
    if args.json:
        doc["problems"] = [_problem_json(p) for p in result.problems]
        _emit_json(ctx, doc)
    else:
        ctx.say(_show_text(doc, result.session, args.checkpoint))
    return EXIT_OK


# --- delete -------------------------------------------------------------------------------------


def _confirm(prompt: str) -> bool:
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        msg = "stdin is not a terminal, so the deletion cannot be confirmed; add --yes"
        raise UsageError(msg)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def _cmd_delete(ctx: _Context, args: argparse.Namespace) -> int:
    ctx.require_session(args.name)
    store = ctx.store()
    if not store.exists(args.name):
        msg = f"No session named {args.name!r}"
        raise SessionNotFound(
            msg,
            path=store.session_dir(args.name),
            hint="Run `ipysession list` to see the saved sessions",
        )
    if not args.yes and not _confirm(
        f"Delete session {args.name!r} with all its generations and checkpoints? [y/N] "
    ):
        ctx.say("Nothing deleted.")
        return EXIT_OK
    removed = store.delete(args.name)
    ctx.say(f"Deleted session {args.name!r} ({removed}).")
    return EXIT_OK


# --- snapshots ----------------------------------------------------------------------------------


def _cmd_snapshots(ctx: _Context, args: argparse.Namespace) -> int:
    ctx.require_session(args.name)
    store = ctx.store()
    generations = store.generations(args.name)
    checkpoints = store.checkpoints(args.name)
    records: list[dict[str, Any]] = []
    for info in generations:
        writer = info.writer or (f"run {_short(info.writer_run_id)}" if info.writer_run_id else "")
        records.append(
            {
                "snapshot": f"generation {info.number}",
                "generation": info.number,
                "checkpoint": None,
                "path": str(info.path),
                "time": info.time or info.mtime,
                "size": info.size,
                "cells": info.cells,
                "variables": info.variables,
                "writer": writer or None,
                "writer_host": info.writer_host,
                "writer_pid": info.writer_pid,
                "writer_kernel_id": info.writer_kernel_id,
                "writer_run_id": info.writer_run_id,
                "state": info.problem.kind if info.problem else "ok",
                "problem": _problem_json(info.problem) if info.problem else None,
            }
        )
    for cp in checkpoints:
        records.append(
            {
                "snapshot": f"checkpoint {cp.label}",
                "generation": None,
                "checkpoint": cp.label,
                "path": str(cp.path),
                "time": cp.time or cp.mtime,
                "size": cp.size,
                "cells": cp.cells,
                "variables": cp.variables,
                "writer": None,
                "writer_host": None,
                "writer_pid": None,
                "writer_kernel_id": None,
                "writer_run_id": None,
                "state": cp.problem.kind if cp.problem else "ok",
                "problem": _problem_json(cp.problem) if cp.problem else None,
            }
        )
    if args.json:
        _emit_json(ctx, records)
        return EXIT_OK
    if not records:
        ctx.say(f"Session {args.name!r} has no generations or checkpoints.")
        return EXIT_OK
    rows = [
        [
            r["snapshot"],
            _when_or_dash(r["time"]),
            format_size(r["size"]),
            "?" if r["cells"] is None else r["cells"],
            "?" if r["variables"] is None else r["variables"],
            r["writer"] or "-",
            r["state"],
        ]
        for r in records
    ]
    headers = ["snapshot", "time", "size", "cells", "variables", "written by", "state"]
    ctx.say(_table(headers, rows))
    ctx.say(
        "\nRestore one in IPython with `%session restore --generation N` (or `--checkpoint LABEL`)."
    )
    return EXIT_OK


# --- doctor -------------------------------------------------------------------------------------


def _path_state(path: Path, *, directory: bool) -> dict[str, Any]:
    """Existence and permissions of one of our directories or files."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {"path": str(path), "exists": False, "mode": None, "state": "missing"}
    except OSError as exc:
        return {"path": str(path), "exists": None, "mode": None, "state": f"unreadable: {exc}"}
    mode = stat.S_IMODE(st.st_mode)
    if directory and not stat.S_ISDIR(st.st_mode):
        state = "not a directory"
    elif not paths.is_private(path):
        state = "too open"
    else:
        state = "ok"
    return {"path": str(path), "exists": True, "mode": f"{mode:04o}", "state": state}


def _fix_for(label: str, info: dict[str, Any]) -> str | None:
    if info["state"] == "too open":
        mode = "700" if label.endswith("dir") else "600"
        return f"chmod {mode} {info['path']}"
    if info["state"] == "not a directory":
        return f"move {info['path']} away; ipysession needs a directory there"
    return None


def _count_files(directory: Path) -> int:
    count = 0
    with contextlib.suppress(OSError):
        for _dirpath, _dirs, files in os.walk(directory):
            count += len(files)
    return count


def _session_files(store: SessionStore, slug: str, sdir: Path) -> list[tuple[str, Path]]:
    """Every generation, checkpoint and blob file of one session: ``(kind, path)``."""
    from .layout import BLOB_SUFFIX

    files = [("generation", info.path) for info in store.generations(slug)]
    files += [("checkpoint", info.path) for info in store.checkpoints(slug)]
    with contextlib.suppress(OSError):
        files += [
            ("blob", path)
            for path in sorted((sdir / "blobs").iterdir())
            if path.name.endswith(BLOB_SUFFIX) and not path.name.startswith(".")
        ]
    return files


def _check_sessions(store: SessionStore) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = []
    for summary in store.list():
        files: list[dict[str, Any]] = []
        try:
            found = _session_files(store, summary.slug, summary.path)
        except SessionNotFound:  # a directory the store does not recognize as a session
            found = []
            files.append(
                {
                    "path": str(summary.path),
                    "kind": "directory",
                    "state": "not-a-session",
                    "message": "not a session directory (no generation or checkpoint in it)",
                }
            )
        for kind, path in found:
            problem = store.inspect(path)
            files.append(
                {
                    "path": str(path),
                    "kind": kind,
                    "state": problem.kind if problem else "ok",
                    "message": problem.message if problem else None,
                }
            )
        sessions.append(
            {
                "name": summary.name,
                "slug": summary.slug,
                "path": str(summary.path),
                "files": files,
            }
        )
    return sessions


_FILE_FIXES = {
    "corrupt": "`ipysession doctor --repair` moves it to quarantine/ (kept, never deleted)",
    "wrong-key": "it was sealed with another key: use the key store (or passphrase) that wrote it",
    "newer-format": "it was written by a newer ipysession: upgrade (pip install -U ipysession)",
    "unreadable": "check the file's owner and permissions",
    "not-a-session": "move it out of the sessions directory: ipysession did not write it",
}


def _key_report(ctx: _Context) -> dict[str, Any]:
    try:
        res = ctx.resolution()
    except KeyStoreError as exc:
        return {"state": "unavailable", "backend": ctx.key_backend, "error": str(exc)}
    key_id = getattr(res.key, "key_id_hex", None)
    report: dict[str, Any] = {
        "state": "ok",
        "backend": res.backend,
        "reason": res.reason,
        "location": res.location,
        "key_id": key_id,
        "config_dir": str(res.config_dir) if res.config_dir else None,
        "error": None,
    }
    if res.backend == "file" and res.location:
        report["key_file"] = _path_state(Path(res.location), directory=False)
    return report


def _doctor_report(ctx: _Context, *, repair: bool) -> tuple[dict[str, Any], list[str]]:
    """The doctor's findings, and one line per problem still standing (with its fix)."""
    from .layout import QUARANTINE_DIR

    problems: list[str] = []
    key = _key_report(ctx)
    if key["state"] != "ok":
        problems.append(f"key unavailable: {key['error']}")
    config_dir = Path(key.get("config_dir") or paths.config_dir())
    dirs = {
        "root dir": _path_state(ctx.root, directory=True),
        "sessions dir": _path_state(ctx.sessions_dir, directory=True),
        "quarantine dir": _path_state(ctx.root / QUARANTINE_DIR, directory=True),
        "config dir": _path_state(config_dir, directory=True),
    }
    if "key_file" in key:
        dirs["key file"] = key["key_file"]
    for label, info in dirs.items():
        fix = _fix_for(label, info)
        if fix:
            problems.append(f"{label} {info['path']} is {info['state']}: {fix}")
    quarantined = _count_files(ctx.root / QUARANTINE_DIR)
    report: dict[str, Any] = {
        "version": __version__,
        "python": sys.version.split()[0],
        "root": str(ctx.root),
        "key": key,
        "paths": dirs,
        "quarantine": {"path": str(ctx.root / QUARANTINE_DIR), "files": quarantined},
        "sessions": [],
        "repair": None,
    }
    if key["state"] == "ok" and ctx.has_sessions():
        store = ctx.store()
        report["sessions"] = _check_sessions(store)
        if repair:
            done = store.repair()
            report["repair"] = {
                "files_checked": done.files_checked,
                "quarantined": [_problem_json(p) for p in done.quarantined],
                "left_in_place": [_problem_json(p) for p in done.left_in_place],
                "temp_files_removed": [str(p) for p in done.temp_files_removed],
                "blobs_removed": [str(p) for p in done.blobs_removed],
                "sessions_skipped": [
                    {"path": str(p), "reason": why} for p, why in done.sessions_skipped
                ],
            }
            report["quarantine"]["files"] = _count_files(ctx.root / QUARANTINE_DIR)
            for path, why in done.sessions_skipped:
                problems.append(f"{path} was not repaired: {why}")
    fixed = {p["path"] for p in (report["repair"] or {}).get("quarantined", [])}
    for session in report["sessions"]:
        for f in session["files"]:
            if f["state"] != "ok" and f["path"] not in fixed:
                problems.append(f"{f['path']} is {f['state']}: {_FILE_FIXES[f['state']]}")
    counts: dict[str, int] = {}
    for session in report["sessions"]:
        for f in session["files"]:
            counts[f["state"]] = counts.get(f["state"], 0) + 1
    report["summary"] = {"files": counts, "problems": len(problems)}
    report["ok"] = not problems
    return report, problems


def _short_file_name(path: Path, sdir: Path) -> str:
    """``gen-00000003.ipys``, ``checkpoints/x.ipys``, ``blobs/1a2b3c4d5e6f….ipyb``."""
    try:
        name = path.relative_to(sdir).as_posix()
    except ValueError:
        name = path.name
    stem, dot, suffix = name.rpartition(".")
    if name.startswith("blobs/") and len(stem) > len("blobs/") + 12:
        return f"{stem[: len('blobs/') + 12]}…{dot}{suffix}"
    return name


def _doctor_text(report: dict[str, Any]) -> str:
    key = report["key"]
    lines = [f"ipysession {report['version']} (Python {report['python']})", ""]
    if key["state"] == "ok":
        lines += [
            f"key          {key['backend']}: {key['reason']}",
            f"  location   {key['location'] or '-'}",
            f"  key id     {key['key_id'] or '-'}",
        ]
    else:
        lines.append(f"key          UNAVAILABLE: {key['error']}")
    lines.append("")
    for label, info in report["paths"].items():
        mode = f" ({info['mode']})" if info["mode"] else ""
        lines.append(f"{label:<15}{info['state']}{mode}  {info['path']}")
    quarantine = report["quarantine"]
    lines.append(
        f"{'quarantined':<15}{_count(quarantine['files'], 'file')} in {quarantine['path']}"
    )
    lines.append("")
    if key["state"] != "ok":
        lines.append("Session files not checked: the key is unavailable.")
    elif not report["sessions"]:
        lines.append("No saved sessions.")
    for session in report["sessions"]:
        name = session["name"] if session["name"] is not None else "? (unreadable)"
        lines.append(f"session {name}  [{session['slug']}]")
        rows = [
            [
                f["kind"],
                _short_file_name(Path(f["path"]), Path(session["path"])),
                f["state"] if f["state"] == "ok" else f"{f['state'].upper()}: {f['message']}",
            ]
            for f in session["files"]
        ]
        if rows:
            lines.append(_table(["file", "name", "state"], rows, indent="  "))
        else:
            lines.append("  (no files)")
    repair = report["repair"]
    if repair is not None:
        lines += ["", f"repair: checked {_count(repair['files_checked'], 'file')}"]
        for p in repair["quarantined"]:
            lines.append(
                f"  quarantined {p['path']} -> {p['quarantined_to'] or '(could not move)'}"
            )
        for p in repair["left_in_place"]:
            lines.append(f"  left in place ({p['kind']}) {p['path']}")
        for path in repair["temp_files_removed"]:
            lines.append(f"  removed stale temp file {path}")
        for path in repair["blobs_removed"]:
            lines.append(f"  removed unreferenced blob {path}")
        for skipped in repair["sessions_skipped"]:
            lines.append(f"  skipped {skipped['path']}: {skipped['reason']}")
        if not any(repair[k] for k in ("quarantined", "temp_files_removed", "blobs_removed")):
            lines.append("  nothing needed repairing")
    counts = report["summary"]["files"]
    if counts:
        lines += ["", "files: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    return "\n".join(lines)


def _cmd_doctor(ctx: _Context, args: argparse.Namespace) -> int:
    report, problems = _doctor_report(ctx, repair=args.repair)
    if args.json:
        report["problems"] = problems
        _emit_json(ctx, report)
    else:
        ctx.say(_doctor_text(report))
        if problems:
            ctx.say("\nTo do:")
            ctx.say("\n".join(f"  - {p}" for p in problems))
        else:
            ctx.say("\nEverything is in order.")
    if problems:
        ctx.warn(f"doctor found {_count(len(problems), 'problem')} (listed above)")
        return EXIT_DATA
    return EXIT_OK


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


def _inline_values(ctx: _Context, store: SessionStore, name: str, session: Session) -> Session:
    """The session with every blob's bytes put back into its variable: one self-contained doc.

    A value that cannot be read is recorded as skipped (with the reason) and reported, as a
    restore would: one bad value never stops the rest.
    """
    variables: dict[str, VariableRecord] = {}
    for var, record in session.variables.items():
        if record.blob is not None:
            try:
                data = store.read_blob(name, record.blob)
            except SessionError as exc:
                ctx.warn(f"variable {var!r} is not exported: {exc}")
                record = dataclasses.replace(
                    record, data=None, blob=None, encoding=None, skipped=f"not exported: {exc.what}"
                )
            else:
                record = dataclasses.replace(record, data=data, blob=None)
        variables[var] = record
    return dataclasses.replace(session, variables=variables)


def _cmd_export(ctx: _Context, args: argparse.Namespace) -> int:
    passphrase = _passphrase(args.passphrase_env)
    target: Path = args.file.expanduser()
    if target.exists() and not args.force:
        msg = f"{target} exists; add --force to replace it"
        raise UsageError(msg)
    if target.is_dir():
        msg = f"{target} is a directory; give the path of the file to write"
        raise UsageError(msg)
    ctx.require_session(args.name)
    store = ctx.store()
    result = store.read(args.name, generation=args.generation)
    for problem in result.problems:
        ctx.warn(f"skipped {problem.path} ({problem.kind}: {problem.message})")
    session = _inline_values(ctx, store, args.name, result.session)

    from . import fileformat
    from .crypto import PassphraseKey

    key = PassphraseKey(passphrase, description=f"passphrase from ${args.passphrase_env}")
    data = fileformat.encode_session(session.to_dict(), key)
    _write_private_file(target, data)
    saved = sum(1 for r in session.variables.values() if r.saved)
    ctx.say(
        f"Exported session {session.name!r} (generation {result.generation}, "
        f"{_count(saved, 'variable')}, {_count(len(session.history), 'history cell')}, "
        f"{_count(len(session.connections), 'connection')}) to {target} "
        f"({format_size(len(data))}), "
        f"sealed with the passphrase in ${args.passphrase_env}."
    )
    ctx.say(f"Import it with: ipysession import {target} --passphrase-env {args.passphrase_env}")
    return EXIT_OK


def _read_export(path: Path, passphrase: str, variable: str) -> Session:
    from . import fileformat
    from .crypto import PassphraseKey

    try:
        data = path.read_bytes()
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


def _cmd_import(ctx: _Context, args: argparse.Namespace) -> int:
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
        f"{_count(saved, 'variable')}, {_count(len(session.history), 'history cell')}, "
        f"{_count(len(session.connections), 'connection')}), sealed with the local key."
    )
    return EXIT_OK


# --- rekey --------------------------------------------------------------------------------------

#: Problems that may hide a file sealed under the old key: committing would orphan it.
_BLOCKING = frozenset({"unreadable", "newer-format"})


def _cmd_rekey(ctx: _Context, args: argparse.Namespace) -> int:
    from .keystore import commit_rotation, rotate_key
    from .layout import QUARANTINE_DIR

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
        f"Re-encrypted {_count(report.sessions, 'session')}: "
        f"{_count(report.files_rewritten, 'session file')}, "
        f"{_count(report.blobs_rewritten, 'blob')}; "
        f"{_count(len(report.problems), 'file')} not re-encrypted."
    )
    blocking = [p for p in report.problems if p.kind in _BLOCKING]
    if blocking:
        ctx.warn(
            f"the old key is kept: {_count(len(blocking), 'file')} could not be read and may be "
            "sealed with it. Fix them (see above), then run `ipysession rekey` again; until "
            "then both keys open your sessions."
        )
        return EXIT_DATA
    committed = commit_rotation(resolution, new)
    ctx.say(
        f"The master key is now {new.key_id_hex} ({committed.backend}: "
        f"{committed.location or committed.reason}); the old key {old.key_id_hex} is gone."
    )
    if committed.backend == "file":
        ctx.say("Back up the key file again: the old backup no longer opens your sessions.")
    if _count_files(ctx.root / QUARANTINE_DIR):
        ctx.say(
            f"Files in {ctx.root / QUARANTINE_DIR} were not re-encrypted; those sealed with the "
            "old key can no longer be opened."
        )
    return EXIT_OK


# --- parser -------------------------------------------------------------------------------------


def _global_options(*, top: bool) -> _Parser:
    """Options accepted before and after the command; after it they must not reset defaults."""
    parent = _Parser(add_help=False)

    def default(value: object) -> Any:
        return value if top else argparse.SUPPRESS

    parent.add_argument(
        "--root",
        metavar="DIR",
        type=Path,
        default=default(None),
        help="session store root (default: $IPYSESSION_DIR, else the user data dir)",
    )
    parent.add_argument(
        "--key-backend",
        choices=KEY_BACKENDS,
        default=default("auto"),
        help="where the key comes from (default: auto: $IPYSESSION_PASSPHRASE, else the OS "
        "keyring, else the key file)",
    )
    parent.add_argument(
        "--keyring-timeout",
        metavar="SECONDS",
        type=float,
        default=default(3.0),
        help="give up on an OS keyring that does not answer within this time (default: 3)",
    )
    parent.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show tracebacks and debug logging",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its help texts are the command's reference documentation."""
    after = _global_options(top=False)
    parser = _Parser(
        prog=PROG,
        description=(
            "Look at, check, repair and move the encrypted sessions that the ipysession "
            "IPython extension saves. Works without IPython or a kernel."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        handler: Callable[[_Context, argparse.Namespace], int],
        summary: str,
        text: str,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=text,
            parents=[after],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    def json_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--json", action="store_true", help="machine-readable output (secrets redacted)"
        )

    sub = command(
        "list",
        _cmd_list,
        "list saved sessions",
        "List saved sessions, most recently updated first: name, last update, size on disk\n"
        "(values included), generations kept, numbers of variables and connections, and\n"
        "whether the newest generation reads.",
    )
    json_option(sub)

    sub = command(
        "show",
        _cmd_show,
        "show what a session holds",
        "Show one session: generation, times, who wrote it, working directory, history size,\n"
        "variables (type, size, saved or why skipped), imports, preferences and connections\n"
        "(parameters and use statistics). Connection secrets and %env values are shown as\n"
        "***. A newer generation that does not read is moved to quarantine/ and the next one\n"
        "is shown, with a warning.",
    )
    sub.add_argument("name", metavar="NAME", help="session name (or slug, as `list` shows)")
    which = sub.add_mutually_exclusive_group()
    which.add_argument("--generation", type=int, metavar="N", help="show generation N")
    which.add_argument("--checkpoint", metavar="LABEL", help="show the named checkpoint")
    json_option(sub)

    sub = command(
        "snapshots",
        _cmd_snapshots,
        "list a session's generations and checkpoints",
        "List the generations (newest first) and checkpoints of a session: time, size,\n"
        "cells, variables, which kernel wrote it, and whether it reads. Restore one in\n"
        "IPython with `%session restore --generation N` or `--checkpoint LABEL`.",
    )
    sub.add_argument("name", metavar="NAME", help="session name")
    json_option(sub)

    sub = command(
        "delete",
        _cmd_delete,
        "delete a session",
        "Delete a session with all its generations, values and checkpoints. Asks first;\n"
        "where there is no terminal to ask on, --yes is required (exit code 1 without it).",
    )
    sub.add_argument("name", metavar="NAME", help="session name")
    sub.add_argument("-y", "--yes", action="store_true", help="delete without asking")

    sub = command(
        "doctor",
        _cmd_doctor,
        "check the key, the directories and every session file",
        "Report the key backend in use and why, where the key lives, the store and config\n"
        "directories and their permissions, and every session file (generations,\n"
        "checkpoints, values): ok, corrupt, wrong key, newer format or unreadable. Exits 2\n"
        "when a problem remains. Nothing is changed without --repair.",
    )
    sub.add_argument(
        "--repair",
        action="store_true",
        help="move files that fail authentication to quarantine/ (kept, never deleted); "
        "remove stale temp files and values no snapshot refers to",
    )
    json_option(sub)

    sub = command(
        "export",
        _cmd_export,
        "write a session to one passphrase-sealed file",
        "Write the newest generation of a session, values included, to one self-contained\n"
        "file sealed with a passphrase, to move it to another machine or OS. The passphrase\n"
        "is read from an environment variable, never from the command line:\n\n"
        "  read -rs PW && export PW\n"
        "  ipysession export NAME session.ipys --passphrase-env PW",
    )
    sub.add_argument("name", metavar="NAME", help="session name")
    sub.add_argument("file", metavar="FILE", type=Path, help="file to write")
    sub.add_argument(
        "--passphrase-env",
        metavar="VAR",
        required=True,
        help="name of the environment variable holding the passphrase",
    )
    sub.add_argument("--generation", type=int, metavar="N", help="export generation N")
    sub.add_argument("--force", action="store_true", help="replace FILE if it exists")

    sub = command(
        "import",
        _cmd_import,
        "read an exported session into this store",
        "Open a file written by `ipysession export` with its passphrase and save it in this\n"
        "store, sealed with the local key. An existing session of the same name is kept\n"
        "unless --force (then the import becomes its newest generation).",
    )
    sub.add_argument("file", metavar="FILE", type=Path, help="exported file")
    sub.add_argument(
        "--passphrase-env",
        metavar="VAR",
        required=True,
        help="name of the environment variable holding the passphrase",
    )
    sub.add_argument("--name", metavar="NEW", help="save it under this name instead")
    sub.add_argument(
        "--force", action="store_true", help="write over an existing session of that name"
    )

    command(
        "rekey",
        _cmd_rekey,
        "replace the master key and re-encrypt every session",
        "Create a new master key and re-encrypt every session file with it, each file\n"
        "atomically. The new key is stored next to the old one first, so an interruption\n"
        "leaves every file readable: run `ipysession rekey` again to finish. The old key\n"
        "is removed only when every readable file has been re-encrypted.",
    )
    return parser


# --- entry point --------------------------------------------------------------------------------


@contextlib.contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """Library log records go to stderr while a command runs: warnings, or all with --debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(name)s %(levelname)s: %(message)s"
            if debug
            else f"{PROG}: %(levelname)s: %(message)s"
        )
    )
    level = logging.DEBUG if debug else logging.WARNING
    handler.setLevel(level)
    previous = log.level
    log.addHandler(handler)
    log.setLevel(level)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version (0), usage errors (1)
        code = exc.code
        if code is None or isinstance(code, int):
            return code or EXIT_OK
        return EXIT_USAGE


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parsed = _parse(argv)
    if isinstance(parsed, int):
        return parsed
    args = parsed
    ctx = _Context(
        root=(args.root or paths.session_root()).expanduser(),
        key_backend=args.key_backend,
        keyring_timeout=args.keyring_timeout,
    )
    handler: Callable[[_Context, argparse.Namespace], int] = args.handler
    with _logging(args.debug):
        try:
            return handler(ctx, args)
        except UsageError as exc:
            print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except SessionError as exc:
            if args.debug:
                traceback.print_exc(file=sys.stderr)
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_DATA
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # `ipysession list | head`: the reader went away. Keep Python from complaining
            # again at exit when it flushes stdout.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        except Exception as exc:  # noqa: BLE001 - the boundary: one line, never a traceback
            if args.debug:
                traceback.print_exc(file=sys.stderr)
                print(f"{PROG}: unexpected error: {_one_line(exc)}", file=sys.stderr)
            else:
                print(
                    f"{PROG}: unexpected error: {_one_line(exc)} (run with --debug for details)",
                    file=sys.stderr,
                )
            return EXIT_DATA
        finally:
            ctx.close()
