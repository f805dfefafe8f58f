"""``%session restore --vars``: only the chosen variables and the imports their code reads come
back; the working directory, ``%precision`` and every other variable and import stay as they are.
Through the magic, in a real in-process shell."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import ipysession
from tests.shell import ipython_shell, run


def _float_format(shell: Any) -> str:
    formatter = shell.display_formatter.formatters["text/plain"]
    return str(formatter.float_format)


def test_vars_leaves_the_working_directory_and_precision_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_dir, later_dir = tmp_path / "saved", tmp_path / "later"
    saved_dir.mkdir()
    later_dir.mkdir()
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"%cd {saved_dir}")
        run(shell, "%precision 2")
        run(shell, "f = 1.5\ng = 2")
        run(shell, "%session save")
        run(shell, f"%cd {later_dir}")
        run(shell, "%precision 5")
        run(shell, "f = 'changed'\ng = 'changed'")
        capsys.readouterr()

        run(shell, "%session restore --vars f")

        out = capsys.readouterr().out
        assert "ipysession: restored" in out
        assert "cwd" not in out
        assert Path(os.getcwd()) == later_dir
        assert _float_format(shell) == "%.5f"
        assert (shell.user_ns["f"], shell.user_ns["g"]) == (1.5, "changed")


def test_vars_brings_back_the_imports_a_function_uses_and_no_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import json as js\nimport textwrap as tw\nimport string")
        run(shell, "def f(x):\n    return js.dumps([x])\n")
        run(shell, "%session save")
        run(shell, "del f, js, tw, string")
        capsys.readouterr()

        run(shell, "%session restore --vars f")

        assert "1 variable, 1 import" in capsys.readouterr().out
        assert run(shell, "f(3)").result == "[3]"
        assert {"tw", "string"}.isdisjoint(shell.user_ns)


def test_vars_follows_code_into_classes_closures_and_containers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import json as js\nimport textwrap as tw\nimport string as st\nimport math")
        run(
            shell,
            "class C:\n"
            "    def show(self):\n"
            "        return js.dumps(1)\n"
            "c = C()\n"
            "def outer():\n"
            "    def inner():\n"
            "        return tw.dedent('  x')\n"
            "    return inner\n"
            "inner = outer()\n"
            "handlers = {'cap': lambda s: st.capwords(s)}\n",
        )
        run(shell, "%session save")
        run(shell, "del C, c, outer, inner, handlers, js, tw, st, math")
        capsys.readouterr()

        run(shell, "%session restore --vars c,inner,handlers")

        assert run(shell, "c.show()").result == "1"
        assert run(shell, "inner()").result == "x"
        assert run(shell, "handlers['cap']('a b')").result == "A B"
        assert "math" not in shell.user_ns


def test_vars_naming_an_import_restores_it(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import json as js\nimport textwrap as tw")
        run(shell, "%session save")
        run(shell, "del js, tw")
        capsys.readouterr()

        run(shell, "%session restore --vars js")

        assert "js" in shell.user_ns
        assert "tw" not in shell.user_ns


def test_vars_with_only_restores_the_parts_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"%cd {tmp_path}")
        run(shell, "f = 1")
        run(shell, "%session save")
        run(shell, "%cd /")
        capsys.readouterr()

        run(shell, "%session restore --vars f --only cwd,variables")

        assert Path(os.getcwd()) == tmp_path
        assert shell.user_ns["f"] == 1
