"""The ``ipysession rename OLD NEW`` command: a renamed or moved notebook keeps its session.

A session is named after its notebook's path, so renaming the notebook leaves the session under
the old name and the next kernel starts empty. This moves it to the new name
(:meth:`~ipysession.store.session_store.SessionStore.rename`: every file re-sealed under the new
name, the old session readable until the new one is whole). A session a live kernel holds is
refused unless ``--force``, naming the kernel, as ``delete`` does: that kernel would go on saving
under the old name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ipysession.cli.common import EXIT_OK, Context, UsageError
from ipysession.errors import SessionNotFound
from ipysession.session.discard import DEFAULT_LEASE_TIMEOUT, live_holder
from ipysession.store.lookup import display_name

if TYPE_CHECKING:
    import argparse

__all__ = ["cmd_rename", "new_name"]


def new_name(typed: str, old: str, *, cwd: str | None = None) -> str:
    """The full name ``typed`` gives a session now called ``old``.

    ``~/...`` is the home directory, as names are shown. A session named after a notebook has its
    absolute path for a name, so a relative path is taken from the current directory, as ``mv``
    takes it; any other session's new name is taken as typed.
    """
    if typed == "~" or typed.startswith(("~/", "~\\")):
        return str(Path(typed).expanduser())
    if Path(old).is_absolute() and not Path(typed).is_absolute():
        # normpath, not resolve(): a notebook path names the file, links and all, as typed.
        return os.path.normpath(Path(cwd if cwd is not None else Path.cwd()) / typed)
    return typed


def cmd_rename(ctx: Context, args: argparse.Namespace) -> int:
    old = ctx.resolve_session(args.old)
    store = ctx.store()
    if not store.exists(old):
        msg = f"No session named {old!r}"
        raise SessionNotFound(
            msg, path=store.session_dir(old), hint="Run `ipysession list` to see the saved sessions"
        )
    new = new_name(args.new, old)
    shown_old, shown_new = display_name(old), display_name(new)
    holder = live_holder(ctx.root, old, timeout=DEFAULT_LEASE_TIMEOUT)
    if holder is not None and not args.force:
        # A usage error (exit code 1), like delete: the command needs --force.
        msg = (
            f"Session {shown_old!r} is in use by {holder.describe()}; nothing was renamed. "
            "Stop that kernel first (it saves under the old name until it stops); "
            f"`ipysession rename {args.old} {args.new} --force` renames it anyway, and that "
            "kernel then stops saving it"
        )
        raise UsageError(msg)
    store.rename(old, new)
    summary = store.read(new)
    generations = len(store.generations(new))
    checkpoints = len(store.checkpoints(new))
    ctx.say(
        f"Renamed session {shown_old!r} to {shown_new!r} ({generations} generation(s), "
        f"{checkpoints} checkpoint(s), {len(summary.session.variables)} variable(s))."
    )
    ctx.say(f"A kernel started for {shown_new!r} restores it; nothing is saved under the old name.")
    if holder is not None:
        ctx.say(
            f"{holder.describe()} was saving it under the old name: it stops saving it at its "
            "next cell and says so there; `%session save` in it would save its variables under "
            "the old name again."
        )
    return EXIT_OK
