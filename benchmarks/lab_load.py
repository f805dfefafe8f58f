"""What the JupyterLab extension adds to JupyterLab's load, measured in Debian's headless Chromium.

``python -m benchmarks.lab_load [--runs 5]``: two real ``jupyter lab`` servers side by side, one
with the extension built in this checkout (``make labextension``) and one without, each on
127.0.0.1 with isolated Jupyter dirs (tests/lab/server.py). Runs alternate between them, each in
a fresh browser context (no cache), and time from navigation start until ``app.restored``
resolves (every plugin activated, the layout restored). Prints each run and the medians; the
budget is +50 ms (issue 16). Never run by the test suite: timings belong here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab.server import (  # noqa: E402
    LabServer,
    lab_server,
    launch_chromium,
    missing_requirements,
)

BUDGET_MS = 50.0
_RESTORED_MS = """async () => {
    await window.jupyterapp.restored;
    const activate = performance.getEntriesByName('ipysession:activate');
    const files = performance.getEntriesByType('resource')
        .filter(e => e.name.includes('/lab/extensions/ipysession/'));
    return {
        load: performance.now(),
        activate: activate.length ? activate[0].duration : null,
        fetch: files.reduce((sum, e) => sum + e.duration, 0),
    };
}"""


def _load(browser: Any, server: LabServer) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(server.url("lab"))
        page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
        return dict(page.evaluate(_RESTORED_MS))
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    args = parser.parse_args(argv)
    reason = missing_requirements()
    if reason is not None:
        print(f"lab_load: cannot run: {reason}", file=sys.stderr)
        return 2
    installed = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "ipysession"
    if installed.exists():
        print(f"lab_load: cannot run: {installed} would load in both servers", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lab-load-")))
        servers = {
            "with": stack.enter_context(lab_server(home / "with", with_extension=True)),
            "without": stack.enter_context(lab_server(home / "without", with_extension=False)),
        }
        playwright = stack.enter_context(sync_playwright())
        browser = launch_chromium(playwright)
        stack.callback(browser.close)
        # One warm-up each: the servers' first page builds their caches.
        for server in servers.values():
            _load(browser, server)
        times: dict[str, list[float]] = {name: [] for name in servers}
        activate: list[float] = []
        fetch: list[float] = []
        for run in range(args.runs):
            for name, server in servers.items():
                result = _load(browser, server)
                times[name].append(float(result["load"]))
                extra = ""
                if name == "with":
                    activate.append(float(result["activate"] or 0.0))
                    fetch.append(float(result["fetch"]))
                    extra = f" (activate {activate[-1]:.1f} ms, its files {fetch[-1]:.0f} ms)"
                print(f"run {run + 1} {name:>7}: {result['load']:7.0f} ms{extra}", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    added = medians["with"] - medians["without"]
    print(
        f"median load: with {medians['with']:.0f} ms, without {medians['without']:.0f} ms; "
        f"the extension adds {added:+.0f} ms (budget +{BUDGET_MS:.0f} ms)"
    )
    print(
        f"median in the page with it: activating the plugin {statistics.median(activate):.1f} ms, "
        f"fetching its files {statistics.median(fetch):.0f} ms (in parallel with the core's)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
