"""PDF attachments shown as pictures of their pages, rendered on the server by poppler
(pdfinfo, pdftoppm from poppler-utils): the browser gets PNG images, never the PDF, so no
PDF reader and no script of the document runs where mail is read.

PDFs are from strangers: each run gets its own process with a time limit, a CPU limit
and an address-space limit, reads the document from stdin and writes into a private
temporary folder; pages are scaled to at most PAGE_PIXELS on their long side, so a
page of absurd size costs no more than a normal one.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from firmware.errors import ArchiverError

PAGE_PIXELS = 1100
SHOWN_PAGES = 10        # pages shown on the message page; the download has them all
TIMEOUT_SECONDS = 20
MEMORY_BYTES = 768 * 1024 * 1024


class PdfUnreadable(ArchiverError):
    """poppler could not read or render the document (the reason in words)."""


def page_count(data: bytes) -> int:
    """How many pages the PDF has; PdfUnreadable when poppler cannot tell."""
    done = _run(["pdfinfo", "-"], data)
    found = re.search(rb"^Pages:\s+(\d+)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        raise PdfUnreadable(_reason(done))
    return int(found.group(1))


def render_page(data: bytes, number: int) -> bytes:
    """Page `number` (from 1) as PNG bytes; PdfUnreadable when it cannot be rendered."""
    with tempfile.TemporaryDirectory(prefix="archiver-pdf-") as folder:
        root = Path(folder) / "page"
        done = _run(["pdftoppm", "-f", str(number), "-l", str(number), "-png", "-singlefile",
                     "-scale-to", str(PAGE_PIXELS), "-", str(root)], data)
        png = root.with_suffix(".png")
        if done.returncode != 0 or not png.exists():
            raise PdfUnreadable(_reason(done))
        return png.read_bytes()


def _run(command: list[str], data: bytes) -> subprocess.CompletedProcess:
    # prlimit (util-linux) sets the limits: preexec_fn is unsafe in a threaded server.
    limited = ["prlimit", f"--as={MEMORY_BYTES}", f"--cpu={TIMEOUT_SECONDS}", "--", *command]
    try:
        return subprocess.run(limited, input=data, capture_output=True, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise PdfUnreadable(f"rendering took longer than {TIMEOUT_SECONDS} s") from None
    except OSError as exc:
        raise PdfUnreadable(f"{command[0]} could not run: {exc}") from None


def _reason(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines()
             if line.strip() and "Warning" not in line]
    return (lines[-1] if lines else f"poppler exited with status {done.returncode}")[:300]
