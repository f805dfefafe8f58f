"""matplotlib figures across a restart: displayable again, and never shown uninvited.

A ``Figure`` pickles (matplotlib drops its canvas and keeps the artists), and so do ``Axes`` and
artists, which refer to their figure. Two things need care after a restore:

- **Display.** ``fig`` in a cell renders as a PNG only through the display formatter that the
  inline backend registers when it is loaded (``%matplotlib inline``, or the first pyplot figure
  of a kernel whose backend is inline). A restored kernel has neither, so ``fig`` showed as
  ``<Figure size 640x480 with 1 Axes>``. :func:`settle_figures` loads the inline integration when
  a figure came back and the kernel's backend is inline (the kernel default); another backend
  (``widget``, ``qt``, a terminal's) is left alone.
- **No uninvited output.** A figure still open in pyplot when it was saved comes back registered
  with pyplot again (matplotlib's ``_restore_to_pylab``), and a replayed ``plt.subplots()`` opens
  one: the inline backend would then draw it under the user's next cell, which did not ask for
  it. :func:`settle_figures` closes in pyplot every figure the restore opened; the ``Figure``
  objects stay bound to their variables and display when a cell asks.

``%matplotlib inline`` itself leaves nothing that cannot be saved: the figures it draws are
closed after each cell, and what stays in variables (figures, axes, lines) pickles. Nothing here
imports matplotlib unless the restored session already did.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["open_figures", "settle_figures"]

log = logging.getLogger("ipysession")

_INLINE = ("inline", "module://matplotlib_inline.backend_inline")


def open_figures() -> frozenset[int]:
    """The numbers of the figures pyplot holds open now (none if pyplot was never used)."""
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return frozenset()
    return frozenset(helpers.Gcf.figs)


def settle_figures(shell: Any, before: frozenset[int], values: Iterable[object]) -> int:
    """After a restore: close the figures it opened in pyplot (not ``before``), and make restored
    figures displayable. Returns how many figures were closed."""
    closed = 0
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is not None:
        for number in [n for n in list(helpers.Gcf.figs) if n not in before]:
            pyplot = sys.modules.get("matplotlib.pyplot")
            if pyplot is not None:
                pyplot.close(number)
            else:
                helpers.Gcf.destroy(number)
            closed += 1
    if any(_is_figure_like(value) for value in values):
        _enable_inline_display(shell)
    return closed


def _is_figure_like(value: object) -> bool:
    figure = sys.modules.get("matplotlib.figure")
    if figure is None:
        return False
    if isinstance(value, figure.FigureBase):
        return True
    axes = sys.modules.get("matplotlib.axes")
    return axes is not None and isinstance(value, axes.Axes)


def _enable_inline_display(shell: Any) -> None:
    """Register the inline backend's figure formatters, if the kernel's backend is inline."""
    try:
        import matplotlib

        try:
            backend = matplotlib.get_backend(auto_select=False)
        except TypeError:  # matplotlib < 3.10: no auto_select, and rcParams does not resolve
            backend = matplotlib.rcParams._get("backend")
        if backend not in _INLINE:
            return
        module = sys.modules.get("matplotlib_inline.backend_inline")
        if module is None:
            # Loading it registers the formatters itself (its _enable_matplotlib_integration).
            importlib.import_module("matplotlib_inline.backend_inline")
        else:
            module.configure_inline_support(shell, backend)
    except Exception:
        log.debug("could not enable inline display of restored figures", exc_info=True)
