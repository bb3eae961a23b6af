"""The extraction pool and a worker never wait on each other: a message whose store
metadata is large (20,000 envelope recipients, some 600 KB pickled) given to a worker right
after one whose built document is large (about 1 MB). A pool that sends a busy worker its
next job while the worker sends its result would block both for ever (found in review of a
queue-ahead change, which was reverted); with no deadline either, so the test runs the pool
in a child process of its own and fails if it has not finished in 90 s (it takes ~3 s)."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
TREE = Path(__file__).resolve().parents[3]
RECIPIENTS = 20_000

POOL = textwrap.dedent(r'''
    import sys
    from email.message import EmailMessage
    from services.archive.extract import ExtractionPool

    large = EmailMessage()
    large["Subject"] = "large"
    large.set_content("\n".join(f"w{n}x report" for n in range(60_000)))
    small = EmailMessage()
    small["Subject"] = "small"
    small.set_content("hello")
    raws = [large.as_bytes(), small.as_bytes()]
    many = [f"recipient{n:06d}@example.org" for n in range(int(sys.argv[1]))]

    def metadata(number, raw, recipients):
        return {"number": number, "size": len(raw), "received": 1.7e9, "sent_date": 1.7e9,
                "recipients": recipients, "source": "import", "origin": "node1"}

    with ExtractionPool(1024 * 1024, workers=1, timeout_s=20) as pool:
        results = pool.extract_many(raws, [metadata(1, raws[0], ["a@example.org"]),
                                           metadata(2, raws[1], many)])
    print(" ".join(str(len(result.document)) for result in results))
''')


def test_large_metadata_behind_a_large_result_is_read_without_a_hang():
    child = subprocess.Popen([sys.executable, "-c", POOL, str(RECIPIENTS)], cwd=TREE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        out, err = child.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("the pool and its worker hung: neither finished in 90 s")
    assert child.returncode == 0, err.decode()[-2000:]
    large, small = (int(size) for size in out.split())
    assert large > 500_000 and small > 0, out
