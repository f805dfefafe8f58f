"""The arrivals mechanism with a source that is not a connection (a value still loading), in a
real in-process IPython shell: a cell that names an arriving name waits for it and runs; one that
names none never waits; one whose wait runs out fails with the source's error, none of its code
run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import ipysession
from ipysession.errors import CaptureError, SessionError
from ipysession.extension import get_manager
from ipysession.session.arrivals import Arrivals
from tests.shell import ipython_shell, run


class LoadingValue:
    """A value arriving on another thread: ready once ``loaded`` is set; bound on wait()."""

    def __init__(self, shell: Any, name: str, value: Any) -> None:
        self.shell = shell
        self._name = name
        self.value = value
        self.loaded = threading.Event()
        self.waits = 0

    @property
    def name(self) -> str:
        return self._name

    def progress(self) -> str:
        return "loading, 3 of 8 MiB"

    def is_ready(self) -> bool:
        return self._name in self.shell.user_ns

    def failed(self) -> bool:
        return False

    def wait(self, timeout: float) -> bool:
        self.waits += 1
        if self.loaded.wait(timeout):
            self.shell.user_ns[self._name] = self.value  # on the main thread, as required
            return True
        return False

    def not_ready(self, waited: float) -> SessionError:
        return CaptureError(f"Value '{self._name}' is still loading", hint="wait and run again")


class Values:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.items: list[LoadingValue] = []

    def arriving(self) -> list[LoadingValue]:
        return [v for v in self.items if not v.is_ready()]


class Lines:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self) -> Lines:
        return self

    def update(self, text: str) -> None:
        self.texts.append(text)

    def done(self, text: str) -> None:
        self.texts.append(text)


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        yield shell


def test_a_cell_that_names_an_arriving_value_waits_and_runs(shell: Any) -> None:
    values = Values(limit=120.0)
    big = LoadingValue(shell, "big", list(range(5)))
    values.items.append(big)
    arrivals = get_manager(shell).arrivals  # type: ignore[union-attr]
    arrivals.add(values)
    lines = Lines()
    arrivals.progress = lines
    threading.Timer(0.3, big.loaded.set).start()
    run(shell, "total = sum(big)")
    assert shell.user_ns["total"] == 10
    assert big.waits >= 1
    assert lines.texts[0] == "waiting for big: loading, 3 of 8 MiB"
    assert lines.texts[-1].startswith("big: ready after ")


def test_a_cell_that_names_none_never_waits(shell: Any) -> None:
    values = Values(limit=120.0)
    big = LoadingValue(shell, "big", 1)
    values.items.append(big)
    get_manager(shell).arrivals.add(values)  # type: ignore[union-attr]
    run(shell, "x = 1 + 1\nbig_other = x")  # "big" only as part of another name
    run(shell, "%session status")  # and a %session line never waits either
    run(shell, "big = 5")  # binding the name needs no value
    assert big.waits == 0
    assert shell.user_ns["x"] == 2


def test_a_cell_whose_wait_runs_out_fails_before_any_of_its_code_runs(shell: Any) -> None:
    values = Values(limit=0.2)
    values.items.append(LoadingValue(shell, "big", 1))
    get_manager(shell).arrivals.add(values)  # type: ignore[union-attr]
    result = shell.run_cell("side_effect = 1\nprint(big)")
    assert isinstance(result.error_in_exec, CaptureError)
    assert "Value 'big' is still loading" in str(result.error_in_exec)
    assert "side_effect" not in shell.user_ns
    # The gate is used up: the next cell runs as written.
    run(shell, "after = 2")
    assert shell.user_ns["after"] == 2


def test_the_gate_leaves_cells_alone_when_nothing_is_armed() -> None:
    import ast

    arrivals = Arrivals()
    tree = ast.parse("x = 1")
    assert arrivals.gate.visit(tree) is tree
    assert arrivals.before_cell("print(x)").waited == ()


def test_an_interrupted_wait_refuses_the_cell(shell: Any) -> None:
    class Interrupting(LoadingValue):
        def wait(self, timeout: float) -> bool:
            raise KeyboardInterrupt

    values = Values(limit=120.0)
    values.items.append(Interrupting(shell, "big", 1))
    get_manager(shell).arrivals.add(values)  # type: ignore[union-attr]
    result = shell.run_cell("ran = 1\nprint(big)")
    assert isinstance(result.error_in_exec, CaptureError)
    assert "ran" not in shell.user_ns


class MagicValue(LoadingValue):
    """An arrival a magic needs without its line naming it (as ``%sql`` needs its connection)."""

    def named_by_magic(self, magic: str, line: str) -> bool:
        return magic == "usebig" and not line.startswith("other")


def test_a_magic_that_needs_an_arrival_waits_for_it(shell: Any) -> None:
    values = Values(limit=120.0)
    big = MagicValue(shell, "big", [1, 2])
    values.items.append(big)
    get_manager(shell).arrivals.add(values)  # type: ignore[union-attr]

    def usebig(line: str, cell: str | None = None) -> None:
        # Reads the value as %sql reads its connection: from state the line does not name.
        shell.user_ns["used"] = (line, cell, shell.user_ns.get("big"))

    shell.register_magic_function(usebig, "line_cell", "usebig")
    run(shell, "%usebig other")  # this magic says the line does not need it
    run(shell, "%session status")
    assert big.waits == 0
    assert shell.user_ns["used"] == ("other", None, None)
    threading.Timer(0.3, big.loaded.set).start()
    run(shell, "%usebig now")
    assert shell.user_ns["used"] == ("now", None, [1, 2])
    assert big.waits >= 1
    del shell.user_ns["big"]
    big.loaded.set()
    run(shell, "%%usebig cell\nbody")
    assert shell.user_ns["used"] == ("cell", "body\n", [1, 2])
    del shell.user_ns["big"]
    run(shell, "x = 1\nresult = %usebig assigned")
    assert shell.user_ns["used"] == ("assigned", None, [1, 2])
    del shell.user_ns["big"]
    run(shell, "%%capture\n%time %usebig inside")  # a magic inside magics counts too
    assert shell.user_ns["used"] == ("inside", None, [1, 2])
