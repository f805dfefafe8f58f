"""Files of every released format version and of every released package version read forever.

Two kinds of fixtures live in ``tests/fixtures/``, made with the published test key by
``tests/fixtures/make_fixtures.py`` and never remade:

* ``v<N>-session.ipys`` and ``v<N>-blob.ipyb`` (and, from format 2, ``v<N>-head.ipys``, the head
  record naming the session file as generation 1), one set per *format* version;
  ``tests/store/test_migrations.py`` checks their content field by field, this module that there is
  one for every version up to the current one and that a kernel restores it;
* ``release-<X.Y.Z>-session.ipys`` and ``release-<X.Y.Z>-blob.ipyb``, one pair per *released
  package version*: what that release wrote.

How a release adds its fixture: when tagging X.Y.Z, with that tree installed, run
``python tests/fixtures/make_fixtures.py --release`` and commit the two files it writes. Every
later version then reads them here: "a file written by the previous release still reads". There
is no release yet; until the first one is tagged, the newest release fixture is written by this
very tree into a temporary directory, so the path is exercised all the same (the test says so).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.keys import resolution as keystore
from ipysession.keys.crypto import MasterKey
from ipysession.store import SessionStore, fileformat
from ipysession.store.names import session_dir_for
from tests.shell import ipython_shell

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAME = "fixtures/v1.ipynb"  # the session name every fixture holds


def _fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _fixture_script()
KEY = MasterKey(SCRIPT.FIXTURE_KEY, description="fixture test key (public)")


def _version_key(path: Path) -> tuple[int, ...]:
    match = re.fullmatch(r"release-(\d+(?:\.\d+)*)-session\.ipys", path.name)
    assert match, path
    return tuple(int(part) for part in match[1].split("."))


def install(root: Path, session_file: Path, blob_file: Path) -> None:
    """Put a fixture into a store as generation 1 of its session, with its blob and, from
    format 2 on, its head record."""
    sdir = session_dir_for(root, NAME)
    (sdir / "blobs").mkdir(parents=True)
    shutil.copy(session_file, sdir / "gen-00000001.ipys")
    shutil.copy(blob_file, sdir / "blobs" / f"{KEY.content_id(SCRIPT.BLOB_VALUE)}.ipyb")
    head_file = session_file.with_name(session_file.name.replace("-session.", "-head."))
    if head_file.exists():
        shutil.copy(head_file, sdir / "head.ipys")


def check_store(root: Path) -> None:
    with SessionStore(root, key=KEY) as store:
        result = store.read(NAME)
        assert result.problems == []
        assert result.rollback is None
        session = result.session
        assert [h.source for h in session.history][:2] == ["import math", "r = math.pi * 2"]
        assert session.variables["fh"].skipped == "open file handle"
        blob = session.variables["big"].blob
        assert blob is not None
        assert store.read_blob(NAME, blob) == SCRIPT.BLOB_VALUE
        assert session.connections["db"].secrets == {"password": "fixture-password"}


@pytest.fixture
def kernel_shell() -> Iterator[Any]:
    with ipython_shell(autosave=False, session_name=NAME, autorestore="never") as shell:
        yield shell


def check_restore(shell: Any) -> None:
    """What a starting kernel makes of it: values, imports, history, the rest reported."""
    # A kernel whose key is the fixture key (an in-memory test double, see keystore.memory_key).
    ipysession.load_ipython_extension(shell)
    manager = get_manager(shell)
    assert manager is not None
    manager._key = keystore.memory_key(SCRIPT.FIXTURE_KEY)
    report = manager.restore()
    assert report.found
    assert report.problems == []
    assert shell.user_ns["r"] == pytest.approx(6.283185307179586)
    assert shell.user_ns["p"].__name__ == "posixpath"
    assert "math" in report.imports
    assert report.history == 3
    assert dict(report.skipped)["fh"].startswith("not saved")


def test_every_format_version_has_a_fixture() -> None:
    for version in range(1, fileformat.FORMAT_VERSION + 1):
        assert (FIXTURES / f"v{version}-session.ipys").is_file(), version
        assert (FIXTURES / f"v{version}-blob.ipyb").is_file(), version
        assert (FIXTURES / f"v{version}-head.ipys").is_file() == (version >= 2), version


@pytest.mark.parametrize(
    "version", range(1, fileformat.FORMAT_VERSION + 1), ids=lambda v: f"format-v{v}"
)
def test_a_format_fixture_reads_through_the_store_and_a_kernel(
    version: int, isolated_dirs: Path, kernel_shell: Any
) -> None:
    install(
        isolated_dirs,
        FIXTURES / f"v{version}-session.ipys",
        FIXTURES / f"v{version}-blob.ipyb",
    )
    check_store(isolated_dirs)
    check_restore(kernel_shell)


def test_a_file_written_by_the_previous_release_still_reads(
    isolated_dirs: Path,
    kernel_shell: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases = sorted(FIXTURES.glob("release-*-session.ipys"), key=_version_key)
    current = tuple(int(part) for part in ipysession.__version__.split(".")[:3])
    previous = [path for path in releases if _version_key(path) < current]
    if previous:
        session_file = previous[-1]
    else:
        # No release yet: stand in with what this tree writes, through the same script.
        made = tmp_path / "made"
        made.mkdir()
        monkeypatch.setattr(SCRIPT, "HERE", made)
        assert SCRIPT.main(["--release"]) == 0
        capsys.readouterr()
        [session_file] = made.glob("release-*-session.ipys")
    blob_file = session_file.with_name(session_file.name.replace("-session.ipys", "-blob.ipyb"))
    install(isolated_dirs, session_file, blob_file)
    check_store(isolated_dirs)
    check_restore(kernel_shell)


def test_a_format_1_fixture_reads_as_before_without_rollback_checks(isolated_dirs: Path) -> None:
    # Format 1 files say nothing about which generation they are: renamed, one still reads
    # (documented in docs/file-format.md), and no head record is asked for.
    install(isolated_dirs, FIXTURES / "v1-session.ipys", FIXTURES / "v1-blob.ipyb")
    sdir = session_dir_for(isolated_dirs, NAME)
    (sdir / "gen-00000001.ipys").rename(sdir / "gen-00000009.ipys")
    with SessionStore(isolated_dirs, key=KEY) as store:
        result = store.read(NAME)
        assert (result.generation, result.problems, result.rollback) == (9, [], None)


def test_a_format_2_fixture_renamed_is_refused_as_a_substitution(isolated_dirs: Path) -> None:
    install(isolated_dirs, FIXTURES / "v2-session.ipys", FIXTURES / "v2-blob.ipyb")
    sdir = session_dir_for(isolated_dirs, NAME)
    shutil.copy(sdir / "gen-00000001.ipys", sdir / "gen-00000009.ipys")
    with SessionStore(isolated_dirs, key=KEY) as store:
        result = store.read(NAME)
        assert result.generation == 1
        [problem] = result.problems
        assert problem.path == sdir / "gen-00000009.ipys"
        assert "holds generation 1 of this session, not generation 9" in problem.message
        assert problem.quarantined_to is not None
        assert result.rollback is None  # the head names generation 1, which was read
