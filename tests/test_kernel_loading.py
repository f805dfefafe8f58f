"""Large values restored in the background, with real kernels (issue 15, "Must show").

A kernel whose session holds a 40 MB array restarts: a cell naming a small value runs (the large
one is then either still loading, as `%session status` says, or already bound by the kernel's
event loop; never asserted on how long anything took), a cell naming the large value sees all of
it, SIGKILL while values may still be loading leaves the session whole, and a damaged large blob
fails only its variable, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.builders import wait_for
from tests.kernels import (
    FAST_AUTOSAVE,
    MANAGER,
    Kernel,
    run_cli,
    start_kernel,
    wait_for_autosave,
)

pytestmark = pytest.mark.kernel

#: 4 MiB: the 40 MB array is over it, the rest far under.
THRESHOLD = "c.SessionManager.background_restore_bytes = 4 * 1024 * 1024"

WORK = (
    "import numpy as np\n"
    "big = np.random.default_rng(7).random(5_000_000)\n"  # 40 MB
    "expected = (float(big.sum()), big.shape)\n"
    "small = {'kept': True}\n"
)

STATE = f"('big' in globals(), [n for n, _ in {MANAGER}.status().loading])"


def bound_silently(kernel: Kernel) -> bool:
    """Whether ``big`` is bound, asked without running a cell: a silent execution runs no
    pre/post_run_cell hook, so only the kernel's event loop can have bound it."""
    kc = kernel.client
    msg_id = kc.execute("", silent=True, user_expressions={"b": "'big' in globals()"})
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    value = reply["content"]["user_expressions"]["b"]
    return bool(value["status"] == "ok" and value["data"]["text/plain"] == "True")


def loading_or_bound(kernel: Kernel) -> None:
    """After a restart: ``big`` is either bound or listed as loading, never neither."""
    bound, loading = kernel.value(STATE)
    assert bound or loading == ["big"], (bound, loading)


def test_the_kernel_binds_the_value_between_cells_while_idle(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, THRESHOLD) as kernel:
        kernel.run(WORK)
        wait_for_autosave(kernel)
        kernel.restart()
        # The kernel's event loop binds the value between cells, with no cell run at all.
        wait_for(lambda: bound_silently(kernel), "big bound while the kernel was idle")
        first = kernel.run("small")
        assert "ipysession: restored" in first.text
        assert "{'kept': True}" in first.text
        assert kernel.value(STATE) == (True, [])
        assert kernel.value("(float(big.sum()), big.shape) == expected") is True


def test_a_value_read_while_a_cell_runs_is_bound_after_it_without_another_cell(
    tmp_path: Path,
) -> None:
    # The cell waits (naming nothing that loads) until the worker is through, so the value
    # arrives while it runs: nothing is bound during a cell, and none before the next.
    through = (
        f"_jobs = {MANAGER}.loads.jobs\n"
        "import time\n"
        "_until = time.monotonic() + 120\n"
        "while any(j.state.value in ('queued', 'reading') for j in _jobs) "
        "and time.monotonic() < _until:\n"
        "    time.sleep(0.05)\n"
    )
    with start_kernel(tmp_path, FAST_AUTOSAVE, THRESHOLD) as kernel:
        kernel.run(WORK)
        wait_for_autosave(kernel)
        kernel.restart()
        kernel.run(through)
        # Its post_run_cell woke the kernel's event loop: bound after the reply, while idle.
        wait_for(lambda: bound_silently(kernel), "big bound after the cell, with no cell run")
        assert kernel.value("(float(big.sum()), big.shape) == expected") is True


def test_a_cell_naming_none_runs_then_one_naming_it_sees_all_of_it(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, THRESHOLD) as kernel:
        kernel.run(WORK)
        wait_for_autosave(kernel)
        kernel.kill_hard()
        first = kernel.run("small")
        assert "{'kept': True}" in first.text
        loading_or_bound(kernel)
        assert kernel.value("(float(big.sum()), big.shape) == expected") is True


def test_sigkill_while_loading_leaves_the_session_whole(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, THRESHOLD) as kernel:
        kernel.run(WORK)
        wait_for_autosave(kernel)
        kernel.kill_hard()
        # A change saved while big may still be loading: the save carries big's record.
        kernel.run("extra = 2")
        loading_or_bound(kernel)
        wait_for_autosave(kernel)
        kernel.kill_hard()
        kernel.kill_hard()  # again at once, before any cell
        assert kernel.value("extra, small") == (2, {"kept": True})
        assert kernel.value("(float(big.sum()), big.shape) == expected") is True


def test_a_damaged_large_blob_fails_only_its_variable_with_the_reason(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, THRESHOLD) as kernel:
        kernel.run(WORK)
        wait_for_autosave(kernel)
        blobs = sorted((tmp_path / "data" / "sessions").glob("*/blobs/*.ipyb"))
        largest = max(blobs, key=lambda path: path.stat().st_size)
        damaged = bytearray(largest.read_bytes())
        damaged[len(damaged) // 2] ^= 1
        largest.write_bytes(bytes(damaged))
        kernel.kill_hard()
        assert kernel.value("small, expected[1]") == ({"kept": True}, (5_000_000,))
        failed = kernel.run("big.sum()", allow_error=True)
        assert failed.error is not None
        # Either the cell waited and was refused with the reason, or the failure was known
        # before it ran (the name is then simply not there): the status says why.
        assert "could not be restored" in failed.error["evalue"] or (
            failed.error["ename"] == "NameError"
        )
        status = kernel.run("%session status").text
        assert "big" in status
        assert "failed authentication" in status


# --- imports restored in the background (session/imports_loading.py) ---------------------------

#: A module of the test's own, listed in background_imports before numpy and pandas: its import
#: waits for a file the test creates, so the imports after it are still pending for as long as
#: the test needs, whatever the machine's speed.
GATED = "ipysession_gated_module"
IMPORTS_FIRST = f"c.SessionManager.background_imports = [{GATED!r}, 'numpy', 'pandas']"
IMPORTING = (
    f"import {GATED}\n"
    "import numpy as np\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'a': [1, 2, 3]})\n"  # small: bound at once, were pandas there
)
PENDING = f"sorted(n for n, _ in {MANAGER}.status().loading)"


def gated_module(home: Path) -> tuple[Path, dict[str, str]]:
    """The gated module (open at first) and the kernel environment that finds it."""
    modules = home / "modules"
    modules.mkdir(parents=True, exist_ok=True)
    gate = home / "gate"
    (modules / f"{GATED}.py").write_text(
        "import os, time\n"
        "_deadline = time.monotonic() + 120\n"
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < _deadline:\n"
        "    time.sleep(0.01)\n"
    )
    gate.touch()
    path = os.pathsep.join(p for p in (str(modules), os.environ.get("PYTHONPATH", "")) if p)
    return gate, {"PYTHONPATH": path}


@contextmanager
def importing_kernel(home: Path) -> Iterator[tuple[Kernel, Path]]:
    """A kernel whose session saved IMPORTING, and the gate of its module, closed now."""
    gate, env = gated_module(home)
    with start_kernel(home, FAST_AUTOSAVE, IMPORTS_FIRST, env=env) as kernel:
        kernel.run(IMPORTING)
        wait_for_autosave(kernel)
        gate.unlink()
        try:
            yield kernel, gate
        finally:
            gate.touch()  # never leave the kernel's import thread waiting


def test_a_kernel_answers_while_pandas_imports_and_a_cell_naming_pd_waits(
    tmp_path: Path,
) -> None:
    with importing_kernel(tmp_path) as (kernel, gate):
        kernel.restart()
        # The kernel answers a cell that names none of them, pandas still on its way.
        first = kernel.run("1 + 1")
        assert "2" in first.text
        # The summary's time split says the imports' time is only their handing over.
        assert "imports (3 in the background)" in first.text
        assert kernel.value(PENDING) == sorted([GATED, "df", "np", "pd"])
        assert kernel.value("[n in globals() for n in ('pd', 'df')]") == [False, False]
        status = kernel.run("%session status").text
        assert "pd (queued to import pandas)" in status
        gate.touch()
        # A cell naming pd waits for it and sees pandas; the small DataFrame that needs it
        # arrives after it.
        assert kernel.value("pd.__name__") == "pandas"
        assert kernel.value("int(df['a'].sum()), type(df).__name__") == (6, "DataFrame")
        wait_for(lambda: kernel.value(PENDING) == [], "nothing left pending")


def test_sigkill_while_imports_are_pending_leaves_the_session_whole(tmp_path: Path) -> None:
    with importing_kernel(tmp_path) as (kernel, gate):
        kernel.kill_hard()
        # A change saved while the imports are pending: the save carries their records.
        kernel.run("extra = 2")
        assert "pd" in kernel.value(PENDING)
        wait_for_autosave(kernel)
        kernel.kill_hard()
        assert "pd" in kernel.value(PENDING)
        gate.touch()
        assert kernel.value("extra, pd.__name__, np.__name__, int(df['a'].sum())") == (
            2,
            "pandas",
            "numpy",
            6,
        )


def test_a_kernel_shut_down_mid_import_exits_by_itself_and_saves_the_pending_imports(
    tmp_path: Path,
) -> None:
    with importing_kernel(tmp_path) as (kernel, _gate):
        kernel.kill_hard()
        name = kernel.value(f"{MANAGER}.name")
        assert "pd" in kernel.value(PENDING)  # the import thread is held at the gate
        kernel.run("extra = 3")
        process = kernel.km.provisioner.process
        kernel.shutdown(now=False)
        # 0: it exited on its own (the daemon thread held nothing up, nothing crashed at
        # finalization); a kernel that hung would have been killed (a negative status).
        assert process.returncode == 0
        # Its save at shutdown carried the imports still pending and the new variable.
        shown = run_cli(tmp_path, "show", name)
        assert shown.returncode == 0, shown.stderr
        assert "import pandas as pd" in shown.stdout
        assert "import numpy as np" in shown.stdout
        assert "extra" in shown.stdout
