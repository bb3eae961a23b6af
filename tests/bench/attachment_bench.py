"""What serving one numbered file of a message costs (mail_view.attachment, the API's and the
page's /message/D/attachment/N), against what parsing the message costs (the least a
download can do: it must find the file) and what listing every file costs (show, the
API's JSON: each file decoded to size it). Shapes: a message of 500 attachments of 100 KiB
(base64, 68 MB), its last file served; the same with a forwarded message first (the
download of another file need not locate the forward's bytes, services.web.forwarded).
One JSON line a shape: seconds of CPU time (a busy machine moves it less than wall time)
and of wall time, each the median of ROUNDS runs.

    python tests/bench/attachment_bench.py [SHAPE...]

It imports nothing from tests, so an older checkout's code can be timed with it:
PYTHONPATH=OLD python tests/bench/attachment_bench.py. Timings are only ever measured here
or by hand, never asserted in tests (the test machine is shared)."""
from __future__ import annotations

import base64
import json
import random
import statistics
import sys
import time

ROUNDS = 5
FILES, FILE_BYTES = 500, 100 * 1024
HEAD = (b"From: a@example.org\r\nTo: b@example.com\r\nSubject: many files\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee the files\r\n")
FORWARD = (b"--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@example.org\r\n"
           b"Subject: forwarded\r\n\r\nforwarded text\r\n")


def many_files(forward: bool) -> bytes:
    rng = random.Random(500)
    parts = [HEAD, FORWARD if forward else b""]
    for number in range(FILES):
        data = base64.encodebytes(rng.randbytes(FILE_BYTES)).replace(b"\n", b"\r\n")
        parts.append(b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
                     b"attachment; filename=\"file-%d.bin\"\r\nContent-Transfer-Encoding: "
                     b"base64\r\n\r\n" % number + data)
    return b"".join(parts) + b"--b--\r\n"


SHAPES = {"500-files-last": lambda: many_files(False),
          "500-files-and-a-forward-last": lambda: many_files(True)}


def _timed(run) -> tuple[float, float]:
    """(median CPU seconds, median wall seconds) of ROUNDS runs of `run`"""
    cpus, walls = [], []
    for _ in range(ROUNDS):
        cpu, started = time.process_time(), time.perf_counter()
        run()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - started)
    return round(statistics.median(cpus), 3), round(statistics.median(walls), 3)


def measure(shape: str) -> dict:
    from services.archive.mime import parse_message
    from services.web import mail_view
    raw = SHAPES[shape]()
    last = len(mail_view.files(raw))
    found, data = mail_view.attachment(raw, last)
    assert len(data) == FILE_BYTES and found.filename == f"file-{FILES - 1}.bin"
    serve_cpu, serve_wall = _timed(lambda: mail_view.attachment(raw, last))
    parse_cpu, parse_wall = _timed(lambda: parse_message(raw))
    list_cpu, list_wall = _timed(lambda: mail_view.files(raw))
    return {"bench": "attachment", "shape": shape, "mb": round(len(raw) / 2**20, 1),
            "number": last, "serve_cpu_s": serve_cpu, "parse_cpu_s": parse_cpu,
            "list_cpu_s": list_cpu, "serve_over_parse": round(serve_cpu / parse_cpu, 2),
            "serve_wall_s": serve_wall, "parse_wall_s": parse_wall, "list_wall_s": list_wall}


def main(argv: list[str]) -> None:
    for shape in argv or SHAPES:
        print(json.dumps(measure(shape)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
