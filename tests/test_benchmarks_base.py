"""The ``ipysession-base`` benchmark tool: ipysession from another tree, side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cli import parser
from benchmarks.tools import ALL_TOOLS, BASE_TREE_VARIABLE, BaseIpysessionTool, Context
from benchmarks.workloads import Sizes, small

ROOT = Path(__file__).resolve().parents[1]


def test_it_runs_only_when_asked_for() -> None:
    assert "ipysession-base" in ALL_TOOLS
    assert "ipysession-base" not in parser().parse_args([]).tools
    assert parser().parse_args(["--tools", "none,ipysession-base"]).tools == [
        "none",
        "ipysession-base",
    ]


def test_it_needs_a_tree_and_puts_it_first_on_the_kernels_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = BaseIpysessionTool()
    monkeypatch.delenv(BASE_TREE_VARIABLE, raising=False)
    assert BASE_TREE_VARIABLE in (tool.unavailable() or "")
    monkeypatch.setenv(BASE_TREE_VARIABLE, str(tmp_path))  # no ipysession there
    assert "holds no ipysession" in (tool.unavailable() or "")
    monkeypatch.setenv(BASE_TREE_VARIABLE, str(ROOT))
    assert tool.unavailable() is None
    ctx = Context(root=tmp_path, workload=small(Sizes()))
    assert tool.env(ctx)["PYTHONPATH"] == str(ROOT)
    assert "IPYSESSION_DIR" in tool.env(ctx)  # the same isolated dirs as the ipysession tool
