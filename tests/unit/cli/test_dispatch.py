"""`archiver COMMAND` imports only the module of COMMAND's group (services/cli/main.py)."""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from services.cli.main import COMMAND_MODULES, build_parser


def _registered_by(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    importlib.import_module(module).register(commands)
    return set(commands.choices)


@pytest.mark.parametrize("module", sorted(set(COMMAND_MODULES.values())))
def test_the_table_names_exactly_the_commands_each_module_registers(module):
    listed = {command for command, owner in COMMAND_MODULES.items() if owner == module}
    assert _registered_by(module) == listed


def test_help_and_unknown_commands_see_every_group():
    for command in (None, "no-such-command"):
        parser = build_parser(command)
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert set(commands.choices) == set(COMMAND_MODULES)


def test_unknown_command_is_an_error_listing_the_commands():
    run = subprocess.run([sys.executable, "-m", "services.cli.main", "frobnicate"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "invalid choice: 'frobnicate'" in run.stderr and "mirror" in run.stderr


@pytest.mark.parametrize("command, absent", [
    ("mirror", ["aiohttp", "xapian", "services.cli.archive", "services.web"]),
    ("firmware", ["aiohttp", "xapian", "lmdb", "services.archive.store"]),
    ("search", ["aiohttp", "aiosmtpd", "services.cli.mirror"]),
])
def test_a_command_imports_only_its_group(command, absent):
    probe = ("import json, sys; from services.cli.main import build_parser; "
             f"build_parser({command!r}); print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True,
                                           capture_output=True, text=True).stdout))
    assert not loaded & set(absent), loaded & set(absent)


INTERRUPTED_WHILE_LOADING = """
import importlib, os, signal
import services.cli.main as cli
signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background job ignores it)
load = importlib.import_module
def load_interrupted(name, *args):
    if name.startswith("services.cli."):  # the command's group: as Ctrl-C in its imports
        os.kill(os.getpid(), signal.SIGINT)
    return load(name, *args)
importlib.import_module = load_interrupted
raise SystemExit(cli.main(["search", "anything", "--data", "unused"]))
"""


def test_ctrl_c_while_the_commands_modules_load_exits_130_without_a_traceback():
    """A loaded machine can take seconds to import a command's modules (a review's SIGINT
    0.8 s after `archiver import` started landed there): exit 130, as a Ctrl-C anywhere."""
    run = subprocess.run([sys.executable, "-c", INTERRUPTED_WHILE_LOADING],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr) == (130, "")
