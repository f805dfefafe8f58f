"""What a kernel pays for ipysession before it holds a session: which modules are imported.

A kernel with no saved session imports ``ipysession.extension`` and loads it; the store's
read/write path, the cipher, the file lock, the key stores, connection backends and array
libraries are imported only when first used (a save, a restore, a connection). Checked in a fresh
interpreter through ``sys.modules``, never by a clock: which modules, not how long.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
)

_PROBE = textwrap.dedent(
    """
    import json, sys
    import ipysession.extension
    imported = sorted(sys.modules)
    loaded = []
    if sys.argv[1] == "load":
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipysession")
        loaded = sorted(sys.modules)
        shell.run_line_magic("unload_ext", "ipysession")
    print(json.dumps({"imported": imported, "loaded": loaded}))
    """
)


def _modules(tmp_path: Path, mode: str) -> dict[str, list[str]]:
    env = {
        **os.environ,
        "IPYSESSION_DIR": str(tmp_path / "data"),
        "IPYSESSION_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


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
