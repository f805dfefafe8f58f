"""One kernel's session over its life: hooks, saving, restoring, and sharing it with other kernels.

:mod:`.manager` holds :class:`SessionManager` (the traits, the cell hooks and the entry points the
faces call); :mod:`.workspace` captures the shell into records and applies a restored session;
:mod:`.sharing` decides, from the lease, whether this kernel writes, forks or stays read-only, and
does the merging write; :mod:`.writer` writes on a background thread; :mod:`.lease` says which
kernel holds a session; :mod:`.merge` combines two kernels' changes; :mod:`.hooks` keeps a
failing hook out of the user's cell; :mod:`.reports` is what the faces are handed back. Importing
this package is cheap: the manager (and with it traitlets and the capture modules) is imported
when it is first used, so the command line can use :mod:`.lease` without IPython.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipysession.session.manager import SessionManager

__all__ = ["SessionManager"]


def __getattr__(name: str) -> Any:
    if name == "SessionManager":
        return importlib.import_module("ipysession.session.manager").SessionManager
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
