"""``sysexport --help`` and every command's help describe each argument, and docs/cli.md
(written by tools/clidoc from the parser) says what the parser says."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from sysexport.cli import COMMANDS, build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **sub.choices}


def test_every_argument_has_help():
    """Every option and positional of the top level and of every command (those of
    COMMANDS added later too) has a help text; every command has a one-line summary."""
    missing = []
    for name, parser in _commands().items():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"sysexport {name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in sub._choices_actions}
    assert {n for names, _ in COMMANDS for n in names} == set(summaries)
    assert all(summaries.values()), summaries


def test_help_shows_each_argument():
    """``sysexport COMMAND --help`` lists every option it has with its help (in this
    process for every command; one real run for the top level and one command)."""
    for name, parser in _commands().items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if action.help != argparse.SUPPRESS and action.option_strings:
                assert action.option_strings[-1] in text, (name, action.option_strings)
                assert " ".join((action.help or "").split()[:4]).split("%")[0] in text, (name, action.help)
    for argv in ([], ["verify"]):
        p = subprocess.run([sys.executable, "-m", "sysexport", *argv, "--help"], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT, COLUMNS="100"))
        assert p.returncode == 0, p.stderr
        assert ("--json" if argv else "--version") in p.stdout, p.stdout


def test_docs_cli_md_is_fresh():
    """docs/cli.md below its marker is what tools/clidoc makes of this parser: run
    tools/clidoc after changing an option or adding a command."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "clidoc"), "--check"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8").read()
    for names, _ in COMMANDS:
        for n in names:
            assert f"## sysexport {n}\n" in text
