"""The restore summary splits its time: imports, data, replay, connections (issue 17).

A kernel that took 4.5 s to start spent most of it re-importing torch and initialising CUDA, and
the summary said only "in 4511 ms". A module that sleeps while it is imported shows where the
time of an import goes; only lower bounds that the sleep guarantees are asserted, never a speed.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.session.reports import RestoreTimes
from tests.shell import ipython_shell, restart, run

SLEEP = 0.2


@pytest.fixture
def slow_module(tmp_path: Path) -> Iterator[str]:
    """A module that takes at least SLEEP seconds to import, on sys.path for this test."""
    name = f"slow_import_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(f"import time\ntime.sleep({SLEEP})\nVALUE = 42\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_the_time_of_a_slow_import_is_counted_as_imports(
    slow_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"import {slow_module} as slow\ndata = list(range(1000))")
        run(shell, "%session save")
        sys.modules.pop(slow_module)  # a new kernel imports it again
        capsys.readouterr()
        restart(shell)
        summary = capsys.readouterr().out
        manager = get_manager(shell)
        assert manager is not None
        report = manager.last_restore
        assert report is not None
        assert shell.user_ns["slow"].VALUE == 42
        times = report.times
        assert times.imports >= SLEEP
        assert report.replay == []  # nothing needed replaying: its part is only the check
        # The parts are measured inside the whole, so they never add up to more.
        assert times.imports + times.data + times.replay + times.connections <= report.seconds
        assert times.data > 0.0  # the file was read and decrypted
        match = re.search(
            r"in (\d+) ms \(imports (\d+) ms, data (\d+) ms, replay 0 ms, connections (\d+) ms\)\.",
            summary,
        )
        assert match is not None, summary
        assert int(match.group(2)) >= SLEEP * 1000


def test_each_part_adds_what_its_block_took_even_when_it_raises() -> None:
    times = RestoreTimes()
    with times.timing("data"):
        time.sleep(0.01)

    def failing() -> None:
        with times.timing("data"):
            time.sleep(0.01)
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        failing()
    assert times.data >= 0.02  # both blocks, the one that raised too
    assert (times.imports, times.replay, times.connections) == (0.0, 0.0, 0.0)
