"""Every `renkei` command and option has help text (sqlite-utils' test_commands_have_help)."""

from __future__ import annotations

import argparse

import pytest

from renkei.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_has_help() -> None:
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"gen", "import", "hub", "box", "demo", "bench"} <= set(commands)
    helps = {
        a.dest: a.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for a in action._choices_actions
    }
    for name, sub in commands.items():
        assert helps.get(name), f"command {name} has no help"
        for action in sub._actions:
            if action.dest != "help" and action.help != argparse.SUPPRESS:
                assert action.help, f"{name} {action.dest} has no help"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "renkei" in capsys.readouterr().out
