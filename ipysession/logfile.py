"""ipysession's log file: a rotating file under the user log directory, secrets blanked.

``logging.getLogger("ipysession")`` has a ``NullHandler`` so that a library never prints on its own;
the extension adds this file handler when it loads (:func:`install`) and removes it when it
unloads. The file is ``<log dir>/ipysession.log`` (:func:`ipysession.paths.log_dir`:
``$IPYSESSION_LOG_DIR``, else platformdirs' user log directory), 0600 in a 0700 directory, rotated
at 1 MiB with 3 old files kept. Every record passes a :class:`~ipysession.redaction.SecretFilter`
first, so a line that names a connection's password, or a URL with one, is written with ``***``.
Messages that say "see the log" name :func:`log_path`.

Several kernels of one user append to the same file; each line carries the process id.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ipysession import paths
from ipysession.redaction import SecretFilter

__all__ = ["LOG_NAME", "install", "log_path", "uninstall"]

LOG_NAME = "ipysession.log"
_MAX_BYTES = 1024 * 1024
_BACKUPS = 3
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(threadName)s %(name)s: %(message)s"

log = logging.getLogger("ipysession")


def log_path() -> Path:
    """Where the log file is (or would be)."""
    return paths.log_dir() / LOG_NAME


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler whose files are created 0600 (POSIX)."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(
            fd, self.mode.replace("w", "a"), encoding=self.encoding, errors=self.errors
        )


def install(level: str | int, secrets: Callable[[], Iterable[str]]) -> logging.Handler | None:
    """Add the log file handler to the ``ipysession`` logger; None if the file cannot be opened
    (a read-only home: ipysession works on without its log, and says so in the debug log)."""
    path = log_path()
    try:
        paths.ensure_private_dir(path.parent)
        handler = _PrivateRotatingFileHandler(
            path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8", delay=True
        )
    except OSError as exc:
        log.debug("No log file at %s (%s)", path, type(exc).__name__)
        return None
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(SecretFilter(secrets))
    log.addHandler(handler)
    # The logger passes records at the handler's level; other handlers keep their own levels.
    if log.level == logging.NOTSET or log.level > handler.level:
        log.setLevel(handler.level)
    return handler


def uninstall(handler: logging.Handler | None) -> None:
    """Remove and close a handler :func:`install` added. Safe twice, and with None."""
    if handler is None:
        return
    log.removeHandler(handler)
    with contextlib.suppress(Exception):
        handler.close()
