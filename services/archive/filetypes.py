"""The type of an attachment: from its content (libmagic, Debian's python3-magic) when the
declared type is generic or contradicts the content, else as declared.

A PDF sent as application/octet-stream or as text/x-vcard is read as the PDF it is; a CSV
declared text/csv stays text/csv though libmagic calls it text/plain (the sender knew more).
"""
from __future__ import annotations

import functools

# Types that say nothing about the content.
GENERIC_TYPES = frozenset({
    "application/octet-stream", "binary/octet-stream", "application/binary",
    "application/unknown", "application/x-unknown", "application/download",
    "application/x-download", "application/force-download", "application/x-msdownload",
    "application/save", "application/x-octet-stream", "multipart/octet-stream",
})
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


def content_type(data: bytes) -> str:
    """libmagic's MIME type of the first bytes of data, lowercased ("application/pdf");
    application/octet-stream when libmagic cannot tell."""
    if not data:
        return "application/x-empty"
    try:
        found = _magic().from_buffer(data[:SNIFF_BYTES])
    except Exception:  # libmagic errors on odd input are no reason to fail the attachment
        return "application/octet-stream"
    return (found or "application/octet-stream").split(";")[0].strip().lower()


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
