"""Retention: which generations the store keeps, decided on a simulated clock.

The pure decision (:func:`decide`) is tested with stamps; the store applies it on every write,
with its ``clock`` given here, so a day of saves takes no day.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipysession.model import VariableRecord
from ipysession.store import SessionStore
from ipysession.store.retention import (
    DEFAULT_SCHEDULE,
    Retention,
    Stamp,
    Tier,
    decide,
    parse_schedule,
)
from tests.builders import KEY, make_session

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
#: A Monday at noon, UTC: far from the epoch, on an interval boundary of no tier.
T0 = 1_800_000_000.0
DEFAULT = Retention.from_schedule(DEFAULT_SCHEDULE, keep=5, max_bytes=None)


def saves(every: float, span: float, *, size: int = 100) -> list[Stamp]:
    """One generation every ``every`` seconds for ``span`` seconds, starting at T0."""
    count = int(span // every)
    return [Stamp(n + 1, T0 + n * every, size) for n in range(count)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


class Clock:
    """The store's clock, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the schedule ---------------------------------------------------------------------------


def test_the_default_schedule_reads_as_its_three_tiers() -> None:
    assert parse_schedule(DEFAULT_SCHEDULE) == (
        Tier(span=10 * MINUTE),
        Tier(span=DAY, every=10 * MINUTE),
        Tier(span=7 * DAY, every=DAY),
    )
    assert parse_schedule("") == ()
    assert parse_schedule("every 1.5h for 2W") == (Tier(span=14 * DAY, every=5400.0),)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("keep everything", "Invalid retention rule 'keep everything'"),
        ("all for 10", "Invalid retention rule"),
        ("every 0m for 1d", "more than 0"),
        ("all for 1d, every 1h for 1h", "reach further back"),
        ("all for 10m,", "Invalid retention rule ''"),
    ],
)
def test_a_bad_schedule_is_refused_with_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_schedule(text)


# --- the decision ---------------------------------------------------------------------------


def test_every_save_of_the_last_minutes_is_kept() -> None:
    stamps = saves(MINUTE / 2, 9 * MINUTE)
    assert decide(stamps, stamps[-1].time, DEFAULT) == {s.number for s in stamps}


def test_older_saves_thin_to_one_per_ten_minutes_then_one_per_day() -> None:
    stamps = saves(MINUTE, 3 * DAY)
    now = stamps[-1].time
    kept = decide(stamps, now, DEFAULT)
    by_number = {s.number: s for s in stamps}
    ages = sorted(now - by_number[n].time for n in kept)
    # All of the last 10 minutes, one per 10 minutes for a day, one per day for the rest.
    assert sum(1 for a in ages if a < 10 * MINUTE) == 10
    ten_minute_slots = {
        int(by_number[n].time // 600) for n in kept if 600 <= now - by_number[n].time < DAY
    }
    assert len(ten_minute_slots) == sum(1 for n in kept if 600 <= now - by_number[n].time < DAY)
    assert 140 <= len(ten_minute_slots) <= 145
    assert 2 <= sum(1 for a in ages if a >= DAY) <= 3
    # Kept: the state of an hour ago and of a day ago, each within one interval.
    assert any(abs(a - HOUR) <= 10 * MINUTE for a in ages)
    assert any(abs(a - DAY) <= DAY for a in ages if a >= DAY)
    assert len(kept) <= 10 + 145 + 8


def test_thinning_again_later_keeps_what_it_kept_unless_replaced_or_too_old() -> None:
    stamps = saves(MINUTE, DAY)
    first = decide(stamps, stamps[-1].time, DEFAULT)
    later = stamps[-1].time + 2 * HOUR
    survivors = [s for s in stamps if s.number in first]
    second = decide(survivors, later, DEFAULT)
    # Two hours on, the decision over the survivors drops only those of a ten-minute interval
    # that now also holds a newer survivor (the last minutes, which were all kept) and those
    # that aged past a day into a daily interval.
    dropped = first - second
    for number in dropped:
        stamp = next(s for s in stamps if s.number == number)
        assert later - stamp.time >= 10 * MINUTE
    assert len(second) < len(first)
    assert max(first) in second


def test_the_newest_is_kept_however_old_and_large() -> None:
    stamps = [Stamp(1, T0, 10), Stamp(2, T0 + 1, 10_000)]
    retention = Retention(parse_schedule("all for 1m"), keep=1, max_bytes=1_000)
    assert decide(stamps, T0 + 365 * DAY, retention) == {2}


def test_the_newest_keep_are_kept_whatever_their_age() -> None:
    stamps = saves(DAY * 30, DAY * 300)  # ten saves, a month apart
    assert decide(stamps, stamps[-1].time + DAY * 365, DEFAULT) == {6, 7, 8, 9, 10}
    newest_only = Retention((), keep=2)
    assert decide(saves(MINUTE, HOUR), T0 + HOUR, newest_only) == {59, 60}


def test_the_size_bound_drops_the_oldest_first() -> None:
    stamps = saves(MINUTE, 8 * MINUTE, size=1_000)  # 8 saves, all recent
    bounded = Retention(parse_schedule(DEFAULT_SCHEDULE), keep=5, max_bytes=3_500)
    assert decide(stamps, stamps[-1].time, bounded) == {6, 7, 8}


def test_a_generation_dated_in_the_future_counts_as_new() -> None:
    stamps = [*saves(HOUR, 5 * HOUR), Stamp(6, T0 + DAY, 100)]
    kept = decide(stamps, T0 + 5 * HOUR, Retention(parse_schedule("all for 1m"), keep=1))
    assert kept == {6}
    kept = decide(
        [Stamp(1, T0 + DAY, 100), Stamp(2, T0, 100)],
        T0,
        Retention(parse_schedule("all for 1m"), keep=1),
    )
    assert kept == {1, 2}


def test_a_retention_refuses_a_keep_below_one() -> None:
    with pytest.raises(ValueError, match="keep must be at least 1"):
        Retention((), keep=0)


# --- the store applies it -------------------------------------------------------------------


def test_retention_generations_from_an_hour_and_a_day_ago_stay_restorable(root: Path) -> None:
    """Must show: with a simulated clock, generations from an hour and a day ago are still
    restorable and the count stays bounded."""
    clock = Clock(T0)
    step = 7 * MINUTE
    written: dict[int, tuple[float, int]] = {}  # generation -> (saved at, value of x)
    counts = []
    sdir = root / "sessions"
    with SessionStore(root, key=KEY, clock=clock, gc_grace=0, blob_threshold=1024) as store:
        for i in range(int((DAY + 2 * HOUR) // step)):
            clock.now = T0 + i * step
            session = make_session(updated=clock.now)
            session.variables["x"] = VariableRecord(
                "x", "int", 8, encoding="pickle", data=i.to_bytes(8, "big")
            )
            session.variables["big"] = VariableRecord(
                "big", "bytes", 2_000, encoding="pickle", data=os.urandom(2_000)
            )
            number = store.write(session).generation
            written[number] = (clock.now, i)
            counts.append(len(list(sdir.glob("*/gen-*.ipys"))))
        now = clock.now
        infos = store.generations("nb")

        def restorable_near(age: float) -> int:
            number = min(
                (info.number for info in infos),
                key=lambda n: abs(now - written[n][0] - age),
            )
            assert abs(now - written[number][0] - age) <= 10 * MINUTE
            got = store.read("nb", generation=number).session
            assert got.variables["x"].data == written[number][1].to_bytes(8, "big")
            blob = got.variables["big"].blob
            assert blob is not None
            assert len(store.read_blob("nb", blob)) == 2_000
            return number

        hour_ago = restorable_near(HOUR)
        day_ago = restorable_near(DAY)
        assert hour_ago != day_ago
        # Bounded: the last 10 minutes (2 saves), 144 ten-minute intervals, a day or two.
        assert max(counts) <= 2 + 145 + 2
        assert len(written) - counts[-1] >= 60  # a third of the day's saves were thinned away
        # Every blob on disk is referred to by a kept generation: the thinned ones' went too.
        refs = {
            store.read("nb", generation=info.number).session.variables["big"].blob for info in infos
        }
        blobs = {p.stem for p in (store.session_dir("nb") / "blobs").iterdir()}
        assert blobs == refs


def test_thinning_never_touches_checkpoints(root: Path) -> None:
    clock = Clock(T0)
    with SessionStore(root, key=KEY, clock=clock, retention=Retention((), keep=1)) as store:
        store.write(make_session(cells=1, updated=clock.now))
        store.checkpoint("nb", "first")
        for cells in range(2, 5):
            clock.now += DAY
            store.write(make_session(cells=cells, updated=clock.now))
        assert [g.number for g in store.generations("nb")] == [4]
        assert len(store.read("nb", checkpoint="first").session.history) == 1
