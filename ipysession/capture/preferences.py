"""Shell preferences: loaded extensions, magic settings, ``%env`` variables and the cwd.

(Over 500 lines on purpose: each magic setting needs its own reading of the shell and its own
quiet replay, and they share one rule, "record only what differs from a fresh shell"; the table
of them below is the module.)

:func:`capture_preferences` reads the live state of a shell into a
:class:`~ipysession.model.Preferences`; :func:`apply_preferences` replays it onto another shell.
Restore is meant to be cheap and quiet, so capture records a magic only when its value differs
from what a fresh shell with the same configuration would have, and replay swallows the
messages magics print (``%pdb on`` says "Automatic pdb calling has been turned ON").

What is captured
----------------
``extensions``
    ``shell.extension_manager.loaded``, sorted, less ``ipysession`` itself and ``storemagic``
    (IPython loads that one by default). Replayed with ``extension_manager.load_extension``, which
    is a no-op for an extension the new shell already loaded from its configuration.
``magics`` (magic name -> argument replayed with ``shell.run_line_magic(name, argument)``)
    In replay order:

    ``autoreload``
        The mode of the loaded ``AutoreloadMagics`` (found in ``shell.magics_manager.registry``):
        ``"0"``..``"3"`` from its reloader's ``enabled``/``check_all``/``autoload_obj``, plus
        ``--full`` when IPython 9's source-diffing reloader was switched off and
        ``--hide-errors`` when set. The numeric modes work on IPython 8 and 9 alike. The
        ``--print``/``--log`` reporting choice is not captured. Fresh value: ``"0"``.
    ``aimport``
        Modules marked with ``%aimport`` (``"-skipped, reloaded"``). Replayed one module at a
        time, so one module that no longer imports does not stop the others.
    ``precision``
        The ``text/plain`` formatter's ``float_precision``.
    ``xmode``
        ``shell.InteractiveTB.mode``; fresh value: the shell's ``xmode`` trait (its configuration).
    ``colors``
        ``shell.colors`` (IPython 9 themes such as ``linux``; IPython 8 schemes such as ``Linux``).
    ``pdb``
        ``shell.call_pdb`` as ``on``/``off``; fresh value: the shell's ``pdb`` trait.
    ``automagic``
        ``shell.magics_manager.auto_magic`` as ``on``/``off`` (configured as
        ``c.MagicsManager.auto_magic``).
    ``autocall``
        ``shell.autocall`` (``0``, ``1`` or ``2``).
    ``matplotlib``
        See below.

    "Fresh value" is the value from the shell's configuration (``c.InteractiveShell.colors``,
    ``ipython --colors=...``) where one is set, else the trait's default.

``env``
    Variables of ``os.environ`` added or changed since ``env_baseline`` (the copy the extension
    took when it loaded): what ``%env NAME=value`` and ``%set_env`` did, and anything a cell
    assigned to ``os.environ``. Variables that describe a process rather than a user's choice
    (``PWD``, ``OLDPWD``, ``SHLVL``, ``_``, and the ``JPY_``, ``PYDEVD_``, ``DEBUGPY_``,
    ``PYTEST_``, ``COV_CORE_`` families) are left out. Variables a cell deleted are not tracked.
    Values are stored inside the encrypted session and never logged.

The ``%matplotlib`` backend
---------------------------
Recorded from the live state, not from a ``%matplotlib`` line found in the history: a line in
the history may have failed, sat in a branch that never ran, or been undone by a later
``plt.switch_backend``, and the backend may have been chosen by ``run_line_magic`` in a script.
The rules:

1. Nothing is recorded unless ``matplotlib.pyplot`` is already imported. Capture never imports
   matplotlib (that alone costs a few hundred milliseconds).
2. Nothing is recorded unless ``%matplotlib`` or ``%pylab`` was used in this shell (IPython's
   ``enable_matplotlib`` installs a matplotlib-aware runner for ``%run``; that is the marker).
   A backend picked by matplotlib itself, or by ``matplotlib.use()`` in a cell, is code the
   user re-runs, not a preference.
3. The backend is read without making matplotlib resolve it (``rcParams._get_backend_or_none()``
   where it exists), and nothing is recorded if it equals the backend a fresh process would get:
   ``MPLBACKEND`` from ``env_baseline`` (ipykernel sets it to the inline backend), else the
   backend of the user's ``matplotlibrc``. So ``%matplotlib inline`` in a notebook records
   nothing, and a restore does not pay for importing pyplot.
4. The argument recorded is the name ``%matplotlib`` understands: the GUI IPython selected
   (``qt``, ``tk``, ...) when there is one, ``inline`` and ``widget`` for the Jupyter backends,
   else the backend's name (IPython 9 with matplotlib >= 3.9 accepts backend names and
   ``module://`` names).

Replay
------
:func:`apply_preferences` loads the extensions first, then replays the magics, then sets the
environment variables, and returns one ``(item, reason)`` pair per item, ``reason`` being ``None``
when the item came back. A failure in one item never stops the rest. After each magic it reads
the state back: several magics only warn when given a bad value (``%xmode``), so an item whose
value did not take is reported with the warning it gave. Only the magics listed above are
replayed; a name this version does not know is reported and skipped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipysession.errors import CaptureError
from ipysession.model import Preferences

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "apply_cwd",
    "apply_env",
    "apply_preferences",
    "capture_cwd",
    "capture_env",
    "capture_extensions",
    "capture_magics",
    "capture_preferences",
]

log = logging.getLogger("ipysession")

_EXCLUDED_EXTENSIONS = frozenset({"storemagic", "IPython.extensions.storemagic", "ipysession"})
_EXCLUDED_ENV_NAMES = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
_EXCLUDED_ENV_PREFIXES = ("JPY_", "PYDEVD_", "DEBUGPY_", "PYTEST_", "COV_CORE_")

_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# Backend names -> the %matplotlib argument. matplotlib >= 3.9 names the Jupyter backends
# "inline" and "widget" itself; older ones use the module:// names.
_BACKEND_ARGUMENTS = {
    _INLINE_BACKEND: "inline",
    "module://ipympl.backend_nbagg": "widget",
    "ipympl": "widget",
    "nbagg": "notebook",
}


# --- reading shell state ------------------------------------------------------------------------


def _configured(obj: Any, name: str) -> Any:
    """The value trait ``name`` of ``obj`` starts with: from its config, else its default."""
    config = getattr(obj, "config", None)
    if config is not None:
        for cls in type(obj).__mro__:
            # ``in`` first: indexing a traitlets Config creates missing sections.
            section = config[cls.__name__] if cls.__name__ in config else None  # noqa: SIM401
            if isinstance(section, Mapping) and name in section:
                value = section[name]
                if isinstance(value, (str, int, bool)):
                    return value
    return obj.trait_defaults(name)


def _on_off(value: object) -> str:
    return "on" if value else "off"


def _autoreload_magics(shell: InteractiveShell) -> Any:
    registry = getattr(getattr(shell, "magics_manager", None), "registry", None) or {}
    return registry.get("AutoreloadMagics")


def _autoreload_mode(shell: InteractiveShell) -> str | None:
    magics = _autoreload_magics(shell)
    reloader = getattr(magics, "_reloader", None)
    if reloader is None:
        return None
    if not getattr(reloader, "enabled", False):
        return "0"
    if getattr(reloader, "autoload_obj", False):
        mode = "3"
    elif getattr(reloader, "check_all", False):
        mode = "2"
    else:
        mode = "1"
    deduper = getattr(reloader, "deduper_reloader", None)
    if deduper is not None and not getattr(deduper, "_enabled", getattr(deduper, "enabled", True)):
        mode += " --full"
    if getattr(reloader, "hide_errors", False):
        mode += " --hide-errors"
    return mode


def _aimported(shell: InteractiveShell) -> str | None:
    reloader = getattr(_autoreload_magics(shell), "_reloader", None)
    if reloader is None:
        return None
    skipped = [f"-{name}" for name in sorted(getattr(reloader, "skip_modules", {}))]
    marked = sorted(getattr(reloader, "modules", {}))
    return ", ".join(skipped + marked)


def _plain_formatter(shell: InteractiveShell) -> Any:
    formatter: Any = shell.display_formatter
    return formatter.formatters["text/plain"]


def _precision(shell: InteractiveShell) -> str | None:
    return str(_plain_formatter(shell).float_precision)


def _xmode(shell: InteractiveShell) -> str | None:
    return str(shell.InteractiveTB.mode)


def _colors(shell: InteractiveShell) -> str | None:
    return str(shell.colors)


def _pdb(shell: InteractiveShell) -> str | None:
    return _on_off(shell.call_pdb)


def _automagic(shell: InteractiveShell) -> str | None:
    return _on_off(shell.magics_manager.auto_magic)


def _autocall(shell: InteractiveShell) -> str | None:
    return str(shell.autocall)


def _matplotlib_backend() -> str | None:
    """The backend pyplot uses now, or ``None``; never imports matplotlib, never resolves it."""
    if "matplotlib.pyplot" not in sys.modules:
        return None
    matplotlib = sys.modules.get("matplotlib")
    params = getattr(matplotlib, "rcParams", None)
    if params is None:
        return None
    getter = getattr(params, "_get_backend_or_none", None)
    # Plain dict access: ``rcParams["backend"]`` would resolve an "auto" backend, importing pyplot
    # machinery and possibly a GUI toolkit.
    backend = getter() if callable(getter) else dict.get(params, "backend")
    return backend if isinstance(backend, str) else None


def _matplotlib_default(env_baseline: Mapping[str, str]) -> str | None:
    if env_baseline.get("MPLBACKEND"):
        return env_baseline["MPLBACKEND"]
    matplotlib = sys.modules.get("matplotlib")
    original = getattr(matplotlib, "rcParamsOrig", None)
    if original is None:
        return None
    getter = getattr(original, "_get_backend_or_none", None)
    backend = getter() if callable(getter) else dict.get(original, "backend")
    return backend if isinstance(backend, str) else None


def _matplotlib_enabled_by_ipython(shell: InteractiveShell) -> bool:
    registry = getattr(shell.magics_manager, "registry", {})
    execution = registry.get("ExecutionMagics")
    return getattr(execution, "default_runner", None) is not None


def _matplotlib_argument(shell: InteractiveShell, backend: str) -> str:
    name = _backend_key(backend)
    if name in _BACKEND_ARGUMENTS.values():
        return name
    if "matplotlib.backends.registry" in sys.modules:
        # matplotlib >= 3.9 resolves backend names (and module:// names) for %matplotlib.
        return name
    gui = getattr(shell, "pylab_gui_select", None)
    if isinstance(gui, str) and gui and gui != "inline":
        return gui
    return name


def _matplotlib_capture(shell: InteractiveShell, env_baseline: Mapping[str, str]) -> str | None:
    if not _matplotlib_enabled_by_ipython(shell):
        return None
    backend = _matplotlib_backend()
    if backend is None:
        return None
    default = _matplotlib_default(env_baseline)
    if default is not None and _backend_key(default) == _backend_key(backend):
        return None
    return _matplotlib_argument(shell, backend)


def _backend_key(name: str) -> str:
    """One spelling per backend: ``"inline"`` for the inline backend whatever it was called."""
    name = name.strip()
    if not name.startswith("module://"):
        name = name.lower()
    return _BACKEND_ARGUMENTS.get(name, name)


def _same(a: object, b: object) -> bool:
    return str(a).strip().casefold() == str(b).strip().casefold()


@dataclass(frozen=True)
class _Setting:
    """One replayable magic: how to read it now, and what a fresh shell has."""

    magic: str
    read: Callable[[InteractiveShell], str | None]
    fresh: Callable[[InteractiveShell], object]
    verify: bool = True


# Replay order. autoreload first: the extension is loaded by then, and aimport needs the mode.
_SETTINGS: tuple[_Setting, ...] = (
    _Setting("autoreload", _autoreload_mode, lambda shell: "0"),
    _Setting("aimport", _aimported, lambda shell: "", verify=False),
    _Setting(
        "precision",
        _precision,
        lambda shell: _configured(_plain_formatter(shell), "float_precision"),
    ),
    _Setting("xmode", _xmode, lambda shell: shell.xmode),
    _Setting("colors", _colors, lambda shell: _configured(shell, "colors")),
    _Setting("pdb", _pdb, lambda shell: _on_off(shell.pdb)),
    # The magics manager holds automagic (``c.MagicsManager.auto_magic``); the shell's trait
    # only mirrors it.
    _Setting(
        "automagic",
        _automagic,
        lambda shell: _on_off(_configured(shell.magics_manager, "auto_magic")),
    ),
    _Setting("autocall", _autocall, lambda shell: _configured(shell, "autocall")),
)
_BY_NAME = {setting.magic: setting for setting in _SETTINGS}
_KNOWN_MAGICS = frozenset(_BY_NAME) | {"matplotlib"}


# --- capture ------------------------------------------------------------------------------------


def capture_extensions(shell: InteractiveShell) -> list[str]:
    """Loaded extensions to load again, sorted (``ipysession`` and ``storemagic`` left out)."""
    loaded = getattr(getattr(shell, "extension_manager", None), "loaded", ()) or ()
    return sorted(
        name
        for name in loaded
        if name not in _EXCLUDED_EXTENSIONS and not name.startswith("ipysession.")
    )


def capture_magics(shell: InteractiveShell, *, env_baseline: Mapping[str, str]) -> dict[str, str]:
    """Magic settings that differ from a fresh shell's, in replay order.

    Each is read on its own; one that cannot be read is logged and left out.
    """
    magics: dict[str, str] = {}
    for setting in _SETTINGS:
        try:
            value = setting.read(shell)
            if value is not None and not _same(value, setting.fresh(shell)):
                magics[setting.magic] = value
        except Exception:
            log.warning("Could not read the %%%s setting", setting.magic, exc_info=True)
    try:
        backend = _matplotlib_capture(shell, env_baseline)
        if backend is not None:
            magics["matplotlib"] = backend
    except Exception:
        log.warning("Could not read the matplotlib backend", exc_info=True)
    return magics


def _env_excluded(name: str) -> bool:
    return name in _EXCLUDED_ENV_NAMES or name.startswith(_EXCLUDED_ENV_PREFIXES)


def capture_env(env_baseline: Mapping[str, str]) -> dict[str, str]:
    """Environment variables added or changed since ``env_baseline`` (values never logged)."""
    return {
        name: value
        for name, value in os.environ.items()
        if env_baseline.get(name) != value and not _env_excluded(name)
    }


def capture_preferences(shell: InteractiveShell, *, env_baseline: Mapping[str, str]) -> Preferences:
    """Everything :func:`apply_preferences` replays: extensions, magic settings, ``%env``."""
    return Preferences(
        extensions=capture_extensions(shell),
        magics=capture_magics(shell, env_baseline=env_baseline),
        env=capture_env(env_baseline),
    )


def capture_cwd() -> str:
    """The current working directory.

    Raises :class:`~ipysession.errors.CaptureError` when it no longer exists (deleted from under
    the process).
    """
    try:
        return os.getcwd()  # noqa: PTH109 (a str is wanted, not a Path)
    except OSError as exc:
        msg = f"The current working directory cannot be read ({exc.strerror or exc})"
        raise CaptureError(msg, hint="Change to an existing directory with %cd") from exc


# --- apply --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quietly(quiet: bool) -> Iterator[list[str]]:
    """Swallow what a magic prints (when ``quiet``); collect its warnings, then its output.

    The list it yields is filled when the block ends: warning messages first, then the
    non-empty lines printed, each collapsed to one line, for use as a reason.
    """
    messages: list[str] = []
    sink = io.StringIO()
    with contextlib.ExitStack() as stack:
        if quiet:
            stack.enter_context(contextlib.redirect_stdout(sink))
            stack.enter_context(contextlib.redirect_stderr(sink))
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        try:
            yield messages
        finally:
            messages.extend(_one_line(str(w.message)) for w in caught)
            messages.extend(
                _one_line(line) for line in sink.getvalue().splitlines() if line.strip()
            )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    text = _one_line(str(exc))
    return f"failed: {type(exc).__name__}: {text}" if text else f"failed: {type(exc).__name__}"


def _load_extension(shell: InteractiveShell, name: str, *, quiet: bool) -> str | None:
    try:
        with _quietly(quiet):
            manager: Any = shell.extension_manager
            outcome = manager.load_extension(name)
    except ModuleNotFoundError as exc:
        return f"not installed ({_reason(exc)})"
    except Exception as exc:
        log.warning("Could not load extension %s", name, exc_info=True)
        return _reason(exc)
    if outcome == "no load function":
        return "the module has no load_ipython_extension function"
    return None


def _run_magic(shell: InteractiveShell, name: str, argument: str, *, quiet: bool) -> str | None:
    if name not in _KNOWN_MAGICS:
        return f"%{name} is not a setting this version of ipysession restores"
    if name == "aimport":
        return _run_aimport(shell, argument, quiet=quiet)
    setting = _BY_NAME.get(name)
    before = _read(setting, shell)
    try:
        with _quietly(quiet) as messages:
            shell.run_line_magic(name, argument)
    except Exception as exc:
        log.warning("Could not restore %%%s", name, exc_info=True)
        _roll_back(shell, name, before)
        return _reason(exc)
    if setting is None or not setting.verify:
        return None
    now = _read(setting, shell)
    if now is not None and _same(now, argument):
        return None
    _roll_back(shell, name, before)
    detail = messages[0] if messages else f"the setting stayed {now!r}"
    return f"had no effect ({detail})"


def _read(setting: _Setting | None, shell: InteractiveShell) -> str | None:
    if setting is None:
        return None
    try:
        return setting.read(shell)
    except Exception:
        log.debug("Could not read the %%%s setting", setting.magic, exc_info=True)
        return None


def _roll_back(shell: InteractiveShell, name: str, before: str | None) -> None:
    """Put back the value a failed replay may have half set (``%colors`` sets, then fails)."""
    if before is None:
        return
    try:
        with _quietly(True):
            shell.run_line_magic(name, before)
    except Exception:
        log.warning("Could not put %%%s back to its previous value", name, exc_info=True)


def _run_aimport(shell: InteractiveShell, argument: str, *, quiet: bool) -> str | None:
    failed: list[str] = []
    for module in (part.strip() for part in argument.split(",")):
        if not module:
            continue
        try:
            with _quietly(quiet):
                shell.run_line_magic("aimport", module)
        except Exception as exc:
            log.warning("Could not restore %%aimport %s", module, exc_info=True)
            failed.append(f"{module}: {_reason(exc)}")
    return "; ".join(failed) if failed else None


def apply_env(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Set each variable in ``os.environ``; one ``("env NAME", reason)`` per variable."""
    results: list[tuple[str, str | None]] = []
    for name, value in env.items():
        item = f"env {name}"
        try:
            if os.environ.get(name) != value:
                os.environ[name] = value
        except (ValueError, OSError, TypeError) as exc:
            # The message may quote the value: say only what kind of error it was.
            results.append((item, f"could not be set ({type(exc).__name__})"))
            continue
        results.append((item, None))
    return results


def apply_preferences(
    shell: InteractiveShell, prefs: Preferences, *, quiet: bool = True
) -> list[tuple[str, str | None]]:
    """Replay ``prefs`` onto ``shell``: extensions, then magics, then environment variables.

    Returns one ``(item, reason)`` per item in that order (``"extension autoreload"``,
    ``"%xmode Verbose"``, ``"env NAME"``), ``reason`` being ``None`` when the item came back.
    Output the magics print is swallowed unless ``quiet`` is false. Never raises for one item.
    """
    results: list[tuple[str, str | None]] = []
    for name in prefs.extensions:
        results.append((f"extension {name}", _load_extension(shell, name, quiet=quiet)))
    for name, argument in prefs.magics.items():
        item = f"%{name} {argument}".rstrip()
        results.append((item, _run_magic(shell, name, argument, quiet=quiet)))
    results.extend(apply_env(prefs.env))
    return results


def apply_cwd(path: str) -> str | None:
    """Change to ``path``; ``None`` when done, else why it was skipped (the cwd is unchanged)."""
    try:
        os.chdir(path)
    except FileNotFoundError:
        return f"the directory {path} no longer exists"
    except NotADirectoryError:
        return f"{path} is not a directory"
    except PermissionError:
        return f"permission denied for {path}"
    except OSError as exc:
        return f"cannot change to {path} ({exc.strerror or type(exc).__name__})"
    return None
