"""Messages of many MIME parts (tests.many_parts), each some 17 MB (the size of the one
reported: 1.6 million tiny parts) and the flat one also at 50 MB (the largest message models
150 and 350 accept; larger ones are read alone, as any message is), through the real
extraction workers under the models' memory limit, and through `archiver import`: each
is stored byte-exact, found by its first part's word and by its last part's word or else
flagged as partly indexed, and read by a worker that is not restarted and stays within
what the pool budgets for a message of its size. Before services.archive.mime_parts the
worker ran out of memory on such a message, and the fallback never reached its last parts."""
import hashlib
import json

import pytest

from services.archive import extract
from services.archive.store import Store
from tests import search_output
from tests.many_parts import FIRST, LAST, corpus

pytestmark = pytest.mark.integration

SIZE = 17_000_000
LARGEST = 50 * 1024 * 1024
# Through `archiver import`: some 100,000 parts each, ten times MAX_PARTS (memory is the
# worker test's, at SIZE)
IMPORT_SIZE = 2_000_000
MEMORY_MB = 512  # every model's extraction.memory_mb (models.yaml)
CUT = "partly indexed: MIME parts past the first"
# The workers' text cap: over any body here, so that the last part's word is in the body
# when it was read (a model's cap cuts the body text, flagged: extract.body_cut).
CAP = LARGEST


def worker_peak_rss(pid: int) -> int:
    """The worker's peak resident set (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def cases():
    return corpus(SIZE) + [case for case in corpus(LARGEST, ("flat",))]


@pytest.mark.parametrize("case", cases(), ids=lambda case: f"{case.name}-{len(case.raw) >> 20}MB")
def test_a_worker_reads_many_parts_within_its_memory(case):
    """One fresh worker a message, so its peak is this message's. The bound is the pool's
    own estimate of a message's cost (extract.extraction_cost) over the worker's resting
    size: a wide margin here (a few times what it takes), and no timing is asserted (the
    time limit is only set high enough for a loaded test machine)."""
    with extract.ExtractionPool(CAP, workers=1, timeout_s=300,
                                memory_mb=MEMORY_MB) as pool:
        resting = worker_peak_rss(pool.worker_pids[0])
        [result] = pool.extract_many([case.raw])
        peak = worker_peak_rss(pool.worker_pids[0])
        assert pool.worker_restarts == 0, (case.name, result.failed)
    assert result.failed is None, case.name
    assert FIRST in result.body, case.name
    assert LAST in result.body or any(reason.startswith(CUT) for reason in result.failures), \
        (case.name, result.failures)
    assert peak - resting <= extract.extraction_cost(len(case.raw)), (case.name, peak >> 20)


def test_many_parts_are_stored_byte_exact_and_found(archiver, tmp_path):
    messages = corpus(IMPORT_SIZE)
    folder = tmp_path / "many"
    folder.mkdir()
    for case in messages:
        (folder / f"{case.name}.eml").write_bytes(case.raw)
    data = tmp_path / "data"
    done = archiver("import", "--data", data, "--json", folder, check=0)
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["imported"], summary["indexed"], summary["failed"]) == \
        (len(messages), len(messages), 0)
    store = Store(data / "store", 2**32, readonly=True)
    try:
        for case in messages:
            assert store.get(hashlib.sha256(case.raw).hexdigest()) == case.raw, case.name
    finally:
        store.close()
    first = found(archiver, data, FIRST)
    last = found(archiver, data, LAST)
    for case in messages:
        digest = hashlib.sha256(case.raw).hexdigest()
        assert digest in first, case.name
        assert digest in last or first[digest].get("extraction_failed"), case.name


def found(archiver, data, word: str) -> dict[str, dict]:
    done = archiver("search", word, "--data", data, "--json", "--limit", 1000, check=0)
    return {hit["digest"]: hit for hit in search_output.hits(done.stdout)}
