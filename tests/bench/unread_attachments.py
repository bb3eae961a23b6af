"""`archiver` with the files attached to mail left unread, as notmuch and mu index them: what
reading attachments costs an import is the difference between it and `archiver` (the
bench's attachment_cost line, tests.bench.run).

Unread, an attachment is indexed by its name and its declared type (the one its name's
extension gives a generic declaration), as notmuch does (a part whose Content-Disposition
is attachment gets its file name indexed, nothing else); nothing of its content is
decoded, typed by libmagic, hashed or handed to a reader (pypdf and the PDF text server,
python-docx, openpyxl, lxml, the tools of services.archive.documents), and no container
(zip, TNEF, S/MIME) is opened. A forwarded message (declared message/rfc822 or
message/global) is read as before: notmuch and mu index it as part of the message; the
files attached inside it are left unread in turn. Body text, HTML alternatives included,
is read as before, and so are files uuencoded in it (services.archive.uuencode; the bench
corpus has none).

The switch lives here, not in the product: it would leave an archive whose search misses
what its users attach. It reaches the extraction workers through the fork server's
preloaded modules (extract.PRELOADED): the fork server imports this module, which
installs it there when $UNREAD_ATTACHMENTS is 1 (main() sets it; a test importing the
module changes nothing), and each worker forked from it inherits it. The fork server
passes over a preloaded module it cannot import, so check the archive made
(MARKERS_IN_FILES: the corpus's words found only in attached files must find nothing).

command(["import", "--json", "--data", DATA, MAILDIR]) is the command line that runs it. Not
`python -m` this module: each worker would run it again as its __main__ (multiprocessing's
spawn.prepare), while `archiver`'s workers run the archiver script so.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from services.archive import extract, mime

NAME = "tests.bench.unread_attachments"  # this module's, for the fork server to import
SWITCH = "UNREAD_ATTACHMENTS"  # set to 1 in the environment of the fork server it installs in
# Markers of tests.bench.corpus placed in attached files only (the forwarded message's,
# nestorquay, is read unread or not).
MARKERS_IN_FILES = ("tessellora", "ottervane", "glimmerdoc", "ledgerwyrm")
MESSAGE_TYPES = (extract.MESSAGE, extract.GLOBAL_MESSAGE)

_read_attachment = extract._attachment


def unread_attachment(part, cap_bytes: int, nesting: int, budget, container: str | None):
    """extract._attachment's stand-in: ([the attachment's entry: name and declared type, no
    text], no body text) for a file; a forwarded message read as extract._attachment does
    (its own files through this again)."""
    filename, declared = mime.filename_of(part), extract._mime_type(part)
    if declared in MESSAGE_TYPES:
        return _read_attachment(part, cap_bytes, nesting, budget, container)
    mime_type = extract._type_of_extension(declared, filename)
    return [extract.AttachmentText(filename, mime_type, "", container=container)], ""


def install() -> None:
    """Leave attachments unread in this process, and in the extraction workers of the
    pools it starts from now on (before its fork server is running)."""
    extract._attachment = unread_attachment
    os.environ[SWITCH] = "1"
    if NAME not in extract.PRELOADED:
        extract.PRELOADED = (*extract.PRELOADED, NAME)


@contextlib.contextmanager
def attachments_unread() -> Iterator[None]:
    """Within the block, extract() in this process leaves attachments unread."""
    extract._attachment = unread_attachment
    try:
        yield
    finally:
        extract._attachment = _read_attachment


def command(argv: list[str]) -> list[str]:
    """The command line of `archiver` ARGV with attachments unread (main() in a Python of
    this one's executable; this tree must be on its PYTHONPATH)."""
    return [sys.executable, "-c", f"import sys; from {NAME} import main; "
                                  "sys.exit(main(sys.argv[1:]))", *argv]


def main(argv: list[str]) -> int:
    """`archiver` ARGV with attachments unread; its exit status."""
    from services.cli.main import main as archiver
    install()
    return archiver(argv)


if __name__ == NAME and os.environ.get(SWITCH) == "1":
    install()  # imported by the fork server of main()'s command (extract.PRELOADED)
