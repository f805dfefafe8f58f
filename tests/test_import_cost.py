"""What a kernel pays for ipysession before it holds a session: which modules are imported.

A kernel with no saved session imports ``ipysession.extension`` and loads it; the store's
read/write path, the cipher, the file lock, the key stores, connection backends and array
libraries are imported only when first used (a save, a restore, a connection), and so are what
shows messages (display, presentation) and the ``%session`` commands with their parser: only
when there is something to show or someone runs ``%session``. Checked in a fresh interpreter
(and a real kernel) through ``sys.modules``, never by a clock: which modules, not how long.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.kernels import start_kernel

#: Imported only when a session is read or written, a key resolved, or a connection made.
LATER = (
    "cryptography",
    "filelock",
    "keyring",
    "jupyter_client",
    "sqlalchemy",
    "cloudpickle",
    "numpy",
    "ipysession.keys",
    "ipysession.keys.crypto",
    "ipysession.store.session_store",
    "ipysession.store.blobs",
    "ipysession.store.disk",
    "ipysession.store.fileformat",
    "ipysession.store.maintenance",
    "ipysession.store.recent",
    "ipysession.connections.backends.jupyter",
    # Imported with the first connection made or restored (retrying: or the first failed save).
    "ipysession.connections.reconnector",
    "ipysession.retry",
    # Imported when there is something to show, or at the first %session.
    "ipysession.display",
    # The package itself is a table of names (each module imported when a name is first used).
    "ipysession.presentation.base",
    "ipysession.presentation.kernel",
    "ipysession.presentation.stored",
    "ipysession.presentation.frontend",
    "ipysession.presentation.html",
    "ipysession.magics.commands",
)

_PROBE = textwrap.dedent(
    """
    import json, sys, threading
    import ipysession.extension
    imported = sorted(sys.modules)
    loaded = []
    threads = []
    if sys.argv[1] == "load":
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipysession")
        loaded = sorted(sys.modules)
        threads = sorted(thread.name for thread in threading.enumerate())
        shell.run_line_magic("unload_ext", "ipysession")
    print(json.dumps({"imported": imported, "loaded": loaded, "threads": threads}))
    """
)


def _modules(tmp_path: Path, mode: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = json.loads(_run(tmp_path, _PROBE, mode).splitlines()[-1])
    return result


def _run(tmp_path: Path, code: str, *args: str) -> str:
    """What ``code`` prints in a fresh interpreter with no saved session."""
    env = {
        **os.environ,
        "IPYSESSION_DIR": str(tmp_path / "data"),
        "IPYSESSION_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _present(modules: list[str]) -> list[str]:
    return [name for name in LATER if name in modules]


def test_importing_the_extension_imports_none_of_the_heavy_parts(tmp_path: Path) -> None:
    modules = _modules(tmp_path, "import")["imported"]
    assert "ipysession.extension" in modules
    assert _present(modules) == []


def test_loading_it_in_a_shell_with_no_saved_session_imports_none_of_them(tmp_path: Path) -> None:
    modules = _modules(tmp_path, "load")["loaded"]
    assert "ipysession.session.manager" in modules
    assert _present(modules) == []


def test_loading_it_with_no_saved_session_starts_no_thread(tmp_path: Path) -> None:
    # The autosave writer starts at the first write (nothing to write yet, no lease to keep
    # fresh); what a save does once it runs is tests/session/test_writer.py's.
    threads = _modules(tmp_path, "load")["threads"]
    assert "MainThread" in threads
    assert [name for name in threads if name.startswith("ipysession")] == []


@pytest.mark.kernel
def test_a_kernel_with_no_saved_session_imports_none_of_them(tmp_path: Path) -> None:
    probe = (
        "sys.modules['ipysession.extension'] is not None, "
        "'session' in get_ipython().magics_manager.magics['line'], "
        "sorted(sys.modules)"
    )
    # Autosave off: the first cell (start_kernel runs one) would otherwise save, which imports
    # the store's write path, as it should.
    with start_kernel(tmp_path, "c.SessionManager.autosave = False") as kernel:
        loaded, registered, modules = kernel.value(probe)
    assert loaded
    assert registered  # %session works: its commands are imported when it runs
    assert "ipysession.lab" in modules  # the comm target is registered at load
    # ipykernel itself imports jupyter_client.
    assert [name for name in _present(modules) if name != "jupyter_client"] == []


def test_the_first_session_command_imports_what_it_shows(tmp_path: Path) -> None:
    probe = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipysession")
        before = "ipysession.magics.commands" in sys.modules
        shell.run_line_magic("session", "status")
        after = "ipysession.magics.commands" in sys.modules
        print(before, after, "ipysession.display" in sys.modules)
        shell.run_line_magic("unload_ext", "ipysession")
        """
    )
    out = _run(tmp_path, probe)
    assert "Session:" in out  # the status was shown
    assert out.splitlines()[-1] == "False True True"


#: What a kernel that restores its session, shows the summary and saves never uses: the command
#: line's views, listing and maintenance, and their records.
NOT_FOR_A_RESTORE = (
    "ipysession.presentation.stored",
    "ipysession.store.listings",
    "ipysession.store.maintenance",
    "ipysession.store.summaries",
    "ipysession.store.recent",
)


def test_a_restore_with_its_summary_and_a_save_imports_only_what_they_use(tmp_path: Path) -> None:
    save = textwrap.dedent(
        """
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipysession")
        shell.run_cell("kept = 41 + 1", store_history=True)
        shell.run_line_magic("session", "save")
        shell.run_line_magic("unload_ext", "ipysession")
        """
    )
    restore = textwrap.dedent(
        f"""
        import sys
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipysession")
        shell.run_cell("pass", store_history=True)  # a terminal shows the summary at load
        shell.run_cell("kept += 1", store_history=True)
        shell.run_line_magic("unload_ext", "ipysession")  # the final save
        print(shell.user_ns.get("kept"), [m for m in {NOT_FOR_A_RESTORE!r} if m in sys.modules])
        """
    )
    _run(tmp_path, save)
    out = _run(tmp_path, restore)
    assert "restored" in out  # the summary was shown
    assert out.splitlines()[-1] == "43 []"
    # Saved at unload without them: the next restore has 43.
    assert _run(tmp_path, restore).splitlines()[-1] == "44 []"
