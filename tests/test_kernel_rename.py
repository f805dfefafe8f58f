"""Real kernels (issue 12): a notebook renamed or moved between two kernel starts keeps its work.

jupyter-server tells a kernel its notebook in ``JPY_SESSION_NAME``; these kernels get it the same
way. The first kernel works on ``analysis.ipynb`` and shuts down; the file is renamed; the next
kernel starts for ``report.ipynb``. Two ways back: `%session adopt` in that kernel, or
`ipysession rename` from a terminal before it starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, MANAGER, run_cli, start_kernel, wait_for_autosave

pytestmark = pytest.mark.kernel

WORK = "shared = [1, 2]\nalias = shared\nimport json\nlabel = 'before the rename'"


def work_on(home: Path, notebook: Path) -> str:
    """A kernel for ``notebook`` saves some work and shuts down; returns the session's id."""
    notebook.write_text("{}")
    with start_kernel(home, FAST_AUTOSAVE, env={"JPY_SESSION_NAME": str(notebook)}) as kernel:
        kernel.run(WORK)
        wait_for_autosave(kernel)
        session_id: str = kernel.value(f"{MANAGER}.workspace.session_id({MANAGER}.name)")
        kernel.shutdown(now=False)
    return session_id


def test_a_renamed_notebook_is_offered_its_old_session_and_adopt_brings_it_back(
    tmp_path: Path,
) -> None:
    old = tmp_path / "work" / "analysis.ipynb"
    old.parent.mkdir(parents=True)
    session_id = work_on(tmp_path, old)
    new = old.rename(old.with_name("report.ipynb"))

    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"JPY_SESSION_NAME": str(new)}) as kernel:
        assert not kernel.value("'label' in globals()")
        assert kernel.startup is not None
        said = kernel.startup.text  # what the kernel said at start, shown under its first cell
        assert "Renamed or moved this notebook?" in said
        assert "analysis.ipynb" in said
        assert "%session adopt NAME" in said
        # Work done before reading the notice (autosave has saved it) stays, next to the old.
        kernel.run("fresh = 'made here first'")
        wait_for_autosave(kernel)

        adopted = kernel.run("%session adopt analysis.ipynb").text
        assert "Adopted session" in adopted
        assert kernel.value("label") == "before the rename"
        assert kernel.value("json.dumps(shared)") == "[1, 2]"
        assert kernel.value(f"{MANAGER}.name") == str(new)
        # The same session, moved: the id a frontend keeps in the notebook's metadata holds.
        assert kernel.value(f"{MANAGER}.workspace.session_id({MANAGER}.name)") == session_id
        kernel.run("after = 'adopted'")
        wait_for_autosave(kernel)

        kernel.kill_hard()
        kernel.run("1")
        assert kernel.value("(label, after, fresh)") == (
            "before the rename",
            "adopted",
            "made here first",
        )
        listed = run_cli(tmp_path, "list")
        assert "report.ipynb" in listed.stdout
        assert "analysis.ipynb" not in listed.stdout


def test_ipysession_rename_from_a_terminal_before_the_next_kernel_starts(tmp_path: Path) -> None:
    old = tmp_path / "work" / "analysis.ipynb"
    old.parent.mkdir(parents=True)
    session_id = work_on(tmp_path, old)
    new = old.rename(old.with_name("report.ipynb"))

    renamed = run_cli(tmp_path, "rename", "analysis.ipynb", str(new))
    assert renamed.returncode == 0, renamed.stderr

    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"JPY_SESSION_NAME": str(new)}) as kernel:
        assert kernel.value("label") == "before the rename"
        assert kernel.value(f"{MANAGER}.workspace.session_id({MANAGER}.name)") == session_id
