"""The ``ipysession delete`` command: remove a session after asking on the terminal (or --yes)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ipysession.cli.common import EXIT_OK, Context, UsageError
from ipysession.errors import SessionNotFound

if TYPE_CHECKING:
    import argparse


# --- delete -------------------------------------------------------------------------------------


def _confirm(prompt: str) -> bool:
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        msg = "stdin is not a terminal, so the deletion cannot be confirmed; add --yes"
        raise UsageError(msg)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def cmd_delete(ctx: Context, args: argparse.Namespace) -> int:
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
