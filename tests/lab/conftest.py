"""Fixtures of the browser tests: one real ``jupyter lab`` per module, Debian's Chromium, and a
page helper that drives JupyterLab as a person would (menus, buttons, dialogs), saving a
screenshot per step under tests/lab/artifacts/<test>/.

If Chromium, Playwright or the built extension is missing, the tests fail and say which (they
are never skipped: CI installs Chromium with `make system-deps`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import wait_for
from tests.lab.server import (
    LabServer,
    lab_server,
    launch_chromium,
    missing_requirements,
    write_notebook,
)

ARTIFACTS = Path(__file__).parent / "artifacts"
UI_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"browser tests cannot run: {reason}")
    with lab_server(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab: LabServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


class LabPage:
    """One browser page on the server, with the steps the tests take."""

    def __init__(self, page: Any, server: LabServer, artifacts: Path) -> None:
        self.page = page
        self.server = server
        self.artifacts = artifacts
        self.step = 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.artifacts / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def open(self, notebook: str) -> None:
        # Each page starts from an empty workspace: only this notebook, only its layout.
        self.page.goto(self.server.url(f"lab/tree/{notebook}", reset=True))
        self.page.wait_for_selector(".jp-Notebook", timeout=UI_TIMEOUT * 1000)
        self.wait_for_status(lambda text: ":" in text and "…" not in text, "the session state")

    def open_new(self, notebook: str, *cells: str) -> None:
        """Write ``notebook`` with these code cells under the server's root, and open it."""
        write_notebook(self.server.root / notebook, *cells)
        self.open(notebook)

    def open_in_new_kernel(self, notebook: str) -> None:
        """Open ``notebook`` in a new kernel and a new page, as after closing the browser and
        shutting every kernel down."""
        for session in self.server.api("GET", "sessions"):
            self.server.api("DELETE", f"sessions/{session['id']}")
        self.page.goto("about:blank")
        self.open(notebook)

    def wait_for_saved(self) -> str:
        return self.wait_for_status(lambda text: "saved" in text, "saved")

    def status(self) -> str:
        node = self.page.query_selector(".jp-ipysession-status")
        return "" if node is None else str(node.inner_text()).strip()

    def wait_for_status(self, check: Any, what: str) -> str:
        try:
            wait_for(lambda: check(self.status()), f"the status bar shows {what}", UI_TIMEOUT)
        except AssertionError as exc:
            shot = self.shot("timed-out")
            msg = f"{exc}; it shows {self.status()!r}; notifications: {self.notifications()!r}"
            raise AssertionError(f"{msg} (screenshot {shot})") from None
        return self.status()

    def run_cell(self, code: str) -> str:
        """Add a cell at the end, run it, return its output's text."""
        return str(
            self.page.evaluate(
                """async (code) => {
                    const app = window.jupyterapp;
                    const notebook = app.shell.currentWidget.content;
                    notebook.activeCellIndex = notebook.widgets.length - 1;
                    await app.commands.execute('notebook:insert-cell-below');
                    const cell = notebook.activeCell;
                    cell.model.sharedModel.setSource(code);
                    await app.commands.execute('notebook:run-cell');
                    return cell.outputArea.node.innerText;
                }""",
                code,
            )
        )

    def outputs(self) -> str:
        """The text of every output in the notebook."""
        return str(
            self.page.evaluate(
                "() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                ".map(n => n.innerText).join('\\n')"
            )
        )

    def menu(self, top: str, item: str) -> None:
        """Click ``top`` in the menu bar, then ``item`` (its exact label)."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def dialog(self) -> Any:
        dialog = self.page.locator(".jp-Dialog-content")
        dialog.wait_for(timeout=UI_TIMEOUT * 1000)
        return dialog

    def click_dialog_button(self, label: str) -> None:
        button = re.compile(f"^{re.escape(label)}$", re.IGNORECASE)
        self.page.locator(".jp-Dialog-button", has_text=button).click()
        self.page.locator(".jp-Dialog-content").wait_for(state="detached", timeout=60_000)

    def panel_notices(self) -> str:
        """Every notice the session panel keeps (whole text; shown or not)."""
        return str(
            self.page.evaluate(
                "() => Array.from(document.querySelectorAll('.jp-ipysession-notice'))"
                ".map(n => n.textContent).join('\\n')"
            )
        )

    def notifications(self) -> str:
        """The text of the notification toasts on screen."""
        return str(
            self.page.evaluate(
                "() => Array.from(document.querySelectorAll('.Toastify__toast'))"
                ".map(n => n.innerText).join('\\n')"
            )
        )


@pytest.fixture
def lab_page(lab: LabServer, browser: Any, request: pytest.FixtureRequest) -> Iterator[LabPage]:
    artifacts = ARTIFACTS / request.node.name
    artifacts.mkdir(parents=True, exist_ok=True)
    for old in artifacts.glob("*.png"):
        old.unlink()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT * 1000)
    try:
        yield LabPage(page, lab, artifacts)
    finally:
        context.close()
