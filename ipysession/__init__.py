"""ipysession: make an IPython/Jupyter session survive a kernel restart."""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__"]
