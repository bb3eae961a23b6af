"""Review r16 of 30675df/fe4c64e (extraction time limits in CPU, the indexer at SCHED_IDLE):
the limits kept for a reader that waits without computing (the pool's blocked_s,
tools.BLOCKED_S, the PDF server's) must not count the time it waits, ready to run, for a
core. Under SCHED_IDLE a process sharing its core with one normal-priority busy loop gets
about 3/1027 of it (0.05 s of CPU took 30 s here), so a wall-clock backstop blamed readable
attachments once the cores stayed busy past it (both tests failed then: 'took longer than
3 s', 'chrt timed out after 1 s').

The tests scale the limits down (as test_extract's time-limit tests scale timeout_s) and
starve for real: the process under test at SCHED_IDLE, pinned to one core beside a
normal-priority busy loop pinned there too (ended by each test).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

from services.archive import tools
from services.archive.extract import ExtractionPool, extract
from services.archive.extraction_memo import MemoryMemo
from tests.reading_corpus import slow_xlsx
from tests.unit.archive.test_extract import CAP, PDF_TYPE, XLSX_TYPE, mail, pdf_with_text

CORE = max(os.sched_getaffinity(0))


@contextlib.contextmanager
def cores_kept_busy():
    """A normal-priority busy loop pinned to CORE, for as long as the block runs."""
    busy = subprocess.Popen([sys.executable, "-c",
                             f"import os\nos.sched_setaffinity(0, {{{CORE}}})\nwhile True: pass"])
    try:
        time.sleep(0.5)  # started, pinned and spinning
        yield
    finally:
        busy.kill()
        busy.wait()


def starve(pid: int) -> None:
    """Put `pid` (and what it starts from now on) at SCHED_IDLE on CORE, as the indexer's
    extraction workers run while normal-priority work keeps the cores busy."""
    os.sched_setaffinity(pid, {CORE})
    os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def test_a_worker_kept_waiting_for_a_core_past_its_blocked_limit_does_not_blame_a_readable_pdf():
    """The worker computes well under its 20 s of CPU, but waits for a core longer than
    blocked_s (3 s here, 200 s by default): it is not blocked, so it reads the PDF."""
    raw = mail(body="starved body",  # some 50 ms of CPU to read, 15 s and more starved
               attachments=[(pdf_with_text("readable words"), PDF_TYPE, "fine.pdf"),
                            (slow_xlsx(100), XLSX_TYPE, "sheet.xlsx")]).as_bytes()
    memo = MemoryMemo()
    with ExtractionPool(CAP, workers=1, timeout_s=20, blocked_s=3, memo=memo) as pool:
        (pid,) = pool.worker_pids
        with cores_kept_busy():
            starve(pid)
            (result,) = pool.extract_many([raw])
        timeouts = pool.timeouts
    assert result.failures == []
    assert timeouts == 0
    assert result == extract(raw, CAP)


def test_a_tool_kept_waiting_for_a_core_past_its_blocked_limit_is_not_a_failure(monkeypatch):
    """A tool that needs some 10 ms of CPU (far below its RLIMIT_CPU, CPU_S) but waits for
    a core longer than BLOCKED_S (1 s here, 60 s in the tree) is not blocked: it runs."""
    monkeypatch.setattr(tools, "BLOCKED_S", 1.0)
    argv = ["chrt", "--idle", "0", "taskset", "-c", str(CORE),
            sys.executable, "-S", "-c", "print('read')"]
    with cores_kept_busy():
        output, _ = tools.run(argv, b"")
    assert output == b"read\n"
