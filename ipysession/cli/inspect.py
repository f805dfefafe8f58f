"""The read-only ``ipysession`` commands: ``list``, ``show`` and ``snapshots``, as text or JSON.

Every document is built field by field, so secrets are redacted and values never appear.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipysession.cli.common import (
    EXIT_OK,
    Context,
    count,
    emit_json,
    problem_json,
    table,
    when_or_dash,
)
from ipysession.formatting import format_size
from ipysession.model import REDACTED, ConnectionRecord, Session, VariableRecord, WriterInfo, redact

if TYPE_CHECKING:
    import argparse


# --- formatting ---------------------------------------------------------------------------------


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


def _short(identifier: str | None) -> str:
    return identifier[:8] if identifier else ""


# --- list ---------------------------------------------------------------------------------------


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    summaries = ctx.store().list() if ctx.has_sessions() else []
    if args.json:
        emit_json(
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
                    "problem": problem_json(s.problem) if s.problem else None,
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
                when_or_dash(s.updated),
                format_size(s.size_bytes),
                s.generations,
                s.variables if s.newest_readable is not None else "?",
                s.connections if s.newest_readable is not None else "?",
                state,
            ]
        )
    headers = ["session", "updated", "size", "generations", "variables", "connections", "state"]
    ctx.say(table(headers, rows))
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
        f"  created     {when_or_dash(session.created)}",
        f"  updated     {when_or_dash(session.updated)}",
        f"  written by  {_writer_text(session.writer)}",
        f"  cwd         {session.cwd or '-'}",
        f"  history     {count(len(session.history), 'cell')}",
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
        lines.append(table(["name", "type", "size", "state"], rows, indent="  "))
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
            f"    created     {when_or_dash(stats['created'])}",
            f"    last used   {when_or_dash(stats['last_used'])}",
            f"    outcomes    {count(stats['successes'], 'success', 'successes')}, "
            f"{count(stats['failures'], 'failure')}",
        ]
        if stats["last_error"]:
            lines.append(f"    last error  {stats['last_error']}")
    return "\n".join(lines)


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.require_session(args.name)
    result = ctx.store().read(args.name, generation=args.generation, checkpoint=args.checkpoint)
    for problem in result.problems:
        moved = f"; moved to {problem.quarantined_to}" if problem.quarantined_to else ""
        ctx.warn(f"skipped {problem.path} ({problem.kind}: {problem.message}){moved}")
    doc = _show_document(result.session, result.generation, result.path)
    if args.json:
        doc["problems"] = [problem_json(p) for p in result.problems]
        emit_json(ctx, doc)
    else:
        ctx.say(_show_text(doc, result.session, args.checkpoint))
    return EXIT_OK


# --- snapshots ----------------------------------------------------------------------------------


def cmd_snapshots(ctx: Context, args: argparse.Namespace) -> int:
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
                "problem": problem_json(info.problem) if info.problem else None,
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
                "problem": problem_json(cp.problem) if cp.problem else None,
            }
        )
    if args.json:
        emit_json(ctx, records)
        return EXIT_OK
    if not records:
        ctx.say(f"Session {args.name!r} has no generations or checkpoints.")
        return EXIT_OK
    rows = [
        [
            r["snapshot"],
            when_or_dash(r["time"]),
            format_size(r["size"]),
            "?" if r["cells"] is None else r["cells"],
            "?" if r["variables"] is None else r["variables"],
            r["writer"] or "-",
            r["state"],
        ]
        for r in records
    ]
    headers = ["snapshot", "time", "size", "cells", "variables", "written by", "state"]
    ctx.say(table(headers, rows))
    ctx.say(
        "\nRestore one in IPython with `%session restore --generation N` (or `--checkpoint LABEL`)."
    )
    return EXIT_OK
