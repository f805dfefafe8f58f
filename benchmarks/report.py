"""Markdown tables, targets, the docs page and the autosave-scaling plot."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from .runner import median_of

#: Row order of every table.
TOOL_ORDER = (
    "ipysession",
    "ipysession-base",
    "ipysession-foreground",
    "ipysession-eager",
    "kishu",
    "dill",
    "store",
    "rerun",
    "none",
)
DASH = "—"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    memory = None
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
    }


# --- formatting ---------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if abs(seconds) >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms" if abs(seconds) >= 0.01 else f"{seconds * 1000:.1f} ms"


def _signed_ms(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    text = _ms(abs(seconds))
    return f"+{text}" if seconds >= 0 else f"-{text}"


def _bytes(count: float | None) -> str:
    if count is None:
        return DASH
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def _label(name: str, tool: dict[str, Any]) -> str:
    label = {"store": "IPython `%store`", "dill": "`dill.dump_session`"}.get(
        name, tool.get("label", name)
    )
    version = tool.get("version")
    return f"{label} {version}" if version and name not in {"none", "rerun"} else label


def _failed(tools: dict[str, Any], name: str, summary: dict[str, Any]) -> str | None:
    tool = tools.get(name, {})
    if tool.get("status") == "failed":
        return f"failed: {tool.get('reason')}"
    if summary.get("trials_ok", 0) == 0:
        errors = summary.get("errors") or ["not run"]
        return f"failed: {errors[0]}"
    return None


def _cell(name: str, summary: dict[str, Any]) -> str:
    if name == "none":
        client = median_of(summary, "cell_client_ms")
        inside = median_of(summary, "cell_kernel_ms")
        if client is None:
            return DASH
        return f"plain cell: {client:.1f} ms client, {inside or 0:.1f} ms in kernel"
    added = median_of(summary, "cell_added_kernel_ms")
    client = median_of(summary, "cell_added_client_ms")
    ratio = median_of(summary, "cell_ratio_client")
    if added is None:
        return DASH
    text = f"{added:+.1f} ms in kernel"
    if client is not None:
        text += f", {client:+.1f} ms client"
    if ratio is not None:
        text += f" ({ratio:.1f}x a plain cell)"
    return text


def _save(name: str, summary: dict[str, Any]) -> str:
    if name in {"none", "rerun"}:
        return DASH
    if summary.get("save_automatic"):
        text = "automatic per cell"
        if median_of(summary, "save_s") is not None:
            text += f"; `%session save` {_ms(median_of(summary, 'save_s'))}"
        return text
    failed = summary.get("save_failed") or []
    seconds = median_of(summary, "save_s")
    if seconds is None:
        return f"fails: {failed[0]}" if failed else DASH
    text = _ms(seconds)
    if any(n.startswith("plain dump_session fails") for n in summary.get("notes", [])):
        text += ", but the plain dump fails with a generator present (after deleting it)"
    return text


def _restore(name: str, summary: dict[str, Any]) -> str:
    if name == "none":
        ready = median_of(summary, "restart_ready_s")
        shutdown = median_of(summary, "restart_shutdown_s")
        first = median_of(summary, "restart_first_cell_s")
        if ready is None:
            return DASH
        return (
            f"plain restart: {_ms(ready)} launch to ready, {_ms(first)} to its first cell "
            f"(after {_ms(shutdown)} of shutdown)"
        )
    total = median_of(summary, "launch_to_restored_s")
    added = median_of(summary, "restore_added_s")
    failed = summary.get("restore_failed") or []
    if total is None:
        return f"fails: {failed[0]}" if failed else DASH
    if added is None:
        return _ms(total)
    when = "at kernel start" if summary.get("restores_at_start") else "in cells after ready"
    return f"{_ms(total)} ({_signed_ms(added)} {when})"


def _vars(summary: dict[str, Any]) -> str:
    equal = median_of(summary, "vars_equal")
    total = median_of(summary, "vars_total")
    if equal is None or total is None:
        return DASH
    return f"{equal:.0f}/{total:.0f}"


def _peak(name: str, summary: dict[str, Any]) -> str:
    peak = median_of(summary, "peak_mib")
    if peak is None:
        return DASH
    if name == "none":
        return f"{peak:.0f} MiB"
    added = median_of(summary, "peak_added_mib")
    if added is None:
        return f"{peak:.0f} MiB"
    mapped = median_of(summary, "peak_file_added_mib")
    of_it = "" if mapped is None else f"; {mapped:+.1f} MiB of it library code mapped from files"
    return f"{added:+.1f} MiB ({peak:.0f} MiB{of_it})"


def _ordered(names: list[str]) -> list[str]:
    return [n for n in TOOL_ORDER if n in names] + [n for n in names if n not in TOOL_ORDER]


def workload_table(result: dict[str, Any], workload: str) -> str:
    """One row per tool, the figures of issue 6."""
    tools = result["tools"]
    data = result["workloads"][workload]
    header = (
        "| tool | per small cell added | save | restore into a fresh kernel | on disk "
        "| variables back | peak memory |\n|---|---|---|---|---|---|---|"
    )
    rows = [header]
    for name in _ordered(list(data["tools"])):
        summary = data["tools"][name]
        failed = _failed(tools, name, summary)
        label = _label(name, tools.get(name, {}))
        if failed:
            rows.append(f"| {label} | {failed} | {DASH} | {DASH} | {DASH} | {DASH} | {DASH} |")
            continue
        disk = (
            _bytes(median_of(summary, "bytes_on_disk")) if name not in {"none", "rerun"} else DASH
        )
        rows.append(
            f"| {label} | {_cell(name, summary)} | {_save(name, summary)} "
            f"| {_restore(name, summary)} | {disk} | {_vars(summary)} | {_peak(name, summary)} |"
        )
    return "\n".join(rows)


def startup_table(result: dict[str, Any], workload: str = "reference") -> str:
    """Start-to-ready of each tool's kernel: cold start, and the restart after the save."""
    data = result["workloads"].get(workload)
    if data is None:
        return ""
    rows = [
        "| tool | start to ready (no session) | restart: launch to ready "
        "| restart: launch to first cell | restart: launch to restored "
        "| shutdown part of the restart |",
        "|---|---|---|---|---|---|",
    ]
    for name in _ordered(list(data["tools"])):
        summary = data["tools"][name]
        if _failed(result["tools"], name, summary):
            continue
        ready, added = median_of(summary, "ready_s"), median_of(summary, "ready_added_s")
        start = _ms(ready) + (
            f" ({_signed_ms(added)})" if added is not None and name != "none" else ""
        )
        first = _ms(median_of(summary, "restart_first_cell_s"))
        restore_added = median_of(summary, "restore_added_s")
        if summary.get("restores_at_start") and restore_added is not None:
            first += f" ({_signed_ms(restore_added)})"
        restored = median_of(summary, "launch_to_restored_s")
        rows.append(
            f"| {_label(name, result['tools'].get(name, {}))} | {start} "
            f"| {_ms(median_of(summary, 'restart_ready_s'))} | {first} | {_ms(restored)} "
            f"| {_ms(median_of(summary, 'restart_shutdown_s'))} |"
        )
    connections = median_of(data["tools"].get("ipysession", {}), "restart_ready_connections_s")
    rows.append(
        "| ipysession, reference session with three connections (one unreachable) | "
        + ("not measured" if connections is None else _ms(connections))
        + f" | {DASH} | {DASH} | {DASH} | {DASH} |"
    )
    return "\n".join(rows)


def notes_section(result: dict[str, Any], workload: str) -> str:
    lines = []
    for name in _ordered(list(result["workloads"][workload]["tools"])):
        summary = result["workloads"][workload]["tools"][name]
        items = list(summary.get("notes", []))
        if 0 < summary.get("trials_ok", 0) < summary.get("trials", 0):
            items.insert(
                0,
                f"medians of the {summary['trials_ok']} of {summary['trials']} trials "
                "that completed",
            )
        items += [f"error in a trial: {e}" for e in dict.fromkeys(summary.get("errors", []))]
        items += [f"save failed: {e}" for e in summary.get("save_failed", [])]
        items += [f"restore failed: {e}" for e in summary.get("restore_failed", [])]
        not_equal = summary.get("vars_not_equal") or {}
        if not_equal:
            items.append(
                "not back equal: " + ", ".join(f"`{k}` {v}" for k, v in sorted(not_equal.items()))
            )
        if items:
            lines.append(f"- **{name}**: " + "; ".join(items))
    return "\n".join(lines)


def scaling_table(result: dict[str, Any]) -> str:
    series = scaling_series(result)
    if not series["sizes"]:
        return ""
    sizes = series["sizes"]
    header = "| tool | " + " | ".join(f"{s:g} MB" for s in sizes) + " | largest / smallest |"
    rows = [header, "|---" * (len(sizes) + 2) + "|"]
    for label, points in series["lines"].items():
        cells = [DASH if p is None else f"{p:.1f} ms" for p in points]
        known = [p for p in points if p is not None]
        ratio = f"{known[-1] / known[0]:.2f}x" if len(known) >= 2 and known[0] > 0 else DASH
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(rows)


def scaling_series(result: dict[str, Any]) -> dict[str, Any]:
    """Per tool: small-cell time inside the kernel at each size; dill: its full save time."""
    workloads = {
        name: data
        for name, data in result["workloads"].items()
        if name.startswith("scaling-") and data.get("data_mb") is not None
    }
    ordered = sorted(workloads.values(), key=lambda d: d["data_mb"])
    sizes = [d["data_mb"] for d in ordered]
    lines: dict[str, list[float | None]] = {}
    labels = {
        "none": "plain kernel",
        "ipysession": "ipysession (autosave at most every 5 s)",
        "ipysession-eager": "ipysession (autosave after every cell)",
        "kishu": "Kishu",
    }
    for name, label in labels.items():
        if not any(name in d["tools"] for d in ordered):
            continue
        points = [median_of(d["tools"].get(name, {}), "cell_kernel_ms") for d in ordered]
        if any(p is not None for p in points):
            lines[f"{label}: small cell, in kernel"] = points
    if any("dill" in d["tools"] for d in ordered):
        points = []
        for d in ordered:
            save = median_of(d["tools"].get("dill", {}), "save_s")
            points.append(None if save is None else save * 1000)
        if any(p is not None for p in points):
            lines["dill.dump_session after the change"] = points
    return {"sizes": sizes, "lines": lines}


def plot_scaling(result: dict[str, Any], path: Path) -> str | None:
    """Write the scaling plot as PNG; return why not, if it could not be drawn."""
    series = scaling_series(result)
    if not series["sizes"] or not series["lines"]:
        return "no scaling series in this run"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        return f"matplotlib is not installed ({exc})"
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=110)
    for label, points in series["lines"].items():
        xs = [s for s, p in zip(series["sizes"], points, strict=True) if p is not None]
        ys = [p for p in points if p is not None]
        style = "--" if label.startswith("dill") else "-"
        ax.plot(xs, ys, style, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _pos: f"{value:g}")
    ax.set_xticks(series["sizes"])
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("untouched data in the namespace (MB)")
    ax.set_ylabel("median time (ms)")
    ax.set_title("Autosave scaling: one small changed variable")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None


# --- targets ------------------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return {True: "meets", False: "misses", None: DASH}[ok]


MIB = 1024.0 * 1024.0


def _workload_value(result: dict[str, Any], workload: str, key: str) -> float | None:
    """The median of ``key`` for ipysession on ``workload`` (``None`` when not run)."""
    tools = result["workloads"].get(workload, {}).get("tools", {})
    return median_of(tools.get("ipysession", {}), key)


def targets_table(result: dict[str, Any]) -> str:
    """Each target of issues 6 and 3 against what ipysession measured (and the comparison)."""
    tools = result["tools"]
    ref = result["workloads"].get("reference", {}).get("tools", {})
    ips = ref.get("ipysession", {})
    failure = _failed(tools, "ipysession", ips) if "ipysession" in tools else "not run"

    def value(tool: str, key: str) -> float | None:
        return median_of(ref.get(tool, {}), key)

    rows = []
    if failure:
        rows += [f"ipysession {failure}: every target below is pending.", ""]
    rows += [
        "| figure | target | ipysession | verdict |",
        "|---|---|---|---|",
    ]

    def row(figure: str, target: str, measured: str, ok: bool | None) -> None:
        if failure:
            measured, verdict = "not measured", "pending"
        else:
            verdict = _verdict(ok)
        rows.append(f"| {figure} | {target} | {measured} | {verdict} |")

    added = value("ipysession", "cell_added_kernel_ms")
    kishu_added = value("kishu", "cell_added_kernel_ms")
    row(
        "added per small cell, median inside the kernel (issues 6, 3)",
        "≤ 2 ms" + (f" (Kishu here: {kishu_added:+.1f} ms)" if kishu_added is not None else ""),
        DASH if added is None else f"{added:+.2f} ms",
        None if added is None else added <= 2.0,
    )
    restore = value("ipysession", "restore_added_s")
    total = value("ipysession", "launch_to_restored_s")
    dill_total = value("dill", "launch_to_restored_s")
    row(
        "restore of the reference workload into a fresh kernel, launch to restored (issue 6)",
        "no slower than dill, encrypted"
        + (f" (dill here: {_ms(dill_total)})" if dill_total is not None else ""),
        _ms(total),
        None if total is None or dill_total is None else total <= dill_total,
    )
    row(
        "restore at kernel start, added: restarted kernel's launch to its first cell's reply, "
        "against a plain kernel's (issue 3)",
        "≤ 300 ms",
        _ms(restore),
        None if restore is None else restore <= 0.3,
    )
    equal, total = value("ipysession", "vars_equal"), value("ipysession", "vars_total")
    dill_equal = value("dill", "vars_equal")
    row(
        "variables back (issue 6)",
        "every picklable one, the others named with a reason"
        + (f" (dill here: {dill_equal:.0f}/{total:.0f})" if dill_equal and total else ""),
        DASH if equal is None else f"{equal:.0f}/{total:.0f}",
        None if equal is None or dill_equal is None else equal >= dill_equal,
    )
    disk, dill_disk = value("ipysession", "bytes_on_disk"), value("dill", "bytes_on_disk")
    row(
        "on disk (issue 6)",
        "smaller than dill's file"
        + (f" (dill here: {_bytes(dill_disk)})" if dill_disk is not None else ""),
        _bytes(disk),
        None if disk is None or dill_disk is None else disk < dill_disk,
    )
    row(
        "reference session on disk (issue 3)",
        "≤ 1 MB",
        _bytes(disk),
        None if disk is None else disk <= 1_000_000,
    )
    peak = value("ipysession", "peak_added_mib")
    kishu_peak = value("kishu", "peak_added_mib")
    row(
        "peak memory over a plain kernel after save and restore (issue 6)",
        "≤ +5 MiB" + (f" (Kishu here: {kishu_peak:+.1f} MiB)" if kishu_peak is not None else ""),
        DASH if peak is None else f"{peak:+.1f} MiB",
        None if peak is None else peak <= 5.0,
    )
    footprint = _workload_value(result, "small", "peak_added_mib")
    for workload in ("reference", "large"):
        data_peak = _workload_value(result, workload, "peak_added_mib")
        pickled = _workload_value(result, workload, "pickled_bytes")
        added = None if data_peak is None or footprint is None else data_peak - footprint
        allowed = None if pickled is None else pickled / MIB + 5.0
        row(
            f"peak memory of save and restore, {workload} workload: over a plain kernel, less "
            "the extension's own footprint (the small workload's figure, "
            + (DASH if footprint is None else f"{footprint:+.1f} MiB")
            + ") (issue 3)",
            "≤ the pickled data + 5 MiB"
            + ("" if allowed is None else f" (here {pickled / MIB:.1f} + 5 = {allowed:.1f} MiB)"),
            DASH if added is None else f"{added:+.1f} MiB",
            None if added is None or allowed is None else added <= allowed,
        )
    ready = value("ipysession", "ready_added_s")
    row(
        "kernel start with the extension and no session (issue 3)",
        "≤ +50 ms over a plain kernel",
        _signed_ms(ready),
        None if ready is None else ready <= 0.05,
    )
    series = scaling_series(result)
    points = series["lines"].get("ipysession (autosave after every cell): small cell, in kernel")
    points = points or series["lines"].get(
        "ipysession (autosave at most every 5 s): small cell, in kernel", []
    )
    known = [p for p in points if p is not None]
    ratio = known[-1] / known[0] if len(known) >= 2 and known[0] > 0 else None
    row(
        "autosave scaling, small cell in kernel, smallest to largest namespace (issues 6, 3)",
        "flat, within 2x",
        DASH if ratio is None else f"{ratio:.2f}x",
        None if ratio is None else ratio <= 2.0,
    )
    connections = value("ipysession", "connections_added_s")
    row(
        "start-to-ready with three connections, one unreachable (issue 6)",
        "≤ `reconnect_wait` + 200 ms over a plain kernel",
        "not measured" if connections is None else _ms(connections),
        # reconnect_wait is 0 by default since issue 13.
        None if connections is None else connections <= 0.0 + 0.2,
    )
    first_cell = value("ipysession", "connections_first_cell_added_s")
    row(
        "restart to first cell with three connections (one unreachable) over the same session "
        "without them, a cell naming none (issue 13)",
        "≤ 150 ms",
        "not measured" if first_cell is None else _ms(first_cell),
        None if first_cell is None else first_cell <= 0.15,
    )
    # Their own run: measured whether or not the reference workload ran.
    gigabyte = result["workloads"].get("gigabyte", {}).get("tools", {}).get("ipysession", {})
    gigabyte_failure = _failed(tools, "ipysession", gigabyte) if gigabyte else "not run"
    for figure, target, measured, ok in gigabyte_rows(result):
        if gigabyte_failure:
            measured, verdict = f"not measured ({gigabyte_failure})", "pending"
        else:
            verdict = _verdict(ok)
        rows.append(f"| {figure} | {target} | {measured} | {verdict} |")
    return "\n".join(rows)


def _rate(figure: dict[str, Any]) -> str:
    bandwidth = figure["size"] / figure["seconds"] if figure["seconds"] > 0 else None
    return DASH if bandwidth is None else f"{bandwidth / MIB:,.0f} MiB/s"


def physical_section(physical: dict[str, Any] | None) -> str:
    """The physical limits of a restore here (file read cold and warm, AES-GCM, memcpy)."""
    if not physical:
        return ""
    size = physical["bytes"]
    cold = physical["file_read_cold"]
    rows = [
        f"Physical limits on this machine, measured in the same run for {_bytes(size)} "
        f"(the largest workload's data), median of {physical['runs']} runs:",
        "",
        "| measure | bandwidth | for the workload's data | note |",
        "|---|---|---|---|",
    ]
    measures = (
        ("file read, cold cache", cold, cold["how"]),
        ("file read, warm cache", physical["file_read_warm"], DASH),
        ("AES-256-GCM decrypt, in memory", physical["aes_gcm_decrypt"], DASH),
        ("memcpy (one copy, what unpickling costs at least)", physical["memcpy"], DASH),
    )
    for label, figure, note in measures:
        seconds = size * figure["seconds"] / figure["size"]
        rows.append(f"| {label} | {_rate(figure)} | {_ms(seconds)} | {note} |")
    rows.append(
        f"| decrypt + one copy (the restore's limit) | {DASH} "
        f"| {_ms(physical['restore_limit_s'])} | {DASH} |"
    )
    return "\n".join(rows)


def gigabyte_rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, target, measured, verdict) of the gigabyte workload (issue 15), where it ran."""
    data = result["workloads"].get("gigabyte")
    if data is None:
        return []
    first = _workload_value(result, "gigabyte", "restore_added_s")
    bound = _workload_value(result, "gigabyte", "bound_added_s")
    physical = result.get("physical") or {}
    limit = physical.get("restore_limit_s")
    scaled = None
    if limit is not None and data.get("data_mb"):
        # The limit measured for the physical file's size, for this workload's size.
        scaled = limit * data["data_mb"] * 1_000_000 / physical["bytes"]
    allowed = None if scaled is None else scaled * 1.2
    return [
        (
            f"{data['description']}: launch to the first cell that names no large value, over a "
            "plain kernel (issue 15)",
            "≤ 150 ms",
            _ms(first),
            None if first is None else first <= 0.15,
        ),
        (
            f"{data['description']}: every value bound, launch to the reply of a cell naming "
            "them all, over a plain kernel's launch to its first cell; re-importing numpy and "
            "pandas is in the figure, not in the limit (issue 15)",
            "≤ (AES-GCM decrypt + one copy at the measured bandwidths) + 20%"
            + ("" if allowed is None else f" (here {_ms(scaled)} + 20% = {_ms(allowed)})"),
            _ms(bound),
            None if bound is None or allowed is None else bound <= allowed,
        ),
    ]


def store_section(store: dict[str, Any] | None) -> str:
    if not store:
        return ""
    if store.get("status") != "ok":
        return f"Session store micro-benchmark (issue 2): {store.get('reason')}."
    rows = [
        f"Session store micro-benchmark (issue 2), median of {store['runs']} runs:",
        "",
        "| operation | median | target | verdict |",
        "|---|---|---|---|",
    ]
    for item in store["figures"]:
        ok = item["median_ms"] <= item["target_ms"]
        rows.append(
            f"| {item['label']} | {item['median_ms']:.2f} ms | ≤ {item['target_ms']:g} ms "
            f"| {_verdict(ok)} |"
        )
    return "\n".join(rows)


def markdown(result: dict[str, Any]) -> str:
    """The whole report of one run."""
    meta = result["meta"]
    mach = meta["machine"]
    parts = [
        f"Measured {meta['finished']} on {mach['cpu_count']} cores ({mach['cpu']}, "
        f"{mach['memory_gib']} GiB, {mach['platform']}, Python {mach['python']}), "
        f"kernels driven by jupyter_client {meta['versions'].get('jupyter_client')} / "
        f"ipykernel {meta['versions'].get('ipykernel')}, medians of {meta['trials']} trials"
        + (" (smoke sizes)" if meta["smoke"] else "")
        + f". Command: `{meta['command']}`"
        + (f" at revision `{meta['revision']}`" if meta.get("revision") else "")
        + ".",
    ]
    for name, data in result["workloads"].items():
        if name.startswith("scaling-"):
            continue
        parts += [
            "",
            f"### {name} workload: {data['description']} ({data['names_total']} names)",
            "",
            workload_table(result, name),
        ]
        notes = notes_section(result, name)
        if notes:
            parts += ["", notes]
    startup = startup_table(result)
    if startup:
        parts += [
            "",
            "### Start to ready (reference workload)",
            "",
            "Launch to ready: from the kernel's launch to its first `kernel_info_reply`; in "
            "brackets, against the plain kernel of the same trial. Launch to first cell: from the "
            "same launch to the reply of a `pass` cell, the first cell the kernel runs, sent once "
            "ready and a request's status came back on IOPub; in brackets, for a tool that "
            "restores while the kernel starts, against the plain kernel's restart of the same "
            "trial (the restore added). Launch to restored adds the harness's probe and the "
            "tool's restore cells, or for ipysession a check that the extension loaded and a "
            "cell naming every name of the workload, which waits for the imports and values "
            "still arriving in the background. A kernel with ipysession restores its session "
            "before it is ready, except heavy imports and large values, and shows its restore "
            "summary at the first cell.",
            "",
            startup,
        ]
    scaling = scaling_table(result)
    if scaling:
        parts += [
            "",
            "### Autosave scaling: untouched data plus one small changed variable",
            "",
            "Median time of the small cell inside the kernel (for dill: a full `dump_session` "
            "after the change, the cost of keeping the change without autosave).",
            "",
            scaling,
        ]
    parts += ["", "### Targets", "", targets_table(result)]
    physical = physical_section(result.get("physical"))
    if physical:
        parts += ["", physical]
    store = store_section(result.get("store"))
    if store:
        parts += ["", store]
    parts += [
        "",
        "How to read: *added* figures are per trial against the plain kernel of the same trial, "
        "then the median; *restore into a fresh kernel* is from the launch of the kernel that "
        "`restart_kernel()` starts until the namespace is back (the old kernel's shutdown, "
        "polled by jupyter_client every 100 ms, is left out; the harness's own requests are in, "
        "the same for every tool); in brackets what the restore added: the restore cells' time, "
        "or for a tool that restores while the kernel starts, its launch to the reply of the "
        "first cell minus a plain kernel's, both restarted in the same trial (the same harness "
        "requests before that cell in both, and the first cell is where ipysession finishes "
        "what it deferred); "
        "*variables back* compares content fingerprints taken inside the kernel before the save "
        "and after the restore; *peak memory* is the kernel's `VmHWM` (peak resident set) read "
        "after save and after restore, the higher of the two against the plain kernel's after "
        "save on the same workload; *library code mapped from files* is the kernel's `RssFile` "
        "read at that same moment against the plain kernel's: resident pages mapped from files, "
        "mostly shared libraries and extension modules (such as cryptography's), clean pages "
        "shared with the page cache and with every process that maps the same library, unlike "
        "`RssAnon` (heap and data, private to the kernel). Peak less these pages is an "
        "approximation: `VmHWM` is the highest resident set so far, `RssFile` what is mapped when "
        "read. For a restore, the libraries are imported before the data is read, so the file "
        "pages present at the end were, for the most part, present at the peak; pages touched "
        "only after the peak, or dropped from the page cache since, make the split err either "
        "way by their size. "
        "Large values: ipysession restores each value of `background_restore_bytes` or more "
        "(8 MiB by default: the large workload's 100 MB DataFrame) in the background, after the "
        "kernel is ready, so its figure *at kernel start* is the imports, settings and small "
        "values (re-importing pandas is most of it), and its *restore into a fresh kernel* "
        "includes the wait for the large ones (the fingerprint cell names every variable); the "
        "row *background restore off*, where measured, binds everything before the kernel "
        "answers (the restore before issue 15), in the same run.",
    ]
    return "\n".join(parts) + "\n"


def docs_page(result: dict[str, Any], plot_name: str | None, plot_problem: str | None) -> str:
    lines = [
        "# Performance",
        "",
        "ipysession measured side by side with the tools users have today (`dill`, IPython's "
        "`%store`, Kishu, re-running every cell) on real kernels, in the same run on the same "
        "machine. Regenerate with `.venv/bin/python -m benchmarks --update-docs` (`make bench` "
        "measures the same without rewriting this page); the harness lives in `benchmarks/`.",
        "",
        markdown(result).rstrip(),
        "",
    ]
    if plot_name:
        lines += [f"![Autosave scaling]({plot_name})", ""]
    elif plot_problem:
        lines += [f"(No scaling plot: {plot_problem}.)", ""]
    return "\n".join(lines)
