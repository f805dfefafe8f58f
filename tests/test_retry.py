"""The one retry policy (:class:`~ipysession.retry.Backoff`) and the deadline of a bounded wait
(:class:`~ipysession.retry.Deadline`): bounds, cap and jitter range, never durations."""

from __future__ import annotations

import math
import random
import time

import pytest

from ipysession.retry import Backoff, Deadline


def test_without_jitter_the_delay_doubles_from_base_after_each_failure_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=3.0)
    delays = [backoff.delay(failures) for failures in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert backoff.delay(0) == backoff.delay(-3) == 0.5  # fewer than one failure counts as one


def test_days_of_failures_stay_at_the_cap_without_overflowing() -> None:
    backoff = Backoff(base=1.0, cap=300.0, jitter=0.5)
    for failures in (64, 65, 1024, 10**6):
        assert 150.0 <= backoff.delay(failures) <= 450.0
    assert Backoff(base=1.0, cap=math.inf).delay(10**6) == 2.0**64


@pytest.mark.parametrize("jitter", [0.1, 0.5, 1.0])
def test_jitter_spreads_each_delay_within_its_range(jitter: float) -> None:
    backoff = Backoff(base=1.0, cap=5.0, jitter=jitter, rng=random.Random(7))
    for failures, exact in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (50, 5.0)]:
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(exact * (1 - jitter) <= d <= exact * (1 + jitter) for d in delays)
        assert len(set(delays)) > 100  # spread, not one value
        assert min(delays) < exact < max(delays)


def test_a_seeded_rng_repeats_its_delays_and_equal_policies_compare_equal() -> None:
    first = Backoff(1.0, 10.0, jitter=0.5, rng=random.Random(3))
    again = Backoff(1.0, 10.0, jitter=0.5, rng=random.Random(3))
    assert [first.delay(n) for n in range(1, 6)] == [again.delay(n) for n in range(1, 6)]
    assert Backoff(1.0, 10.0, jitter=0.5) == first  # the rng is not part of the policy
    assert "rng" not in repr(first)


@pytest.mark.parametrize(
    ("base", "cap", "jitter"),
    [(-1.0, 1.0, 0.0), (1.0, -1.0, 0.0), (math.nan, 1.0, 0.0), (1.0, 1.0, -0.1), (1.0, 1.0, 1.5)],
)
def test_a_policy_out_of_range_is_refused(base: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base, cap, jitter)


def test_a_deadline_counts_down_to_zero_and_none_never_expires() -> None:
    soon = Deadline.after(30.0)
    assert 0 < soon.remaining() <= 30.0
    assert not soon.expired
    past = Deadline(time.monotonic() - 1.0)
    assert past.remaining() == 0.0
    assert past.expired
    assert Deadline.after(0).expired
    never = Deadline.after(None)
    assert never.remaining() == math.inf
    assert not never.expired
