"""services.archive.pdf_text_server: one process reads PDF after PDF and gives pdftotext's
text and error lines byte for byte (a corpus of valid, multi-page, damaged, cut, encrypted and
hostile PDFs, each against a pdftotext run); each PDF gets a tool's limits (time, CPU,
memory, output, pages) and a server that fails on one is that PDF's failure only: the next
PDF is read by a new one. Servers are recycled, per process (fork), thread-safe; and
documents.pdf_text gives the same text without the program (pdftotext then)."""
from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from services.archive import documents, pdf_text_server, tools
from tests.bench.corpus import make_pdf as corpus_pdf, pdf_file
from tests.reading_corpus import encrypted_pdf
from tests.unit.archive.test_extract import pdf_bomb, pdf_with_text
from tests.unit.archive.test_pdf_text import LOOP_PDF, lines, pdf_of_pages, slow_pages

MAX_PAGES = documents.PDF_MAX_PAGES
STATUS_OF_EXIT = {0: pdf_text_server.READ, 1: pdf_text_server.NOT_OPENED,
                  99: pdf_text_server.NO_PAGE}

@pytest.fixture(autouse=True)
def fresh_servers():
    """Each test starts and ends without a server of this process (limits are set when a
    server starts, so a test that changes one needs a new server)."""
    pdf_text_server.stop()
    yield
    pdf_text_server.stop()


def pdftotext(data: bytes, max_pages: int = MAX_PAGES) -> subprocess.CompletedProcess:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-l", str(max_pages), "-", "-"],
                          input=data, capture_output=True)


def server_pid() -> int:
    """The pid of this process's server, started if none runs."""
    server = pdf_text_server._server_of_this_process(MAX_PAGES)
    with server.lock:
        return server._running().pid


# --- the corpus: what pdftotext makes of each PDF, the server must make too -------------------

def _words(rng: random.Random, count: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzäöüéèßø0123456789-"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
                    for _ in range(count))


def _layouts(rng: random.Random) -> dict[str, bytes]:
    """Pages laid out as mail's PDFs are: columns, lines at odd offsets and sizes, text
    running past the page's edge, hyphenated words, rotated and overlapping text."""
    columns = b"BT /F1 10 Tf 72 700 Td (left column words) Tj 250 0 Td (right column too) Tj ET"
    edge = lines(b"x" * 200, b"after the long line", x=500)
    hyphen = lines(b"a hyphen-", b"ated word and inter-", b"national trade")
    rotated = b"BT /F1 12 Tf 0 1 -1 0 300 300 Tm (turned text) Tj ET " + lines(b"upright")
    overlap = lines(b"first layer") + b" " + lines(b"second layer")
    sizes = b" ".join(b"BT /F1 %d Tf %d %d Td (size %d) Tj ET" % (s, 40 + s, 780 - 3 * s * s, s)
                      for s in range(4, 30, 5))
    random_lines = [lines(*(_words(rng, rng.randint(1, 14)).encode("latin-1", "replace")
                            for _ in range(rng.randint(1, 50)))) for _ in range(6)]
    return {"columns": pdf_of_pages([columns]), "edge": pdf_of_pages([edge]),
            "hyphen": pdf_of_pages([hyphen]), "rotated": pdf_of_pages([rotated]),
            "overlap": pdf_of_pages([overlap]), "sizes": pdf_of_pages([sizes]),
            "random pages": pdf_of_pages(random_lines),
            "shared page stream": pdf_of_pages([columns] * 40)}


def corpus() -> dict[str, bytes]:
    rng = random.Random(20)
    found = {f"bench {n}": corpus_pdf([_words(rng, rng.randint(1, 16))
                                       for _ in range(rng.choice((1, 10, 60, 200)))])
             for n in range(12)}
    found |= _layouts(rng)
    found |= {"loop": LOOP_PDF, "encrypted": encrypted_pdf(pdf_with_text("locked words")),
              "bomb": pdf_bomb(16), "empty": b"", "header only": b"%PDF-1.4\n",
              "junk": b"%PDF-1.7 " + bytes(rng.randrange(256) for _ in range(3000)),
              "not a pdf": b"Hello, world\n" * 50}
    for name in ("bench 3", "columns", "random pages"):
        whole = found[name]
        for cut in (0.1, 0.5, 0.9, 0.99):
            found[f"{name} cut at {cut}"] = whole[:int(len(whole) * cut)]
        flipped = bytearray(whole)
        for at in rng.sample(range(len(whole)), 20):
            flipped[at] ^= 0xFF
        found[f"{name} with 20 bytes flipped"] = bytes(flipped)
    return found


CORPUS = corpus()


@pytest.mark.parametrize("given_as", ["bytes", "file"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_text_and_errors_are_pdftotexts(name, given_as):
    """Whether the server reads the PDF from its request (bytes) or from its scratch file
    (a seekable file, as a large attachment is given)."""
    data = CORPUS[name]
    reply = pdf_text_server.read_pdf(data if given_as == "bytes" else io.BytesIO(data),
                                     MAX_PAGES)
    expected = pdftotext(data)
    assert reply.text == expected.stdout
    assert reply.errors == expected.stderr.decode()
    if "Incorrect password" in reply.errors:
        assert reply.status == pdf_text_server.NEEDS_PASSWORD and expected.returncode == 1
    else:
        assert reply.status == STATUS_OF_EXIT[expected.returncode]


def test_one_server_reads_the_whole_corpus_in_turn():
    pid = server_pid()
    for name, data in CORPUS.items():
        assert pdf_text_server.read_pdf(data, MAX_PAGES).text == pdftotext(data).stdout, name
    assert server_pid() == pid


def test_the_page_limit_is_pdftotexts():
    pdf = pdf_of_pages([lines(b"page %d" % n) for n in range(10)])
    reply = pdf_text_server.read_pdf(pdf, 3)
    assert reply.text == pdftotext(pdf, 3).stdout
    assert reply.text.split() == [b"page", b"0", b"page", b"1", b"page", b"2"]


def test_documents_read_pdfs_through_the_server_and_without_it(monkeypatch):
    for name in ("bench 0", "columns", "random pages"):
        served = documents.pdf_text(CORPUS[name])
        assert pdf_text_server._servers[MAX_PAGES].process is not None
        monkeypatch.setattr(pdf_text_server, "PROGRAM", pdf_text_server.PROGRAM.with_name("none"))
        assert not pdf_text_server.available()
        assert documents.pdf_text(CORPUS[name]) == served
        monkeypatch.undo()
    with pytest.raises(documents.Encrypted):
        documents.pdf_text(CORPUS["encrypted"])
    for name in ("junk", "empty", "columns with 20 bytes flipped", "random pages cut at 0.5"):
        with pytest.raises(tools.ToolFailed) as served:  # the same reason either way
            documents.pdf_text(CORPUS[name])
        monkeypatch.setattr(pdf_text_server, "PROGRAM", pdf_text_server.PROGRAM.with_name("none"))
        with pytest.raises(tools.ToolFailed) as run:
            documents.pdf_text(CORPUS[name])
        monkeypatch.undo()
        assert str(served.value) == str(run.value) and str(run.value).startswith("pdftotext ")
    with pytest.raises(ValueError, match="^damaged PDF: .*content stream"):
        documents.pdf_text(LOOP_PDF)


# --- limits: each PDF's own, and a failed server replaced -------------------------------------

def test_a_server_blocked_past_its_limit_fails_and_the_next_pdf_has_a_new_server(monkeypatch):
    """Stopped (SIGSTOP), the server neither computes nor waits for a core: blocked."""
    monkeypatch.setattr(tools, "BLOCKED_S", 1.0)
    first = server_pid()
    os.kill(first, signal.SIGSTOP)
    with pytest.raises(tools.ToolFailed, match="pdf-text-server was blocked for 1 s"):
        pdf_text_server.read_pdf(CORPUS["bench 0"], MAX_PAGES)
    assert _gone(first)
    assert pdf_text_server.read_pdf(CORPUS["bench 0"], MAX_PAGES).text == \
        pdftotext(CORPUS["bench 0"]).stdout
    assert server_pid() != first


def test_each_pdf_gets_its_own_cpu_seconds(monkeypatch):
    monkeypatch.setattr(tools, "CPU_S", 1)
    monkeypatch.setattr(tools, "BLOCKED_S", 60.0)
    for _ in range(3):  # what earlier PDFs used is not held against the next
        pdf_text_server.read_pdf(CORPUS["bomb"], MAX_PAGES)
    with pytest.raises(tools.ToolFailed, match=r"killed by signal \d+ \(CPU time limit\)"):
        pdf_text_server.read_pdf(slow_pages(), MAX_PAGES)
    assert pdf_text_server.read_pdf(CORPUS["columns"], MAX_PAGES).status == pdf_text_server.READ


def glyph_flood(glyphs: int) -> bytes:
    """One page of `glyphs` glyphs at distinct places: each is a character poppler's text
    page holds until the page ends (about 100 bytes each)."""
    return pdf_of_pages([b"BT /F1 1 Tf " + b"(w) Tj 0.001 0.001 Td " * glyphs + b"ET"])


def test_a_pdf_past_the_memory_limit_fails_and_the_next_is_read(monkeypatch):
    monkeypatch.setattr(tools, "MEMORY_BYTES", 64 * 1024 * 1024)  # it needs some 80 MB
    monkeypatch.setattr(tools, "BLOCKED_S", 60.0)
    with pytest.raises(tools.ToolFailed, match="pdf-text-server (was killed by signal|ended)"):
        pdf_text_server.read_pdf(glyph_flood(3_000_000), MAX_PAGES)
    assert pdf_text_server.read_pdf(CORPUS["hyphen"], MAX_PAGES).text == \
        pdftotext(CORPUS["hyphen"]).stdout


def test_the_text_stops_at_the_output_limit(monkeypatch):
    monkeypatch.setattr(tools, "OUTPUT_BYTES", 100)
    data = CORPUS["random pages"]
    text = pdf_text_server.read_pdf(data, MAX_PAGES).text
    assert text == pdftotext(data).stdout[:100]


def test_a_server_that_died_between_pdfs_is_not_the_next_pdfs_failure():
    pid = server_pid()
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)  # it died idle (as the kernel's OOM killer may end it)
    assert pdf_text_server.read_pdf(CORPUS["sizes"], MAX_PAGES).status == pdf_text_server.READ
    assert server_pid() != pid


def test_a_server_killed_while_reading_is_that_pdfs_failure(monkeypatch):
    monkeypatch.setattr(tools, "BLOCKED_S", 60.0)
    pid = server_pid()
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGSEGV))
    killer.start()
    with pytest.raises(tools.ToolFailed, match=r"killed by signal 11 \(crashed\)"):
        pdf_text_server.read_pdf(slow_pages(), MAX_PAGES)
    killer.join()
    assert pdf_text_server.read_pdf(CORPUS["edge"], MAX_PAGES).status == pdf_text_server.READ


# --- lifetime: recycled, per process, thread-safe, never outliving its limits -----------------

def test_servers_are_recycled_after_so_many_pdfs_or_so_much_memory(monkeypatch):
    monkeypatch.setattr(pdf_text_server, "RECYCLE_DOCUMENTS", 2)
    pids = []
    for _ in range(4):
        pids.append(server_pid())
        pdf_text_server.read_pdf(CORPUS["bench 1"], MAX_PAGES)
    assert pids[0] == pids[1] != pids[2] == pids[3]
    monkeypatch.setattr(pdf_text_server, "RECYCLE_RSS_BYTES", 0)
    first = server_pid()
    pdf_text_server.read_pdf(CORPUS["bench 1"], MAX_PAGES)
    assert server_pid() != first and _gone(first)


def pdf_with_a_large_stream(stream_bytes: int) -> bytes:
    """A page of text, and a stream of `stream_bytes` random bytes that no page uses."""
    content = lines(b"the words of a large pdf")
    blob = random.Random(3).randbytes(stream_bytes)
    return pdf_file([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font"
        b" << /F1 3 0 R >> >> /Contents 5 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(blob), blob)])


def _peak_rss_bytes(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def test_a_large_pdf_given_as_a_file_is_read_from_the_scratch_file_not_held_whole():
    data = pdf_with_a_large_stream(64 << 20)
    expected = pdftotext(data)
    reply = pdf_text_server.read_pdf(io.BytesIO(data), MAX_PAGES)
    assert (reply.text, reply.errors) == (expected.stdout, expected.stderr.decode())
    assert b"the words of a large pdf" in reply.text
    server = pdf_text_server._servers[MAX_PAGES]
    assert _peak_rss_bytes(server.process.pid) < 32 << 20
    assert os.fstat(server.scratch.fileno()).st_size == 0  # emptied after the PDF
    assert os.fstat(server.scratch.fileno()).st_nlink == 0  # nothing left in the folder
    pdf_text_server.read_pdf(data, MAX_PAGES)  # the same PDF sent in its request: held whole
    assert _peak_rss_bytes(server.process.pid) > 64 << 20


def test_a_server_killed_while_reading_its_scratch_file_leaves_the_next_one_a_new_file(
        monkeypatch):
    monkeypatch.setattr(tools, "BLOCKED_S", 60.0)
    pid = server_pid()
    first_scratch = pdf_text_server._servers[MAX_PAGES].scratch
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(tools.ToolFailed, match=r"killed by signal 9"):
        pdf_text_server.read_pdf(io.BytesIO(slow_pages()), MAX_PAGES)
    killer.join()
    assert first_scratch.closed
    reply = pdf_text_server.read_pdf(io.BytesIO(CORPUS["edge"]), MAX_PAGES)
    assert reply.text == pdftotext(CORPUS["edge"]).stdout


def test_a_forked_process_reads_with_a_server_of_its_own():
    parent = server_pid()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            text = pdf_text_server.read_pdf(io.BytesIO(CORPUS["columns"]), MAX_PAGES).text
            os.write(writer, b"%d %d" % (server_pid(), text == pdftotext(CORPUS["columns"]).stdout))
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    child_server, same_text = map(int, os.read(reader, 100).split())
    os.close(reader)
    assert child_server != parent and same_text == 1
    assert pdf_text_server.read_pdf(CORPUS["hyphen"], MAX_PAGES).status == pdf_text_server.READ
    hyphen = pdf_text_server.read_pdf(io.BytesIO(CORPUS["hyphen"]), MAX_PAGES)  # its scratch
    assert hyphen.text == pdftotext(CORPUS["hyphen"]).stdout                   # file is whole
    assert server_pid() == parent


def test_threads_share_a_server_one_pdf_at_a_time():
    names = ["bench 2", "columns", "hyphen", "random pages", "sizes", "loop"] * 3
    results = {}

    def read(index, name):
        results[index] = pdf_text_server.read_pdf(CORPUS[name], MAX_PAGES).text
    threads = [threading.Thread(target=read, args=(n, name)) for n, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[n] == pdftotext(CORPUS[name]).stdout for n, name in enumerate(names))


ORPHAN = """
import sys
from services.archive import pdf_text_server, tools
from tests.unit.archive.test_pdf_text import slow_pages
tools.CPU_S, tools.BLOCKED_S = 1, 600.0
server = pdf_text_server._server_of_this_process(2000)
print(server._running().pid, flush=True)
pdf_text_server.read_pdf(slow_pages(), 2000)
"""


def test_a_server_left_reading_by_a_killed_worker_stops_at_its_cpu_limit():
    worker = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                  os.path.dirname(os.path.abspath(__file__))))))
    server = int(worker.stdout.readline())
    time.sleep(0.3)  # it is reading the slow PDF now
    worker.kill()
    worker.wait()
    assert _gone(server, within_s=30)


def _gone(pid: int, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except OSError:
        return True
