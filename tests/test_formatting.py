"""How sizes, times and counts read in every table and message ipysession shows."""

from __future__ import annotations

import time

import pytest

from ipysession.capture.describe import format_bytes
from ipysession.formatting import count, format_size, format_time


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


@pytest.mark.parametrize(
    ("n", "noun", "plural", "text"),
    [
        (0, "cell", None, "0 cells"),
        (1, "cell", None, "1 cell"),
        (2, "success", "successes", "2 successes"),
        (1, "success", "successes", "1 success"),
    ],
)
def test_count(n: int, noun: str, plural: str | None, text: str) -> None:
    assert count(n, noun, plural) == text


def test_capture_reasons_use_the_same_size_format() -> None:
    # One formatter: a skip reason and a table never disagree on how a size reads.
    assert format_bytes(1536) == format_size(1536) == "1.5 KiB"
    assert format_bytes(12) == "12 B"
