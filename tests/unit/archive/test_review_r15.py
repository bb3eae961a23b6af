"""Review r15 of "PDF text comes from one pdf-text-server process per extraction worker"
(pdf_text_server.cc/.py, b66f86b and before): reproducers, each asserting the promised
behaviour, so a failing one shows a finding. Generated over small corpora of their kind;
counted, never timed.

F1  (low-medium) the server keeps at most 64 KiB of poppler's error lines (MAX_ERROR_BYTES),
    pdftotext prints them all. A PDF with more than 64 KiB of errors and no text is
    "damaged PDF: <the last error line>" (documents.pdf_text): the server's last kept line
    is not pdftotext's, so one PDF has two reasons depending on which read it (the claim:
    "error lines are pdftotext's byte for byte", "one PDF has one reason whichever read
    it").
F2  (low, latent: workers start by forkserver) "one per process (fork-safe)": a child
    forked while its parent has a server keeps both ends the parent holds of that
    server's pipes (read_pdf() drops them only if the child itself reads a PDF). While
    the child lives, the parent's stop() and every recycle (_stop(kill=False), inside
    read_pdf) wait for the server to see end-of-file, which it never sees: the parent
    hangs as long as the child lives, and a server whose owner died outlives it.
F3  (low-medium) "thread-safe; the worker ends and reaps its own at exit": a thread that got
    its _Server from the registry before another thread's stop() cleared it, and then reads,
    starts a server stop() no longer knows of. It is never stopped nor reaped: Popen's
    __del__ keeps the object (and so its stdin pipe) alive in subprocess._active, so the
    server waits on its input until the process exits (4 threads reading 40 PDFs each with
    stop() now and then left 2 to 4 servers running after a final stop()).
"""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from services.archive import documents, pdf_text_server
from tests.unit.archive.test_pdf_text import pdf_of_pages

if not pdf_text_server.available():
    raise RuntimeError("pdf-text-server is not built: `make setup` builds it")


@pytest.fixture(autouse=True)
def fresh_servers():
    pdf_text_server.stop()
    yield
    pdf_text_server.stop()


# --- F1: more than 64 KiB of error lines ---------------------------------------------------

FLOODS = [b"(a) Tj ", b"(bc) ' ", b"[(d) 5 (e)] TJ "]          # each: "No font in show"
LAST_ERRORS = [b"/Nope gs", b"/Nope Do", b"zzunknown", b"/Nope cs"]  # another error at the end


def flooded_pdfs() -> list[tuple[str, bytes]]:
    """No text, a flood of one error (2,000 to 6,000 of it: 80 to 240 KiB of lines), then
    one error of another kind."""
    corpus = []
    for count in (2_000, 6_000):
        for flood in FLOODS:
            for last in LAST_ERRORS:
                content = b"BT " + flood * count + b"ET " + last
                corpus.append((f"{count}x{flood!r}+{last!r}", pdf_of_pages([content])))
    return corpus


def pdftotext_stderr(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "-l", str(documents.PDF_MAX_PAGES),
                           "-", "-"], input=data, capture_output=True).stderr.decode()


def reason(data: bytes) -> str:
    try:
        documents.pdf_text(data)
    except ValueError as damaged:
        return str(damaged)
    return "read"


@pytest.mark.parametrize("data", [data for _, data in flooded_pdfs()],
                         ids=[name for name, _ in flooded_pdfs()])
def test_error_lines_are_pdftotexts_however_many(data):
    assert pdf_text_server.read_pdf(data, documents.PDF_MAX_PAGES).errors.splitlines()[-1] \
        == pdftotext_stderr(data).splitlines()[-1]


@pytest.mark.parametrize("data", [data for _, data in flooded_pdfs()[::5]],
                         ids=[name for name, _ in flooded_pdfs()[::5]])
def test_damaged_pdf_reason_is_the_same_whichever_reads_it(data, monkeypatch):
    served = reason(data)
    monkeypatch.setattr(pdf_text_server, "available", lambda: False)  # pdftotext runs
    assert served == reason(data)


# --- F2: a forked child and its parent's server ----------------------------------------------

def pipes_of(pid: int, fds: list[str]) -> set[str]:
    """What each of `pid`'s file descriptors `fds` is ("pipe:[inode]"), those still open."""
    found = set()
    for fd in fds:
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listing /proc/self/fd itself
            pass
    return found


def pipes_held_by_forked_child() -> set[str]:
    """The pipes of this process's server that a child forked now holds ("pipe:[inode]")."""
    with_text = pdf_of_pages([b"BT /F1 12 Tf 72 700 Td (forked) Tj ET"])
    pdf_text_server.read_pdf(with_text, documents.PDF_MAX_PAGES)  # this process's server
    server = pdf_text_server._server_of_this_process(documents.PDF_MAX_PAGES)
    server_pipes = pipes_of(server.process.pid, ["0", "1"])
    report_read, report_write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(report_read)
            mine = pipes_of(os.getpid(), os.listdir("/proc/self/fd"))
            os.write(report_write, "\n".join(mine & server_pipes).encode())
        finally:
            os._exit(0)
    os.close(report_write)
    with os.fdopen(report_read, "rb") as report:
        held = report.read().decode()
    os.waitpid(child, 0)
    return set(filter(None, held.split("\n")))


def test_a_forked_child_holds_no_end_of_its_parents_server_pipes():
    assert pipes_held_by_forked_child() == set()



# --- F3: a server started by a thread racing stop() ------------------------------------------

def servers_running() -> set[int]:
    """This process's children that are pdf-text-servers (zombies too)."""
    listed = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "pid=,comm="],
                            capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in listed.splitlines()
            if line.split()[1:] == [pdf_text_server.NAME]}


@pytest.mark.parametrize("reads_before_stop", [0, 1, 3])
def test_stop_leaves_no_server_a_thread_racing_it_started(reads_before_stop):
    """The interleaving of a reading thread and stop(), in order: the thread takes its
    _Server, stop() runs to its end, the thread reads; a later stop() must end all."""
    with_text = pdf_of_pages([b"BT /F1 12 Tf 72 700 Td (raced) Tj ET"])
    for _ in range(reads_before_stop):
        pdf_text_server.read_pdf(with_text, documents.PDF_MAX_PAGES)
    taken = pdf_text_server._server_of_this_process(documents.PDF_MAX_PAGES)
    pdf_text_server.stop()
    assert taken.read(with_text).text.startswith(b"raced")
    pdf_text_server.stop()
    left = servers_running()
    for pid in left:  # so that the next test starts without them
        os.kill(pid, signal.SIGKILL)
    assert left == set()
