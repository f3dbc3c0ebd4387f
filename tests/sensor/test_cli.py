"""What a new user meets on the command line: help for every option with its default, paths as typed."""
from __future__ import annotations

import argparse

import pytest

from otsensor.sensor.cli import build_parser, shows_default
from tests.cli import PCAPS, otsensor

def parsers(parser: argparse.ArgumentParser, name: str = "otsensor"):
    """Every (sub)command's parser, by its command line."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def options():
    for command, parser in parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                yield pytest.param(parser, action, id=f"{command} {'/'.join(action.option_strings) or action.dest}")


@pytest.mark.parametrize("parser, action", list(options()))
def test_every_option_has_help_that_shows_its_default(parser, action):
    assert action.help, "no help text"
    shown = parser._get_formatter()._expand_help(action)
    if shows_default(action.default):
        default = action.default
        spellings = {str(default), f"{default:g}"} if isinstance(default, (int, float)) else {str(default)}
        assert any(f"default: {v}" in shown or f"default {v}" in shown for v in spellings), shown


@pytest.mark.parametrize("typed, shown", [("out", "out/"), ("out/", "out/"), ("out//", "out/")])
def test_the_output_directory_is_printed_as_typed(tmp_path, typed, shown):
    proc = otsensor("analyze", PCAPS / "modbus_hmi.pcap", "-o", f"{tmp_path}/{typed}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(f"Output written to {tmp_path}/{shown}"), proc.stdout[-200:]
