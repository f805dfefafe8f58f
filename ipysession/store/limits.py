"""Size limits that readers and writers share, apart from the file format so that what only needs
a number (the per-variable budgets computed at kernel start) does not import the cipher."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_VALUE_BYTES"]

#: A blob (one value) that inflates beyond this is refused as corrupt. A value can legitimately be
#: many gigabytes, and only a holder of the key can seal one, so this bounds a bomb rather than
#: any real value.
DEFAULT_MAX_VALUE_BYTES = 64 << 30
