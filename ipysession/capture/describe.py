"""How capture names a type, a size and an error, in records and in the reasons it gives.

``VariableRecord.type_name`` is :func:`type_name` (``module.QualName``). A reason speaks the user's
words instead: :func:`type_label` (``generator``, not ``builtins.generator``), sizes in KiB, MiB or
GiB (:func:`format_bytes`, which is :func:`ipysession.formatting.format_size`: one formatter for
every size ipysession shows), and an error as ``TypeError: ...`` cut to 200 characters
(:func:`error_text`). Code that finds a value cannot be saved raises :class:`Unsaveable` with the
reason; :func:`~ipysession.capture.namespace.capture_value` records the value as skipped with it.
"""

from __future__ import annotations

from ipysession.formatting import format_size as format_bytes

__all__ = [
    "GiB",
    "KiB",
    "MiB",
    "Unsaveable",
    "budget_hint",
    "error_text",
    "fitting_budget",
    "format_bytes",
    "type_label",
    "type_name",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_REASON_ERROR_CHARS = 200


def fitting_budget(size: int) -> tuple[int, str]:
    """The round budget that holds ``size`` bytes, and the Python expression for it: whole GiB
    from 1 GiB up (``2 * 1024**3``), whole MiB below (``300 * 1024**2``).

    With a little room (3 % and 4 KiB): an estimated size is a little under the pickle's, and a
    budget that fits only to the byte skips the value again at its next change."""
    needed = size + size // 32 + 4 * KiB
    unit, power = (GiB, 3) if needed > 1023 * MiB else (MiB, 2)
    units = -(-needed // unit)  # rounded up
    return units * unit, f"{units} * 1024**{power}"


def budget_hint(setting: str, needed: int, outcome: str) -> str:
    """The one setting to change and the value that fits ``needed`` bytes, as a line to run:
    ``%config SessionManager.max_variable_bytes = 2 * 1024**3`` (2.0 GiB) saves it."""
    value, expression = fitting_budget(needed)
    return f"`%config SessionManager.{setting} = {expression}` ({format_bytes(value)}) {outcome}"


class Unsaveable(Exception):
    """Raised inside capture with the reason a value is skipped."""


def type_name(cls: type) -> str:
    """``module.QualName`` of a type, as recorded in ``VariableRecord.type_name``."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls.__name__)}"


def type_label(cls: type) -> str:
    """A type as reasons name it: users know `generator` and `int`, not `builtins.generator`."""
    name = type_name(cls)
    return name.removeprefix("builtins.")


def error_text(exc: BaseException) -> str:
    """``"TypeError: message"``, the message cut to 200 characters, for a reason."""
    text = str(exc)
    if len(text) > _REASON_ERROR_CHARS:
        text = text[: _REASON_ERROR_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
