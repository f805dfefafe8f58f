"""How times and sizes read wherever ipysession shows them (magics, command line, tables)."""

from __future__ import annotations

import time

__all__ = ["format_size", "format_time"]


def format_time(timestamp: float | None, *, missing: str = "never") -> str:
    """Local time to the second, or ``missing`` when there is none."""
    if not timestamp:
        return missing
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def format_size(n: int | None) -> str:
    """Bytes in the largest binary unit that keeps the number under 1024."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
