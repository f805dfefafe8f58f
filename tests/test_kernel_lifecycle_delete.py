"""Real kernels (issue 12): delete while a kernel holds the session, and starting clean.

- Delete while held: refused; with `--force` the kernel stops saving and nothing dangles.
- Discard: the next kernel starts empty; nothing comes back at shutdown.

The command line runs as its own process (`python -m ipysession`), with the kernel's session
root, config dir and key, as a user's terminal would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, MANAGER, run_cli, start_kernel, wait_for_autosave

pytestmark = pytest.mark.kernel


def test_delete_while_held_is_refused_and_forced_the_kernel_stops_saving(
    tmp_path: Path,
) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run("big = bytes(range(256)) * 1024\nx = 1")
        wait_for_autosave(kernel)
        kernel.run("x = 2")  # the bytes of `big` are dropped now: only its blob is kept
        wait_for_autosave(kernel)
        name = kernel.value(f"{MANAGER}.name")
        kernel_id = kernel.value(f"{MANAGER}.kernel_id")
        sdir = Path(kernel.value(f"str({MANAGER}.store.session_dir({MANAGER}.name))"))

        refused = run_cli(tmp_path, "delete", name, "--yes")
        assert refused.returncode == 1, refused.stderr
        assert f"in use by kernel {kernel_id[:8]}" in refused.stderr
        assert "--force" in refused.stderr
        assert sdir.is_dir()

        forced = run_cli(tmp_path, "delete", name, "--yes", "--force")
        assert forced.returncode == 0, forced.stderr
        assert "stops saving it at its next cell" in forced.stdout

        kernel.run("y = 3")
        status = kernel.run("%session status").text
        assert "was deleted or renamed from outside this kernel" in status
        kernel.run("z = 4")
        assert not sdir.exists()  # not re-created by the saves after the delete
        kernel.restart()  # graceful: the final save at shutdown must not bring it back
        first = kernel.run("1")

        assert "ipysession: restored" not in first.text
        assert not kernel.value("any(n in globals() for n in ('big', 'x', 'y', 'z'))")
        # What the new kernel saves is its own fresh session: no reference to a lost blob.
        doctor = run_cli(tmp_path, "doctor")
        assert "MISSING BLOB" not in doctor.stdout
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def test_discard_the_next_kernel_starts_empty_and_nothing_comes_back_at_shutdown(
    tmp_path: Path,
) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run("x = 1")
        wait_for_autosave(kernel)

        said = kernel.run("%session discard --yes").text
        assert "Discarded session" in said
        assert "next kernel starts empty" in said
        kernel.run("y = 2")
        listed = run_cli(tmp_path, "list")
        assert listed.returncode == 0, listed.stderr
        assert "No saved sessions" in listed.stdout
        kernel.restart()  # graceful: atexit and the final save run
        first = kernel.run("1")

        assert "ipysession: restored" not in first.text
        assert not kernel.value("'x' in globals() or 'y' in globals()")
