"""Co-variables through the extension, in a real in-process shell: variables that share objects
are saved as one group, come back sharing them after a restart, come back together with
``--vars``, form again when a cell changes one of them, and fail together (with the reason)
when their stored value is damaged, while every other variable comes back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.session.workspace import Workspace
from tests.builders import assert_uses_decrypted_memory
from tests.shell import ipython_shell, restart, run

ALIASES = (
    "import numpy as np\n"
    "class C:\n"
    "    pass\n"
    "a = [1, 2]\n"
    "b = a\n"
    "d = {'x': a}\n"
    "c = C()\n"
    "c.ref = a\n"
    "big = np.random.default_rng(0).random(100_000)\n"
    "view = big[2:5]\n"
    "p = [1]\n"
    "q = [p]\n"
    "p.append(q)\n"
    "alone = [3]\n"
)

IDENTITIES = (
    "(b is a, d['x'] is a, c.ref is a, view.base is big, q[0] is p, p[1] is q, big.flags.writeable)"
)


def workspace_of(shell: Any) -> Workspace:
    manager = get_manager(shell)
    assert manager is not None
    return manager.workspace


def test_shared_objects_are_shared_again_after_a_restart() -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, ALIASES)
        records = workspace_of(shell).records
        assert records["a"].members == ("a", "b", "c", "d")
        assert records["big"].members == ("big", "view")
        assert records["alone"].members == ()
        assert records["alone"].group is None
        run(shell, "%session save")
        restart(shell)
        assert run(shell, IDENTITIES).result == (True,) * 7
        run(shell, "a.append(3)")
        assert run(shell, "b, d['x'], c.ref").result == ([1, 2, 3],) * 3


def test_a_restored_array_uses_the_decrypted_buffer_itself() -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import numpy as np\narr = np.random.default_rng(1).random(200_000)")
        before = shell.user_ns["arr"].copy()
        run(shell, "%session save")
        run(shell, "pass")  # the next cell keeps only the blob references of what was stored
        record = workspace_of(shell).records["arr"]
        assert [b.blob is not None for b in record.buffers] == [True]
        restart(shell)
        arr = shell.user_ns["arr"]
        np.testing.assert_array_equal(arr, before)
        # The memory the blob was decrypted into, used as it is: no copy by unpickling.
        assert_uses_decrypted_memory(arr)
        assert arr.flags.writeable


def test_vars_brings_the_whole_group_back(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = [1, 2]\nb = a\nother = 'kept'")
        run(shell, "%session save")
        run(shell, "del a, b\nother = 'changed'")
        capsys.readouterr()
        run(shell, "%session restore --vars b")
        assert run(shell, "b is a, a").result == (True, [1, 2])
        assert shell.user_ns["other"] == "changed"


def test_a_group_forms_again_when_a_cell_changes_one_of_its_names() -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = [1]\nb = a\nc = a")
        records = workspace_of(shell).records
        assert records["a"].members == ("a", "b", "c")
        run(shell, "b = [2]")  # b leaves the group
        records = workspace_of(shell).records
        assert records["a"].members == ("a", "c")
        assert records["b"].members == ()
        assert records["b"].group is None
        run(shell, "del a")  # c is alone now, and still saved
        records = workspace_of(shell).records
        assert "a" not in records
        assert records["c"].members == ()
        assert records["c"].group is None
        assert records["c"].data is not None
        run(shell, "e = {'c': c}")  # a new name joins the group by what it holds
        assert workspace_of(shell).records["c"].members == ("c", "e")
        run(shell, "%session save")
        restart(shell)
        assert run(shell, "e['c'] is c, b").result == (True, [2])


def test_a_group_with_a_member_that_cannot_be_saved_keeps_the_others() -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import threading\na = [1]\nb = {'a': a, 'lock': threading.Lock()}")
        records = workspace_of(shell).records
        assert records["a"].saved
        assert records["a"].members == ()
        assert records["b"].skipped is not None
        assert "lock" in records["b"].skipped
        run(shell, "%session save")
        restart(shell)
        assert shell.user_ns["a"] == [1]


def test_a_damaged_buffer_blob_fails_only_its_group_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(
            shell,
            "import numpy as np\n"
            "big = np.random.default_rng(2).random(100_000)\n"
            "view = big[:10]\n"
            "other = np.random.default_rng(3).random(100_000)\n"
            "small = 'fine'",
        )
        run(shell, "%session save")
        run(shell, "pass")  # the next cell keeps only the blob references of what was stored
        (buffer,) = workspace_of(shell).records["big"].buffers
        manager = get_manager(shell)
        assert manager is not None
        assert buffer.blob is not None
        path = Path(manager.store.session_dir("nb")) / "blobs" / f"{buffer.blob}.ipyb"
        damaged = bytearray(path.read_bytes())
        damaged[100] ^= 1
        path.write_bytes(bytes(damaged))
        capsys.readouterr()
        restart(shell)
        out = capsys.readouterr().out
        assert "big" not in shell.user_ns
        assert "view" not in shell.user_ns
        assert shell.user_ns["small"] == "fine"
        assert shell.user_ns["other"].shape == (100_000,)
        assert "big: File failed authentication" in out
        assert "view: saved with 'big' (they share objects), which could not be restored" in out
