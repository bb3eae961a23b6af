"""The type of an attachment: from its content (libmagic, Debian's python3-magic) when the
declared type is generic or contradicts the content, else as declared.

A PDF sent as application/octet-stream or as text/x-vcard is read as the PDF it is; a CSV
declared text/csv stays text/csv though libmagic calls it text/plain (the sender knew more).
"""
from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict

from services.archive import charsets

# Types that say nothing about the content.
GENERIC_TYPES = frozenset({
    "application/octet-stream", "binary/octet-stream", "application/binary",
    "application/unknown", "application/x-unknown", "application/download",
    "application/x-download", "application/force-download", "application/x-msdownload",
    "application/save", "application/x-octet-stream", "multipart/octet-stream",
    # Made up by a mailer from a file's extension (Mozilla's "x-extension-" types): they
    # say no more than the name does, and a .eml sent so is a forwarded message (review r10).
    "application/x-eml", "application/eml", "application/x-extension-eml",
})
# libmagic's answers for content it cannot tell: UTF-16 text without a byte-order mark
# among them (with a mark it says text/plain).
UNTOLD = frozenset({"application/octet-stream", "application/data"})
# libmagic answers that are too vague to overrule a declaration.
VAGUE_DETECTIONS = frozenset({"application/octet-stream", "text/plain", "application/x-empty",
                              "inode/x-empty", "application/data"})
# Containers whose members libmagic may report as just the container.
CONTAINER_OF = {
    "application/zip": ("application/vnd.openxmlformats-officedocument.",
                        "application/vnd.oasis.opendocument.", "application/java-archive",
                        "application/epub+zip",
                        "application/vnd.ms-xpsdocument"),
    "application/x-ole-storage": ("application/msword", "application/vnd.ms-",
                                  "application/vnd.visio"),
    "application/cdfv2": ("application/msword", "application/vnd.ms-",
                          "application/vnd.visio"),
}
# What libmagic recognises by a signature it does not find by chance: enough to overrule a
# specific declaration (a PDF sent as text/x-vcard). Weaker guesses (libmagic calls random
# bytes image/x-tga) overrule only generic declarations.
SIGNATURES = frozenset({
    "application/pdf", "application/zip", "application/msword", "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint", "application/x-ole-storage", "application/cdfv2",
    "application/encrypted", "application/vnd.ms-tnef", "text/rtf", "application/gzip",
    "application/x-7z-compressed", "application/x-rar", "application/vnd.rar",
    "application/x-bzip2", "application/x-xz", "image/png", "image/jpeg", "image/gif",
    "application/pkcs7-mime", "application/pgp-encrypted", "text/html",
})
SIGNATURE_PREFIXES = ("application/vnd.openxmlformats-officedocument.",
                      "application/vnd.oasis.opendocument.")
# libmagic's own default read is 1 MB; its rules look near the start, and its text tests
# (most of its time) read all it is given. 16 KiB tells OOXML from zip and XLS from OLE.
SNIFF_BYTES = 16 * 1024
# libmagic's answers kept, by the SHA-256 of the bytes it was given (its answer depends on
# nothing else): mail repeats attachments (a logo in every signature, the same document
# forwarded), and libmagic takes some 0.3 ms a call where a digest of 16 KiB takes 5 us.
# Each entry is a 32-byte digest and a short type: some 200 bytes with Python's overhead.
KNOWN_TYPES = 1024


class _Answers:
    """libmagic's answers by the digest of what it read, the least recently asked for
    forgotten first past `entries` (thread-safe)."""

    def __init__(self, entries: int):
        self.entries, self._lock = entries, threading.Lock()
        self._answers: OrderedDict[bytes, str] = OrderedDict()

    def get(self, digest: bytes) -> str | None:
        with self._lock:
            answer = self._answers.get(digest)
            if answer is not None:
                self._answers.move_to_end(digest)
            return answer

    def put(self, digest: bytes, answer: str) -> None:
        with self._lock:
            self._answers[digest] = answer
            while len(self._answers) > self.entries:
                self._answers.popitem(last=False)


_known = _Answers(KNOWN_TYPES)


def content_type(data: bytes) -> str:
    """libmagic's MIME type of the first bytes of data, lowercased ("application/pdf");
    application/octet-stream when libmagic cannot tell."""
    if not data:
        return "application/x-empty"
    sniffed = data[:SNIFF_BYTES]
    digest = hashlib.sha256(sniffed).digest()
    found = _known.get(digest)
    if found is None:
        found = _detected(sniffed)
        if found is None:
            return "application/octet-stream"
        _known.put(digest, found)
    return found


def _detected(sniffed: bytes) -> str | None:
    """libmagic's type of `sniffed`, lowercased, without parameters; None when libmagic
    failed (not remembered: the next call may fare better)."""
    try:
        found = _magic().from_buffer(sniffed)
    except Exception:  # libmagic errors on odd input are no reason to fail the attachment
        return None
    found = (found or "application/octet-stream").split(";")[0].strip().lower()
    if found in UNTOLD and charsets.unmarked_encoding(sniffed) is not None:
        return "text/plain"  # libmagic calls UTF-16 text without a mark "data"
    return found


def effective_type(declared: str, detected: str) -> str:
    """The type to read an attachment as: the detected one when the declaration is generic
    or contradicts what libmagic clearly recognises, else the declared one."""
    declared, detected = declared.lower(), detected.lower()
    if detected == declared:
        return declared
    if detected in VAGUE_DETECTIONS:  # but octet-stream that is text is read as text
        return detected if declared in GENERIC_TYPES and detected == "text/plain" else declared
    if declared in GENERIC_TYPES:
        return detected
    if declared.startswith(CONTAINER_OF.get(detected, ())):
        return declared  # an .xlsx is a zip, a .doc an OLE file: the declaration is finer
    if detected.startswith("text/") and declared.startswith("text/"):
        return declared  # text/csv sent as such, libmagic calls it text/x-c or the like
    if detected in SIGNATURES or detected.startswith(SIGNATURE_PREFIXES):
        return detected
    return declared


@functools.lru_cache(maxsize=1)
def _magic():
    import magic  # loads the magic database (a few MB): once per worker process
    return magic.Magic(mime=True)
