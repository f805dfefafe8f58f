"""Which names of the user namespace are saved at all: :func:`is_persistable_name`.

Never saved: IPython's own names (``In``, ``Out``, ``_``, ``__``, ``___``, ``_i``, ``_ii``,
``_iii``, ``_i<N>``, ``_<N>``, ``_oh``, ``_dh``, ``_ih``, ``_sh``, ``_exit_code``, ``exit``,
``quit``, ``get_ipython``), every name starting with ``__``, the names in IPython's
``user_ns_hidden`` (passed as ``hidden``: what startup code defined is defined again by startup
code), and the names matching a pattern of ``SessionManager.exclude``. Patterns are ``fnmatch``
patterns matched case-sensitively (``fnmatchcase``), like Python names themselves.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from fnmatch import fnmatchcase

__all__ = ["is_persistable_name"]

_IPYTHON_NAMES = frozenset(
    {
        "In",
        "Out",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_oh",
        "_dh",
        "_ih",
        "_sh",
        "_exit_code",
        "exit",
        "quit",
        "get_ipython",
    }
)
_NUMBERED = re.compile(r"_i?[0-9]+\Z")


def is_persistable_name(
    name: str,
    exclude_patterns: Iterable[str] = (),
    hidden: Container[str] = frozenset(),
) -> bool:
    """Whether the variable ``name`` of the user namespace is saved at all."""
    if not isinstance(name, str) or not name:
        return False
    if name.startswith("__") or name in _IPYTHON_NAMES or _NUMBERED.match(name):
        return False
    if name in hidden:
        return False
    return not any(fnmatchcase(name, pattern) for pattern in exclude_patterns)
