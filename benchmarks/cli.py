"""``python -m benchmarks``: run the comparison, write the results, optionally the docs page."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import physical, report, store_bench
from .runner import Options, run
from .tools import ALL_TOOLS, BASE_TREE_VARIABLE, DEFAULT_TOOLS
from .workloads import OPTIONAL_GROUPS, WORKLOAD_GROUPS, build

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS = HERE.parent / "docs"

VERSIONED = (
    "ipykernel",
    "jupyter_client",
    "ipython",
    "pyzmq",
    "numpy",
    "pandas",
    "dill",
    "kishu",
    "ipysession",
)


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _revision() -> str | None:
    """The commit measured, with ``+dirty`` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "ipysession"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def _csv(choices: tuple[str, ...] | list[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        unknown = [t for t in items if t not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown: {', '.join(unknown)} (choose from {', '.join(choices)})"
            )
        return items

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="ipysession side by side with dill, %store, Kishu and re-running cells, "
        "on real kernels (issue 6). Reports timings; never asserts them.",
    )
    p.add_argument("--trials", type=int, default=None, help="trials per figure (default 10; 2)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 2 trials: a quick check")
    p.add_argument(
        "--tools",
        type=_csv(tuple(ALL_TOOLS)),
        default=list(DEFAULT_TOOLS),
        help=f"comma-separated subset of {','.join(ALL_TOOLS)} (default: all but "
        f"ipysession-base, which compares with the tree named by ${BASE_TREE_VARIABLE})",
    )
    p.add_argument(
        "--workloads",
        type=_csv(WORKLOAD_GROUPS + OPTIONAL_GROUPS),
        default=list(WORKLOAD_GROUPS),
        help=f"comma-separated subset of {','.join(WORKLOAD_GROUPS + OPTIONAL_GROUPS)} "
        f"(default: {','.join(WORKLOAD_GROUPS)})",
    )
    p.add_argument(
        "--gigabyte-mb",
        type=float,
        default=None,
        metavar="N",
        help="also run the gigabyte workload (issue 15: three arrays and two DataFrames) with N "
        "MB of data (default with --workloads gigabyte: 1024; with --smoke: 8)",
    )
    p.add_argument(
        "--physical-runs",
        type=int,
        default=3,
        help="runs of each physical-limit measure (file read cold and warm, AES-GCM, memcpy)",
    )
    p.add_argument("--no-store-bench", action="store_true", help="skip the store micro-benchmark")
    p.add_argument("--store-runs", type=int, default=30, help="runs of the store micro-benchmark")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    p.add_argument(
        "--update-docs", action="store_true", help="write docs/performance.md and the plot"
    )
    p.add_argument("--docs-dir", type=Path, default=DOCS, help=argparse.SUPPRESS)
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: render the tables (and with --update-docs, the docs) of FILE",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp root of the kernels")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text(encoding="utf-8"))
        print(report.markdown(result))
        if args.update_docs:
            for path in update_docs(result, args.docs_dir):
                print(f"wrote {path}")
        return 0
    trials = args.trials if args.trials is not None else (2 if args.smoke else 10)
    _compile_bytecode()
    tools = args.tools
    if "none" not in tools:
        print(
            "note: without the `none` tool, no figure relative to a plain kernel", file=sys.stderr
        )
    workloads = list(args.workloads)
    if args.gigabyte_mb is not None and "gigabyte" not in workloads:
        workloads.append("gigabyte")
    options = Options(
        tools=tools,
        workloads=workloads,
        trials=trials,
        smoke=args.smoke,
        keep=args.keep,
        gigabyte_mb=args.gigabyte_mb,
    )
    command = f"python -m benchmarks {shlex.join(sys.argv[1:] if argv is None else argv)}".strip()
    result = execute(
        options,
        command,
        store_runs=None if args.no_store_bench else args.store_runs,
        physical_runs=args.physical_runs,
        progress=None if args.quiet else _progress,
    )
    paths = write_results(result, args.out)
    text = report.markdown(result)
    print(text)
    print(f"results: {paths[0]} and {paths[1]}")
    if args.update_docs:
        for path in update_docs(result, args.docs_dir):
            print(f"wrote {path}")
    return 0


def _compile_bytecode() -> None:
    """Write .pyc files for ipysession, as an installed package has, before any kernel starts."""
    import compileall

    import ipysession

    compileall.compile_dir(Path(ipysession.__file__).parent, quiet=1)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def execute(
    options: Options,
    command: str,
    *,
    store_runs: int | None = 30,
    physical_runs: int | None = 3,
    progress: Any = None,
) -> dict[str, Any]:
    """Run everything asked for and return the JSON-ready result."""
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    workloads = build(options.workloads, options.sizes)
    result = run(options, workloads, progress)
    if store_runs is not None:
        result["store"] = store_bench.run(5 if options.smoke else max(store_runs, 20))
    if physical_runs is not None:
        result["physical"] = _physical(options, workloads, physical_runs)
    result["meta"] = {
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "trials": options.trials,
        "smoke": options.smoke,
        "sizes": {k: v for k, v in vars(options.sizes).items()},
        "machine": report.machine(),
        "versions": _versions(),
        "revision": _revision(),
    }
    return result


def _physical(options: Options, workloads: list[Any], runs: int) -> dict[str, Any]:
    """The physical limits for the largest workload run (at least the large one's size), in a
    directory beside the kernels' so that the file is read from the same disk."""
    data_mb = max(
        [options.sizes.large_frame_mb, *(w.data_mb for w in workloads if w.restore and w.data_mb)]
    )
    directory = Path(tempfile.mkdtemp(prefix="ipysession-physical-", dir=options.temp_root))
    try:
        return physical.limits(int(data_mb * 1_000_000), directory, runs=runs)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def write_results(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = "-smoke" if result["meta"]["smoke"] else ""
    json_path = out / f"bench-{stamp}{suffix}.json"
    md_path = json_path.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(report.markdown(result), encoding="utf-8")
    return json_path, md_path


def update_docs(result: dict[str, Any], docs: Path) -> list[Path]:
    docs.mkdir(parents=True, exist_ok=True)
    plot = docs / "autosave-scaling.png"
    problem = report.plot_scaling(result, plot)
    page = docs / "performance.md"
    page.write_text(
        report.docs_page(result, plot.name if problem is None else None, problem), encoding="utf-8"
    )
    return [page] if problem else [page, plot]
