"""The guard around the cell hooks: a hook never raises into the user's cell.

A failing hook is logged with its traceback and counted; after a few failures in a row capture
stops (:attr:`HookGuard.disabled` says why) and the user is told once, instead of every cell
paying for a broken hook. A cell whose hooks all ran resets the count. Unlike IPython's
``autoreload``, nothing is swallowed silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ipysession.logfile import log_path

__all__ = ["FAILURE_LIMIT", "HookGuard"]

log = logging.getLogger("ipysession")

#: Failures in a row after which capture stops.
FAILURE_LIMIT = 3


class HookGuard:
    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify
        self._failures = 0
        #: Why capture stopped (``"TypeName: message"``), or None while it runs.
        self.disabled: str | None = None

    def run(self, hook: Callable[[Any], None], arg: Any, *, ends_cell: bool) -> None:
        """Call ``hook(arg)`` unless capture has stopped; ``ends_cell``: the cell's last hook."""
        if self.disabled:
            return
        try:
            hook(arg)
        except Exception as exc:
            self._failures += 1
            log.warning("ipysession hook failed: %s", exc, exc_info=True)
            if self._failures >= FAILURE_LIMIT:
                self.disabled = f"{type(exc).__name__}: {exc}"
                self._notify(
                    "ipysession stopped capturing after repeated errors "
                    f"({self.disabled}). Your session so far is saved; run "
                    "`%reload_ext ipysession` to try again, and see the log for details "
                    f"({log_path()})."
                )
        else:
            if ends_cell:
                self._failures = 0
