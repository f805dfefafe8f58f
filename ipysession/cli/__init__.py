"""The ``ipysession`` command: list, show, delete, snapshots, doctor, export, import, rekey.

:mod:`.app` parses the arguments and dispatches to one module per command group
(:mod:`.inspect`, :mod:`.delete`, :mod:`.doctor`, :mod:`.transfer`); :mod:`.common` holds what they
share. It never imports IPython, so it runs wherever the session files and the key are.
"""

from __future__ import annotations

from ipysession.cli.app import main

__all__ = ["main"]
