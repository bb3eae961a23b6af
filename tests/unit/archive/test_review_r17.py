"""Review r17 of 92e6bf1/7954494 (the blocked limits count cpu_time.BlockedClock's blocked
seconds; tools run through one Popen whose communicate() is taken up again every LOOK_S).

F1: a tool fed its input on standard input (stdin=True: pdftotext without the PDF server,
tnef) that runs longer than cpu_time.LOOK_S is called communicate(data) a second time,
which subprocess refuses: ValueError 'Cannot send input after starting communication'. The
reader turns it into the attachment's failure and the memo keeps it: a readable file
remembered as unreadable whenever its tool needs more than 1 s of wall-clock time (a big
PDF, a busy machine).

F2: tools._communicate looks at the tool's tree only, not at the worker reading its pipes.
A tool that writes more than a pipe holds waits (state S) for the worker to read; when the
worker waits for a core (SCHED_IDLE beside normal-priority work), every look finds the tool
'blocked', so a tool that computes almost nothing but writes a few MB is killed at
BLOCKED_S, though only the scheduler kept it waiting.

F1 and F2 failed on 92e6bf1 and pass since the fix (input written by a thread of its own;
a look that finds output unread or input unwritten in the tool's pipes counts nothing).
F3, not here: cpu_time.tree_usage loses the CPU of a descendant whose parent ended without
reaping it (init reaps it). It takes a reader that forks so, and none here does (each has
its own RLIMIT_CPU): tree_usage's docstring says so.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from services.archive import tools
from tests.unit.archive.test_review_r16 import CORE


@pytest.mark.parametrize("size", [1, 64 * 1024, 3 * 1024 * 1024])
def test_a_tool_fed_on_standard_input_may_take_longer_than_one_look(size):
    """F1: wc -c, after 1.5 s (LOOK_S is 1 s), reads its input whole. Fails now with
    ValueError: Cannot send input after starting communication."""
    output, _ = tools.run(["sh", "-c", "sleep 1.5; wc -c"], b"x" * size, stdin=True)
    assert output == f"{size}\n".encode()


# The busy loop ends by itself after four times BLOCKED_S: long enough for the old
# looks to find the tool blocked for BLOCKED_S and kill it; then the starved reader gets the
# core and reads the rest at once. (Looping until the read ended took 30-90 s of a core on a
# loaded CI machine: the reader at SCHED_IDLE crawls while the loop runs.)
STARVED_TOOL_RUN = """
import os, subprocess, sys, time
from services.archive import tools
tools.BLOCKED_S = 3.0
busy = subprocess.Popen([sys.executable, "-c",
                         "import os, time\\nos.sched_setaffinity(0, {{{core}}})\\n"
                         "end = time.monotonic() + 4 * 3.0\\n"
                         "while time.monotonic() < end: pass"])
try:
    time.sleep(0.5)
    os.sched_setaffinity(0, {{{core}}})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        output, _ = tools.run({argv!r}, b"")
        print("read", len(output))
    except tools.ToolFailed as failure:
        print("failed:", failure)
finally:
    busy.kill()
    busy.wait()
"""


@pytest.mark.parametrize("argv", [
    ["head", "-c", str(4_000_000), "/dev/zero"],
    [sys.executable, "-S", "-c", "import os; os.write(1, bytes(4_000_000))"],
])
def test_a_tool_whose_reader_waits_for_a_core_is_not_blocked(argv):
    """F2: a tool writing 4 MB (some 10 ms of CPU) run by a worker at SCHED_IDLE beside a
    normal-priority busy loop, BLOCKED_S scaled to 3 s (as r16's tests scale it). Fails
    now: 'head was blocked for 3 s' (each look finds the tool waiting on its full pipe)."""
    child = subprocess.run([sys.executable, "-c", STARVED_TOOL_RUN.format(core=CORE, argv=argv)],
                           capture_output=True, text=True, timeout=300)
    assert child.stdout.strip() == "read 4000000", child.stdout + child.stderr
