"""What ``%session`` does: parse its arguments, call the manager, render through display.

Imported at the first ``%session``, not when the extension loads (:mod:`ipysession.magics` holds
only the registered magic): building the parser and importing what the commands show costs a
kernel's start time that a session nobody asks about should not pay.

(Over 500 lines: the parser carries every subcommand's help text, which is what `%session?`
shows, and each subcommand is one short method; no logic lives here.)

No logic lives here beyond parsing and rendering; every subcommand is one call into
:class:`~ipysession.session.manager.SessionManager` (or its store).
"""

from __future__ import annotations

import argparse
import ast
import functools
import getpass
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError

from ipysession import display, presentation
from ipysession.errors import SessionError, SessionNotFound
from ipysession.presentation.merging import merge_preview
from ipysession.session.options import AUTOSAVE_INTERVALS, check_autosave_interval
from ipysession.session.reports import RESTORE_PARTS, ReplayOutcome
from ipysession.store.lookup import display_name, resolve_name

if TYPE_CHECKING:
    from ipysession.session.manager import SessionManager

__all__ = ["SessionCommands", "build_parser", "help_text", "split_line"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as IPython UsageErrors instead of exiting."""

    def error(self, message: str) -> NoReturn:
        msg = f"{self.prog}: {message}\n\n{self.format_usage()}"
        raise UsageError(msg)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # Reached after -h/--help has printed the help text.
        raise _HelpShown


class _HelpShown(Exception):
    pass


# One piece of a line, as shlex.split reads it: blanks (shlex's four, not every Unicode space),
# '...', "..." (where a backslash escapes only `"` and `\`), a backslash-escaped character, or
# plain text. Each alternative consumes at least one character and none can backtrack into
# another (the double-quoted body is the "unrolled loop" form), so a scan is linear; a quote or
# backslash that opens nothing is `bad`.
_PIECE = re.compile(
    r"""(?P<blank>[ \t\r\n]+)
    |'(?P<single>[^']*)'
    |"(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"
    |\\(?P<escaped>.)
    |(?P<plain>[^ \t\r\n'"\\]+)
    |(?P<bad>['"\\])""",
    re.VERBOSE | re.DOTALL,
)
_DOUBLE_QUOTED_ESCAPE = re.compile(r'\\(["\\])')


def split_line(line: str) -> list[str]:
    """The words of ``line`` as ``shlex.split`` gives them, in time linear in its length.

    ``shlex`` grows each word one character at a time (``self.token += char`` on an attribute,
    which CPython cannot extend in place), so a long word costs time quadratic in its length:
    ``--vars`` with 64,000 names is one word of 450,000 characters, and so is a very long
    session name. Raises ValueError with shlex's words for an unbalanced quote or a trailing
    backslash.
    """
    words: list[str] = []
    word: list[str] | None = None  # None between words; [] for a word that is '' so far
    for match in _PIECE.finditer(line):
        kind = match.lastgroup
        if kind == "blank":
            if word is not None:
                words.append("".join(word))
                word = None
            continue
        if kind == "bad":
            raise ValueError(_unbalanced(match.group(), line[match.end() :]))
        if word is None:
            word = []
        text = match[kind] if kind is not None else ""
        if kind == "double":
            text = _DOUBLE_QUOTED_ESCAPE.sub(r"\1", text)
        word.append(text)
    if word is not None:
        words.append("".join(word))
    return words


def _unbalanced(opener: str, rest: str) -> str:
    """shlex's words for what is wrong, after an ``opener`` that opens nothing and ``rest``."""
    # Inside an unclosed "...", shlex stops first at a trailing backslash that escapes nothing.
    trailing = len(rest) - len(rest.rstrip("\\"))
    if opener == "\\" or (opener == '"' and trailing % 2):
        return "No escaped character"
    return "No closing quotation"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _generation(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        msg = f"invalid int value: {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if number < 1:
        msg = f"generations are numbered from 1 (`%session snapshots` lists them), not {number}"
        raise argparse.ArgumentTypeError(msg)
    return number


def _label(value: str) -> str:
    # Refused here, as a usage error: an empty label once meant a save with no checkpoint at all.
    if not value.strip():
        msg = (
            f"a checkpoint needs a LABEL (letters, digits, '.', '_' or '-'), not {value!r}; "
            "leave out --checkpoint to save without one"
        )
        raise argparse.ArgumentTypeError(msg)
    return value


def _parts(value: str) -> list[str]:
    parts = _csv(value)
    unknown = sorted(set(parts) - set(RESTORE_PARTS))
    if unknown:
        msg = f"unknown part {', '.join(unknown)} (choose from {', '.join(RESTORE_PARTS)})"
        raise argparse.ArgumentTypeError(msg)
    return parts


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%session",
        description=(
            "Save, restore and inspect the persistent session of this kernel. The workspace is "
            "saved automatically after cells and restored when the kernel starts; these commands "
            "give manual control. Run `%session COMMAND -h` for one command's options. The line "
            "is split as a shell splits it and otherwise taken literally: $name and {expression} "
            "are not expanded. A session NAME is its full name or any unambiguous ending of it "
            "on a path boundary (`analysis.ipynb`, `proj/analysis.ipynb`, `~/proj/...` as "
            "`%session list` shows it); an ending several sessions share lists them. In a "
            "notebook, status, list, show, snapshots, connections and history are HTML tables "
            "(states in colour, following the theme); a terminal prints the same as text. "
            "At kernel start, values of SessionManager.background_restore_bytes or more, and "
            "imports of the modules in SessionManager.background_imports (numpy, pandas...), "
            "are restored in the background: a cell that names one (or calls a notebook "
            "function that reads one) waits for it; `%session status` lists what is still "
            "loading."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("save", help="save the workspace now (optionally as a named checkpoint)")
    p.add_argument("name", nargs="?", help="save under this session name instead")
    p.add_argument(
        "--checkpoint", type=_label, metavar="LABEL", help="also keep it as a checkpoint LABEL"
    )

    p = sub.add_parser(
        "restore", help="bring back a saved session (or parts of it), every value at once"
    )
    p.add_argument("name", nargs="?", help="session to restore (default: this one)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--generation", type=_generation, metavar="N", help="an older generation (from 1)"
    )
    which.add_argument("--checkpoint", type=_label, metavar="LABEL", help="a named checkpoint")
    p.add_argument(
        "--only",
        type=_parts,
        metavar="PARTS",
        help=f"comma-separated parts: {','.join(RESTORE_PARTS)}",
    )
    p.add_argument(
        "--vars",
        type=_csv,
        metavar="A,B",
        help=(
            "only these variables, the variables they share objects with, and the imports "
            "their code uses (no settings, no cwd)"
        ),
    )

    sub.add_parser("list", help="list saved sessions")
    p = sub.add_parser("show", help="show what a saved session holds (secrets redacted)")
    p.add_argument("name", nargs="?")
    sub.add_parser(
        "status",
        help=(
            "what is captured, when it was saved, the size budgets, what was restored and "
            "what is still loading in the background"
        ),
    )
    p = sub.add_parser("snapshots", help="list generations and checkpoints of a session")
    p.add_argument("name", nargs="?")
    p = sub.add_parser(
        "delete",
        help="delete a saved session and all its generations, for good",
        description=(
            "Delete NAME with all its generations and checkpoints. If NAME is this kernel's "
            "session, this kernel stops saving it at once (not between cells, not at shutdown), "
            "so the next kernel starts empty. A session another running kernel uses is refused "
            "unless --force; that kernel then stops saving it and says so."
        ),
    )
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--force", action="store_true", help="delete even if another running kernel uses it"
    )
    p = sub.add_parser(
        "discard",
        help="stop saving this kernel's session and remove it: the next kernel starts empty",
        description=(
            "This kernel stops saving its session at once (not between cells, not at shutdown) "
            "and the saved session is deleted, so the next kernel starts empty. Variables in "
            "this kernel are unaffected; `%session save` saves them again."
        ),
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser(
        "merge",
        help="merge a fork back into the session it forks, once that session is free",
        description=(
            "Merge FORK ('<session> (fork <kernel id>)', see `%session list`) into its session "
            "with the merge rules of the user guide, the fork's value winning a variable both "
            "hold. Without --yes, only says what the merge would keep. Refused while another "
            "running kernel uses the session. The fork stays on disk."
        ),
    )
    p.add_argument("name", metavar="FORK")
    p.add_argument("--yes", action="store_true", help="merge (without it: a dry run)")
    p = sub.add_parser(
        "adopt",
        help="move a renamed or moved notebook's session here and restore it",
        description=(
            "Move session NAME (a notebook renamed or moved: its old path) to this kernel's "
            "notebook, with its generations, checkpoints, values and id, and restore it here. "
            "What this kernel saved since it started with no session is kept and saved with it; "
            "refused if this notebook has older work of its own, or while another running kernel "
            "uses NAME. A kernel that starts with no session lists such sessions. From a "
            "terminal: `ipysession rename OLD NEW`."
        ),
    )
    p.add_argument("name")
    p = sub.add_parser(
        "replay",
        help="rebuild values that could not be saved by running their cells again",
        description=(
            "Rebuild NAMEs (default: every value the restore left waiting) by replaying the "
            "shortest chain of recorded cells that made them, inputs taken from what was "
            "restored; what the cells print is not shown. Cells that only compute run at once; "
            "a cell that writes files, uses the network, runs shell commands or a magic outside "
            "a safe list runs only if you say yes (asked here, or --yes). A replayed generator "
            "is as far along as the recorded cells took it; one advanced elsewhere starts "
            "again from its cell. At restore this happens by itself, as SessionManager.replay "
            "says ('auto', 'ask', 'never')."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--yes", action="store_true", help="run cells with side effects without asking")
    p = sub.add_parser(
        "undo",
        help="put variables back as they were before the last N cells (default 1)",
        description=(
            "Put the namespace back as it was before the last N cells that changed a variable "
            "or an import (cells that changed nothing do not count). Undo again goes further "
            "back; `%session checkout -` returns to before the undo. The timeline is this "
            "kernel's, bounded by SessionManager.undo_max_bytes; values that cannot be saved "
            "stay as they are."
        ),
    )
    p.add_argument("n", nargs="?", type=int, default=1, metavar="N")
    sub.add_parser(
        "log",
        help="the timeline of this kernel: each cell that changed something, and what",
    )
    p = sub.add_parser(
        "checkout",
        help="go to the state after cell N (see `%session log`), or '-' for before the last move",
        description=(
            "Put the namespace in the state it had after execution N (a cell number `%session "
            "log` lists, within what the timeline keeps), or with '-' back to where the last "
            "undo or checkout started, so a checkout can always be taken back."
        ),
    )
    p.add_argument("state", metavar="N|-")
    p = sub.add_parser("history", help="input history across kernel restarts")
    p.add_argument("-n", type=int, metavar="N", help="only the last N cells")
    p.add_argument("--grep", metavar="PATTERN", help="only cells matching this regex")
    p = sub.add_parser("autosave", help="turn autosave on or off, or set its interval")
    p.add_argument(
        "setting",
        metavar="on|off|SECONDS",
        help=f"on, off, or at most one write per SECONDS: {AUTOSAVE_INTERVALS}",
    )
    p = sub.add_parser(
        "forget",
        help="stop persisting these variables (until assigned again), or forget connections",
        description=(
            "Forget each NAME: a connection of that name (its record and secrets; the live "
            "object is closed) or else a variable (no longer saved, until a later cell assigns "
            "it again; a cell that only reads it keeps it forgotten). Never both: when NAME is a "
            "connection and a saved variable, say which with --connection or --variable."
        ),
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--connection", action="store_true", help="forget connections only")
    which.add_argument("--variable", action="store_true", help="forget saved variables only")

    p = sub.add_parser(
        "connect",
        help="connect to a remote kernel, a database or anything a factory makes; kept encrypted",
        description=(
            "Connect NAME to a backend and bind the live object to a variable. KIND is jupyter "
            "(SPEC: a connection file or kernel id), jupyter_server (SPEC: a Jupyter Server or "
            "Gateway URL; --kwarg kernel_name=python3 or kernel_id=ID; --secret-env "
            "token=ENVVAR), sqlalchemy (SPEC: a database URL), jupysql (SPEC: a database URL, "
            "also registered with %sql under NAME), dask (SPEC: a scheduler address) or factory "
            "(SPEC: module:callable), or a plugin's kind. With only NAME, the stored record is "
            "used again; with NAME SPEC (KIND left out), the stored record's kind is kept. "
            "Secrets never need to be typed into a cell: take them from the environment "
            "(--secret-env password=DB_PASSWORD) or a prompt (--secret-prompt password). "
            "Passwords in a URL are split out, encrypted and shown as ***."
        ),
    )
    p.add_argument("name")
    p.add_argument("kind", nargs="?")
    p.add_argument("spec", nargs="?")
    p.add_argument("--as", dest="variable", metavar="VAR", help="variable to bind (default NAME)")
    p.add_argument("--no-auto", action="store_true", help="do not reconnect after a restart")
    p.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="KEY=ENVVAR",
        help="take secret KEY from environment variable ENVVAR",
    )
    p.add_argument(
        "--secret-prompt",
        action="append",
        default=[],
        metavar="KEY",
        help="ask for secret KEY without echoing it",
    )
    p.add_argument(
        "--kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "keyword argument: for the factory callable, sqlalchemy create_engine, "
            "distributed.Client (dask), kernel_name/kernel_id (jupyter_server), alias (jupysql)"
        ),
    )
    p.add_argument("--ssh", metavar="USER@HOST[:PORT]", help="jupyter: tunnel through SSH")
    p.add_argument("--sshkey", metavar="PATH", help="jupyter: SSH private key file")

    p = sub.add_parser(
        "connections",
        help="connections, most recently used first (secrets redacted); NAME: one in full",
        description=(
            "List this session's connections, most recently used first, with their state "
            "(connecting, connected, retrying, failed, disconnected) and last error on one "
            "line. With NAME, show that connection in full: its target, state, history and its "
            "last error whole, with its time, and the command that fits it. With --recent, the "
            "user-wide list of the last 20 connections made from any notebook (failed ones "
            "too); `%session connect NAME` takes one of them into this session."
        ),
    )
    p.add_argument("name", nargs="?")
    p.add_argument(
        "--recent", action="store_true", help="the last 20 connections made from any notebook"
    )
    p = sub.add_parser(
        "reconnect",
        help="connect again now (one connection, or --all); a connection that is down is "
        "also retried in the background",
    )
    p.add_argument("name", nargs="?")
    p.add_argument("--all", action="store_true")
    p = sub.add_parser(
        "disconnect",
        help="close a connection and stop healing it (its record is kept; not reconnected after "
        "a restart until the next connect)",
    )
    p.add_argument("name")
    p = sub.add_parser(
        "ping",
        help=(
            "check that connections answer (unknown: the object cannot be asked); "
            "one that answers again is marked connected"
        ),
    )
    p.add_argument("name", nargs="?")
    return parser


@functools.cache
def _parser() -> argparse.ArgumentParser:
    return build_parser()


def help_text() -> str:
    """What ``%session?`` and ``%session --help`` show."""
    return _parser().format_help()


class SessionCommands:
    """The ``%session`` subcommands, one method each, over one manager."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    def run(self, line: str) -> None:
        try:
            args = _parser().parse_args(split_line(line))
        except _HelpShown:
            return
        except ValueError as exc:  # unbalanced quotes
            msg = f"%session: {exc}"
            raise UsageError(msg) from None
        command = args.command or "status"
        handler: Callable[[argparse.Namespace], None] = getattr(self, f"_cmd_{command}")
        self.manager.connections.settle()
        try:
            handler(args)
        except (SessionError, ValueError) as exc:
            display.show(display.text_message(f"ipysession: {exc}", level="error"))

    # --- subcommands ------------------------------------------------------------------------

    def _resolve(self, name: str | None) -> str | None:
        """The stored name ``name`` selects (an unambiguous suffix such as ``analysis.ipynb``
        is enough; see :func:`ipysession.store.lookup.resolve_name`); ``None`` stays ``None``."""
        if name is None:
            return None
        names = [s.name for s in self.manager.store.list() if s.name is not None]
        return resolve_name(name, [*names, self.manager.name])

    def _cmd_save(self, args: argparse.Namespace) -> None:
        display.show(display.render_save(self.manager.save(args.name, checkpoint=args.checkpoint)))

    def _cmd_restore(self, args: argparse.Namespace) -> None:
        args.name = self._resolve(args.name)
        report = self.manager.restore(
            args.name,
            generation=args.generation,
            checkpoint=args.checkpoint,
            only=args.only,
            variables=args.vars,
        )
        display.show(display.render_restore(report))

    def _cmd_list(self, args: argparse.Namespace) -> None:
        rows = presentation.session_rows(self.manager.store.list(), current=self.manager.name)
        display.show(
            display.render_table(presentation.sessions_table(rows, empty="No saved sessions yet."))
        )

    def _cmd_show(self, args: argparse.Namespace) -> None:
        args.name = self._resolve(args.name)
        result = self.manager.store.read(args.name or self.manager.name)
        for problem in result.problems:
            display.show(
                display.text_message(
                    f"ipysession: skipped {problem.path} ({problem.kind}: {problem.message})",
                    level="warning",
                )
            )
        view = presentation.show_view(
            result.session, generation=result.generation, path=result.path
        )
        display.show(display.render_show(view))

    def _cmd_status(self, args: argparse.Namespace) -> None:
        display.show(display.render_status(presentation.status_view(self.manager.status())))

    def _cmd_snapshots(self, args: argparse.Namespace) -> None:
        args.name = self._resolve(args.name)
        name = args.name or self.manager.name
        store = self.manager.store
        rows = presentation.snapshot_rows(store.generations(name), store.checkpoints(name))
        table = presentation.snapshots_table(rows, empty=f"No snapshots of '{name}'.")
        display.show(display.render_table(table))

    def _cmd_delete(self, args: argparse.Namespace) -> None:
        args.name = self._resolve(args.name)
        store = self.manager.store
        if not store.exists(args.name):
            msg = f"No saved session named '{args.name}'"
            raise SessionNotFound(msg)
        if not args.yes:
            answer = self._ask(f"Delete session '{args.name}' and all its generations? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                display.show(display.text_message("Nothing deleted."))
                return
        path = self.manager.delete(args.name, force=args.force)
        note = (
            " This kernel no longer saves it (not between cells, not at shutdown), so the next "
            "kernel starts without it; your variables here are unaffected, and `%session save` "
            "saves them again."
            if args.name == self.manager.name
            else " A kernel that was saving it stops doing so at its next cell and says so."
            if args.force
            else ""
        )
        display.show(display.text_message(f"Deleted session '{args.name}' ({path}).{note}"))

    def _cmd_merge(self, args: argparse.Namespace) -> None:
        args.name = self._resolve(args.name)
        parent, plan, generation = self.manager.merge_fork(args.name, write=args.yes)
        preview = merge_preview(args.name, parent, plan, generation)
        display.show(display.text_message(preview.text))

    def _cmd_adopt(self, args: argparse.Namespace) -> None:
        old = self._resolve(args.name) or args.name  # a required argument: never None
        report = self.manager.adopt(old)
        display.show(
            display.text_message(
                f"Adopted session '{display_name(old)}': it is this notebook's session now "
                f"('{display_name(self.manager.name)}'); nothing is saved under the old name."
            )
        )
        display.show(display.render_restore(report))

    def _cmd_discard(self, args: argparse.Namespace) -> None:
        name = self.manager.name
        if not args.yes:
            answer = self._ask(
                f"Stop saving session '{name}' and delete what is saved of it? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                display.show(display.text_message("Nothing discarded; saving goes on as before."))
                return
        path = self.manager.discard()
        removed = f"deleted {path}" if path is not None else "nothing had been saved yet"
        display.show(
            display.text_message(
                f"Discarded session '{name}' ({removed}). This kernel no longer saves it, not "
                "between cells and not at shutdown, so the next kernel starts empty. Your "
                "variables here are unaffected; `%session save` saves them again."
            )
        )

    def _ask(self, prompt: str) -> str:
        try:
            return input(prompt)
        except (EOFError, RuntimeError) as exc:
            # Frontends without stdin support raise StdinNotImplementedError (a RuntimeError).
            msg = "cannot ask for confirmation here; add --yes"
            raise UsageError(msg) from exc

    def _cmd_replay(self, args: argparse.Namespace) -> None:
        def ask(outcome: ReplayOutcome) -> bool:
            cells = ", ".join(str(c) for c in outcome.cells)
            try:
                answer = self._ask(
                    f"Rebuilding {', '.join(outcome.names)} replays cell(s) {cells}, and "
                    f"{outcome.reason}. Run them? [y/N] "
                )
            except UsageError:
                return False  # no stdin here: the notice says how to run them with --yes
            return answer.strip().lower() in ("y", "yes")

        outcomes = self.manager.replay_values(args.names, consent=args.yes, ask=ask)
        display.show(display.render_notice(presentation.replay_notice(outcomes, self.manager.name)))

    def _cmd_undo(self, args: argparse.Namespace) -> None:
        report = self.manager.undo(args.n)
        display.show(display.render_notice(presentation.travel_notice(report)))

    def _cmd_checkout(self, args: argparse.Namespace) -> None:
        report = self.manager.checkout(args.state)
        display.show(display.render_notice(presentation.travel_notice(report)))

    def _cmd_log(self, args: argparse.Namespace) -> None:
        timeline = self.manager.workspace.timeline
        table = presentation.log_table(timeline.steps, timeline.head)
        display.show(display.render_table(table))

    def _cmd_history(self, args: argparse.Namespace) -> None:
        entries = self.manager.search_history(n=args.n, grep=args.grep)
        table = presentation.history_table(entries, run_id=self.manager.run_id)
        display.show(display.render_table(table))

    def _cmd_autosave(self, args: argparse.Namespace) -> None:
        setting = args.setting.lower()
        if setting in ("on", "off"):
            self.manager.set_autosave(enabled=setting == "on")
        else:
            try:
                # float() also parses "inf" and "nan": the check refuses them with the rest.
                seconds = check_autosave_interval(float(setting))
            except ValueError:
                msg = (
                    f"%session autosave: expected on, off or {AUTOSAVE_INTERVALS}, "
                    f"not {args.setting!r}"
                )
                raise UsageError(msg) from None
            self.manager.set_autosave(enabled=True, interval=seconds)
        state = presentation.autosave_words(
            enabled=self.manager.autosave, interval=self.manager.autosave_interval
        )
        display.show(display.text_message(f"ipysession: autosave is {state}."))

    def _cmd_forget(self, args: argparse.Namespace) -> None:
        # Each NAME is forgotten as a connection or as a variable, never both: forgetting the
        # connection `lite` once also stopped saving a later `lite = 42`.
        connections = self.manager.connections
        ambiguous = [
            n for n in args.names if n in connections.records and self.manager.has_saved_variable(n)
        ]
        if ambiguous and not (args.connection or args.variable):
            names = ", ".join(ambiguous)
            msg = (
                f"%session forget: {names} names both a connection and a saved variable; add "
                f"--connection to forget the connection or --variable to stop saving the variable"
            )
            raise UsageError(msg)
        as_connection = [n for n in args.names if n in connections.records and not args.variable]
        if args.connection:
            unknown = [n for n in args.names if n not in connections.records]
            if unknown:
                connections.forget(unknown[0])  # raises SessionNotFound, naming the known ones
        for name in as_connection:
            connections.forget(name)
            display.show(display.text_message(f"ipysession: forgot connection '{name}'."))
        variables = [n for n in args.names if n not in as_connection and not args.connection]
        if not variables:
            return
        forgotten = set(self.manager.forget(variables))  # a set: thousands of names, linear
        missing = [n for n in variables if n not in forgotten]
        text = f"ipysession: no longer saving {', '.join(variables)}."
        if missing:
            text += f" (Not saved before: {', '.join(missing)}.)"
        display.show(display.text_message(text))

    # --- connections --------------------------------------------------------------------------

    def _cmd_connect(self, args: argparse.Namespace) -> None:
        options: dict[str, Any] = {}
        secrets: dict[str, str] = {}
        for item in args.secret_env:
            key, envvar = _pair(item, "--secret-env", "KEY=ENVVAR")
            if envvar not in os.environ:
                msg = f"%session connect: environment variable {envvar} is not set"
                raise UsageError(msg)
            secrets[key] = os.environ[envvar]
        for key in args.secret_prompt:
            secrets[key] = getpass.getpass(f"{key} for {args.name}: ")
        if secrets:
            options["secrets"] = secrets
        if args.kwarg:
            kwargs = dict(_pair(item, "--kwarg", "KEY=VALUE", parse=True) for item in args.kwarg)
            options["engine_kwargs" if args.kind == "sqlalchemy" else "kwargs"] = kwargs
        if args.kind == "jupysql" and args.spec is not None:
            # `%sql NAME` finds it under the connection's own name unless --kwarg alias=... says.
            options.setdefault("kwargs", {}).setdefault("alias", args.name)
        for option in ("ssh", "sshkey"):
            if getattr(args, option):
                options[option] = getattr(args, option)
        record, _ = self.manager.connections.connect(
            args.name,
            args.kind,
            args.spec,
            options or None,
            variable=args.variable,
            auto=False if args.no_auto else None,
        )
        target = self.manager.connections.describe(record.name)
        display.show(
            display.text_message(
                f"ipysession: connected '{record.name}' ({target}), bound to `{record.variable}`"
                + ("" if record.auto else "; not reconnected automatically")
                + "."
            )
        )

    def _cmd_connections(self, args: argparse.Namespace) -> None:
        connections = self.manager.connections
        if args.recent:
            here = connections.states()
            recent = connections.recent()
            states = {r.name: here.get(r.name, "not in this session") for r in recent}
            rows = presentation.connection_rows(recent, states)
            table = presentation.connections_table(rows)
            if not rows:
                table = presentation.Table(table.headers, (), "No recent connections yet.")
            display.show(display.render_table(table))
            return
        if args.name:
            status = connections.status(args.name)  # raises SessionNotFound for an unknown name
            record = connections.snapshot()[args.name]
            state = connections.states()[args.name]
            lines = presentation.connection_details(record, state, status)
            display.show(display.text_message("\n".join(lines)))
            return
        rows = presentation.connection_rows(connections.snapshot(), connections.states())
        display.show(display.render_table(presentation.connections_table(rows)))

    def _cmd_reconnect(self, args: argparse.Namespace) -> None:
        if not args.all and not args.name:
            msg = "%session reconnect: give a connection NAME or --all"
            raise UsageError(msg)
        names = None if args.all else [args.name]
        states = self.manager.connections.reconnect(names)
        shown = ", ".join(f"{n}: {s}" for n, s in states.items() if names is None or n in names)
        display.show(display.text_message(f"ipysession: {shown or 'no connections'}."))

    def _cmd_disconnect(self, args: argparse.Namespace) -> None:
        self.manager.connections.disconnect(args.name)
        display.show(display.text_message(f"ipysession: disconnected '{args.name}'."))

    def _cmd_ping(self, args: argparse.Namespace) -> None:
        results = self.manager.connections.ping([args.name] if args.name else None)
        display.show(display.text_message(presentation.ping_text(results)))


def _pair(item: str, option: str, form: str, *, parse: bool = False) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        msg = f"%session connect: {option} takes {form}, not {item!r}"
        raise UsageError(msg)
    if parse:
        try:
            return key, ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return key, value
    return key, value
