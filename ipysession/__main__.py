"""``python -m ipysession``: the ``ipysession`` command (see :mod:`ipysession.cli.app`)."""

from __future__ import annotations

import sys

from ipysession.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
