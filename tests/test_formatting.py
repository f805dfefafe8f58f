"""How sizes and times read in every table ipysession shows."""

from __future__ import annotations

import time

import pytest

from ipysession.formatting import format_size, format_time


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 2**20, "5.0 MiB"),
        (3 * 2**30, "3.0 GiB"),
    ],
)
def test_size_format(n: int | None, text: str) -> None:
    assert format_size(n) == text


def test_time_format() -> None:
    stamp = time.mktime((2026, 11, 24, 9, 30, 5, 0, 0, -1))
    assert format_time(stamp) == "2026-11-24 09:30:05"
    assert format_time(None) == "never"
    assert format_time(0, missing="-") == "-"
