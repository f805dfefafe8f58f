"""Time travel and replay micro-benchmark (issue 14), in one in-process IPython shell.

Medians of ``--runs`` runs (default 30; smoke: 5), measured side by side in the same shell, the
configurations interleaved run by run so a busy machine slows them alike:

- **per small cell** of the reference workload (``n00 += 1``): the shell with no ipysession,
  ipysession with the per-cell timeline off (``undo_max_bytes = 0``) and on (the default): what
  ipysession adds (budget 2 ms) and what the timeline adds to it;
- **per small cell in a namespace of 10,000 small variables** (budget 5 ms), the same three ways;
- **undo of one cell** of the reference workload: ``%session undo`` after
  ``df = df.drop(columns=[...])``, the whole cell (budget 100 ms);
- **replay at restore**: ``%session restore`` of the reference workload, whose generator is
  rebuilt by replaying its cell (reported, no budget).

Run ``python -m benchmarks.timetravel_bench [--runs N] [--json]``. Budgets are reported, never
asserted. Autosave is off so a write on the writer thread never lands inside a timed cell.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.workloads import REFERENCE_DATA_FILE, Sizes, reference

BUDGETS_MS = {"reference_cell": 2.0, "many_cell": 5.0, "undo": 100.0}
MANY_VARIABLES = 10_000


def _timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000.0


def _shell(work: Path) -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.SessionManager.key_backend = "file"
    config.SessionManager.autosave = False
    config.SessionManager.session_name = "timetravel-bench"
    config.SessionManager.autorestore = "never"
    os.chdir(work)
    return InteractiveShell.instance(config=config)


def _run(shell: Any, code: str) -> None:
    result = shell.run_cell(code, store_history=True, silent=False)
    if not result.success:
        msg = f"benchmark cell failed: {code!r}: {result.error_in_exec or result.error_before_exec}"
        raise RuntimeError(msg)


def _per_cell(shell: Any, cell: str, runs: int) -> dict[str, list[float]]:
    """The same cell with no ipysession, the timeline off and on, interleaved."""
    import ipysession
    from ipysession.extension import get_manager

    times: dict[str, list[float]] = {"plain": [], "off": [], "on": []}
    default = get_manager(shell).undo_max_bytes
    for i in range(runs):
        ipysession.unload_ipython_extension(shell)
        times["plain"].append(_timed(lambda: _run(shell, cell)))
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        _run(shell, cell)  # the first cell after a load captures everything
        # Off and on take turns going first, so neither gains from the other's warm caches.
        for setting in ("off", "on") if i % 2 else ("on", "off"):
            manager.undo_max_bytes = default if setting == "on" else 0
            times[setting].append(_timed(lambda: _run(shell, cell)))
        manager.undo_max_bytes = default
    return times


def run(runs: int = 30, *, smoke: bool = False) -> dict[str, Any]:
    """Measure; what the cells and ipysession print goes nowhere."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _measure(runs, smoke=smoke)


def _measure(runs: int, *, smoke: bool) -> dict[str, Any]:
    import ipysession

    sizes = Sizes.smoke() if smoke else Sizes()
    workload = reference(sizes)
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ipysession-timetravel-bench-") as tmp:
        root = Path(tmp)
        os.environ["IPYSESSION_DIR"] = str(root / "data")
        os.environ["IPYSESSION_CONFIG_DIR"] = str(root / "config")
        os.environ.pop("IPYSESSION_PASSPHRASE", None)
        cwd = os.getcwd()
        try:
            shell = _shell(root)
            (root / REFERENCE_DATA_FILE).write_text(workload.files[REFERENCE_DATA_FILE])
            ipysession.load_ipython_extension(shell)
            for cell in workload.cells:
                _run(shell, cell)
            cells = _per_cell(shell, workload.small_cell, runs)
            figures.extend(_cell_figures("reference", "reference workload", cells))

            undo: list[float] = []
            columns = len(shell.user_ns["df"].columns)
            for _ in range(runs):
                _run(shell, "df = df.drop(columns=[df.columns[-1]])")
                undo.append(_timed(lambda: _run(shell, "%session undo")))
                if len(shell.user_ns["df"].columns) != columns:
                    msg = "%session undo did not bring the dropped column back"
                    raise RuntimeError(msg)
            figures.append(_figure("undo", "%session undo of one cell (df.drop)", undo))

            _run(shell, "%session save")
            restore = []
            for _ in range(runs):
                _run(shell, "del squares")  # so the restore rebuilds it
                restore.append(_timed(lambda: _run(shell, "%session restore")))
            figures.append(_figure("restore", "%session restore, generator replayed", restore))

            _run(shell, "\n".join(f"v{i} = {i}" for i in range(MANY_VARIABLES)))
            cells = _per_cell(shell, "v0 += 1", runs)
            figures.extend(_cell_figures("many", f"{MANY_VARIABLES:,} small variables", cells))
            ipysession.unload_ipython_extension(shell)
        finally:
            os.chdir(cwd)
    return {"status": "ok", "runs": runs, "figures": figures}


def _figure(key: str, label: str, values: list[float]) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "median_ms": statistics.median(values),
        "min_ms": min(values),
        "max_ms": max(values),
        "budget_ms": BUDGETS_MS.get(key),
    }


def _cell_figures(key: str, label: str, cells: dict[str, list[float]]) -> list[dict[str, Any]]:
    plain = statistics.median(cells["plain"])
    off = statistics.median(cells["off"])
    on = statistics.median(cells["on"])
    return [
        {
            "key": f"{key}_cell",
            "label": f"small cell, {label}",
            "plain_ms": plain,
            "timeline_off_ms": off,
            "timeline_on_ms": on,
            "median_ms": on - plain,  # what ipysession adds, timeline on
            "timeline_ms": on - off,
            "budget_ms": BUDGETS_MS.get(f"{key}_cell"),
        }
    ]


def format_result(result: dict[str, Any]) -> str:
    lines = [f"time travel and replay, medians of {result['runs']} runs (in-process shell):"]
    for item in result["figures"]:
        budget = item.get("budget_ms")
        verdict = ""
        if budget is not None:
            meets = "meets" if item["median_ms"] <= budget else "misses"
            verdict = f"  (budget ≤ {budget:g} ms: {meets})"
        if "plain_ms" in item:
            lines.append(
                f"  {item['label']:<44} plain {item['plain_ms']:.2f} ms, ipysession "
                f"{item['median_ms']:+.2f} ms (timeline {item['timeline_ms']:+.2f} ms){verdict}"
            )
        else:
            lines.append(f"  {item['label']:<44} {item['median_ms']:8.2f} ms{verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.timetravel_bench", description=__doc__
    )
    parser.add_argument("--runs", type=int, default=30, help="runs per figure (at least 20)")
    parser.add_argument("--smoke", action="store_true", help="5 runs and tiny sizes")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    runs = 5 if args.smoke else max(args.runs, 20)
    result = run(runs, smoke=args.smoke)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
