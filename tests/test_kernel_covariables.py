"""Shared references with real kernels: variables that share objects come back sharing them
after a graceful restart and after SIGKILL (issue 14, "Shared references")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, Kernel, start_kernel, wait_for_autosave

pytestmark = pytest.mark.kernel

CELLS = [
    "import numpy as np\nimport pandas as pd",
    "a = [1, 2]\nb = a\nd = {'x': a}",
    "class Box:\n    pass\nc = Box()\nc.ref = a",
    "big = np.zeros(10)\nview = big[2:5]",
    "df = pd.DataFrame({'x': np.arange(5.0), 'y': np.arange(5.0)})\ndf2 = df\ncol = df['x']",
    # A model holding a layer that is also a variable.
    "class Layer:\n"
    "    def __init__(self, n):\n"
    "        self.w = np.ones(n)\n"
    "class Model:\n"
    "    def __init__(self, layers):\n"
    "        self.layers = layers\n"
    "layer = Layer(3)\n"
    "model = Model([layer, Layer(2)])",
    # A cycle across two variables.
    "p = {'name': 'p'}\nq = {'name': 'q', 'other': p}\np['other'] = q",
]

CHECK = (
    "(b is a, d['x'] is a, c.ref is a, view.base is big, df2 is df, "
    "model.layers[0] is layer, p['other'] is q, q['other'] is p)"
)


def work(kernel: Kernel) -> None:
    for cell in CELLS:
        assert kernel.run(cell).ok, cell


def check(kernel: Kernel) -> None:
    assert kernel.value(CHECK) == (True,) * 8
    # The program means what it meant: a change through one name shows through the others.
    kernel.run("a.append(3)\nbig[3] = 7.0\nlayer.w[0] = 5.0")
    changed = kernel.value("b, c.ref[-1], float(view[1]), float(model.layers[0].w[0])")
    assert changed == ([1, 2, 3], 3, 7.0, 5.0)
    # A column of a frame behaves as the copy pandas (copy-on-write) says it is.
    kernel.run("df.loc[0, 'x'] = 99.0")
    assert kernel.value("float(col[0]), float(df2.loc[0, 'x'])") == (0.0, 99.0)


def test_shared_references_survive_a_graceful_restart(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        work(kernel)
        kernel.restart()
        first = kernel.run("1")
        assert "ipysession: restored" in first.text
        check(kernel)


def test_shared_references_survive_sigkill(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        work(kernel)
        wait_for_autosave(kernel)
        kernel.kill_hard()
        first = kernel.run("1")
        assert "ipysession: restored" in first.text
        check(kernel)


def test_a_damaged_buffer_blob_fails_only_its_group_with_the_reason(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run(
            "import numpy as np\n"
            "big = np.random.default_rng(5).random(200_000)\n"  # 1.6 MB: the largest blob
            "view = big[:10]\n"
            "small = {'kept': True}\n"
            "other = np.random.default_rng(6).random(20_000)"
        )
        wait_for_autosave(kernel)
        kernel.restart()
        assert kernel.value("view.base is big, small") == (True, {"kept": True})
        blobs = sorted((tmp_path / "data" / "sessions").glob("*/blobs/*.ipyb"))
        largest = max(blobs, key=lambda path: path.stat().st_size)
        damaged = bytearray(largest.read_bytes())
        damaged[len(damaged) // 2] ^= 1
        largest.write_bytes(bytes(damaged))
        kernel.kill_hard()
        first = kernel.run("1")
        summary = first.text
        assert "ipysession: restored" in summary
        assert "failed authentication" in summary
        for name in ("big", "view"):
            assert name in summary
        assert kernel.value("'big' in globals(), 'view' in globals()") == (False, False)
        assert kernel.value("small, other.shape") == ({"kept": True}, (20_000,))
