"""`archiver run` starting its indexer child again (found by a review of 3e0890f): a stop
during the wait, and an import holding the index lock when the restart is due."""
import signal
import time

import psutil
import pytest

from services.archive.indexer import IndexLock
from services.supervisor.indexer_process import RESTART_SECONDS
from tests.integration.supervisor.test_run_indexer_process import (CONFIG, end, indexer_child,
                                                                   services_of)
from tests.integration.processes import ArchiverService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_stop_while_the_indexer_waits_to_be_started_again_is_clean(tmp_path):
    service = ArchiverService(tmp_path, CONFIG, command=("run",)).start()
    try:
        child = indexer_child(service)
        child.send_signal(signal.SIGABRT)
        child.wait(timeout=30)
        time.sleep(RESTART_SECONDS / 4)  # noticed (every 0.2 s), not yet started again
        started = time.monotonic()
        assert service.stop() == 0
        assert time.monotonic() - started < 10
        assert not [p for p in psutil.process_iter(["cmdline"])
                    if "indexer" in (p.info["cmdline"] or []) and str(service.config_path)
                    in (p.info["cmdline"] or [])]
        # The crashed child's record is not left "running" with a pid that is gone.
        assert services_of(service)["indexer"]["state"] in ("stopped", "failed"), \
            services_of(service)["indexer"]
    finally:
        end(service)


def test_an_import_holding_the_index_when_the_restart_is_due_delays_it(tmp_path):
    service = ArchiverService(tmp_path, CONFIG, command=("run",)).start()
    try:
        child = indexer_child(service)
        child.send_signal(signal.SIGABRT)
        child.wait(timeout=30)
        lock = IndexLock(service.data)
        assert lock.acquire(wait=False)  # an import slips in while the run waits
        try:
            time.sleep(RESTART_SECONDS + 3)
            assert service.process.poll() is None
            assert all("indexer" not in child.cmdline()
                       for child in psutil.Process(service.process.pid).children())
        finally:
            lock.release()
        wait_until(lambda: services_of(service)["indexer"]["state"] == "running"
                   and services_of(service)["indexer"]["pid"] != child.pid, 60,
                   "the indexer to be started again once the import let go")
    finally:
        assert service.stop() == 0
