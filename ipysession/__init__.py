"""ipysession: make an IPython/Jupyter session survive a kernel restart.

Load it with ``%load_ext ipysession`` or ``c.InteractiveShellApp.extensions = ["ipysession"]``;
see docs/user-guide.md. Importing this package is cheap: the extension, the store and the
manager are imported when they are first used.
"""

from __future__ import annotations

import logging
from typing import Any

from ipysession._version import __version__
from ipysession.errors import SessionError

# A library logs; the application decides where that goes. Without a handler, Python's last
# resort handler would print every warning (with its traceback) to stderr, which a kernel sends
# into the user's notebook: a failing autosave would repeat itself under every cell. What the user
# must see is shown once, through ipysession.display.
logging.getLogger("ipysession").addHandler(logging.NullHandler())

__all__ = [
    "SessionError",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def load_ipython_extension(shell: Any) -> None:
    """Called by ``%load_ext ipysession``."""
    from ipysession.extension import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    """Called by ``%unload_ext ipysession``."""
    from ipysession.extension import unload_ipython_extension as unload

    unload(shell)
