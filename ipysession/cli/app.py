"""The ``ipysession`` command: look at, check, repair and move saved sessions without a kernel.

Run ``ipysession --help`` (or ``python -m ipysession --help``) for the commands and
``ipysession COMMAND -h`` for each one; those help texts are the reference documentation::

    ipysession list                       saved sessions, newest first
    ipysession show NAME                  what a session holds (secrets shown as ***)
    ipysession snapshots NAME             its generations and checkpoints
    ipysession delete NAME [--yes] [--force]
                                          delete it (asks first; refuses if a kernel uses it)
    ipysession rename OLD NEW [--force]   a renamed or moved notebook keeps its session
    ipysession prune --older-than AGE [--forks-only] [--yes]
                                          old forks and sessions: a dry run, --yes removes
    ipysession doctor [--repair]          key, directories, every file; repair what fails
    ipysession export NAME FILE --passphrase-env VAR
    ipysession import FILE --passphrase-env VAR [--name NEW] [--force]
    ipysession rekey                      new master key, every session re-encrypted

The command works on :class:`~ipysession.store.session_store.SessionStore` directly, never through a
shell: it imports no IPython module, so it runs wherever the session files and the key are.

This module is the entry point (the parser and :func:`main`); the commands live in
:mod:`~ipysession.cli.inspect` (list, show, snapshots), :mod:`~ipysession.cli.delete`,
:mod:`~ipysession.cli.rename`, :mod:`~ipysession.cli.prune`, :mod:`~ipysession.cli.doctor` and
:mod:`~ipysession.cli.transfer`
(export, import, rekey), over :mod:`~ipysession.cli.common` (exit codes, context, output).

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
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ipysession import paths
from ipysession._version import __version__
from ipysession.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_DATA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Context,
    UsageError,
)
from ipysession.cli.delete import cmd_delete
from ipysession.cli.doctor import cmd_doctor
from ipysession.cli.inspect import cmd_list, cmd_show, cmd_snapshots
from ipysession.cli.prune import cmd_prune
from ipysession.cli.rename import cmd_rename
from ipysession.cli.transfer import cmd_export, cmd_import, cmd_rekey
from ipysession.errors import SessionError

__all__ = ["EXIT_DATA", "EXIT_OK", "EXIT_USAGE", "KEY_BACKENDS", "build_parser", "main"]

log = logging.getLogger("ipysession")

#: The choices of ``--key-backend`` (``keystore.BackendChoice``; a test keeps them in step).
KEY_BACKENDS = ("auto", "passphrase", "keyring", "file")

_EPILOG = """\
names:
  A session is named after its notebook's full path, shown relative to your home
  (~/proj/analysis.ipynb). NAME may be the full name, the name as shown, or any
  unambiguous ending of it on a path boundary (analysis.ipynb, proj/analysis.ipynb);
  an ending several sessions share is refused, listing them (exit code 2).

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


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 1 for usage errors (argparse's own is 2, our data-problem code)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


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
        handler: Callable[[Context, argparse.Namespace], int],
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
        cmd_list,
        "list saved sessions",
        "List saved sessions, most recently updated first: name, last update, size on disk\n"
        "(values included), generations kept, variables saved and skipped (those that could\n"
        "not be saved), connections, and the state: ok, or why the newest generation does\n"
        "not read (corrupt, wrong-key, newer-format, unreadable) and which older one is used.",
    )
    json_option(sub)

    sub = command(
        "show",
        cmd_show,
        "show what a session holds",
        "Show one session: generation, times, who wrote it, working directory, history size,\n"
        "variables (type, size, saved or why skipped), imports, preferences and connections\n"
        "(parameters and use statistics). Connection secrets and %env values are shown as\n"
        "***. A newer generation that does not read is moved to quarantine/ and the next one\n"
        "is shown, with a warning.",
    )
    sub.add_argument(
        "name",
        metavar="NAME",
        help="session name, any unambiguous ending of it (analysis.ipynb), or its slug",
    )
    which = sub.add_mutually_exclusive_group()
    which.add_argument("--generation", type=int, metavar="N", help="show generation N")
    which.add_argument("--checkpoint", metavar="LABEL", help="show the named checkpoint")
    json_option(sub)

    sub = command(
        "snapshots",
        cmd_snapshots,
        "list a session's generations and checkpoints",
        "List the generations (newest first) and checkpoints of a session: time, size,\n"
        "cells, variables saved and skipped, which kernel wrote it, and its state (ok, or\n"
        "why it does not read). Restore one in IPython with\n"
        "`%session restore --generation N` or `--checkpoint LABEL`.",
    )
    sub.add_argument("name", metavar="NAME", help="session name, or any unambiguous ending of it")
    json_option(sub)

    sub = command(
        "delete",
        cmd_delete,
        "delete a session",
        "Delete a session with all its generations, values and checkpoints. Asks first;\n"
        "where there is no terminal to ask on, --yes is required (exit code 1 without it).\n"
        "A session a running kernel uses is refused (exit code 1), naming the kernel (host,\n"
        "pid, kernel id): stop it or run `%session discard` in it. With --force it is deleted\n"
        "anyway, and that kernel stops saving it at its next cell and says so there.",
    )
    sub.add_argument("name", metavar="NAME", help="session name, or any unambiguous ending of it")
    sub.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    sub.add_argument("--force", action="store_true", help="delete even if a running kernel uses it")

    sub = command(
        "rename",
        cmd_rename,
        "move a session to a renamed or moved notebook",
        "Move a session to a new name, with all its generations, values, checkpoints and its\n"
        "id: after renaming or moving a notebook, `ipysession rename OLD NEW` brings its\n"
        "session along, and the next kernel for NEW restores it. For a notebook's session NEW\n"
        "is a path: relative to the current directory, or ~/... . Refused if NEW has a session\n"
        "already (never overwritten; exit code 2) or if a running kernel uses OLD (exit code\n"
        "1, naming the kernel); with --force that kernel stops saving it at its next cell.\n"
        "The old session stays readable until the new one is complete. In a kernel for the\n"
        "new path, `%session adopt OLD` does the same and restores it.",
    )
    sub.add_argument("old", metavar="OLD", help="session name, or any unambiguous ending of it")
    sub.add_argument("new", metavar="NEW", help="its new name (the notebook's new path)")
    sub.add_argument("--force", action="store_true", help="rename even if a running kernel uses it")

    sub = command(
        "prune",
        cmd_prune,
        "remove old forks and sessions, after a dry run",
        "List the sessions (with --forks-only, the forks: '<name> (fork <kernel id>)', which\n"
        "a kernel writes when another one holds its session) last saved longer ago than\n"
        "--older-than, and remove them with --yes. Without --yes nothing is removed. A session\n"
        "a running kernel uses is never removed; it is listed as kept, naming the kernel.",
    )
    sub.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="a number and a unit: s, m, h, d or w (e.g. 7d, 12h)",
    )
    sub.add_argument("--forks-only", action="store_true", help="only forks, never a session")
    sub.add_argument("-y", "--yes", action="store_true", help="remove them (default: dry run)")

    sub = command(
        "doctor",
        cmd_doctor,
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
        cmd_export,
        "write a session to one passphrase-sealed file",
        "Write the newest generation of a session, values included, to one self-contained\n"
        "file sealed with a passphrase, to move it to another machine or OS. The passphrase\n"
        "is read from an environment variable, never from the command line:\n\n"
        "  read -rs PW && export PW\n"
        "  ipysession export NAME session.ipys --passphrase-env PW",
    )
    sub.add_argument("name", metavar="NAME", help="session name, or any unambiguous ending of it")
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
        cmd_import,
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
        cmd_rekey,
        "replace the master key and re-encrypt every session",
        "Create a new master key and re-encrypt every session file, and the list of\n"
        "recent connections, with it, each file atomically. The new key is stored next to\n"
        "the old one first, so an interruption leaves every file readable: run\n"
        "`ipysession rekey` again to finish. The old key is removed only when every\n"
        "readable file has been re-encrypted.",
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
    ctx = Context(
        root=(args.root or paths.session_root()).expanduser(),
        key_backend=args.key_backend,
        keyring_timeout=args.keyring_timeout,
    )
    handler: Callable[[Context, argparse.Namespace], int] = args.handler
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
