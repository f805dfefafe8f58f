"""The example notebook runs with nbclient, twice: the second run restores the first."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_notebook(path: Path, workdir: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def outputs_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_quickstart_notebook_runs_and_restores(tmp_path: Path) -> None:
    env = {
        "IPYSESSION_NAME": "quickstart.ipynb",
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    first = run_notebook(EXAMPLES / "quickstart.ipynb", tmp_path, env)
    code = [c for c in first.cells if c.cell_type == "code"]
    assert "ipysession: no saved session" not in outputs_text(code[0])
    assert outputs_text(code[2]).strip() == "3.14"  # %precision 2
    status = outputs_text(code[3])
    assert "squares" in status
    assert "generator" in status
    second = run_notebook(EXAMPLES / "quickstart.ipynb", tmp_path, env)
    restored = outputs_text(next(c for c in second.cells if c.cell_type == "code"))
    assert "ipysession: restored 'quickstart.ipynb'" in restored
    assert "connections: shop" in restored


def test_the_demo_passes_on_a_machine_without_an_os_keyring() -> None:
    """`make demo` with keyring's fail backend: the key-file notice stays out of the cells."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    env.pop("IPYSESSION_PASSPHRASE", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Same values as before the kill." in done.stdout
    assert "created its master key" not in done.stdout
