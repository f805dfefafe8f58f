"""How times, sizes and counts read wherever ipysession shows them.

One formatter for each, used by the magic, the command line and the reasons capture gives, so a
size never reads "1536 bytes" in one place and "1.5 KiB" in another.
"""

from __future__ import annotations

import time

__all__ = ["count", "format_size", "format_time"]

_KIB = 1024


def format_time(timestamp: float | None, *, missing: str = "never") -> str:
    """Local time to the second, or ``missing`` when there is none."""
    if not timestamp:
        return missing
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def format_size(n: int | None) -> str:
    """Bytes in the largest binary unit that keeps the number under 1024: ``"1.5 KiB"``.

    ``None`` (a size that could not be read) is ``"?"``; whole bytes carry no decimals.
    """
    if n is None:
        return "?"
    if n < _KIB:
        return f"{n} B"
    size = n / _KIB
    for unit in ("KiB", "MiB"):
        if size < _KIB:
            return f"{size:.1f} {unit}"
        size /= _KIB
    return f"{size:.1f} GiB"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 cell"``, ``"3 cells"``; ``plural`` for nouns that do not just add an s."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
