"""Preferences: capture from a real shell, replay onto a fresh one, compare."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ipysession.capture.preferences import (
    apply_cwd,
    apply_env,
    apply_preferences,
    capture_cwd,
    capture_env,
    capture_extensions,
    capture_magics,
    capture_preferences,
)
from ipysession.errors import CaptureError
from ipysession.model import Preferences
from tests.shell import ShellFactory


def run(shell: Any, code: str) -> None:
    result = shell.run_cell(code, store_history=True)
    assert result.success, result.error_before_exec or result.error_in_exec


def ok(results: list[tuple[str, str | None]]) -> bool:
    return all(reason is None for _, reason in results)


# --- a fresh shell records nothing --------------------------------------------------------------


def test_fresh_shell_has_nothing_to_restore(make_shell: ShellFactory) -> None:
    shell = make_shell()
    prefs = capture_preferences(shell, env_baseline=dict(os.environ))
    assert prefs.extensions == []
    assert prefs.magics == {}
    assert prefs.env == {}


# --- each magic, captured and replayed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "magic", "argument"),
    [
        ("%precision 3", "precision", "3"),
        ("%precision %.2e", "precision", "%.2e"),
        ("%xmode Verbose", "xmode", "Verbose"),
        ("%xmode minimal", "xmode", "Minimal"),
        ("%colors linux", "colors", "linux"),
        ("%pdb on", "pdb", "on"),
        ("%automagic off", "automagic", "off"),
        ("%autocall 2", "autocall", "2"),
        ("%autocall 1", "autocall", "1"),
    ],
)
def test_magic_round_trip(make_shell: ShellFactory, cell: str, magic: str, argument: str) -> None:
    first = make_shell()
    run(first, cell)
    prefs = capture_preferences(first, env_baseline=dict(os.environ))
    assert prefs.magics == {magic: argument}

    second = make_shell()
    assert capture_magics(second, env_baseline=dict(os.environ)) == {}
    results = apply_preferences(second, Preferences.from_dict(prefs.to_dict()))
    assert results == [(f"%{magic} {argument}", None)]
    assert capture_magics(second, env_baseline=dict(os.environ)) == {magic: argument}


def test_replayed_state_is_the_real_state(make_shell: ShellFactory) -> None:
    first = make_shell()
    run(first, "%precision 4\n%xmode Plain\n%pdb on\n%automagic off\n%autocall 2\n%colors nocolor")
    second = make_shell()
    assert ok(apply_preferences(second, capture_preferences(first, env_baseline={})))
    formatter = second.display_formatter.formatters["text/plain"]
    assert formatter.float_precision == "4"
    assert formatter.float_format == "%.4f"
    assert second.InteractiveTB.mode == "Plain"
    assert second.call_pdb is True
    assert second.InteractiveTB.call_pdb is True
    assert second.magics_manager.auto_magic is False
    assert second.automagic is False
    assert second.autocall == 2
    assert second.colors == "nocolor"


def test_setting_put_back_to_default_is_not_recorded(make_shell: ShellFactory) -> None:
    shell = make_shell()
    run(shell, "%precision 3\n%xmode Verbose\n%pdb on")
    run(shell, "%precision\n%xmode Context\n%pdb off")
    assert capture_magics(shell, env_baseline={}) == {}


def test_defaults_come_from_the_shell_configuration(make_shell: ShellFactory) -> None:
    config = {
        "InteractiveShell__xmode": "Plain",
        "InteractiveShell__pdb": True,
        "MagicsManager__auto_magic": False,
        "TerminalInteractiveShell__colors": "linux",
        "PlainTextFormatter__float_precision": "2",
    }
    shell = make_shell(**config)
    # Configured values are what a restarted shell gets anyway: nothing to record.
    assert capture_magics(shell, env_baseline={}) == {}
    # Going back to IPython's defaults is a change from this configuration.
    run(shell, "%xmode Context\n%pdb off\n%automagic on\n%colors neutral\n%precision")
    assert capture_magics(shell, env_baseline={}) == {
        "precision": "",
        "xmode": "Context",
        "colors": "neutral",
        "pdb": "off",
        "automagic": "on",
    }


# --- autoreload -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "enabled", "check_all", "autoload_obj"),
    [
        ("1", True, False, False),
        ("2", True, True, False),
        ("3", True, True, True),
        ("explicit", True, False, False),
        ("all", True, True, False),
    ],
)
def test_autoreload_mode_round_trip(
    make_shell: ShellFactory, mode: str, enabled: bool, check_all: bool, autoload_obj: bool
) -> None:
    first = make_shell()
    run(first, f"%load_ext autoreload\n%autoreload {mode}")
    prefs = capture_preferences(first, env_baseline={})
    assert prefs.extensions == ["IPython.extensions.autoreload"]
    assert prefs.magics["autoreload"] in {"1", "2", "3"}

    second = make_shell()
    results = apply_preferences(second, prefs)
    assert ok(results), results
    assert results[0][0] == "extension IPython.extensions.autoreload"
    reloader = second.magics_manager.registry["AutoreloadMagics"]._reloader
    assert (reloader.enabled, reloader.check_all, reloader.autoload_obj) == (
        enabled,
        check_all,
        autoload_obj,
    )


def test_autoreload_off_records_only_the_extension(make_shell: ShellFactory) -> None:
    shell = make_shell()
    run(shell, "%load_ext autoreload")
    assert capture_preferences(shell, env_baseline={}).magics == {}
    run(shell, "%autoreload 2\n%autoreload 0")
    prefs = capture_preferences(shell, env_baseline={})
    assert prefs.extensions == ["IPython.extensions.autoreload"]
    assert prefs.magics == {}


def test_autoreload_flags_round_trip(make_shell: ShellFactory) -> None:
    first = make_shell()
    run(first, "%load_ext autoreload\n%autoreload 2 --full --hide-errors")
    prefs = capture_preferences(first, env_baseline={})
    assert prefs.magics == {"autoreload": "2 --full --hide-errors"}
    second = make_shell()
    assert ok(apply_preferences(second, prefs))
    reloader = second.magics_manager.registry["AutoreloadMagics"]._reloader
    assert reloader.hide_errors is True
    assert reloader.deduper_reloader._enabled is False
    assert capture_magics(second, env_baseline={}) == prefs.magics


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str) -> None:
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")

    yield write
    for name in list(sys.modules):
        if name.startswith("ipys_mod_"):
            del sys.modules[name]


def test_aimport_round_trip(make_shell: ShellFactory, importable: Callable[[str], None]) -> None:
    importable("ipys_mod_a")
    importable("ipys_mod_b")
    first = make_shell()
    run(first, "%load_ext autoreload\n%autoreload 1\n%aimport ipys_mod_a, -ipys_mod_b")
    prefs = capture_preferences(first, env_baseline={})
    assert prefs.magics == {"autoreload": "1", "aimport": "-ipys_mod_b, ipys_mod_a"}

    second = make_shell()
    assert ok(apply_preferences(second, prefs))
    reloader = second.magics_manager.registry["AutoreloadMagics"]._reloader
    assert set(reloader.modules) == {"ipys_mod_a"}
    assert set(reloader.skip_modules) == {"ipys_mod_b"}


def test_aimport_of_a_vanished_module_does_not_stop_the_others(
    make_shell: ShellFactory, importable: Callable[[str], None]
) -> None:
    importable("ipys_mod_c")
    prefs = Preferences(
        extensions=["IPython.extensions.autoreload"],
        magics={"autoreload": "1", "aimport": "ipys_mod_gone, ipys_mod_c", "precision": "2"},
    )
    shell = make_shell()
    results = dict(apply_preferences(shell, prefs))
    reason = results["%aimport ipys_mod_gone, ipys_mod_c"]
    assert reason is not None
    assert "ipys_mod_gone" in reason
    assert "ModuleNotFoundError" in reason
    reloader = shell.magics_manager.registry["AutoreloadMagics"]._reloader
    assert "ipys_mod_c" in reloader.modules
    assert results["%precision 2"] is None


# --- extensions -----------------------------------------------------------------------------------


def test_extensions_leave_out_storemagic_and_ipysession(make_shell: ShellFactory) -> None:
    shell = make_shell()
    run(shell, "%load_ext storemagic\n%load_ext autoreload")
    # What IPython records when ipysession is loaded (it may not be loadable in isolation here).
    shell.extension_manager.loaded.add("ipysession")
    assert capture_extensions(shell) == ["IPython.extensions.autoreload"]


def test_extension_already_loaded_is_fine(make_shell: ShellFactory) -> None:
    shell = make_shell()
    run(shell, "%load_ext autoreload")
    results = apply_preferences(shell, Preferences(extensions=["IPython.extensions.autoreload"]))
    assert results == [("extension IPython.extensions.autoreload", None)]


def test_extension_failures_are_reported_and_do_not_stop_the_rest(make_shell: ShellFactory) -> None:
    prefs = Preferences(
        extensions=["ipys_no_such_extension", "json", "IPython.extensions.autoreload"],
        magics={"autoreload": "2"},
        env={"IPYS_TEST_AFTER": "1"},
    )
    shell = make_shell()
    results = apply_preferences(shell, prefs)
    reasons = dict(results)
    assert reasons["extension ipys_no_such_extension"] is not None
    assert reasons["extension ipys_no_such_extension"].startswith("not installed")
    assert reasons["extension json"] == "the module has no load_ipython_extension function"
    assert reasons["extension IPython.extensions.autoreload"] is None
    assert reasons["%autoreload 2"] is None
    assert reasons["env IPYS_TEST_AFTER"] is None
    assert os.environ["IPYS_TEST_AFTER"] == "1"
    # Order: extensions, then magics, then env.
    assert [item for item, _ in results] == [
        "extension ipys_no_such_extension",
        "extension json",
        "extension IPython.extensions.autoreload",
        "%autoreload 2",
        "env IPYS_TEST_AFTER",
    ]


# --- failures while replaying magics --------------------------------------------------------------


def test_bad_values_are_reported_rolled_back_and_do_not_stop_the_rest(
    make_shell: ShellFactory,
) -> None:
    shell = make_shell()
    prefs = Preferences(
        magics={
            "xmode": "NoSuchMode",
            "colors": "no-such-theme",
            "precision": "%q",
            "autocall": "7",
            "automagic": "off",
        }
    )
    reasons = dict(apply_preferences(shell, prefs))
    # %xmode only warns on a bad mode: the check after replay catches it.
    assert reasons["%xmode NoSuchMode"] is not None
    assert reasons["%xmode NoSuchMode"].startswith("had no effect")
    assert "Unrecognized mode" in reasons["%xmode NoSuchMode"]
    assert reasons["%colors no-such-theme"] is not None
    assert reasons["%colors no-such-theme"].startswith("failed")
    assert reasons["%precision %q"] is not None
    assert "Precision must be int or format string" in reasons["%precision %q"]
    assert reasons["%autocall 7"] is not None
    assert reasons["%automagic off"] is None
    # Nothing is left half set: %colors sets the trait before failing, and is put back.
    assert shell.InteractiveTB.mode == "Context"
    assert shell.colors == "neutral"
    assert shell.display_formatter.formatters["text/plain"].float_precision == ""
    assert shell.autocall == 0
    assert shell.magics_manager.auto_magic is False
    # The shell still works and still shows tracebacks.
    result = shell.run_cell("1/0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)


def test_magic_of_an_extension_that_is_not_loaded(make_shell: ShellFactory) -> None:
    shell = make_shell()
    reasons = dict(apply_preferences(shell, Preferences(magics={"autoreload": "2"})))
    assert reasons["%autoreload 2"] is not None
    assert "not found" in reasons["%autoreload 2"]


def test_unknown_magics_are_not_run(make_shell: ShellFactory, tmp_path: Path) -> None:
    shell = make_shell()
    marker = tmp_path / "ran"
    prefs = Preferences(magics={"system": f"touch {marker}", "precision": "2"})
    reasons = dict(apply_preferences(shell, prefs))
    assert reasons[f"%system touch {marker}"] == (
        "%system is not a setting this version of ipysession restores"
    )
    assert not marker.exists()
    assert reasons["%precision 2"] is None


def test_replay_is_quiet_unless_asked(
    make_shell: ShellFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    prefs = Preferences(magics={"xmode": "Verbose", "pdb": "on", "automagic": "off"})
    shell = make_shell()
    capsys.readouterr()
    assert ok(apply_preferences(shell, prefs))
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert ok(apply_preferences(make_shell(), prefs, quiet=False))
    out, _ = capsys.readouterr()
    assert "Automatic pdb calling has been turned ON" in out


# --- environment --------------------------------------------------------------------------------


def test_env_set_in_the_session_round_trip(make_shell: ShellFactory) -> None:
    os.environ["IPYS_TEST_CHANGED"] = "before"
    os.environ["IPYS_TEST_SAME"] = "same"
    baseline = dict(os.environ)
    shell = make_shell()
    run(
        shell,
        "%env IPYS_TEST_NEW=1\n%set_env IPYS_TEST_SET two words\n%env IPYS_TEST_CHANGED=after",
    )
    os.environ["PYTEST_IPYS_NOISE"] = "x"
    env = capture_preferences(shell, env_baseline=baseline).env
    assert env == {
        "IPYS_TEST_NEW": "1",
        "IPYS_TEST_SET": "two words",
        "IPYS_TEST_CHANGED": "after",
    }

    os.environ.clear()
    os.environ.update(baseline)
    results = apply_preferences(make_shell(), Preferences(env=env))
    assert sorted(results) == [
        ("env IPYS_TEST_CHANGED", None),
        ("env IPYS_TEST_NEW", None),
        ("env IPYS_TEST_SET", None),
    ]
    assert os.environ["IPYS_TEST_NEW"] == "1"
    assert os.environ["IPYS_TEST_SET"] == "two words"
    assert os.environ["IPYS_TEST_CHANGED"] == "after"
    assert os.environ["IPYS_TEST_SAME"] == "same"


def test_env_process_variables_are_left_out() -> None:
    baseline = dict(os.environ)
    os.environ["JPY_PARENT_PID"] = "123"
    os.environ["OLDPWD"] = "/somewhere"
    os.environ["IPYS_TEST_KEPT"] = "1"
    try:
        assert capture_env(baseline) == {"IPYS_TEST_KEPT": "1"}
    finally:
        os.environ.clear()
        os.environ.update(baseline)


def test_env_values_never_reach_reasons_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-value-\x00-with-nul"
    with caplog.at_level(logging.DEBUG, logger="ipysession"):
        results = apply_env({"IPYS_BAD": secret, "IPYS_GOOD": "fine"})
    try:
        reasons = dict(results)
        assert reasons["env IPYS_BAD"] == "could not be set (ValueError)"
        assert reasons["env IPYS_GOOD"] is None
        assert "s3cr3t" not in caplog.text
        assert all("s3cr3t" not in f"{item} {reason}" for item, reason in results)
    finally:
        os.environ.pop("IPYS_GOOD", None)


# --- cwd ----------------------------------------------------------------------------------------


def test_cwd_round_trip(tmp_path: Path) -> None:
    start = capture_cwd()
    assert start == os.getcwd()
    target = tmp_path / "work dir"
    target.mkdir()
    try:
        assert apply_cwd(str(target)) is None
        assert capture_cwd() == str(target)
    finally:
        os.chdir(start)


def test_missing_cwd_is_reported_and_skipped(tmp_path: Path) -> None:
    start = os.getcwd()
    missing = tmp_path / "gone"
    reason = apply_cwd(str(missing))
    assert reason == f"the directory {missing} no longer exists"
    assert os.getcwd() == start
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    assert apply_cwd(str(a_file)) == f"{a_file} is not a directory"
    assert os.getcwd() == start


def test_capture_cwd_of_a_deleted_directory(tmp_path: Path) -> None:
    start = os.getcwd()
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    os.chdir(doomed)
    try:
        doomed.rmdir()
        with pytest.raises(CaptureError, match="working directory cannot be read"):
            capture_cwd()
    finally:
        os.chdir(start)


# --- matplotlib -----------------------------------------------------------------------------------


def test_capture_never_imports_matplotlib(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        from traitlets.config import Config
        from IPython.terminal.interactiveshell import TerminalInteractiveShell
        from ipysession.capture.preferences import capture_preferences
        cfg = Config()
        cfg.HistoryManager.hist_file = ":memory:"
        cfg.TerminalInteractiveShell.simple_prompt = True
        shell = TerminalInteractiveShell(config=cfg, ipython_dir=sys.argv[1])
        shell.run_cell("%precision 2")
        prefs = capture_preferences(shell, env_baseline=dict(os.environ))
        assert prefs.magics == {"precision": "2"}, prefs.magics
        assert "matplotlib" not in sys.modules
        print("clean")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ipython")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("clean")


@pytest.fixture
def matplotlib_shell(make_shell: ShellFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("matplotlib")
    pytest.importorskip("matplotlib_inline")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    import matplotlib.pyplot as plt

    plt.switch_backend("agg")
    yield make_shell()
    plt.close("all")
    plt.switch_backend("agg")


def test_matplotlib_inline_round_trip(matplotlib_shell: Any, make_shell: ShellFactory) -> None:
    import matplotlib

    run(matplotlib_shell, "%matplotlib inline")
    prefs = capture_preferences(matplotlib_shell, env_baseline={})
    assert prefs.magics == {"matplotlib": "inline"}

    matplotlib.pyplot.switch_backend("agg")
    second = make_shell()
    assert capture_magics(second, env_baseline={}) == {}
    assert ok(apply_preferences(second, prefs))
    assert "inline" in matplotlib.get_backend()
    assert capture_magics(second, env_baseline={}) == {"matplotlib": "inline"}


def test_matplotlib_default_backend_is_not_recorded(matplotlib_shell: Any) -> None:
    # ipykernel starts kernels with MPLBACKEND set to the inline backend.
    run(matplotlib_shell, "%matplotlib inline")
    baseline = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    assert capture_magics(matplotlib_shell, env_baseline=baseline) == {}


def test_matplotlib_without_the_magic_is_not_recorded(matplotlib_shell: Any) -> None:
    run(matplotlib_shell, "import matplotlib.pyplot as plt\nplt.switch_backend('svg')")
    assert capture_magics(matplotlib_shell, env_baseline={}) == {}
