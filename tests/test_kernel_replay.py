"""Real kernels: values that cannot be pickled come back by replaying their cells, a cell with
side effects waits for consent, undo/checkout per cell, and matplotlib figures display again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, start_kernel, wait_for_autosave

pytestmark = pytest.mark.kernel


def test_unpicklable_values_are_rebuilt_after_sigkill(tmp_path: Path) -> None:
    astropy = pytest.importorskip("astropy.io.fits")
    del astropy
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run(
            "import hashlib, sqlite3, threading\nfrom astropy.io import fits\nimport numpy as np"
        )
        kernel.run(
            "with sqlite3.connect('data.db') as setup:\n"
            "    setup.execute('create table t (x integer)')\n"
            "    setup.executemany('insert into t values (?)', [(1,), (2,), (3,)])\n"
            "setup.close()\n"
            "fits.HDUList([fits.PrimaryHDU(np.arange(6).reshape(2, 3))]).writeto('image.fits')"
        )
        kernel.run("gen = (i * i for i in range(10))")
        kernel.run("first = next(gen)\nsecond = next(gen)")
        kernel.run("lock = threading.Lock()")
        kernel.run("h = hashlib.sha256(b'start')")
        kernel.run("h.update(b'more')")
        kernel.run("h.update(b'and more')\ndigest = h.hexdigest()")
        kernel.run("con = sqlite3.connect('data.db')")
        kernel.run("hdul = fits.open('image.fits')")
        kernel.run("pixels = int(hdul[0].data.sum())")
        wait_for_autosave(kernel)
        kernel.kill_hard()

        summary = kernel.run("1").text
        assert "Rebuilt gen (generator) by replaying cells" in summary
        for name in ("lock", "h", "con", "hdul"):
            assert f"Rebuilt {name} (" in summary, summary
        # A replayed generator is as far along as the recorded cells took it.
        assert kernel.value("next(gen)") == 4
        assert kernel.value("lock.acquire(blocking=False)") is True
        assert kernel.value("h.hexdigest() == digest") is True
        assert kernel.value("con.execute('select sum(x) from t').fetchone()[0]") == 6
        assert kernel.value("int(hdul[0].data.sum()) == pixels") is True
        # Still not picklable: the next restart rebuilds them again.
        kernel.restart()
        assert "Rebuilt h (" in kernel.run("2").text
        assert kernel.value("h.hexdigest() == digest") is True


def test_a_cell_that_writes_a_file_is_not_replayed_without_consent(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run("import threading")
        kernel.run(
            "guard = threading.Lock()\n"
            "with open('log.txt', 'a') as out:\n"
            "    out.write('once\\n')\n"
            "display('guard made')"
        )
        wait_for_autosave(kernel)
        kernel.restart()

        summary = kernel.run("1").text
        log = tmp_path / "work" / "log.txt"
        assert log.read_text() == "once\n"
        assert kernel.value("'guard' in globals()") is False
        assert "needs your consent" in summary
        assert "writes files (open(..., 'a'))" in summary
        assert "`%session replay guard out --yes` runs them" in summary

        text = kernel.run("%session replay guard --yes").text
        assert "Rebuilt guard" in text
        assert "guard made" not in text  # what a replayed cell displays is not shown
        assert kernel.value("guard.acquire(blocking=False)") is True
        assert log.read_text() == "once\nonce\n"


def test_undo_after_a_drop_and_checkout_there_and_back(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run("import pandas as pd")
        kernel.run("df = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
        kernel.run("df = df.drop(columns=['b'])")
        assert kernel.value("list(df.columns)") == ["a"]

        text = kernel.run("%session undo").text
        assert "put back df" in text
        assert kernel.value("list(df.columns)") == ["a", "b"]

        kernel.run("%session checkout -")
        assert kernel.value("list(df.columns)") == ["a"]
        log = kernel.run("%session log").text
        assert "(back to after cell" in log


def test_a_figure_comes_back_displayable_and_shows_only_when_asked(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run("%matplotlib inline")
        # Figures stay open in pyplot after the cell, so they are saved as open (matplotlib's
        # _restore_to_pylab) and a restore registers them with pyplot again.
        kernel.run("%config InlineBackend.close_figures = False")
        first = kernel.run(
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nline, = ax.plot([1, 3, 2])"
        )
        assert any("image/png" in o["data"] for o in first.outputs)
        kernel.run("import io\nfig.savefig(io.BytesIO(), format='png')")
        wait_for_autosave(kernel)
        kernel.kill_hard()

        after = kernel.run("x = 1")
        assert not any("image/png" in o.get("data", {}) for o in after.outputs)
        shown = kernel.run("fig")
        assert any("image/png" in o["data"] for o in shown.outputs)
        assert kernel.value("len(ax.get_lines()), len(fig.axes)") == (1, 1)
        assert kernel.value("len(plt.get_fignums())") == 0
