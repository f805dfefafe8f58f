"""Waiting for a call that must give up on its own, without asserting how long it took.

A test that checks "this call returns instead of hanging" runs the call under :func:`finishes`,
whose deadline is generous (far longer than any timeout the tests give), so a loaded machine never
fails it, while a call that really hangs still ends the test with a clear message. Part of the
reusable suites: a third-party backend's tests may use it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["GENEROUS", "finishes"]

#: Seconds :func:`finishes` waits by default.
GENEROUS = 60.0

_Result = TypeVar("_Result")


def finishes(call: Callable[[], _Result], *, within: float = GENEROUS) -> _Result:
    """``call()``'s result (or its exception); fails the test if it has not returned ``within``."""
    outcome: list[_Result] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed back to the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="test-finishes", daemon=True)
    worker.start()
    worker.join(within)
    assert not worker.is_alive(), f"still waiting after {within:g} s: it hangs"
    if failure:
        raise failure[0]
    return outcome[0]
