"""Names that count how often they are compared: a deterministic proof that a code path is linear.

A list membership test compares a name with every element before it (quadratic over thousands of
names); a set or dict lookup compares it about once. Tests hand these names in and assert that the
comparisons grow with the number of names, not with its square, instead of timing anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Comparisons:
    count: int = 0


def counted_names(count: int, *, prefix: str = "v") -> tuple[list[str], Comparisons]:
    """``count`` names ``v0``, ``v1``, ... and the tally of their equality comparisons."""
    compared = Comparisons()

    class Name(str):
        # Hashes as the plain string, so it finds (and is found by) plain names in sets and dicts.
        __hash__ = str.__hash__

        def __eq__(self, other: object) -> bool:
            compared.count += 1
            return str.__eq__(self, other)

    return [Name(f"{prefix}{i}") for i in range(count)], compared
