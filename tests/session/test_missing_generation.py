"""Asking for a generation that was thinned away names the nearest ones kept, with their times."""

from __future__ import annotations

from pathlib import Path

from ipysession.formatting import format_time
from ipysession.session.snapshots import nearest_kept
from ipysession.store import GenerationInfo

T0 = 1_800_000_000.0


def info(number: int, saved: float | None) -> GenerationInfo:
    return GenerationInfo(
        number=number, path=Path(f"gen-{number}"), size=1, mtime=T0 + 1, time=saved
    )


def test_a_thinned_generation_is_placed_between_the_kept_ones_around_it() -> None:
    kept = [info(45, T0 + 600), info(12, T0 - 3600), info(38, T0)]
    assert nearest_kept(kept, 41) == (
        f" Nearest kept: 38 (saved {format_time(T0)}), 45 (saved {format_time(T0 + 600)})."
    )


def test_past_either_end_only_the_end_is_named_and_a_missing_time_is_the_files() -> None:
    kept = [info(12, None), info(38, T0)]
    assert nearest_kept(kept, 3) == f" Nearest kept: 12 (saved {format_time(T0 + 1)})."
    assert nearest_kept(kept, 99) == f" Nearest kept: 38 (saved {format_time(T0)})."
    assert nearest_kept([], 5) == ""
