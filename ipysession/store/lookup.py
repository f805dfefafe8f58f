"""Session names as people type and read them: a suffix selects a session, a path reads short.

A session named after its notebook has an absolute path for a name
(``/home/ada/proj/analysis.ipynb``): unique, but long to type and to read. Both faces (the
``ipysession`` command and the ``%session`` magic) therefore take any unambiguous suffix that
starts on a path-component boundary (``analysis.ipynb``, ``proj/analysis.ipynb``) through
:func:`resolve_name`, and show names through :func:`display_name`. The stored name stays the
full one: only what is typed and shown is shortened.

Names are shown relative to the home directory. jupyter-server tells a kernel only the notebook's
full path (``JPY_SESSION_NAME``), not its root directory, so there is no server root to show them
relative to. Pure functions: no I/O, no key.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ipysession.errors import AmbiguousName

__all__ = ["display_name", "resolve_name"]

_SEPARATORS = ("/", "\\")


def _forward(name: str) -> str:
    # Windows names use backslashes; a suffix typed either way matches either.
    return name.replace("\\", "/")


def _expand_home(wanted: str, home: str | None) -> str:
    """``~/proj/a.ipynb`` (as :func:`display_name` shows it) -> the absolute path."""
    if home and (wanted == "~" or wanted.startswith(("~/", "~\\"))):
        return home.rstrip("/\\") + wanted[1:]
    return wanted


def _home() -> str | None:
    try:
        return str(Path("~").expanduser())
    except RuntimeError:  # no home directory can be determined: names are shown in full
        return None


def resolve_name(wanted: str, names: Iterable[str], *, home: str | None = None) -> str:
    """The stored session name that ``wanted`` selects among ``names``.

    The exact name wins; then ``~/...`` as :func:`display_name` shows a name; then the one name
    that ends with ``wanted`` on a path-component boundary (``analysis.ipynb`` selects
    ``/home/ada/proj/analysis.ipynb``, ``sis.ipynb`` does not). Several such names raise
    :class:`AmbiguousName`, listing them. When nothing matches, ``wanted`` is returned as it is:
    the store then finds it by slug (as ``list`` shows sessions it cannot read) or says that no
    such session exists. ``home`` defaults to the user's home directory.
    """
    candidates = [n for n in names if n]
    if wanted in candidates:
        return wanted
    expanded = _expand_home(wanted, _home() if home is None else home)
    if expanded != wanted and expanded in candidates:
        return expanded
    suffix = _forward(wanted).strip("/")
    if not suffix or wanted.startswith(_SEPARATORS) or wanted.startswith("~"):
        return wanted  # an absolute path selects only itself
    matches = {n for n in candidates if _forward(n).endswith("/" + suffix)}
    if len(matches) > 1:
        listed = ", ".join(repr(display_name(m, home=home)) for m in sorted(matches))
        msg = f"{wanted!r} matches {len(matches)} sessions: {listed}"
        error = AmbiguousName(msg, hint="Give more of the path, or the full name, to choose one")
        error.matches = tuple(sorted(matches))
        raise error
    return matches.pop() if matches else wanted


def display_name(name: str, *, home: str | None = None) -> str:
    """``name`` as shown: a path under the home directory as ``~/...``, any other name as is."""
    home = _home() if home is None else home
    if not home:
        return name
    root = home.rstrip("/\\")
    if root and len(name) > len(root) + 1 and name.startswith(root) and name[len(root)] in "/\\":
        return "~" + name[len(root) :]
    return name
