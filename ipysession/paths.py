"""Where ipysession keeps things on disk.

The only module that imports ``platformdirs``. It is called with ``appauthor=False`` and pinned to
one major version in ``pyproject.toml``; ``tests/test_paths.py`` freezes the resolved locations so a
platformdirs upgrade cannot silently move users' sessions.

``$IPYSESSION_DIR`` overrides the data root (sessions, quarantine), ``$IPYSESSION_CONFIG_DIR``
the configuration directory (key file) and ``$IPYSESSION_LOG_DIR`` the log directory (the log
file, see :mod:`ipysession.logfile`; platformdirs' ``user_log_dir``: ``~/.local/state/ipysession/
log`` on Linux, ``~/Library/Logs/ipysession`` on macOS, ``%LOCALAPPDATA%\\ipysession\\Logs`` on
Windows). Without them, today's locations are:

=========  =====================================================  ===============================
platform   data root                                              configuration (key file)
=========  =====================================================  ===============================
Linux      ``~/.local/share/ipysession`` (``$XDG_DATA_HOME/...``)  ``~/.config/ipysession``
                                                                  (``$XDG_CONFIG_HOME/...``)
macOS      ``~/Library/Application Support/ipysession``           the same directory
           (the XDG directories where those variables are set)
Windows    ``%LOCALAPPDATA%\\ipysession`` (not roaming)            the same directory
=========  =====================================================  ===============================
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import platformdirs

__all__ = [
    "APP_NAME",
    "config_dir",
    "ensure_private_dir",
    "is_private",
    "log_dir",
    "session_root",
]

APP_NAME = "ipysession"
ROOT_ENV = "IPYSESSION_DIR"
CONFIG_ENV = "IPYSESSION_CONFIG_DIR"
LOG_ENV = "IPYSESSION_LOG_DIR"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def session_root() -> Path:
    """The root of the session store: ``$IPYSESSION_DIR``, else the user data dir."""
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """Where the key file lives: ``$IPYSESSION_CONFIG_DIR``, else the user config dir."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    """Where the log file lives: ``$IPYSESSION_LOG_DIR``, else the user log dir."""
    override = os.environ.get(LOG_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; the directory itself is made 0700 on POSIX."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if os.name == "posix":
        with contextlib.suppress(PermissionError):
            current = stat.S_IMODE(path.stat().st_mode)
            if current != PRIVATE_DIR_MODE:
                path.chmod(PRIVATE_DIR_MODE)
    return path


def is_private(path: Path) -> bool:
    """True where nobody but the owner can read ``path`` (always true off POSIX)."""
    if os.name != "posix":
        return True
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
