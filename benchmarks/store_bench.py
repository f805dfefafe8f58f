"""Session store micro-benchmark for the budgets of issue 2 (no kernel, no IPython).

Median of at least 20 runs (``--runs``; smoke: 5) of:

- encode + write of a session holding 1 MB of variable data (``SessionStore.write``), at most 10 ms;
- read + decode of that session (``SessionStore.read``), at most 10 ms;
- listing 100 sessions (``SessionStore.list``), at most 100 ms.

The variable data are pickled float arrays made from random bytes, so compression cannot shrink
them: the figure is an honest upper bound for numeric data. Run with ``python -m
benchmarks.store_bench``; ``python -m benchmarks`` runs it too. When
``ipysession.store.session_store`` is not importable yet, the result says "store not available" and
why, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIABLE_BYTES = 1_000_000
VARIABLES = 10
LISTED_SESSIONS = 100
TARGETS_MS = {"write": 10.0, "read": 10.0, "list": 100.0}


def _load_api() -> tuple[Any, ...] | str:
    # Imported by name: the store is written concurrently and may not exist yet.
    try:
        store = importlib.import_module("ipysession.store.session_store")
        crypto = importlib.import_module("ipysession.keys.crypto")
        model = importlib.import_module("ipysession.model")
        return (
            store.SessionStore,
            crypto.MasterKey,
            crypto.new_master_key,
            model.Session,
            model.VariableRecord,
        )
    except (ImportError, AttributeError) as exc:
        return f"store not available: {exc}"


def _session(api: tuple[Any, ...], name: str, payload_bytes: int) -> Any:
    _, _, _, session_cls, variable_cls = api
    session = session_cls(name=name)
    if payload_bytes:
        per_variable = payload_bytes // VARIABLES
        for i in range(VARIABLES):
            data = pickle.dumps(os.urandom(per_variable), protocol=5)
            session.variables[f"v{i}"] = variable_cls(
                name=f"v{i}", type_name="bytes", size=len(data), encoding="pickle", data=data
            )
    else:
        data = pickle.dumps(list(range(10)))
        session.variables["x"] = variable_cls(
            name="x", type_name="list", size=len(data), encoding="pickle", data=data
        )
    return session


def _timed(function: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        function()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def run(runs: int = 30, root: Path | None = None) -> dict[str, Any]:
    """Measure the store; ``{"status": "unavailable", "reason": ...}`` when it does not exist."""
    api = _load_api()
    if isinstance(api, str):
        return {"status": "unavailable", "reason": api}
    store_cls, master_key_cls, new_master_key, _, _ = api
    with tempfile.TemporaryDirectory(prefix="ipysession-store-bench-", dir=root) as tmp:
        key = master_key_cls(new_master_key())
        try:
            store = store_cls(Path(tmp) / "one", key=key)
            session = _session(api, "bench-1mb", VARIABLE_BYTES)
            store.write(session)  # warm-up: directories, imports, first generation
            write = _timed(lambda: store.write(session), runs)
            read = _timed(lambda: store.read(session.name).session, runs)

            many = store_cls(Path(tmp) / "many", key=key)
            for i in range(LISTED_SESSIONS):
                many.write(_session(api, f"session-{i:03d}", 0))
            listed = many.list()
            if len(listed) != LISTED_SESSIONS:
                return {
                    "status": "failed",
                    "reason": f"list() returned {len(listed)} sessions, not {LISTED_SESSIONS}",
                }
            listing = _timed(many.list, runs)
        except Exception as exc:
            return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    figures = [
        ("write", "encode + write, 1 MB of variable data", write),
        ("read", "read + decode, 1 MB of variable data", read),
        ("list", f"list {LISTED_SESSIONS} sessions", listing),
    ]
    return {
        "status": "ok",
        "runs": runs,
        "figures": [
            {
                "key": key_,
                "label": label,
                "median_ms": statistics.median(values),
                "min_ms": min(values),
                "max_ms": max(values),
                "target_ms": TARGETS_MS[key_],
            }
            for key_, label, values in figures
        ],
    }


def format_result(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"session store: {result['reason']}"
    lines = [f"session store, median of {result['runs']} runs:"]
    for item in result["figures"]:
        verdict = "meets" if item["median_ms"] <= item["target_ms"] else "misses"
        lines.append(
            f"  {item['label']:<42} {item['median_ms']:8.2f} ms  "
            f"(target ≤ {item['target_ms']:g} ms: {verdict})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs per figure (at least 20)")
    parser.add_argument("--smoke", action="store_true", help="5 runs, for the test suite")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    runs = 5 if args.smoke else max(args.runs, 20)
    result = run(runs)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
