"""services.archive.cpu_time: CPU seconds of a process and of what it started (proc(5))."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from services.archive import cpu_time

BUSY = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_busy_process_is_counted_and_a_sleeping_one_is_not():
    busy = subprocess.Popen(python(BUSY.format(seconds=0.6) + "time.sleep(60)"))
    sleeping = subprocess.Popen(python("import time; time.sleep(60)"))
    try:
        time.sleep(2)
        assert cpu_time.own_seconds(busy.pid) >= 0.6
        assert cpu_time.own_seconds(sleeping.pid) < 0.3
        assert cpu_time.tree_seconds(sleeping.pid) < 0.3
    finally:
        busy.kill(), sleeping.kill(), busy.wait(), sleeping.wait()


def spawn(code: str) -> str:
    """Code that starts `code` in a Python child and goes on."""
    return f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {code!r}])\n"


def test_the_tree_counts_living_descendants_and_reaped_children():
    """A grandchild computing now, and a child that computed and was waited for, are the
    parent's tree's CPU, not its own."""
    busy = BUSY.format(seconds=0.5)
    reaped_child = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {busy!r}])\n"
    grandchild = BUSY.format(seconds=0.5) + "time.sleep(60)"
    child = reaped_child + spawn(grandchild) + "import time; time.sleep(60)\n"
    parent = subprocess.Popen(python(spawn(child) + "import time; time.sleep(60)\n"),
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while cpu_time.tree_seconds(parent.pid) < 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu_time.tree_seconds(parent.pid) >= 1.0
        assert cpu_time.own_seconds(parent.pid) < 0.5
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(parent.pid)])
        parent.kill(), parent.wait()


def test_a_process_that_is_gone_raises_process_lookup_error():
    gone = subprocess.Popen(python("pass"))
    gone.wait()
    for read in (cpu_time.own_seconds, cpu_time.tree_seconds):
        with pytest.raises(ProcessLookupError):
            read(gone.pid)
