"""Typing a session's name: the exact name, ``~/...`` as shown, or any unambiguous suffix."""

from __future__ import annotations

import pytest

from ipysession.errors import AmbiguousName, SessionError
from ipysession.store.lookup import display_name, resolve_name

HOME = "/home/ada"
NAMES = [
    "/home/ada/proj/analysis.ipynb",
    "/home/ada/old/analysis.ipynb",
    "/home/ada/proj/report.ipynb",
    "/srv/shared/thesis.ipynb",
    "scratch",
]


@pytest.mark.parametrize(
    ("typed", "selected"),
    [
        ("/home/ada/proj/analysis.ipynb", "/home/ada/proj/analysis.ipynb"),  # exact
        ("report.ipynb", "/home/ada/proj/report.ipynb"),  # file name
        ("proj/analysis.ipynb", "/home/ada/proj/analysis.ipynb"),  # more of the path
        ("/proj/analysis.ipynb", "/proj/analysis.ipynb"),  # an absolute path selects itself only
        ("~/proj/report.ipynb", "/home/ada/proj/report.ipynb"),  # as display_name shows it
        ("thesis.ipynb", "/srv/shared/thesis.ipynb"),
        ("scratch", "scratch"),
        ("port.ipynb", "port.ipynb"),  # not on a path-component boundary: no match
        ("nothing-like-it", "nothing-like-it"),  # left for the store (slug) or its "not found"
    ],
)
def test_a_name_selects_the_session_it_ends(typed: str, selected: str) -> None:
    assert resolve_name(typed, NAMES, home=HOME) == selected


def test_an_exact_name_wins_over_being_a_suffix_of_another() -> None:
    names = ["analysis.ipynb", "/home/ada/proj/analysis.ipynb"]
    assert resolve_name("analysis.ipynb", names, home=HOME) == "analysis.ipynb"


def test_a_suffix_of_several_sessions_lists_them_all() -> None:
    with pytest.raises(AmbiguousName) as caught:
        resolve_name("analysis.ipynb", NAMES, home=HOME)
    error = caught.value
    assert isinstance(error, SessionError)
    assert error.matches == ("/home/ada/old/analysis.ipynb", "/home/ada/proj/analysis.ipynb")
    message = str(error)
    assert "'analysis.ipynb' matches 2 sessions" in message
    assert "'~/old/analysis.ipynb'" in message
    assert "'~/proj/analysis.ipynb'" in message
    assert "Give more of the path" in message


def test_windows_names_match_a_suffix_typed_with_either_slash() -> None:
    names = ["C:\\Users\\ada\\proj\\analysis.ipynb"]
    assert resolve_name("proj/analysis.ipynb", names, home=HOME) == names[0]
    assert resolve_name("proj\\analysis.ipynb", names, home=HOME) == names[0]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("/home/ada/proj/analysis.ipynb", "~/proj/analysis.ipynb"),
        ("/home/adam/x.ipynb", "/home/adam/x.ipynb"),  # only under home, not a prefix string
        ("/home/ada", "/home/ada"),
        ("/srv/shared/thesis.ipynb", "/srv/shared/thesis.ipynb"),
        ("scratch", "scratch"),
    ],
)
def test_names_under_home_are_shown_relative_to_it(name: str, shown: str) -> None:
    assert display_name(name, home=HOME) == shown


def test_what_is_shown_selects_the_session_again() -> None:
    for name in NAMES:
        assert resolve_name(display_name(name, home=HOME), NAMES, home=HOME) == name
