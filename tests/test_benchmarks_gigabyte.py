"""The gigabyte workload of the benchmarks (issue 15) at smoke size, on real kernels: the option
adds it, the harness measures when every value is bound, and the report sets it against the
physical limits measured in the same run. Timings are reported, never checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.cli import execute, parser
from benchmarks.runner import Options
from benchmarks.tools import IpysessionTool
from benchmarks.workloads import Sizes, build

pytestmark = pytest.mark.kernel


def test_the_option_adds_the_workload_at_its_size() -> None:
    args = parser().parse_args(["--gigabyte-mb", "3"])
    assert args.gigabyte_mb == 3.0
    assert "gigabyte" not in args.workloads  # added by main, as it builds the options
    options = Options(workloads=["gigabyte"], gigabyte_mb=3.0)
    (workload,) = build(options.workloads, options.sizes)
    assert workload.data_mb == 3.0
    assert workload.tools == ("none", "ipysession", "ipysession-base")
    assert set(workload.bound_names) == {"a0", "a1", "a2", "f0", "f1"}
    assert Sizes.smoke().gigabyte_mb < Sizes().gigabyte_mb
    # Not in a default run: it takes minutes per trial at its full size.
    assert "gigabyte" not in parser().parse_args([]).workloads


@pytest.mark.skipif(IpysessionTool().unavailable() is not None, reason="ipysession not loadable")
def test_a_smoke_run_reports_launch_to_first_cell_and_every_value_bound(tmp_path: Path) -> None:
    options = Options(
        tools=["none", "ipysession"],
        workloads=["gigabyte"],
        trials=1,
        smoke=True,
        temp_root=tmp_path,
        gigabyte_mb=4.0,
    )
    result: dict[str, Any] = execute(options, "pytest gigabyte", store_runs=None, physical_runs=2)
    summary = result["workloads"]["gigabyte"]["tools"]["ipysession"]
    assert summary["trials_ok"] == 1, summary["errors"]
    figures = {k: v["median"] for k, v in summary["figures"].items()}
    assert figures["vars_equal"] == figures["vars_total"] == 8
    assert figures["launch_to_bound_s"] >= figures["restart_first_cell_s"] > 0
    assert "restore_added_s" in figures
    assert "bound_added_s" in figures
    physical = result["physical"]
    assert physical["bytes"] >= 4_000_000
    assert physical["restore_limit_s"] > 0
    text = report.markdown(result)
    assert "### gigabyte workload" in text
    assert "every value bound" in text
    assert "file read, cold cache" in text
