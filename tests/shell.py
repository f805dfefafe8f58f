"""In-process IPython shells for tests, and a way to simulate a kernel restart.

Two builders, for two kinds of test:

- ``ipython_shell(**manager_config)``: IPython's global test shell with a clean namespace and
  ``SessionManager`` config; the extension is loaded by the test (or by ``restart``). For tests of
  the extension, where a restart must find the same shell.
- ``ShellFactory`` (the ``make_shell`` fixture of ``tests/conftest.py``): fresh terminal shells,
  each with its own config, an in-memory history and an ``ipython_dir`` under ``tmp_path``; closing
  the factory puts back what building shells changes in the process (display and except hooks,
  ``__main__``, builtins, environment, working directory). For tests of one capture part.
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


class ShellFactory:
    """Builds fresh ``TerminalInteractiveShell`` objects; ``close()`` puts the process back.

    ``factory(**config)`` takes config as ``Section__name=value``
    (``HistoryManager__hist_file=str(path)``, ``HistoryManager__enabled=False``).
    """

    def __init__(self, ipython_dir: Path) -> None:
        self._ipython_dir = ipython_dir
        self._shells: list[Any] = []
        self._hooks = (sys.displayhook, sys.excepthook, sys.modules.get("__main__"))
        self._builtins = set(vars(builtins))
        self._env = dict(os.environ)
        self._cwd = os.getcwd()

    def __call__(self, **config: Any) -> Any:
        from IPython.terminal.interactiveshell import TerminalInteractiveShell

        cfg = Config()
        cfg.HistoryManager.hist_file = ":memory:"
        cfg.TerminalInteractiveShell.simple_prompt = True
        cfg.TerminalInteractiveShell.term_title = False
        for dotted, value in config.items():
            section, name = dotted.split("__")
            cfg[section][name] = value
        shell = TerminalInteractiveShell(config=cfg, ipython_dir=str(self._ipython_dir))
        self._shells.append(shell)
        return shell

    def close(self) -> None:
        """End every shell's history session and put back the process state; safe twice."""
        shells, self._shells = self._shells, []
        for shell in shells:
            shell.history_manager.end_session()
            if shell.history_manager.save_thread is not None:
                shell.history_manager.save_thread.stop()
        sys.displayhook, sys.excepthook = self._hooks[0], self._hooks[1]
        if self._hooks[2] is not None:
            sys.modules["__main__"] = self._hooks[2]
        for name in set(vars(builtins)) - self._builtins:
            delattr(builtins, name)
        os.environ.clear()
        os.environ.update(self._env)
        os.chdir(self._cwd)
