"""services.archive.filetypes.reading_type: a text/* declaration skips libmagic's text tests
and reads every kind of content as the full test would."""
from __future__ import annotations

import gzip
import os

import pytest

from services.archive import filetypes
from tests import reading_corpus as corpus
from tests.unit.archive.test_extract import make_docx, pdf_with_text

TEXT_DECLARATIONS = ["text/plain", "TEXT/PLAIN", "text/html", "text/csv", "text/calendar",
                     "text/x-vcard", "text/rtf", "text/xml"]


def png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(64)


def contents() -> dict[str, bytes]:
    """One of each kind of content an attachment declared as text may hold."""
    words = b"the quarterly figures are attached, as discussed on the call\n" * 300
    return {
        "plain text": words,
        "latin-1 text": "Grüße aus Köln, à bientôt\n".encode("latin-1") * 200,
        "utf-16 text": "plain words in UTF-16\n".encode("utf-16") * 100,
        "html": b"<!DOCTYPE html><html><body><p>" + words + b"</p></body></html>\n",
        "xml": b'<?xml version="1.0"?><figures>' + words + b"</figures>\n",
        "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>\n',
        "message": b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n",
        "calendar": b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n"
                    b"END:VCALENDAR\r\n",
        "vcard": b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice\r\nEND:VCARD\r\n",
        "csv": b"item,amount,when\n" + b"lamps,1200,2025-06-01\n" * 300,
        "json": b'{"items": [' + b'{"a": 1}, ' * 300 + b'{"a": 2}]}',
        "shell script": b"#!/bin/sh\necho figures\n",
        "pgp armour": b"-----BEGIN PGP MESSAGE-----\n\nhQEMA0xyz\n=abcd\n-----END PGP MESSAGE-----\n",
        "pgp signed": b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhi\n"
                      b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n",
        "rtf": corpus.rtf(["figures"]),
        "pdf": pdf_with_text("figures"),
        "docx": make_docx(["figures"], [["a"]]),
        "xls": corpus.xls([["a"]]),
        "zip": corpus.zip_archive([("a.txt", b"figures")]),
        "odt": corpus.opendocument("text", ["figures"]),
        "gzip": gzip.compress(words),
        "png": png(),
        "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(64),
        "random bytes": os.urandom(4096),
        "empty": b"",
    }


@pytest.mark.parametrize("kind", sorted(contents()))
@pytest.mark.parametrize("declared", TEXT_DECLARATIONS)
def test_a_text_declaration_is_read_as_the_full_test_reads_it(declared, kind):
    data = contents()[kind]
    full = filetypes.effective_type(declared, filetypes.content_type(data, text_tests=True))
    assert filetypes.reading_type(declared, data) == full


def test_text_declarations_skip_the_text_tests_and_others_keep_them(monkeypatch):
    asked = []
    real = filetypes._magic
    monkeypatch.setattr(filetypes, "_magic", lambda text_tests: asked.append(text_tests) or
                        real(text_tests))
    for declared in ("text/plain", "Text/Calendar", "application/octet-stream",
                     "application/pdf", "image/png"):
        filetypes.reading_type(declared, b"plain words\n")
    assert asked == [False, False, True, True, True]


def test_without_text_tests_binary_signatures_are_still_found():
    for kind, expected in [("pdf", "application/pdf"), ("zip", "application/zip"),
                           ("png", "image/png"), ("pgp armour", "application/pgp-encrypted"),
                           ("rtf", "text/rtf"), ("calendar", "text/calendar")]:
        assert filetypes.content_type(contents()[kind], text_tests=False) == expected, kind
    assert filetypes.content_type(contents()["plain text"], text_tests=False) == \
        "application/octet-stream"
