"""An in-process IPython shell for tests, with a way to simulate a kernel restart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from traitlets.config import Config


@contextmanager
def ipython_shell(**manager_config: Any) -> Iterator[Any]:
    """IPython's global test shell, with a clean namespace and SessionManager config."""
    from IPython.testing.globalipapp import get_ipython

    import ipysession

    shell = get_ipython()
    cwd = os.getcwd()
    saved_config = shell.config.get("SessionManager")
    shell.config.SessionManager = Config({"key_backend": "file", **manager_config})
    shell.reset(new_session=True)
    try:
        yield shell
    finally:
        ipysession.unload_ipython_extension(shell)
        shell.reset(new_session=True)
        if saved_config is None:
            shell.config.pop("SessionManager", None)
        else:
            shell.config.SessionManager = saved_config
        os.chdir(cwd)


def restart(shell: Any) -> None:
    """What a kernel restart does to ipysession: final save, empty namespace, load again."""
    import ipysession

    ipysession.unload_ipython_extension(shell)
    shell.reset(new_session=True)
    ipysession.load_ipython_extension(shell)


def run(shell: Any, code: str) -> Any:
    result = shell.run_cell(code, store_history=True)
    if result.error_before_exec or result.error_in_exec:
        raise AssertionError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}")
    return result
