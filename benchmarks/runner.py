"""The measuring protocol, the trials, and the medians.

For every trial, every workload, and every tool in an order rotated by one each trial (so machine
noise hits all tools alike), one fresh directory and one kernel:

1. start the kernel with the tool's environment and arguments (``ready_s``: launch to the first
   ``kernel_info_reply``; ``first_cell_s``: launch to the reply of a ``pass`` cell, the first cell
   the kernel runs), attach the tool;
2. run the workload's cells (``workload_s``), then warm-up and measured small cells
   (``cell_client_ms`` / ``cell_kernel_ms``: medians over the cells of the trial);
3. fingerprint the workload's names inside the kernel, save (``save_s``), size the tool's files
   (``bytes_on_disk``), read ``VmHWM``, ``RssAnon`` and ``RssFile`` (``peak_save_kib``,
   ``rss_anon_save_kib``, ``rss_file_save_kib``);
4. ``restart_kernel()``: the call itself (``restart_shutdown_s``: the old kernel's shutdown, which
   jupyter_client polls every 100 ms, and the new launch), then launch to ready
   (``restart_ready_s``) and to the first cell's reply (``restart_first_cell_s``); restore
   (``restore_s``: what the tool runs once the kernel is ready; ``launch_to_restored_s``: from the
   launch to the namespace being back; ``launch_to_bound_s``, for a workload with
   ``bound_names``: from the launch to the reply of a cell naming them all, which waits for
   values still loading in the background); fingerprint again (``vars_equal`` /
   ``vars_total``), read the same memory figures (``peak_restore_kib``,
   ``rss_anon_restore_kib``, ``rss_file_restore_kib``).

Figures that compare with the plain kernel are computed per trial against the ``none`` tool of the
same trial and workload, then summarized by their median across trials.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kernel import BenchKernel, KernelError, kernel_env
from .tools import ALL_TOOLS, DEFAULT_TOOLS, Context, IpysessionTool, Tool, ToolFailure
from .workloads import Sizes, Workload

Progress = Callable[[str], None]


@dataclass
class Options:
    """What to run."""

    tools: list[str] = field(default_factory=lambda: list(DEFAULT_TOOLS))
    workloads: list[str] = field(default_factory=lambda: ["reference", "small", "large", "scaling"])
    trials: int = 10
    smoke: bool = False
    keep: bool = False
    temp_root: Path | None = None
    #: The gigabyte workload's size in MB (``None``: its default, 1024, or 8 for ``smoke``).
    gigabyte_mb: float | None = None

    @property
    def sizes(self) -> Sizes:
        sizes = Sizes.smoke() if self.smoke else Sizes()
        if self.gigabyte_mb is not None:
            sizes = dataclasses.replace(sizes, gigabyte_mb=self.gigabyte_mb)
        return sizes


def _median(values: list[float]) -> float:
    return statistics.median(values)


def measure(tool: Tool, ctx: Context, sizes: Sizes) -> dict[str, Any]:
    """One tool, one workload, one trial: the raw figures."""
    workload = ctx.workload
    ctx.setup()
    env = kernel_env(IPYTHONDIR=str(ctx.ipythondir), **tool.env(ctx))
    kernel = BenchKernel(
        ctx.root / "kernel", env=env, cwd=ctx.work, extra_arguments=tool.kernel_arguments(ctx)
    )
    raw: dict[str, Any] = {}
    try:
        raw["ready_s"] = kernel.start()
        raw["first_cell_s"] = kernel.first_cell_s
        t0 = time.perf_counter()
        tool.attach(kernel, ctx)
        raw["attach_s"] = time.perf_counter() - t0

        workload_s = 0.0
        for index, cell in enumerate(workload.cells):
            workload_s += kernel.run(cell, f"{workload.name} cell {index + 1}").client_ms / 1000.0
            ctx.history.append(cell)
        raw["workload_s"] = workload_s

        for _ in range(sizes.warmup_cells):
            kernel.run(workload.small_cell, "warm-up cell")
            ctx.history.append(workload.small_cell)
        client, inside = [], []
        for _ in range(sizes.small_cells):
            result = kernel.run(workload.small_cell, "small cell")
            ctx.history.append(workload.small_cell)
            client.append(result.client_ms)
            if result.kernel_ms is not None:
                inside.append(result.kernel_ms)
        raw["cell_client_ms"] = _median(client)
        raw["cell_kernel_ms"] = _median(inside) if inside else None

        before = kernel.fingerprints(workload.names)
        described = kernel.probe("describe", workload.names)
        raw["vars_total"] = len(workload.names)
        raw["vars_before"] = sum(v is not None for v in before.values())
        saved = tool.save(kernel, ctx)
        if saved is not None:
            raw["save_automatic"] = saved.automatic
            if saved.failed:
                raw["save_failed"] = saved.failed
            if saved.seconds is not None:
                raw["save_s"] = saved.seconds
                raw["save_kernel_s"] = saved.kernel_seconds
        raw["bytes_on_disk"] = tool.bytes_on_disk(ctx)
        raw["pickled_bytes"] = tool.pickled_bytes(ctx)
        _read_memory(kernel, raw, "save")

        if workload.restore:
            try:
                _restore_phase(tool, kernel, ctx, raw, before, described)
            except (KernelError, ToolFailure) as exc:
                # The figures measured so far stand; the restore is reported as failed.
                raw["restore_failed"] = str(exc)
    finally:
        kernel.shutdown()
    return raw


def _restore_phase(
    tool: Tool,
    kernel: BenchKernel,
    ctx: Context,
    raw: dict[str, Any],
    before: dict[str, str | None],
    described: dict[str, str | None],
) -> None:
    t0 = time.perf_counter()
    raw["restart_shutdown_s"], raw["restart_ready_s"] = kernel.restart()
    raw["restart_first_cell_s"] = kernel.first_cell_s
    if not tool.restores:
        return
    restore_s = tool.restore(kernel, ctx)
    raw["restart_to_restored_s"] = time.perf_counter() - t0
    raw["launch_to_restored_s"] = raw["restart_to_restored_s"] - raw["restart_shutdown_s"]
    raw["restores_at_start"] = tool.restores_at_start
    if restore_s is not None:
        raw["restore_s"] = restore_s
    if ctx.workload.bound_names:
        # A list of them that evaluates to None: nothing displayed, nothing bound.
        kernel.run(f"[{', '.join(ctx.workload.bound_names)}] and None", "naming every value")
        raw["launch_to_bound_s"] = time.perf_counter() - t0 - raw["restart_shutdown_s"]
    after = kernel.fingerprints(ctx.workload.names)
    detail = _compare(before, after, described, kernel)
    raw["vars_equal"] = sum(1 for v in detail.values() if v == "equal")
    raw["vars_detail"] = {k: v for k, v in detail.items() if v != "equal"}
    _read_memory(kernel, raw, "restore")
    if isinstance(tool, IpysessionTool) and ctx.workload.name == "reference":
        _connections_scenario(tool, kernel, ctx, raw)


def _read_memory(kernel: BenchKernel, raw: dict[str, Any], moment: str) -> None:
    memory = kernel.memory_kib()
    raw[f"peak_{moment}_kib"] = memory.get("VmHWM")
    raw[f"rss_anon_{moment}_kib"] = memory.get("RssAnon")
    raw[f"rss_file_{moment}_kib"] = memory.get("RssFile")


def _compare(
    before: dict[str, str | None],
    after: dict[str, str | None],
    described: dict[str, str | None],
    kernel: BenchKernel,
) -> dict[str, str]:
    described_after = kernel.probe("describe", list(after))
    detail: dict[str, str] = {}
    for name, print_before in before.items():
        print_after = after.get(name)
        if print_before is None:
            detail[name] = "not defined before the save"
        elif print_after is None:
            detail[name] = "missing"
        elif print_after == print_before:
            detail[name] = "equal"
        else:
            was, now = described.get(name), described_after.get(name)
            detail[name] = f"differs ({was} -> {now})" if was != now else f"differs ({now})"
    return detail


def _connections_scenario(
    tool: IpysessionTool, kernel: BenchKernel, ctx: Context, raw: dict[str, Any]
) -> None:
    kernel.run(tool.connections_setup(ctx), "opening three connections")
    saved = tool.save(kernel, ctx)
    if saved is not None and saved.failed:
        ctx.notes.append(f"connections scenario: {saved.failed}")
        return
    tool.connections_break(ctx)
    raw["restart_ready_connections_s"] = kernel.restart()[1]
    # Launch to the reply of the first cell, a `pass` that names none of the connections: the
    # issue 13 budget compares it with the same session restarted without them (same trial).
    raw["restart_first_cell_connections_s"] = kernel.first_cell_s


# --- trials -------------------------------------------------------------------------------------


def _runs(tool: Tool, workload: Workload) -> bool:
    if workload.tools is not None and tool.name not in workload.tools:
        return False
    return tool.groups is None or workload.group in tool.groups


@dataclass
class ToolState:
    tool: Tool
    failed: str | None = None
    version: str | None = None
    attempts: int = 0
    successes: int = 0
    attach_failures: list[str] = field(default_factory=list)

    def attach_failed(self, reason: str) -> None:
        """A tool that never attached gives up after two tries; one that did keeps going."""
        self.attach_failures.append(reason)
        if self.successes == 0 and len(self.attach_failures) >= 2:
            self.failed = reason


def run(
    options: Options, workloads: list[Workload], progress: Progress | None = None
) -> dict[str, Any]:
    """Run every trial; return the raw figures and the summary (see :func:`summarize`)."""
    say = progress or (lambda _msg: None)
    states = {name: ToolState(ALL_TOOLS[name]()) for name in options.tools}
    for state in states.values():
        state.failed = state.tool.unavailable()
        state.version = state.tool.version()
        if state.failed:
            say(f"{state.tool.name}: failed: {state.failed}")

    root = Path(tempfile.mkdtemp(prefix="ipysession-bench-", dir=options.temp_root))
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        w.name: {t: [] for t in options.tools} for w in workloads
    }
    notes: dict[str, dict[str, list[str]]] = {
        w.name: {t: [] for t in options.tools} for w in workloads
    }
    try:
        for trial in range(options.trials):
            shift = trial % len(options.tools)
            order = options.tools[shift:] + options.tools[:shift]
            for workload in workloads:
                for name in order:
                    state = states[name]
                    if state.failed or not _runs(state.tool, workload):
                        continue
                    ctx = Context(root / f"t{trial}" / workload.name / name, workload)
                    t0 = time.perf_counter()
                    state.attempts += 1
                    try:
                        figures = measure(state.tool, ctx, options.sizes)
                        state.successes += 1
                    except ToolFailure as exc:
                        state.attach_failed(str(exc))
                        figures = {"error": str(exc)}
                        say(f"{name}/{workload.name}: failed: {exc}")
                    except Exception as exc:  # one broken measurement never ends the run
                        figures = {"error": f"{type(exc).__name__}: {exc}"}
                        say(f"{name}/{workload.name}: error: {exc}")
                        say(traceback.format_exc(limit=3))
                    figures["trial"] = trial
                    raw[workload.name][name].append(figures)
                    for note in ctx.notes:
                        if note not in notes[workload.name][name]:
                            notes[workload.name][name].append(note)
                    say(
                        f"trial {trial + 1}/{options.trials} {workload.name:>16} {name:<10} "
                        f"{time.perf_counter() - t0:6.1f} s"
                    )
                    if not options.keep:
                        shutil.rmtree(ctx.root, ignore_errors=True)
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)
    tools = {}
    for name, state in states.items():
        reason = state.failed
        if reason is None and state.attempts and not state.successes:
            reason = state.attach_failures[0] if state.attach_failures else "no trial completed"
        tools[name] = {
            "label": state.tool.label,
            "version": state.version,
            "status": "failed" if reason else ("ok" if state.attempts else "not run"),
            "reason": reason,
            "automatic": state.tool.automatic,
            "trials_failed_to_attach": len(state.attach_failures),
        }
    return {
        "tools": tools,
        "workloads": {
            w.name: {
                "description": w.description,
                "names_total": len(w.names),
                "data_mb": w.data_mb,
                "tools": {
                    t: summarize(raw[w.name][t], raw[w.name].get("none", []), notes[w.name][t])
                    for t in options.tools
                    if _runs(states[t].tool, w)
                },
            }
            for w in workloads
        },
        "temp_root": str(root) if options.keep else None,
    }


# --- summary ------------------------------------------------------------------------------------

#: Raw figures summarized by their median over trials.
FIGURES = (
    "ready_s",
    "first_cell_s",
    "attach_s",
    "workload_s",
    "cell_client_ms",
    "cell_kernel_ms",
    "save_s",
    "save_kernel_s",
    "bytes_on_disk",
    "pickled_bytes",
    "restart_shutdown_s",
    "restart_ready_s",
    "restart_first_cell_s",
    "restore_s",
    "launch_to_restored_s",
    "launch_to_bound_s",
    "restart_to_restored_s",
    "restart_ready_connections_s",
    "restart_first_cell_connections_s",
    "vars_equal",
    "vars_total",
    "peak_save_kib",
    "peak_restore_kib",
    "rss_anon_save_kib",
    "rss_file_save_kib",
    "rss_anon_restore_kib",
    "rss_file_restore_kib",
)


def _derived(trial: dict[str, Any], plain: dict[str, Any] | None) -> dict[str, float]:
    """Figures of one trial relative to the plain kernel of the same trial."""
    out: dict[str, float] = {}
    # The moment (after save, after restore) with the higher peak, and the file-backed pages then.
    moments = [m for m in ("save", "restore") if trial.get(f"peak_{m}_kib")]
    peak_at = max(moments, key=lambda m: trial[f"peak_{m}_kib"], default=None)
    if peak_at is not None:
        out["peak_mib"] = trial[f"peak_{peak_at}_kib"] / 1024.0
        if isinstance(trial.get(f"rss_file_{peak_at}_kib"), int):
            out["peak_file_mib"] = trial[f"rss_file_{peak_at}_kib"] / 1024.0
    if plain is None:
        return out

    def both(key: str) -> tuple[float, float] | None:
        a, b = trial.get(key), plain.get(key)
        return (a, b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None

    if pair := both("cell_kernel_ms"):
        out["cell_added_kernel_ms"] = pair[0] - pair[1]
    if pair := both("cell_client_ms"):
        out["cell_added_client_ms"] = pair[0] - pair[1]
        if pair[1] > 0:
            out["cell_ratio_client"] = pair[0] / pair[1]
    if pair := both("ready_s"):
        out["ready_added_s"] = pair[0] - pair[1]
    plain_restart = plain.get("restart_ready_s")
    if trial.get("restores_at_start"):
        # Restored while the kernel started: what it adds to a plain kernel's launch to the reply
        # of its first cell. Both spans hold the same harness requests, and the first cell is
        # where the tool finishes what it deferred.
        if pair := both("restart_first_cell_s"):
            out["restore_added_s"] = pair[0] - pair[1]
    elif isinstance(trial.get("restore_s"), (int, float)):
        # Restored by cells once the kernel was ready: what those cells took.
        out["restore_added_s"] = trial["restore_s"]
    bound, plain_first = trial.get("launch_to_bound_s"), plain.get("restart_first_cell_s")
    if isinstance(bound, (int, float)) and isinstance(plain_first, (int, float)):
        # Every value bound, against a plain kernel's launch to its first cell: what restoring
        # them all took beyond starting a kernel.
        out["bound_added_s"] = bound - plain_first
    connections = trial.get("restart_ready_connections_s")
    if isinstance(connections, (int, float)) and isinstance(plain_restart, (int, float)):
        out["connections_added_s"] = connections - plain_restart
    with_them, without = (
        trial.get("restart_first_cell_connections_s"),
        trial.get("restart_first_cell_s"),
    )
    if isinstance(with_them, (int, float)) and isinstance(without, (int, float)):
        # The same session, restarted with and without three connections: what they add.
        out["connections_first_cell_added_s"] = with_them - without
    plain_peak = plain.get("peak_save_kib")
    if "peak_mib" in out and isinstance(plain_peak, (int, float)):
        out["peak_added_mib"] = out["peak_mib"] - plain_peak / 1024.0
        # Of that, pages mapped from files (libraries, mostly clean and shared with the page
        # cache): the tool's RssFile at its peak's moment against the plain kernel's after save.
        plain_file = plain.get("rss_file_save_kib")
        if "peak_file_mib" in out and isinstance(plain_file, (int, float)):
            out["peak_file_added_mib"] = out["peak_file_mib"] - plain_file / 1024.0
    return out


def summarize(
    trials: list[dict[str, Any]], plain: list[dict[str, Any]], notes: list[str]
) -> dict[str, Any]:
    """Medians over trials of every figure (raw and relative to the plain kernel)."""
    plain_by_trial = {t["trial"]: t for t in plain if "error" not in t}
    values: dict[str, list[float]] = {}
    errors = [t["error"] for t in trials if "error" in t]
    failures: list[str] = []
    restore_failures: list[str] = []
    detail: dict[str, str] = {}
    automatic = False
    at_start = False
    for trial in trials:
        if "error" in trial:
            continue
        automatic = automatic or bool(trial.get("save_automatic"))
        at_start = at_start or bool(trial.get("restores_at_start"))
        if trial.get("save_failed") and trial["save_failed"] not in failures:
            failures.append(trial["save_failed"])
        if trial.get("restore_failed") and trial["restore_failed"] not in restore_failures:
            restore_failures.append(trial["restore_failed"])
        detail.update(trial.get("vars_detail", {}))
        merged = {k: trial.get(k) for k in FIGURES}
        merged.update(_derived(trial, plain_by_trial.get(trial["trial"])))
        for key, value in merged.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault(key, []).append(float(value))
    figures = {
        key: {"median": statistics.median(vals), "values": vals} for key, vals in values.items()
    }
    return {
        "trials": len(trials),
        "trials_ok": len(trials) - len(errors),
        "figures": figures,
        "save_automatic": automatic,
        "restores_at_start": at_start,
        "save_failed": failures,
        "restore_failed": restore_failures,
        "errors": errors,
        "notes": notes,
        "vars_not_equal": detail,
    }


def median_of(summary: dict[str, Any], key: str) -> float | None:
    figure = summary.get("figures", {}).get(key)
    return None if figure is None else float(figure["median"])
