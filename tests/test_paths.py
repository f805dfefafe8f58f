"""Where sessions and the key file live, frozen per platform.

A platformdirs release that resolves any of these differently would move users' sessions (or make
a kernel create a new key and orphan every existing session): it must fail here first. The
platform is chosen by handing platformdirs' own per-OS class to ``platformdirs.PlatformDirs``
(what its ``__init__`` does from ``sys.platform``); the OS answers are mocked: the home directory
(``$HOME``) on Linux and macOS, the known-folder lookup (``get_win_folder``) and path syntax
(``ntpath``) on Windows. If platformdirs renames what is patched here, this test fails too, which
is the point: someone looks.
"""

from __future__ import annotations

import ast
import ntpath
import os
import stat
import sys
import types
from pathlib import Path

import platformdirs
import pytest
from packaging.requirements import Requirement
from platformdirs.macos import MacOS
from platformdirs.unix import Unix

from ipysession import paths
from ipysession.store import SessionStore
from tests.builders import KEY, make_session

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
XDG = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_DATA_DIRS", "XDG_CONFIG_DIRS")
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
#: platformdirs' Unix and macOS classes find the home directory through $HOME, which a Windows host
#: does not read: their answers are frozen on POSIX hosts (CI runs Linux).
posix_host = pytest.mark.skipif(os.name != "posix", reason="$HOME is not the home on Windows")


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The conftest points both directories at tmp_path; these tests want platformdirs' answer."""
    for name in (paths.ROOT_ENV, paths.CONFIG_ENV, *XDG):
        monkeypatch.delenv(name, raising=False)


def on_posix(monkeypatch: pytest.MonkeyPatch, cls: type, home: str) -> None:
    monkeypatch.setattr(platformdirs, "PlatformDirs", cls)
    monkeypatch.setenv("HOME", home)


def on_windows(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """platformdirs' Windows class, asking a fake shell for known folders; returns what it asked."""
    from platformdirs import windows

    folders = {
        "CSIDL_LOCAL_APPDATA": r"C:\Users\ada\AppData\Local",
        "CSIDL_APPDATA": r"C:\Users\ada\AppData\Roaming",
        "CSIDL_COMMON_APPDATA": r"C:\ProgramData",
    }
    asked: list[str] = []

    def get_win_folder(csidl_name: str) -> str:
        asked.append(csidl_name)
        return folders[csidl_name]

    class WindowsOs(types.ModuleType):
        path = ntpath

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

    monkeypatch.setattr(windows, "get_win_folder", get_win_folder)
    monkeypatch.setattr(windows, "os", WindowsOs("os"))
    monkeypatch.setattr(platformdirs, "PlatformDirs", windows.Windows)
    return asked


# --- resolved locations per platform ------------------------------------------------------------


@posix_host
def test_linux_without_xdg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    on_posix(monkeypatch, Unix, "/home/ada")
    assert str(paths.session_root()) == "/home/ada/.local/share/ipysession"
    assert str(paths.config_dir()) == "/home/ada/.config/ipysession"


@posix_host
def test_linux_with_xdg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    on_posix(monkeypatch, Unix, "/home/ada")
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/ada/data")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/srv/ada/config")
    assert str(paths.session_root()) == "/srv/ada/data/ipysession"
    assert str(paths.config_dir()) == "/srv/ada/config/ipysession"


@posix_host
def test_linux_ignores_relative_xdg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The XDG spec says a relative value is invalid; such a value must not move the store."""
    on_posix(monkeypatch, Unix, "/home/ada")
    monkeypatch.setenv("XDG_DATA_HOME", "data")
    monkeypatch.setenv("XDG_CONFIG_HOME", "config")
    assert str(paths.session_root()) == "/home/ada/.local/share/ipysession"
    assert str(paths.config_dir()) == "/home/ada/.config/ipysession"


@posix_host
def test_macos_keeps_data_and_key_in_application_support(monkeypatch: pytest.MonkeyPatch) -> None:
    on_posix(monkeypatch, MacOS, "/Users/ada")
    support = "/Users/ada/Library/Application Support/ipysession"
    assert str(paths.session_root()) == support
    assert str(paths.config_dir()) == support  # one directory: the key file lies beside sessions/


@posix_host
def test_macos_follows_xdg_variables_where_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen as it resolves today. Earlier 4.x releases ignored XDG variables on macOS; a minor
    release began to honour them (borgbackup/borg#9558 hit the same), so the ``<5`` pin alone did
    not keep such a user's store in Application Support."""
    on_posix(monkeypatch, MacOS, "/Users/ada")
    monkeypatch.setenv("XDG_DATA_HOME", "/Users/ada/.local/share")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/Users/ada/.config")
    assert str(paths.session_root()) == "/Users/ada/.local/share/ipysession"
    assert str(paths.config_dir()) == "/Users/ada/.config/ipysession"


def test_windows_uses_local_appdata_without_an_author_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = on_windows(monkeypatch)
    local = r"C:\Users\ada\AppData\Local\ipysession"
    # appauthor=False: not ...\Local\ipysession\ipysession; roaming off: Local, not Roaming.
    assert str(paths.session_root()) == local
    assert str(paths.config_dir()) == local
    assert set(asked) == {"CSIDL_LOCAL_APPDATA"}


@posix_host
def test_resolving_creates_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    on_posix(monkeypatch, Unix, str(tmp_path))
    paths.session_root()
    paths.config_dir()
    assert list(tmp_path.iterdir()) == []


@posix_host
def test_sessions_are_written_under_the_resolved_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """End to end on this machine: a store opened without a root writes where Linux users look."""
    on_posix(monkeypatch, Unix, str(tmp_path))
    with SessionStore(key=KEY) as store:
        store.write(make_session("frozen"))
    root = tmp_path / ".local" / "share" / "ipysession"
    written = [p.name for p in (root / "sessions").rglob("gen-*.ipys") if p.is_file()]
    assert written == ["gen-00000001.ipys"]
    with SessionStore(root, key=KEY) as again:
        assert again.read("frozen").session.name == "frozen"


# --- overrides ----------------------------------------------------------------------------------


@posix_host
def test_environment_overrides_win_over_platformdirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_posix(monkeypatch, Unix, "/home/ada")
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/ada/data")
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(paths.CONFIG_ENV, str(tmp_path / "config"))
    assert paths.session_root() == tmp_path / "data"
    assert paths.config_dir() == tmp_path / "config"


@posix_host
def test_overrides_expand_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ada")
    monkeypatch.setenv("IPYSESSION_DIR", "~/sessions")
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", "~/keys")
    assert str(paths.session_root()) == "/home/ada/sessions"
    assert str(paths.config_dir()) == "/home/ada/keys"


@posix_host
def test_empty_overrides_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    on_posix(monkeypatch, Unix, "/home/ada")
    monkeypatch.setenv("IPYSESSION_DIR", "")
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", "")
    assert str(paths.session_root()) == "/home/ada/.local/share/ipysession"
    assert str(paths.config_dir()) == "/home/ada/.config/ipysession"


# --- private directories ------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_ensure_private_dir_creates_0700(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert paths.ensure_private_dir(target) == target
    assert mode(target) == 0o700
    assert paths.is_private(target)


@posix_only
def test_ensure_private_dir_tightens_an_existing_directory(tmp_path: Path) -> None:
    target = tmp_path / "loose"
    target.mkdir()
    target.chmod(0o755)
    assert not paths.is_private(target)
    paths.ensure_private_dir(target)
    assert mode(target) == 0o700
    assert paths.is_private(target)


@posix_only
def test_is_private_refuses_group_or_other_access(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    for bits, private in ((0o600, True), (0o640, False), (0o604, False), (0o400, True)):
        target.chmod(bits)
        assert paths.is_private(target) is private, oct(bits)


@posix_only
def test_the_store_makes_its_directories_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_posix(monkeypatch, Unix, str(tmp_path))
    with SessionStore(key=KEY) as store:
        store.write(make_session("private"))
    root = tmp_path / ".local" / "share" / "ipysession"
    directories = [root, *(p for p in root.rglob("*") if p.is_dir())]
    assert len(directories) >= 3  # root, sessions/, the session's own directory
    assert {p.name: mode(p) for p in directories} == {p.name: 0o700 for p in directories}


# --- the pin and the single owner ---------------------------------------------------------------


def test_platformdirs_is_pinned_to_one_major_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (pin,) = [
        Requirement(spec)
        for spec in project["dependencies"]
        if Requirement(spec).name == "platformdirs"
    ]
    major = int(platformdirs.__version__.split(".")[0])
    assert pin.specifier.contains(f"{major}.0")
    assert not pin.specifier.contains(f"{major + 1}.0"), f"{pin}: no upper bound on the major"
    assert not pin.specifier.contains(f"{major - 1}.99"), f"{pin}: no lower bound on the major"


def test_only_paths_imports_platformdirs() -> None:
    importers = []
    for module in sorted((REPO / "ipysession").rglob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "platformdirs" for name in names):
                importers.append(module.relative_to(REPO).as_posix())
    assert importers == ["ipysession/paths.py"]
