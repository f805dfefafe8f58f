"""Heavy imports restored in the background (session/imports_loading.py), in a real in-process
IPython shell (a terminal: no kernel event loop, so imports are bound after the next cell, or
when a cell that names one waits for it) over a real store.

The slow import is a module of the test's own, on ``sys.path``, listed in
``background_imports``: importing it waits until the test creates a file (its gate), so it is
"still importing" for as long as the test needs, whatever the machine's speed.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

import ipysession
from ipysession.capture.namespace import restore_imports
from ipysession.extension import get_manager
from ipysession.model import ImportRecord
from ipysession.session.imports_loading import BackgroundImports, ImportState
from ipysession.session.options import SessionOptions
from tests.builders import wait_for
from tests.shell import ipython_shell, restart, run


class SlowModule:
    """A module of the test's own whose import waits for a file (its gate) to exist."""

    def __init__(self, where: Path, *, body: str = "") -> None:
        self.name = f"slowmod_{uuid.uuid4().hex[:8]}"
        self.gate = where / f"{self.name}.open"
        source = (
            "import os, time\n"
            f"_deadline = time.monotonic() + 120\n"
            f"while not os.path.exists({str(self.gate)!r}) and time.monotonic() < _deadline:\n"
            "    time.sleep(0.01)\n"
            "VALUE = 42\n"
            "class Thing:\n"
            "    def __init__(self, x):\n"
            "        self.x = x\n" + body
        )
        self.source = where / f"{self.name}.py"
        self.source.write_text(source)

    def open(self) -> None:
        self.gate.touch()

    def close(self) -> None:
        self.gate.unlink(missing_ok=True)

    def open_soon(self) -> None:
        """Open the gate from another thread once the main thread waits in a cell."""
        threading.Timer(0.2, self.open).start()

    def forget(self) -> None:
        """As a new kernel would: the module is not imported yet."""
        sys.modules.pop(self.name, None)


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Makes slow modules on ``sys.path`` (gate open); none is left importing or imported."""
    where = tmp_path / "modules"
    where.mkdir()
    monkeypatch.syspath_prepend(str(where))
    made: list[SlowModule] = []

    def make(body: str = "") -> SlowModule:
        module = SlowModule(where, body=body)
        module.open()
        made.append(module)
        return module

    yield make
    for module in made:
        module.open()  # never leave a worker thread waiting
        module.forget()


@pytest.fixture
def slow(make_module: Any) -> SlowModule:
    module: SlowModule = make_module()
    return module


@contextmanager
def saved_shell(module: SlowModule, background_imports: list[str] | None = None) -> Iterator[Any]:
    """A shell whose saved session imports ``module`` and holds a value of its class."""
    imports = [module.name] if background_imports is None else background_imports
    with ipython_shell(autosave_interval=0.0, background_imports=imports) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"import {module.name} as sl\nthing = sl.Thing(3)\nn = 5\n")
        run(shell, "%session save")
        yield shell


def restart_with_gate_closed(shell: Any, module: SlowModule) -> None:
    module.close()
    module.forget()
    restart(shell)


def test_a_cell_naming_none_runs_while_one_naming_it_waits_then_the_value_arrives(
    slow: SlowModule,
) -> None:
    with saved_shell(slow) as shell:
        restart_with_gate_closed(shell, slow)
        manager = get_manager(shell)
        report = manager.last_restore
        assert report is not None
        assert report.importing == ["sl"]
        # thing needs the module to be unpickled: it waits for it as a background job.
        assert report.loading == ["thing"]
        assert "sl" not in shell.user_ns
        assert "thing" not in shell.user_ns
        assert shell.user_ns["n"] == 5
        # A cell that names neither runs now, the module still held at its gate.
        run(shell, "m = n + 1")
        assert shell.user_ns["m"] == 6
        loading = dict(manager.status().loading)
        assert loading["sl"] == f"importing {slow.name}"
        assert "waiting for" in loading["thing"]
        # A cell that names the import waits for it, then sees the module.
        slow.open_soon()
        run(shell, "v = sl.VALUE")
        assert shell.user_ns["v"] == 42
        assert "sl" in report.imports
        # The value that needed it arrives after it.
        run(shell, "x = thing.x")
        assert shell.user_ns["x"] == 3
        assert isinstance(shell.user_ns["thing"], sys.modules[slow.name].Thing)
        assert manager.status().loading == []


def test_a_notebook_function_reading_a_pending_import_waits_for_it(
    slow: SlowModule,
) -> None:
    with saved_shell(slow) as shell:
        run(shell, "def value():\n    return sl.VALUE\n")
        run(shell, "%session save")
        restart_with_gate_closed(shell, slow)
        # Pickled by value, the function brings its module back by importing it: it waits
        # for that module as a background job instead of waiting on its import lock here.
        assert "value" in get_manager(shell).last_restore.loading  # type: ignore[union-attr]
        # Defined now, by a cell that names nothing pending: its code reads sl.
        run(shell, 'exec("def later():\\n    return sl.VALUE + 1")')
        slow.open_soon()
        # The cell names only later; later's code reads sl, still importing: it waits.
        run(shell, "r = later()")
        assert shell.user_ns["r"] == 43
        run(shell, "w = value()")
        assert shell.user_ns["w"] == 42


def test_a_save_while_an_import_is_pending_keeps_its_record(slow: SlowModule) -> None:
    with saved_shell(slow) as shell:
        restart_with_gate_closed(shell, slow)
        manager = get_manager(shell)
        run(shell, "extra = 1")
        run(shell, "%session save")
        saved = manager.store.read(manager.name).session
        assert [record.name for record in saved.imports] == ["sl"]
        assert "thing" in saved.variables
        # Restarted again before the module ever arrived: it comes back.
        restart_with_gate_closed(shell, slow)
        slow.open_soon()
        run(shell, "v, x = sl.VALUE, thing.x")
        assert (shell.user_ns["v"], shell.user_ns["x"], shell.user_ns["extra"]) == (42, 3, 1)


def test_restarted_again_while_the_import_thread_is_blocked_it_is_handed_over_again(
    slow: SlowModule,
) -> None:
    # `%unload_ext` then `%load_ext` in one process: the first manager's thread is still in the
    # middle of the import (its module half-initialised in sys.modules). The second must not
    # import it on the main thread (that waits on the module's lock until the import is through)
    # and the first must write nothing into the namespace.
    with saved_shell(slow) as shell:
        restart_with_gate_closed(shell, slow)
        first = get_manager(shell)
        wait_for(lambda: first.importing.jobs[0].state is ImportState.IMPORTING, "importing")
        # Should the module be imported on the main thread after all, the gate opens in time.
        fallback = threading.Timer(30.0, slow.open)
        fallback.start()
        try:
            restart(shell)
        finally:
            fallback.cancel()
        manager = get_manager(shell)
        assert manager is not first
        report = manager.last_restore
        assert report is not None
        assert report.importing == ["sl"]
        assert report.loading == ["thing"]
        assert "sl" not in shell.user_ns
        run(shell, "m = n + 1")
        slow.open_soon()
        run(shell, "v, x = sl.VALUE, thing.x")
        assert (shell.user_ns["v"], shell.user_ns["x"]) == (42, 3)
        assert "sl" in report.imports
        assert first.importing.settle() == []  # the unloaded manager binds nothing


def test_in_a_terminal_an_import_that_arrived_is_bound_after_the_next_cell(
    slow: SlowModule,
) -> None:
    # No event loop binds it: the next cell's end does, whatever the cell names (`%run -i`,
    # `eval` and `%who` see the namespace, not the cell's text).
    with saved_shell(slow) as shell:
        restart_with_gate_closed(shell, slow)
        manager = get_manager(shell)
        job = manager.importing.jobs[0]
        slow.open()
        wait_for(lambda: job.done.is_set(), "the import ended")
        run(shell, "m = n + 1")
        assert shell.user_ns["sl"] is sys.modules[slow.name]
        assert manager.status().loading == []
        run(shell, "found = eval('s' + 'l').VALUE")
        assert shell.user_ns["found"] == 42


def saved_imports(shell: Any) -> list[str]:
    run(shell, "%session save")
    manager = get_manager(shell)
    return [record.name for record in manager.store.read(manager.name).session.imports]


def test_an_import_forgotten_while_pending_stays_forgotten_once_it_arrives(
    slow: SlowModule,
) -> None:
    with saved_shell(slow) as shell:
        restart_with_gate_closed(shell, slow)
        job = get_manager(shell).importing.jobs[0]
        run(shell, "%session forget sl")
        slow.open()
        wait_for(lambda: job.done.is_set(), "the import ended")
        run(shell, "m = n + 1")
        # Bound, as a forgotten name keeps its value here; never saved again.
        assert shell.user_ns["sl"] is sys.modules[slow.name]
        assert saved_imports(shell) == []


@pytest.mark.parametrize(
    "cells", [["sl = 1"], ["sl = 1", "del sl"]], ids=["rebound", "rebound-then-deleted"]
)
def test_a_name_a_cell_bound_while_its_import_was_pending_stays_the_users(
    slow: SlowModule, cells: list[str]
) -> None:
    with saved_shell(slow) as shell:
        restart_with_gate_closed(shell, slow)
        manager = get_manager(shell)
        job = manager.importing.jobs[0]
        for cell in cells:
            run(shell, cell)  # a cell only storing the name does not wait for the import
        assert job.state is ImportState.IMPORTING
        slow.open()
        wait_for(lambda: job.done.is_set(), "the import ended")
        run(shell, "m = n + 1")
        assert shell.user_ns.get("sl", "deleted") == (1 if cells == ["sl = 1"] else "deleted")
        assert saved_imports(shell) == []
        assert manager.status().loading == []


def test_import_statements_of_every_shape_come_back_with_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gated package with a submodule, imported every way a cell can, beside modules that are
    # not listed (os.path) or already imported (json): each name is what it was.
    package = f"slowpkg_{uuid.uuid4().hex[:8]}"
    where = tmp_path / "modules" / package
    where.mkdir(parents=True)
    gate = SlowModule(tmp_path, body="class DataFrame:\n    pass\n")
    (where / "__init__.py").write_text(gate.source.read_text())
    (where / "linalg.py").write_text("X = 5\n")
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    cell = (
        f"import os.path\nfrom {package} import DataFrame as DF\nimport {package}.linalg as la\n"
        f"import {package}\nfrom {package}.linalg import X\nimport json\n"
    )
    names = ["DF", "X", "json", "la", "os", package]
    gate.open()
    try:
        with ipython_shell(autosave_interval=0.0, background_imports=[package]) as shell:
            ipysession.load_ipython_extension(shell)
            run(shell, cell)
            before = saved_imports(shell)
            gate.close()
            for module in [m for m in sys.modules if m.split(".")[0] == package]:
                del sys.modules[module]
            restart(shell)
            report = get_manager(shell).last_restore
            assert report is not None
            assert sorted(report.importing) == ["DF", "X", "la", package]
            assert shell.user_ns["os"].path is os.path
            gate.open_soon()
            run(shell, f"found = (DF, la, {package}, X)")
            pkg = sys.modules[package]
            assert shell.user_ns["found"] == (pkg.DataFrame, pkg.linalg, pkg, 5)
            assert shell.user_ns["json"] is sys.modules["json"]
            assert sorted(saved_imports(shell)) == sorted(before) == names
    finally:
        gate.open()
        for module in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[module]


def test_a_listed_module_already_imported_at_start_is_bound_at_once(slow: SlowModule) -> None:
    with saved_shell(slow) as shell:
        restart(shell)  # the module stays imported: nothing to wait for
        report = get_manager(shell).last_restore
        assert report is not None
        assert report.importing == []
        assert report.loading == []
        assert shell.user_ns["sl"] is sys.modules[slow.name]
        assert shell.user_ns["thing"].x == 3


def test_a_module_that_fails_on_a_thread_is_imported_again_on_the_main_thread(
    make_module: Any,
) -> None:
    # signal.signal raises ValueError anywhere but on the main thread.
    handler = "signal.signal(signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))"
    module = make_module(f"import signal\n{handler}\n")
    with saved_shell(module) as shell:
        module.forget()
        restart(shell)
        manager = get_manager(shell)
        job = manager.importing.jobs[0]
        wait_for(lambda: job.state is ImportState.IMPORTED, "the background import ended")
        assert isinstance(job.error, ValueError)
        run(shell, "v = sl.VALUE")
        assert shell.user_ns["v"] == 42
        report = manager.last_restore
        assert report is not None
        assert "sl" in report.imports
        assert "sl" not in dict(report.skipped)


def test_an_import_that_fails_everywhere_is_reported(make_module: Any) -> None:
    module = make_module()
    with saved_shell(module) as shell:
        # Broken since the save: it fails on the worker thread, and again on the main thread.
        module.source.write_text(module.source.read_text() + "raise RuntimeError('broken')\n")
        restart_with_gate_closed(shell, module)
        manager = get_manager(shell)
        module.open_soon()
        result = shell.run_cell("sl")
        assert result.error_before_exec is None
        assert "could not be restored" in str(result.error_in_exec)
        assert "broken" in str(result.error_in_exec)
        report = manager.last_restore
        assert report is not None
        assert "broken" in dict(report.skipped)["sl"]
        assert any("'sl'" in text for _, text in manager.notices.recent())
        assert "sl" not in shell.user_ns


def test_an_empty_list_imports_before_the_shell_answers(slow: SlowModule) -> None:
    with saved_shell(slow, background_imports=[]) as shell:
        slow.forget()
        restart(shell)
        report = get_manager(shell).last_restore
        assert report is not None
        assert report.importing == []
        assert shell.user_ns["sl"].VALUE == 42
        assert shell.user_ns["thing"].x == 3


@pytest.mark.parametrize("bad", ["numpy.linalg", "", "not a module"])
def test_background_imports_lists_top_level_modules_only(bad: str) -> None:
    with pytest.raises(TraitError, match="top-level module names"):
        SessionOptions(background_imports=[bad])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_the_import_thread_runs_below_the_kernels_priority(make_module: Any) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    if own >= 19:  # run under `nice -n 19`: there is no lower priority to give the thread
        pytest.skip("the tests run at the lowest scheduling priority already")
    module = make_module()
    module.close()
    module.forget()
    namespace: dict[str, Any] = {}
    importing = BackgroundImports(bind=lambda records: restore_imports(records, namespace))
    importing.start([ImportRecord(name="sl", module=module.name)])
    try:
        job = importing.jobs[0]
        wait_for(lambda: job.state is ImportState.IMPORTING, "the thread imports")
        thread = next(t for t in threading.enumerate() if t.name == "ipysession-import")
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) > own
        assert os.getpriority(os.PRIO_PROCESS, 0) == own  # this thread (the kernel's) unchanged
        assert importing.is_pending(f"{module.name}.sub")
        module.open()
        wait_for(lambda: job.done.is_set(), "the import ended")
        assert importing.settle() == ["sl"]
        assert namespace["sl"].VALUE == 42
        assert importing.module_check() is None  # nothing pending: unpickling unchecked again
    finally:
        module.open()
        importing.stop()


def _replay_shell(module: SlowModule, cells: list[str]) -> Any:
    shell_context = ipython_shell(autosave_interval=0.0, background_imports=[module.name])
    shell = shell_context.__enter__()
    ipysession.load_ipython_extension(shell)
    run(shell, f"import {module.name} as sl\nn = 3\n")
    for cell in cells:
        run(shell, cell)
    run(shell, "%session save")
    return shell_context, shell


def test_a_replay_that_reads_no_pending_import_does_not_wait_for_it(slow: SlowModule) -> None:
    # A generator cannot be saved: the restore replays its cell, which reads only `n`.
    context, shell = _replay_shell(slow, ["squares = (i * i for i in range(n))"])
    try:
        restart_with_gate_closed(shell, slow)
        report = get_manager(shell).last_restore
        assert report is not None
        assert report.importing == ["sl"]
        assert "sl" not in shell.user_ns  # still held at its gate: the replay did not wait
        assert [o.names for o in report.replay] == [("squares",)]
        assert list(shell.user_ns["squares"]) == [0, 1, 4]
    finally:
        slow.open()
        context.__exit__(None, None, None)


@pytest.mark.parametrize(
    "cells",
    [
        ["values = (sl.VALUE + i for i in range(n))"],
        ["values = ((lambda j: sl.VALUE + j)(i) for i in range(n))"],
    ],
    ids=["directly", "in-nested-code"],
)
def test_a_replay_that_reads_a_pending_import_waits_for_it(
    slow: SlowModule, cells: list[str]
) -> None:
    context, shell = _replay_shell(slow, cells)
    try:
        slow.close()
        slow.forget()
        slow.open_soon()  # opened while the restore waits for it before replaying
        restart(shell)
        report = get_manager(shell).last_restore
        assert report is not None
        assert shell.user_ns["sl"] is sys.modules[slow.name]
        assert "sl" in report.imports
        assert list(shell.user_ns["values"]) == [42, 43, 44]
    finally:
        slow.open()
        context.__exit__(None, None, None)
