"""services.archive.cpu_time: CPU seconds of a process and of what it started (proc(5))."""
from __future__ import annotations

import os
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
        assert cpu_time.tree_usage(sleeping.pid).cpu_s < 0.3
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
        while cpu_time.tree_usage(parent.pid).cpu_s < 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu_time.tree_usage(parent.pid).cpu_s >= 1.0
        assert cpu_time.own_seconds(parent.pid) < 0.5
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(parent.pid)])
        parent.kill(), parent.wait()


def test_a_process_that_is_gone_raises_process_lookup_error():
    gone = subprocess.Popen(python("pass"))
    gone.wait()
    for read in (cpu_time.own_seconds, cpu_time.tree_usage):
        with pytest.raises(ProcessLookupError):
            read(gone.pid)


def test_a_look_at_the_process_gone_counts_nothing_blocked():
    gone = subprocess.Popen(python("pass"))
    gone.wait()
    clock = cpu_time.BlockedClock(started=time.monotonic() - 5)
    assert clock.look(gone.pid) == 0.0


def looked_at(pid: int, seconds: float) -> float:
    """The blocked seconds a BlockedClock counts for `pid`, looked at 10 times a second."""
    clock, end = cpu_time.BlockedClock(), time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.1)
        clock.look(pid)
    return clock.seconds


def test_sleeping_or_stopped_is_blocked_computing_is_not():
    sleeping = subprocess.Popen(python("import time; time.sleep(60)"))
    busy = subprocess.Popen(python("while True: pass"))
    try:
        time.sleep(0.3)
        assert looked_at(sleeping.pid, 1.5) >= 1.2
        assert cpu_time.tree_usage(busy.pid).runnable
        assert looked_at(busy.pid, 1.0) < 0.3  # a look may catch it being preempted
        busy.send_signal(19)  # SIGSTOP
        assert looked_at(busy.pid, 1.5) >= 1.2
    finally:
        sleeping.kill(), busy.kill(), sleeping.wait(), busy.wait()


def test_waiting_for_a_core_is_not_blocked():
    """A process at the idle policy pinned beside a normal-priority busy loop waits for
    its core (it gets some 0.3% of it): ready to run, so not blocked, however long."""
    core = max(os.sched_getaffinity(0))
    pin = f"import os\nos.sched_setaffinity(0, {{{core}}})\n"
    hog = subprocess.Popen(python(pin + "while True: pass"))
    starved = subprocess.Popen(python(
        pin + "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass"))
    try:
        time.sleep(0.5)
        assert looked_at(starved.pid, 2.0) < 0.3
        assert cpu_time.own_seconds(starved.pid) < 0.3  # it did wait: 2.5 s, little CPU
    finally:
        hog.kill(), starved.kill(), hog.wait(), starved.wait()
