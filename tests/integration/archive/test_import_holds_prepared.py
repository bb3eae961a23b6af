"""`archiver import` holds each message of its batch compressed (Store.prepare), its bytes
gone once prepared: it held them until the batch was stored, while the store compressed
them and LMDB copied the compressed frame into its pages, three copies at once (a 100 MiB
message of random data: main's peak 300 MB, of the model 450's 256 MB bound).

The import's peak resident memory (ru_maxrss of its process, --no-index: no workers)
beyond that of importing a small message is at most the message, its compressed frame and
a margin; it was the message, and twice the frame (measured: 84 MiB for a 32 MiB message
of 24 MiB compressed, now 59 MiB).
"""
from __future__ import annotations

import base64
import json
import os
import resource
import subprocess
import sys
import textwrap

from tests.conftest import ARCHIVER

MiB = 1024 * 1024
MARGIN = 12 * MiB

# Runs the import in a child of its own, whose peak is ru_maxrss of RUSAGE_CHILDREN there
# (here it would be the largest of every child this test process ever waited for).
PEAK_OF_IMPORT = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
    print(done.stdout)
""")


def message_with_attachment(random_bytes: int) -> bytes:
    """A message whose attachment is `random_bytes` of random data in base64 (which zstd
    compresses to some 3/4: base64's six bits a byte)."""
    head = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: backup\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nThe backup.\r\n--b1\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    encoded = base64.encodebytes(os.urandom(random_bytes)).replace(b"\n", b"\r\n")
    return head + encoded + b"--b1--\r\n"


def import_peak(tmp_path, name: str, raw: bytes) -> tuple[int, dict]:
    """(peak resident bytes of `archiver import --no-index` of `raw` alone, its JSON)."""
    maildir = tmp_path / name
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    (maildir / "cur" / f"{name}:2,S").write_bytes(raw)
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_IMPORT, str(ARCHIVER), "import", "--no-index",
         "--model", "450", "--data", str(tmp_path / f"{name}-data"), "--json", str(maildir)],
        capture_output=True, text=True, check=True, timeout=300)
    peak, output = done.stdout.split("\n", 1)
    return int(peak), json.loads(output.strip().splitlines()[-1])


def stored_size(tmp_path, name: str) -> int:
    done = subprocess.run([str(ARCHIVER), "stats", "--data", str(tmp_path / f"{name}-data"),
                           "--json"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["stored_bytes"]


def test_a_large_message_is_not_held_beside_its_compressed_copies(tmp_path):
    small, small_result = import_peak(tmp_path, "small", message_with_attachment(1000))
    raw = message_with_attachment(24 * MiB)
    large, large_result = import_peak(tmp_path, "large", raw)
    assert small_result["imported"] == large_result["imported"] == 1
    compressed = stored_size(tmp_path, "large")
    assert compressed > 20 * MiB  # random data: the frame is most of the message
    grown = large - small
    assert grown < len(raw) + compressed + MARGIN, (grown / MiB, len(raw) / MiB,
                                                    compressed / MiB)
