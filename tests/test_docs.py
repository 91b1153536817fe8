"""The README documents every setting and every CLI command (as Datasette's test_docs does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from voicewatch.cli import app
from voicewatch.config import ENV_VARS as CONFIG_VARS

ENV_VARS = CONFIG_VARS  # config.py is the only reader of the environment

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", ENV_VARS)
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in README


def _commands() -> list[str]:
    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


def test_every_command_is_documented() -> None:
    missing = [c for c in _commands() if f"voicewatch {c}" not in README]
    assert not missing, f"README lacks: {missing}"


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
