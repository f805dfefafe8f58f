"""Real kernels (issue 12): rekey while a kernel runs and keeps saving; after a restart every
variable is back.

`ipysession rekey` runs as its own process (`python -m ipysession`), with the kernel's session
root and config dir, as a user's terminal would; the kernels keep their key in a key file (the
kernels' config says `key_backend = "file"`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ipysession.store import fileformat
from tests.kernels import FAST_AUTOSAVE, MANAGER, run_cli, start_kernel, wait_for_autosave

pytestmark = pytest.mark.kernel

BIG = "bytes(range(256)) * 1024"  # large enough to be stored as a blob


def key_ids_on_disk(home: Path) -> set[str]:
    files = [p for p in (home / "data").rglob("*") if p.suffix in (".ipys", ".ipyb")]
    assert files
    return {fileformat.read_header(p.read_bytes()).key_id.hex() for p in files}


def test_rekey_while_a_kernel_keeps_saving_every_variable_comes_back(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run(f"big = {BIG}\nx = 1")
        wait_for_autosave(kernel)
        kernel.run("x = 2")  # the bytes of `big` are dropped now: only its blob id is kept
        wait_for_autosave(kernel)
        old_id = kernel.value(f"{MANAGER}.key.key.key_id_hex")

        rekeyed = run_cli(tmp_path, "rekey")
        assert rekeyed.returncode == 0, rekeyed.stdout + rekeyed.stderr
        assert f"the old key {old_id} is gone" in rekeyed.stdout

        said = kernel.run("y = 3").text
        wait_for_autosave(kernel)
        said += kernel.run("z = 4").text
        wait_for_autosave(kernel)
        said += kernel.run("%session status").text  # in a kernel, notices show when asked
        new_id = kernel.value(f"{MANAGER}.key.key.key_id_hex")
        assert new_id != old_id
        assert "The master key was replaced (ipysession rekey)" in said
        assert key_ids_on_disk(tmp_path) == {new_id}  # nothing sealed with the removed key

        kernel.restart()  # graceful: the final save runs too
        first = kernel.run("1")
        assert "ipysession: restored" in first.text
        assert kernel.value(f"(big == {BIG}, x, y, z)") == (True, 2, 3, 4)

    assert key_ids_on_disk(tmp_path) == {new_id}
    doctor = run_cli(tmp_path, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
