"""Smoke run of the time travel benchmark (issue 14): every figure comes out with sane values. It
runs in its own process (the benchmark builds its own IPython shell) and never checks a timing
against a budget: benchmarks report, they do not assert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_time_travel_benchmark_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.timetravel_bench", "--smoke", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    figures = {item["key"]: item for item in result["figures"]}
    assert set(figures) == {"reference_cell", "undo", "restore", "many_cell"}
    assert figures["undo"]["budget_ms"] == 100.0
    assert figures["undo"]["median_ms"] > 0
    for key in ("reference_cell", "many_cell"):
        assert figures[key]["plain_ms"] > 0
        assert figures[key]["timeline_on_ms"] > 0
