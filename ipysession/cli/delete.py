"""The ``ipysession delete`` command: remove a session after asking on the terminal (or --yes).

A session a live kernel holds (its lease, see :mod:`ipysession.session.lease`) is refused unless
``--force``, naming the kernel: deleting it under the kernel used to leave that kernel saving
generations whose stored values were gone. After a forced delete the kernel notices the session
is gone at its next cell and stops saving it (:mod:`ipysession.session.discard`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ipysession.cli.common import EXIT_OK, Context, UsageError
from ipysession.errors import SessionNotFound
from ipysession.session.discard import DEFAULT_LEASE_TIMEOUT, in_use_error, live_holder

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
    args.name = ctx.resolve_session(args.name)
    store = ctx.store()
    if not store.exists(args.name):
        msg = f"No session named {args.name!r}"
        raise SessionNotFound(
            msg,
            path=store.session_dir(args.name),
            hint="Run `ipysession list` to see the saved sessions",
        )
    holder = live_holder(ctx.root, args.name, timeout=DEFAULT_LEASE_TIMEOUT)
    if holder is not None and not args.force:
        # A usage error (exit code 1): the command needs --force, like import over a session.
        raise UsageError(str(in_use_error(args.name, holder.describe(), magic=False)))
    used = f" It is in use by {holder.describe()}." if holder is not None else ""
    if not args.yes and not _confirm(
        f"Delete session {args.name!r} with all its generations and checkpoints?{used} [y/N] "
    ):
        ctx.say("Nothing deleted.")
        return EXIT_OK
    removed = store.delete(args.name)
    ctx.say(f"Deleted session {args.name!r} ({removed}).")
    if holder is not None:
        ctx.say(
            f"{holder.describe()} was saving it: it stops saving it at its next cell and says "
            "so there (`%session status`); its variables stay in memory, and `%session save` "
            "in it saves them again."
        )
    return EXIT_OK
