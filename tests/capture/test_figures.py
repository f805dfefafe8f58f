"""matplotlib figures across a restore, in a real in-process shell on the Agg backend (the inline
backend's display is covered with a real kernel in tests/test_kernel_replay.py)."""

from __future__ import annotations

import pytest

import ipysession
from ipysession.capture.figures import open_figures, settle_figures
from tests.shell import ipython_shell, restart, run

matplotlib = pytest.importorskip("matplotlib")


def test_a_figure_open_in_pyplot_comes_back_usable_and_closed_in_pyplot() -> None:
    previous = matplotlib.get_backend()
    matplotlib.use("Agg")
    try:
        with ipython_shell(autosave=False, session_name="nb") as shell:
            ipysession.load_ipython_extension(shell)
            run(shell, "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 3])")
            run(shell, "%session save")
            assert open_figures()  # Agg keeps it open: it is saved as open in pyplot
            restart(shell)
            import matplotlib.pyplot as plt

            fig = shell.user_ns["fig"]
            assert isinstance(fig, matplotlib.figure.Figure)
            assert len(fig.axes[0].get_lines()) == 1
            # Re-registered with pyplot by unpickling, then closed there by the restore.
            assert fig.number not in plt.get_fignums()
            run(shell, "import io\nfig.savefig(io.BytesIO(), format='png')")
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")  # the figure of "before the restart": this process did not end
        matplotlib.use(previous)


def test_settling_closes_only_figures_opened_since_and_leaves_other_backends_alone() -> None:
    previous = matplotlib.get_backend()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    try:
        with ipython_shell(autosave=False) as shell:
            mine = plt.figure()
            before = open_figures()
            opened = plt.figure()
            png = shell.display_formatter.formatters["image/png"]
            registered = dict(png.type_printers)
            assert settle_figures(shell, before, [opened]) == 1
            assert plt.get_fignums() == [mine.number]
            # Agg is not the inline backend: no display formatter is added.
            assert dict(png.type_printers) == registered
            plt.close(mine)
    finally:
        matplotlib.use(previous)
