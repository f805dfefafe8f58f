"""The hook guard: a failing hook never reaches the cell; a few in a row stop capture, told once."""

from __future__ import annotations

import logging

import pytest

from ipysession.session.hooks import FAILURE_LIMIT, HookGuard


def fail(_: object) -> None:
    raise RuntimeError("capture exploded")


def test_failures_in_a_row_stop_capture_and_the_user_is_told_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notices: list[str] = []
    guard = HookGuard(notices.append)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        for _ in range(FAILURE_LIMIT - 1):
            guard.run(fail, None, ends_cell=True)
        assert guard.disabled is None
        guard.run(fail, None, ends_cell=True)
    assert guard.disabled == "RuntimeError: capture exploded"
    assert len(notices) == 1
    assert "stopped capturing" in notices[0]
    failures = [r for r in caplog.records if "capture exploded" in r.getMessage()]
    assert len(failures) == FAILURE_LIMIT
    ran: list[object] = []
    guard.run(ran.append, "after", ends_cell=True)
    assert ran == []  # stopped: hooks are no longer called
    assert len(notices) == 1


def test_a_cell_whose_hooks_ran_resets_the_count() -> None:
    notices: list[str] = []
    guard = HookGuard(notices.append)
    ran: list[object] = []
    for _ in range(3 * FAILURE_LIMIT):
        guard.run(fail, None, ends_cell=False)  # the cell's first hook fails...
        guard.run(ran.append, "done", ends_cell=True)  # ...its last one succeeds
        if guard.disabled:
            break
    # Each cell that ends well resets the count: failures far apart never add up to the limit.
    assert guard.disabled is None
    assert notices == []
    assert len(ran) == 3 * FAILURE_LIMIT
