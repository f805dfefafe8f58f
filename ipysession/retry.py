"""How long to wait before trying again, and until when: :class:`Backoff` and :class:`Deadline`.

One policy for every retry in ipysession (reconnecting a connection, retrying a failed save):
the wait after the n-th failure in a row is ``base * 2**(n - 1)``, at most ``cap``, times a
random factor between ``1 - jitter`` and ``1 + jitter`` so that many kernels that lost the same
server do not all knock on it at the same moment. The exponent stops growing long before a float
would overflow, so a kernel that retries for days keeps waiting ``cap``.

A :class:`Deadline` is the end of a bounded wait made of several smaller ones (a handshake that
reads messages until a reply comes): each step asks how much time is left.

Plain Python, no ipysession import: the lowest layer, usable from every other.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

__all__ = ["Backoff", "Deadline"]

# 2.0 ** 1024 overflows a float; any base times 2 ** 64 is past every sensible cap.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter; see the module docstring.

    ``jitter`` is a fraction between 0 (every delay exact) and 1; ``rng`` draws it (pass a
    seeded :class:`random.Random` for a repeatable sequence).
    """

    base: float
    cap: float
    jitter: float = 0.0
    rng: random.Random = field(
        default_factory=random.Random,  # jitter, not cryptography
        compare=False,
        repr=False,
    )

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.cap >= 0):  # `not >=` also refuses NaN
            msg = f"backoff base and cap must be >= 0, not {self.base} and {self.cap}"
            raise ValueError(msg)
        if not 0 <= self.jitter <= 1:
            msg = f"backoff jitter must be between 0 and 1, not {self.jitter}"
            raise ValueError(msg)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (fewer than 1 counts as 1)."""
        doublings = min(max(0, failures - 1), _MAX_DOUBLINGS)
        exact = min(self.cap, self.base * 2.0**doublings)
        if not self.jitter:
            return exact
        return exact * self.rng.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class Deadline:
    """A moment on :func:`time.monotonic`'s clock, or ``None``: no deadline."""

    at: float | None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """The deadline ``seconds`` from now (``None``: never)."""
        return cls(None if seconds is None else time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never below 0; infinite without a deadline."""
        if self.at is None:
            return math.inf
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0
