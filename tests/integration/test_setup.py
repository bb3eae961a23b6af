"""`make setup` is idempotent: once everything is installed, a second run only checks."""
import subprocess

import pytest

from tests.conftest import ARCHIVER, TREE

pytestmark = pytest.mark.integration


def test_a_second_setup_installs_nothing():
    done = subprocess.run(["make", "-s", "-C", str(TREE), "setup"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"setup: ok (.venv/bin/archiver, firmware {(TREE / 'firmware' / 'VERSION').read_text().strip()})"]
    assert ARCHIVER.exists()


def test_ci_runs_make_test():
    script = (TREE / ".ci" / "run").read_text()
    assert "make test" in script and (TREE / ".ci" / "run").stat().st_mode & 0o111
