"""Shared fixtures: run the `archiver` CLI as a user would, in a process of its own."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

TREE = Path(__file__).resolve().parent.parent
ARCHIVER = Path(sys.prefix) / "bin" / "archiver"

# Hypothesis fails an example that takes over 200 ms by default: a timing in a pass/fail
# test, which a loaded CI worker trips (436 ms seen on a test of header parsing). Speed is
# measured by `make bench`; the properties here are about results only.
settings.register_profile("archiver", deadline=None)
settings.load_profile("archiver")


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


# A test run must end by itself. If the interpreter is still alive this long after the last
# test (a non-daemon thread, an executor or an atexit handler waiting on something a test
# left behind), print every thread's stack and what is still running, then exit with an
# error: a CI job that hangs until it is killed shows nothing.
EXIT_GRACE_S = 120


def pytest_unconfigure(config):
    import faulthandler
    import threading

    def report_and_exit():
        import time
        time.sleep(EXIT_GRACE_S)
        stuck = [t for t in threading.enumerate()
                 if t is not threading.current_thread() and not t.daemon]
        sys.stderr.write(f"\npytest: still running {EXIT_GRACE_S} s after the last test; "
                         f"non-daemon threads: {[t.name for t in stuck]}\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(3)

    threading.Thread(target=report_and_exit, name="exit-watchdog", daemon=True).start()


def pytest_make_parametrize_id(config, val, argname):
    """Bytes of more than a line are named by their argument, not spelled out in the test's
    id: a document generated at collection (a .docx's zip times) differs from one
    collection to the next, and the workers of `make test`'s parallel run (pytest-xdist)
    must collect the same ids or the run fails."""
    if isinstance(val, (bytes, bytearray)) and len(val) > 64:
        return f"{argname}-bytes"
    return None
