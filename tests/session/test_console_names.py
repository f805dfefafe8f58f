"""Consoles get sessions of their own: jupyter-server names a console's kernel after the
console's directory and name (``.../Console 1``), a name every server run hands out again."""

from __future__ import annotations

import pytest

import ipysession
from ipysession import extension
from ipysession.extension import get_manager
from ipysession.session.sharing import default_session_name
from tests.shell import ipython_shell


def test_a_console_name_gets_the_kernel_id_and_a_notebook_path_does_not() -> None:
    console = {"JPY_SESSION_NAME": "/home/ada/proj/Console 1"}
    notebook = {"JPY_SESSION_NAME": "/home/ada/proj/analysis.ipynb"}

    first = default_session_name("", console, {}, kernel_id="0123456789abcdef")
    second = default_session_name("", console, {}, kernel_id="fedcba9876543210")

    assert first == "/home/ada/proj/Console 1 (kernel 01234567)"
    assert second != first
    assert default_session_name("", notebook, {}, kernel_id="0123456789abcdef") == (
        "/home/ada/proj/analysis.ipynb"
    )
    # A name the user chose is never changed.
    assert default_session_name("", {**console, "IPYSESSION_NAME": "Console 1"}, {}) == "Console 1"


@pytest.mark.parametrize("kernel_id", ["0123456789abcdef", "fedcba9876543210"])
def test_each_console_kernel_saves_to_a_session_of_its_own(
    kernel_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/ada/proj/Console 1")
    monkeypatch.setattr(extension, "_kernel_id", lambda: kernel_id)
    with ipython_shell() as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None

        assert manager.name == f"/home/ada/proj/Console 1 (kernel {kernel_id[:8]})"
