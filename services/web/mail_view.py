"""A stored message as a person reads it: its main headers, its body as plain text and its
attachments, numbered from 1 in the order they appear. A message whose whole body is a
file (not multipart: a scanner's PDF, a photo, a named file) has that file as its
attachment 1 and no body, as extraction reads it (mime.whole_body_is_attachment). Files
uuencoded in its body text (or a body sent x-uuencode) are attachments where their text
part is, and their encoded lines no body text, as extraction reads them (mime's rule of a
message's files, above mime.is_body_text); an attachment sent x-uuencode holding two or
more files is each of them. Numbers are places among all the message's files (that rule):
the first 1,000 are the files extraction reads, and those past them are listed too.

The body is shown as text only: mail is from strangers, and HTML from strangers in the
archive's own pages could run script in an auditor's session. HTML-only mail is shown as
the text of its HTML as the index reads it (extract.html_document_text): a line for each
paragraph, heading, list item or other block, where the page once ran them together
("<p>world</p><p>second</p>" read "worldsecond", two words no search finds).
"""
from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from services.archive.extract import html_document_text, inner_message
from services.archive.mime import (FoundFile, attachment_content, attachment_files,
                                   attachment_name,
                                   body_text_of, charsets_of, decode_header_text,
                                   decode_text, files_not_listed, is_attachment,
                                   is_body_text, iter_parts, parse_message,
                                   read_uuencoded_files, safely, uuencoded_files,
                                   whole_body_is_attachment)
from services.archive.store import NotFound

# The fields of a resent copy (RFC 5322 3.6.6): who resent it when, and to whom; search
# finds mail by its resent recipients, so the reader is shown them (a user's copy has no
# Resent-Bcc, services.web.access.as_read).
RESENT_HEADERS = ("Resent-From", "Resent-Sender", "Resent-Date", "Resent-To", "Resent-Cc",
                  "Resent-Bcc")
SHOWN_HEADERS = ("From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Date", "Subject",
                 "Message-ID", *RESENT_HEADERS)
BODY_LIMIT = 512 * 1024  # characters shown; the rest is in the raw download


@dataclass(frozen=True)
class Attachment:
    number: int
    filename: str
    content_type: str
    size: int

    def as_json(self) -> dict:
        return {"number": self.number, "filename": self.filename,
                "content_type": self.content_type, "size": self.size}


@dataclass(frozen=True)
class MessageView:
    headers: list[tuple[str, str]]
    body: str
    body_truncated: bool
    attachments: list[Attachment]

    def as_json(self) -> dict:
        return {"headers": [{"name": n, "value": v} for n, v in self.headers],
                "attachments": [a.as_json() for a in self.attachments]}


def view(raw: bytes) -> MessageView:
    message = parse_message(raw)
    attachments = [attachment for attachment, _ in _attachments(message)]
    body = _body_text(message)  # after: the split that found the files kept their text
    return MessageView(shown_headers(message), body[:BODY_LIMIT], len(body) > BODY_LIMIT,
                       attachments)


def attachment(raw: bytes, number: int) -> tuple[Attachment, bytes]:
    for found, part in _attachments(parse_message(raw)):
        if found.number == number:
            return found, _part_bytes(part)
    raise NotFound(f"the message has no attachment {number}")


def shown_headers(message: Message, names: tuple[str, ...] = SHOWN_HEADERS
                  ) -> list[tuple[str, str]]:
    """(name, decoded value) of each header of `names` the message has, in that order."""
    shown = []
    for name in names:
        for value in safely(lambda: message.get_all(name), None) or []:
            if isinstance(value, str):
                shown.append((name, decode_header_text(value, charsets_of(message))))
    return shown


def _attachments(message: Message) -> list[tuple[Attachment, Message]]:
    """(Attachment, part) of each file of the message listed, numbered by mime's one rule
    (above mime.UUENCODED_FILES_LISTED): a file's place among all the message's files, the
    uuencoded files past those listed counted though not listed."""
    found, number = [], 0
    read_uuencoded_files(message)
    for part in iter_parts(message, into_messages=False):
        for file in _files_of(part, message):
            number += 1
            name = attachment_name(file) or f"attachment-{number}"
            content_type = safely(file.get_content_type, "application/octet-stream")
            found.append((Attachment(number, name, content_type, len(_part_bytes(file))),
                          file))
        number += files_not_listed(part)
    return found


def _files_of(part: Message, message: Message) -> list[Message]:
    """The files of the message that `part` is or holds: itself when it is an attachment
    (the message itself only when its whole body is one: its part 1 in the message tree;
    a message/* root is a container, its inner message the mail), or its uuencoded files
    when it is one sent x-uuencode that holds two or more (mime.attachment_files); the
    files uuencoded in it when it is body text."""
    listed = whole_body_is_attachment(part) if part is message else is_attachment(part)
    if listed:
        return attachment_files(part) or [part]
    return uuencoded_files(part) if is_body_text(part) else []


def _part_bytes(part: Message) -> bytes:
    """The decoded content of a leaf; an attached message as its bytes."""
    if isinstance(part, FoundFile):
        return part.data
    if safely(part.get_content_maintype, "") == "message" and part.is_multipart():
        # decoded when a mailer encoded it (base64, quoted-printable), as extraction and
        # the message tree read it: the parser's inner message is then the encoded text
        inner = safely(lambda: inner_message(part), None)
        return safely(inner.as_bytes, b"") if isinstance(inner, Message) else b""
    return attachment_content(part)


def _body_text(message: Message) -> str:
    plain, html = None, None
    for part in iter_parts(message, into_messages=False):
        if part.is_multipart() or is_attachment(part):  # the root too: a whole-body file
            continue
        kind = safely(part.get_content_type, "text/plain")
        if kind == "text/plain" and plain is None:
            plain = _decoded(part)
        elif kind == "text/html" and html is None:
            html = _decoded(part)
    if plain is not None and plain.strip():
        return plain
    return _html_text(html) if html else (plain or "")


def _decoded(part: Message) -> str:
    """A part's text; of body text, the text around its uuencoded files (as extraction
    reads it: their encoded lines, or an x-uuencode body's decoded file, are no text)."""
    charset = safely(part.get_content_charset, None)
    if is_body_text(part):
        return decode_text(body_text_of(part), charset)
    return decode_text(_part_bytes(part), charset)


def _html_text(html: str) -> str:
    """The text of HTML as the index reads it (extract.html_document_text): read without a
    tree (services.archive.html_text; a tree of a large document took hundreds of MB here
    and libxml2 dropped the part it could not hold without a word); a MemoryError is the
    page's error, never a shorter text."""
    return safely(lambda: html_document_text(html), "")
