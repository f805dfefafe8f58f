"""End to end with real kernels: work, restart (gracefully or by SIGKILL), check what is back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, MANAGER, Kernel, start_kernel, wait_for_autosave
from tests.workload import CALLABLES, IMPORTS, PICKLABLE, REFERENCE_CELLS, fingerprint_code

pytestmark = pytest.mark.kernel


def fingerprints(kernel: Kernel) -> dict[str, str]:
    return ast.literal_eval(kernel.run(fingerprint_code(PICKLABLE)).stdout.strip())


def run_reference_workload(kernel: Kernel) -> None:
    for cell in REFERENCE_CELLS:
        kernel.run(cell)
    kernel.run("%precision 3")
    kernel.run("%xmode Verbose")
    kernel.run("%load_ext autoreload")
    kernel.run("%autoreload 2")
    kernel.run("%env MY_FLAG=on")
    kernel.run("import os\nos.makedirs('sub', exist_ok=True)\nos.chdir('sub')")


def check_reference_restored(kernel: Kernel, before: dict[str, str], summary: str) -> None:
    # The fingerprints read the namespace through globals(), which waits for nothing: a cell
    # naming every value first waits for what is still arriving in the background (numpy and
    # pandas imported there, the DataFrame that needs pandas bound after them).
    kernel.run(f"[{', '.join(PICKLABLE + IMPORTS + CALLABLES)}] and None")
    assert fingerprints(kernel) == before
    for name in IMPORTS + CALLABLES:
        assert kernel.value(f"{name!r} in globals()"), name
    assert kernel.value("np.__name__, pd.__name__") == ("numpy", "pandas")
    assert kernel.value("scale(pt, 2).norm()") == 10.0
    assert kernel.value("square(7)") == 49
    assert kernel.value("isinstance(pt, Point)")
    # The file handle is reopened at the same position, without truncating the file.
    assert kernel.value("fh.read()") == "one\nline two\n"
    assert kernel.value("os.getcwd()").endswith("sub")
    # %precision 3 is back: a float displays with three decimals.
    assert kernel.run("3.14159265").outputs[0]["data"]["text/plain"] == "3.142"
    shell_state = kernel.value(
        "(get_ipython().InteractiveTB.mode,"
        " any(e.endswith('autoreload') for e in get_ipython().extension_manager.loaded),"
        " os.environ.get('MY_FLAG'))"
    )
    assert shell_state == ("Verbose", True, "on")
    assert "2" in kernel.run("%autoreload?").text or kernel.run("%autoreload 2").ok
    # The generator cannot be saved: it is named with the reason, not silently dropped.
    assert "gen" in summary
    assert "generator" in summary


def test_graceful_restart_restores_everything(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        run_reference_workload(kernel)
        before = fingerprints(kernel)
        kernel.restart()
        first = kernel.run("restored_at_start = True")
        assert "ipysession: restored" in first.text
        check_reference_restored(kernel, before, first.text)
        history = kernel.run("%session history --grep Point").text
        assert "class Point" in history


def test_sigkill_after_autosave_restores(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        run_reference_workload(kernel)
        before = fingerprints(kernel)
        wait_for_autosave(kernel)
        kernel.kill_hard()
        first = kernel.run("1")
        assert "ipysession: restored" in first.text
        check_reference_restored(kernel, before, first.text)


def test_each_submodule_imported_under_one_name_comes_back(tmp_path: Path) -> None:
    """`import xml.dom.minidom` then `import xml.sax.saxutils` both bind `xml`; after a restart
    (a new process, where neither submodule is loaded) code using either must still run."""
    with start_kernel(tmp_path) as kernel:
        kernel.run("import xml.dom.minidom")
        kernel.run("import xml.sax.saxutils, wsgiref.util")
        kernel.restart()
        first = kernel.run("1")
        assert "ipysession: restored" in first.text
        assert kernel.value("xml.dom.minidom.parseString('<a/>').documentElement.tagName") == "a"
        assert kernel.value("xml.sax.saxutils.escape('<')") == "&lt;"
        assert kernel.value("wsgiref.util.guess_scheme({})") == "http"
        # xml counted once: sys (which the test harness imports), xml, wsgiref.
        assert "3 imports" in first.text


def test_generation_and_checkpoint_restore(tmp_path: Path) -> None:
    with start_kernel(tmp_path, "c.SessionManager.autosave = False") as kernel:
        kernel.run("x = 1")
        saved = kernel.run("%session save --checkpoint first").text
        assert "checkpoint 'first'" in saved
        kernel.run("x = 2")
        kernel.run("%session save")
        kernel.run("x = 3")
        gen = kernel.value(f"{MANAGER}.last_generation")
        kernel.run("%session restore --checkpoint first --vars x")
        assert kernel.value("x") == 1
        kernel.run(f"%session restore --generation {gen} --vars x")
        assert kernel.value("x") == 2
        snapshots = kernel.run("%session snapshots").text
        assert "checkpoint first" in snapshots
        assert f"generation {gen}" in snapshots


def test_no_extension_no_restore(tmp_path: Path) -> None:
    """Control: without the extension a restart loses the workspace (what users have today)."""
    with start_kernel(tmp_path, load_extension=False) as kernel:
        kernel.run("x = 1")
        kernel.restart()
        assert not kernel.value("'x' in globals()")
