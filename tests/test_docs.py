"""The docs say what the code does: the configuration reference, the magic and the CLI."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import ipysession

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    raise AssertionError("no subcommands")


def test_configuration_reference_is_generated_from_the_traits() -> None:
    spec = importlib.util.spec_from_file_location("gen", DOCS / "generate_config_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert (DOCS / "configuration.md").read_text() == expected, (
        "docs/configuration.md is stale: run python docs/generate_config_reference.py"
    )


def test_every_magic_subcommand_is_documented() -> None:
    from ipysession.magics import build_parser

    guide = (DOCS / "user-guide.md").read_text()
    for command in _subcommands(build_parser()):
        assert f"| `{command}" in guide, f"%session {command} is missing from the user guide"


def test_every_cli_command_is_documented() -> None:
    from ipysession.cli.app import build_parser

    guide = (DOCS / "user-guide.md").read_text()
    for command in _subcommands(build_parser()):
        assert f"`ipysession {command}" in guide, f"ipysession {command} missing from the guide"


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme


def test_public_names_are_complete_and_sorted() -> None:
    public = sorted(ipysession.__all__)
    assert ipysession.__all__ == public
    for name in public:
        assert hasattr(ipysession, name), name
