"""The read-only ``ipysession`` commands: ``list``, ``show`` and ``snapshots``, as text or JSON.

The rows, the state words and the documents come from :mod:`ipysession.presentation`, the same
views the ``%session`` magic shows; every document is built field by field there, so secrets are
redacted and values never appear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipysession.cli.common import EXIT_OK, Context, emit_json
from ipysession.presentation import (
    problem_json,
    session_rows,
    sessions_table,
    show_view,
    snapshot_rows,
    snapshots_table,
)

if TYPE_CHECKING:
    import argparse


# --- list ---------------------------------------------------------------------------------------


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = session_rows(ctx.store().list() if ctx.has_sessions() else [])
    if args.json:
        emit_json(ctx, [row.as_json() for row in rows])
    else:
        ctx.say(sessions_table(rows, empty=f"No saved sessions in {ctx.root}.").text())
    return EXIT_OK


# --- show ---------------------------------------------------------------------------------------


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    args.name = ctx.resolve_session(args.name)
    result = ctx.store().read(args.name, generation=args.generation, checkpoint=args.checkpoint)
    for problem in result.problems:
        moved = f"; moved to {problem.quarantined_to}" if problem.quarantined_to else ""
        ctx.warn(f"skipped {problem.path} ({problem.kind}: {problem.message}){moved}")
    view = show_view(
        result.session, generation=result.generation, path=result.path, checkpoint=args.checkpoint
    )
    if args.json:
        emit_json(ctx, {**view.document, "problems": [problem_json(p) for p in result.problems]})
    else:
        ctx.say(view.text())
    return EXIT_OK


# --- snapshots ----------------------------------------------------------------------------------


def cmd_snapshots(ctx: Context, args: argparse.Namespace) -> int:
    args.name = ctx.resolve_session(args.name)
    store = ctx.store()
    rows = snapshot_rows(store.generations(args.name), store.checkpoints(args.name))
    if args.json:
        emit_json(ctx, [row.as_json() for row in rows])
        return EXIT_OK
    empty = f"Session {args.name!r} has no generations or checkpoints."
    ctx.say(snapshots_table(rows, empty=empty).text())
    if rows:
        ctx.say(
            "\nRestore one in IPython with `%session restore --generation N` "
            "(or `--checkpoint LABEL`)."
        )
    return EXIT_OK
