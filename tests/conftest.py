"""Shared fixtures: run the `archiver` CLI as a user would, in a process of its own."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TREE = Path(__file__).resolve().parent.parent
ARCHIVER = Path(sys.prefix) / "bin" / "archiver"


@pytest.fixture
def archiver(tmp_path):
    """Run `archiver ARGS...`; returns the CompletedProcess (text mode)."""
    def run(*args, env=None, input=None, check=None):
        environment = {**os.environ, **(env or {})}
        done = subprocess.run([str(ARCHIVER), *map(str, args)], capture_output=True, text=True,
                              env=environment, input=input, cwd=tmp_path, timeout=300)
        if check is not None:
            assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
        return done
    return run
