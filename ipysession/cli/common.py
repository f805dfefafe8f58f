"""What every ``ipysession`` command shares: exit codes, the context (store root, key), output.

The context resolves the key and opens the store on first use; ``--json`` output is written the
same way for every command. Rows, tables, counts and state words come from
:mod:`ipysession.presentation` and :mod:`ipysession.formatting`, shared with the ``%session`` magic.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from ipysession.errors import SessionNotFound

if TYPE_CHECKING:
    from ipysession.keys.crypto import SealingKey
    from ipysession.keys.resolution import BackendChoice, KeyResolution
    from ipysession.store import SessionStore

PROG = "ipysession"
EXIT_OK = 0
EXIT_USAGE = 1
EXIT_DATA = 2
EXIT_INTERRUPTED = 130  # as a shell reports SIGINT
EXIT_BROKEN_PIPE = 141  # as a shell reports SIGPIPE: `ipysession list | head`


class UsageError(Exception):
    """The command was called in a way it cannot run (exit code 1)."""


# --- context: where the store is, which key ----------------------------------------------------


@dataclass
class Context:
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
            from ipysession.keys.resolution import resolve_key

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
        from ipysession.store import SessionStore

        return SessionStore(self.root, key=key)

    @property
    def sessions_dir(self) -> Path:
        from ipysession.store.names import SESSIONS_DIR

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

    def resolve_session(self, name: str) -> str:
        """The stored name ``name`` selects: itself, ``~/...`` as shown, or any unambiguous suffix
        on a path-component boundary (``analysis.ipynb``); raises :class:`AmbiguousName` listing
        the matches, or :class:`SessionNotFound` (before any key is needed) if nothing is stored.
        """
        self.require_session(name)
        from ipysession.store.lookup import resolve_name

        return resolve_name(name, (s.name for s in self.store().list() if s.name is not None))

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()


# --- output -------------------------------------------------------------------------------------


def emit_json(ctx: Context, value: object) -> None:
    json.dump(value, ctx.out, indent=2, default=str)
    ctx.out.write("\n")


def count_files(directory: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for _dirpath, _dirs, files in os.walk(directory):
            total += len(files)
    return total
