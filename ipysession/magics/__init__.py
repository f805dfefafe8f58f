"""The ``%session`` line magic, as registered when the extension loads.

Only the registered class lives here. What the subcommands do, their parser and everything they
show (:mod:`.commands`) is imported at the first ``%session``: a kernel that loads the extension
and never asks about its session does not pay for building a parser of twenty subcommands or for
the views it would render.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

if TYPE_CHECKING:
    from ipysession.magics.commands import SessionCommands
    from ipysession.session.manager import SessionManager

__all__ = ["SessionMagics", "build_parser", "split_line"]


@magics_class
class SessionMagics(Magics):
    def __init__(self, shell: Any, manager: SessionManager) -> None:
        super().__init__(shell)
        self.manager = manager
        self._commands: SessionCommands | None = None

    @line_magic
    # The line is taken literally: IPython's $name/{expr} expansion costs time quadratic in the
    # line's length (its pattern rescans the rest of the line from every position), 3 s for
    # 4000 names, and it would mangle what this magic is given (a password's `$$` in a URL, a
    # `{...}` in a session name or a --grep pattern).
    @no_var_expand
    def session(self, line: str = "") -> None:
        """Save, restore and inspect this notebook's session: `%session --help` for everything."""
        if self._commands is None:
            # Here, not at the top: see the module's docstring.
            self._commands = _commands().SessionCommands(self.manager)
        self._commands.run(line)

    # `%session?` (and a frontend's inspector) shows the full help: IPython asks an object's
    # getdoc() before its __doc__, so the parser is built only when someone looks.
    session.getdoc = lambda: _commands().help_text()  # type: ignore[union-attr]


def _commands() -> Any:
    return importlib.import_module("ipysession.magics.commands")


def __getattr__(name: str) -> Any:
    # build_parser and split_line, for the documentation's checks, from where they live now.
    if name in {"build_parser", "split_line"}:
        return getattr(_commands(), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
