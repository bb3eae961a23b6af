"""The extraction pool hands a job to a worker in one system call (extract._send_job: the
job's header and the message in one writev) and looks at an idle worker once (the pipe and
the process's sentinel in one poll), where it made two writes and four polls a message.

1. _send_job writes what Connection.send(header) then Connection.send_bytes(raw) wrote:
   the worker's recv() and recv_bytes() read the same objects back, for every size around
   multiprocessing's framing limits and when writev writes only part of what it is given
   (a signal), and its frame header is the one Connection writes, 2 GiB and more included.
2. ExtractionPool.extract_many gives what it gave before (BEFORE, unpacked from git's
   history with `git archive`): each result pickled byte for byte (document, summary,
   reading, attachments, text), over generated messages of every size class (the address
   and part shapes of test_summary_document_as_before, bench messages with attachments,
   large ones past the 16 KiB at which Connection splits a send), the real-world cases
   (the tree's tests/data: cases and hostile; /work/shared/cases too when present), and
   messages given as bytes and as functions reading them. Each tree runs in its own
   subprocess, so no module of one is loaded beside the other's.
"""
from __future__ import annotations

import multiprocessing.connection
import os
import threading
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.archive import extract
from tests.unit.archive import test_summary_document_as_before as shapes
from tests.unit.archive.history import ROOT, results_with, services_at

BEFORE = "08cc065"  # the two writes and four polls a message
# Both trees read with a text cap over every body here: since review r18 F1 a body's text is
# cut at the cap (extract.body_cut), where BEFORE's index took 4 Mi characters of it.
CASES = [ROOT / "tests" / "data" / "cases", ROOT / "tests" / "data" / "hostile",
         Path("/work/shared/cases")]

# --- 1. the bytes on the wire ------------------------------------------------------------


def sent_and_read(header: tuple, raw: bytes, most_per_write: int | None = None):
    """(header, raw) as a worker reads them after _send_job; `most_per_write`: writev
    writes at most this many bytes a call, as a signal can make it."""
    ours, theirs = multiprocessing.Pipe()

    def short_writev(fd, buffers):
        joined = b"".join(bytes(buffer) for buffer in buffers)
        return os.write(fd, joined[:most_per_write])

    reading = {}

    def read():
        try:
            reading["header"] = theirs.recv()
            reading["raw"] = theirs.recv_bytes()
        except EOFError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            if most_per_write is not None:
                patch.setattr(os, "writev", short_writev)
            extract._send_job(ours, header, raw)
    finally:
        ours.close()  # bytes lost on the way: the reader meets end-of-file, not a hang
        reader.join(timeout=30)
        theirs.close()
    assert "raw" in reading, "the worker could not read what was sent"
    return reading["header"], reading["raw"]


@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 65536, 1 << 20])
def test_the_worker_reads_header_and_message_as_sent(size):
    header = ("extract", None, {"number": 7, "size": size, "subject": "Grüße"}, "ab" * 32)
    raw = bytes(random.Random(size).randrange(256) for _ in range(min(size, 4096))) * \
        (size // 4096 + 1)
    raw = raw[:size]
    assert sent_and_read(header, raw) == (header, raw)


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=40000), most=st.integers(1, 9000),
       reason=st.none() | st.text(max_size=50))
def test_a_short_writev_goes_on_where_it_stopped(raw, most, reason):
    header = ("fallback", reason, None, "cd" * 32)
    assert sent_and_read(header, raw, most_per_write=most) == (header, raw)


def test_a_memoryview_and_a_bytearray_are_sent_as_their_bytes():
    data = bytes(range(256)) * 100
    for raw in (bytearray(data), memoryview(data)):
        assert sent_and_read(("extract", None, None, "x"), raw)[1] == data


def test_a_memoryview_of_wider_items_is_framed_by_its_bytes():
    """send_bytes frames a buffer by its size in bytes (memoryview.nbytes), not by its
    length in items: framed by len(), the worker reads a quarter of an array of 4-byte
    items as the message and the rest as the next frame."""
    data = bytes(range(256)) * 100
    assert sent_and_read(("extract", None, None, "x"), memoryview(data).cast("I"))[1] == data


class _Recording(multiprocessing.connection.Connection):
    """A Connection that records what send_bytes writes instead of writing it."""

    def __init__(self):
        self.written = []

    def _send(self, buf, write=None):
        self.written.append(bytes(buf) if len(buf) < 64 else len(buf))


class _Sized:
    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


@pytest.mark.parametrize("size", [0, 5, 16385, 0x7fffffff, 0x80000000, 5 << 30])
def test_the_frame_header_is_connections(size):
    recording = _Recording()
    recording._send_bytes(_Sized(size) if size >= 64 else b"x" * size)
    written = b"".join(chunk for chunk in recording.written if isinstance(chunk, bytes))
    header = b"".join(extract._frame_header(size))
    assert written.startswith(header)
    assert len(header) == (12 if size > 0x7fffffff else 4)


def test_an_idle_worker_that_died_is_seen_dead():
    pool = extract.ExtractionPool(1 << 16, workers=1)
    try:
        worker = pool._workers[0]
        assert not worker.died_idle()
        worker.process.kill()
        worker.process.join()
        assert worker.died_idle()
        assert "body" in pool.extract_many([b"Subject: after\r\n\r\nbody\r\n"])[0].body
        assert pool.worker_restarts == 1
    finally:
        pool.close()


def test_a_worker_whose_pipe_stays_open_is_seen_dead_by_its_sentinel():
    """died_idle asks the process's sentinel beside the pipe: a dead worker whose end of the
    pipe something else still holds (no end-of-file) is dead all the same, as is_alive()
    said; one alive and quiet is not."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()  # `theirs` held here: the pipe never ends
    worker = extract._Worker.__new__(extract._Worker)
    worker.connection = ours
    try:
        worker.process = context.Process(target=threading.Event().wait, args=(30,))
        worker.process.start()
        assert not worker.died_idle()
        worker.process.kill()
        worker.process.join()
        assert worker.died_idle()
    finally:
        ours.close()
        theirs.close()


# --- 2. extract_many as before -----------------------------------------------------------

# Run in each tree (PYTHONPATH=tree): extract_many over the paths listed in argv[1] (every
# other one given as a function reading it), each result pickled, into argv[2].
EXTRACT_MANY = r'''
import hashlib, pickle, sys
import services
from services.archive.extract import ExtractionPool
assert services.__file__.startswith(sys.argv[3]), services.__file__

def main():
    paths = open(sys.argv[1], encoding="utf-8").read().splitlines()
    raws = [open(path, "rb").read() for path in paths]
    digests = [hashlib.sha256(raw).hexdigest() for raw in raws]
    metadata = [{"number": n + 1, "size": len(raw), "received": 1.7e9, "sent_date": 1.7e9,
                 "recipients": ["audit@example.org"], "source": "import", "origin": "node1",
                 "from": "Stored <stored@example.net>", "subject": "Stored"}
                for n, raw in enumerate(raws)]
    sources = [raw if n % 2 else (lambda raw=raw: raw) for n, raw in enumerate(raws)]
    pool = ExtractionPool(4 << 20, workers=2, timeout_s=120)  # a cap over every body
    try:
        results = []
        for start in range(0, len(raws), 50):  # batches, as the indexer gives them
            end = start + 50
            results += pool.extract_many(sources[start:end], metadata[start:end],
                                         digests[start:end])
            results += pool.extract_many(raws[start:start + 3])  # no metadata: no document
    finally:
        pool.close()
    with open(sys.argv[2], "wb") as out:
        for result in results:  # (this tree's alone: its document's count of terms)
            vars(result).pop("terms", None)
        pickle.dump([pickle.dumps(result) for result in results], out)

if __name__ == "__main__":
    main()
'''


def large_messages(folder: Path, count: int, seed: int = 11) -> list[Path]:
    """Messages of 16 KiB to 3 MiB: a text body, and some a base64 attachment."""
    rng, paths = random.Random(seed), []
    folder.mkdir(exist_ok=True)
    for n in range(count):
        words = " ".join(rng.choice(["alpha", "Grüße", "zeta", "x" * 30, "42"])
                         for _ in range(rng.randrange(3000, 60000)))
        body = f"Subject: large {n}\r\nFrom: a@example.com\r\n\r\n{words}\r\n".encode()
        if n % 3 == 0:
            body = shapes.message(rng) + b"\r\n" + body
        path = folder / f"large{n}.eml"
        path.write_bytes(body + b"\r\n" * rng.randrange(0, 300000))
        paths.append(path)
    return paths


def compared(paths: list[Path], work: Path) -> list[str]:
    """The paths whose extract_many results differ between BEFORE and this tree."""
    before = results_with(services_at(BEFORE, work / "before"), EXTRACT_MANY, paths, work)
    now = results_with(ROOT, EXTRACT_MANY, paths, work)
    order = [path for start in range(0, len(paths), 50)
             for path in paths[start:start + 50] + paths[start:start + 3]]
    assert len(before) == len(now) == len(order)
    return [f"{path}: result {n}" for n, (path, old, new) in enumerate(zip(order, before, now))
            if old != new]


def test_extract_many_gives_what_it_gave_before(tmp_path):
    from tests.bench import corpus
    (tmp_path / "shapes").mkdir()
    paths = shapes.generated(tmp_path / "shapes", 120)
    corpus.generate(tmp_path / "att", 40, attachments=True)
    corpus.generate(tmp_path / "plain", 40, seed=2, attachments=False)
    paths += shapes.files_under(tmp_path / "att", tmp_path / "plain")
    paths += large_messages(tmp_path / "large", 12)
    paths += sorted(path for folder in CASES if folder.is_dir() for path in folder.rglob("*")
                    if path.is_file() and path.name != "README.md"
                    and path.stat().st_size < 8 << 20)
    assert len(paths) > 200
    assert compared(paths, tmp_path) == []


def test_the_reference_is_not_this_tree(tmp_path):
    """The comparison can fail: BEFORE with its worker's reading changed (every message's
    subject dropped) is told from this tree."""
    before = services_at(BEFORE, tmp_path / "before")
    extract_py = before / "services" / "archive" / "extract.py"
    source = extract_py.read_text()
    broken = source.replace("raw = connection.recv_bytes()",
                            "raw = connection.recv_bytes().replace(b'Subject:', b'X-Was:')")
    assert broken != source
    extract_py.write_text(broken)
    (tmp_path / "mail").mkdir()
    paths = shapes.generated(tmp_path / "mail", 20)
    (tmp_path / "now").mkdir()
    assert results_with(before, EXTRACT_MANY, paths, tmp_path / "now") != \
        results_with(ROOT, EXTRACT_MANY, paths, tmp_path)
