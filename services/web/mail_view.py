"""A stored message as a person reads it: its main headers, its body as plain text and its
attachments, numbered from 1 in the order they appear. A message whose whole body is a
file (a scanner's PDF, a photo, a named file, a forwarded message sent as a file: a
message/rfc822 body with Content-Disposition: attachment or a name) has that file as its
attachment 1 and no body, as extraction reads it (mime.whole_body_is_attachment). Files
uuencoded in its body text (or a body sent x-uuencode) are attachments where their text
part is, and their encoded lines no body text, as extraction reads them (mime's rule of a
message's files, above mime.is_body_text); an attachment sent x-uuencode holding two or
more files is each of them. Numbers are places among all the message's files (that rule):
the first 1,000 are the files extraction reads, and those past them are listed too.
This one numbered list is what the API's message JSON and `archiver show` give (as_json),
and what the numbered downloads serve. A file that holds files the message page lists
under it (an attached message's own files, a TNEF winmail.dat's, a zip's, those of the
entity an S/MIME object signs) lists them too, unnumbered (Attachment.files): they are downloaded
from the page by their part, not by a number. They are read off the page's own tree
(message_tree.tree: its containers, its depth, its budget), so that the two cannot
disagree; a numbered download reads none of them (review r7 F1, F2, F3).

The body is shown as text only: mail is from strangers, and HTML from strangers in the
archive's own pages could run script in an auditor's session. HTML-only mail is shown as
the text of its HTML as the index reads it (extract.html_document_text): a line for each
paragraph, heading, list item or other block, where the page once ran them together
("<p>world</p><p>second</p>" read "worldsecond", two words no search finds).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import Message

from services.archive.extract import html_document_text
from services.archive.mime import (FoundFile, attachment_content, attachment_files,
                                   attachment_name,
                                   body_text_of, charsets_of, decode_header_text,
                                   decode_text, files_not_listed, is_attachment,
                                   is_body_text, message_parts,
                                   read_uuencoded_files, safely, uuencoded_files,
                                   whole_body_is_attachment)
from services.archive.store import NotFound
from services.web import forwarded, message_tree

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
    """A file of the message: `number` its place (module docstring), None for a file inside
    another (no numbered download serves it); `filename` the name the message gives it or,
    when it gives none (`named` False), "attachment-N" for a numbered file (the name its
    download is saved under) and None for one inside another (an inner message's count
    would name another file's download, review r7 F5); `size` its decoded bytes (an
    attached message: its bytes), None for an unreadable one; `files` those the message
    page lists inside it (_with_files_inside); `not_opened`, of a container the view did
    not open (over its budget, message_tree.Part.not_opened), why its files are not
    listed; `unreadable`, of a file inside a container that could not be read out of it
    (message_tree.Part.unreadable: encrypted, corrupt...), why: it has no content;
    `container_problem`, of a container (zip, TNEF, S/MIME signed-data), its problem as a
    whole in the indexer's words (message_tree.Part.container_problem): why it could not
    be opened (no `files`), or why some of its files are not listed."""
    number: int | None
    filename: str | None
    content_type: str
    size: int | None
    named: bool = True
    files: tuple["Attachment", ...] = ()
    not_opened: str | None = None
    unreadable: str | None = None
    container_problem: str | None = None

    def as_json(self) -> dict:
        """The file as the API and `show --json` give it; a file inside another has no
        "number"; only a container the view did not open has "not_opened"; only a file
        that could not be read out of its container has "unreadable" (and a null size);
        only a container with a problem as a whole has "container_problem"."""
        shown = {"number": self.number} if self.number is not None else {}
        said = {key: value for key, value in (("not_opened", self.not_opened),
                                              ("unreadable", self.unreadable),
                                              ("container_problem", self.container_problem))
                if value}
        return {**shown, "filename": self.filename, "named": self.named,
                "content_type": self.content_type, "size": self.size,
                "files": [inside.as_json() for inside in self.files], **said}


@dataclass(frozen=True)
class MessageView:
    headers: list[tuple[str, str]]
    body: str
    body_truncated: bool
    attachments: list[Attachment]

    def as_json(self) -> dict:
        return {"headers": [{"name": n, "value": v} for n, v in self.headers],
                "attachments": [a.as_json() for a in self.attachments]}


# The store's own fields of a message that mean nothing to a reader: "number" is the index's
# document id (services.archive.store), which reads as a file's number beside them.
META_NOT_SHOWN = ("number",)


def message_json(meta: dict, shown: dict) -> dict:
    """The message JSON of the API (OpenAPI "Message") and `show --json`: the store's
    metadata but META_NOT_SHOWN, the indexer's file names as "attachment_names", then
    `shown` (MessageView.as_json(), or its "attachments" alone) over them: "attachments"
    are the numbered files."""
    kept = {key: value for key, value in meta.items() if key not in META_NOT_SHOWN}
    return {**kept, "attachment_names": meta.get("attachments", []), **shown}


def view(raw: bytes) -> MessageView:
    message = forwarded.parse(raw)
    attachments = _numbered_files(message)
    body = _body_text(message)  # after: the split that found the files kept their text
    return MessageView(shown_headers(message), body[:BODY_LIMIT], len(body) > BODY_LIMIT,
                       attachments)


def files(raw: bytes) -> list[Attachment]:
    """The message's numbered files, each with the files inside it, as view() lists them
    (`archiver show`: no body read)."""
    return _numbered_files(forwarded.parse(raw))


def _numbered_files(message: Message) -> list[Attachment]:
    return _with_files_inside(message, _attachments(message))


def attachment(raw: bytes, number: int) -> tuple[Attachment, bytes]:
    """File `number` of the message and its bytes (no files inside it). Numbered as the
    list is (_numbered: the same walk), it decodes that file alone: no other file is read
    or sized, no container opened, no attached message parsed but one served. NotFound for
    a number the message has no file at."""
    for at, file in _numbered(forwarded.parse(raw)):
        if at == number:
            data = _part_bytes(file)
            return _described(at, file, len(data)), data
        if at > number:  # (a number uuencoded files not listed take: none is served)
            break
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


def _attachments(message: Message) -> list[Attachment]:
    """The message's numbered files (_numbered), each sized; no files inside them."""
    return [_described(number, file, _size(file)) for number, file in _numbered(message)]


def _numbered(message: Message) -> Iterator[tuple[int, Message]]:
    """(number, part) of each file of the message listed, in order, numbered by mime's
    one rule (above mime.UUENCODED_FILES_LISTED): a file's place among all the message's
    files, the uuencoded files past those listed counted though not listed. Reads no
    file's content but body text's and x-uuencode attachments' (their files count)."""
    number = 0
    read_uuencoded_files(message)
    for part in message_parts(message):
        for file in _files_of(part, message):
            number += 1
            yield number, file
        number += files_not_listed(part)


def _described(number: int, file: Message, size: int) -> Attachment:
    """File `number` of `size` decoded bytes, named as extraction names it (or
    "attachment-N"); no files inside it."""
    name = attachment_name(file)
    return Attachment(number, name or f"attachment-{number}",
                      safely(file.get_content_type, "application/octet-stream"), size,
                      named=name is not None)


def _with_files_inside(message: Message, attachments: list[Attachment]) -> list[Attachment]:
    """`attachments` (the message's numbered files) each with the files the message page
    lists inside it, read off the page's tree (_numbered_nodes); where the tree cannot be
    paired with them, none has files listed: a file's files are never another's."""
    tree = safely(lambda: message_tree.tree(message, None), None)
    paired = _numbered_nodes(attachments, tree) if tree is not None else []
    if not paired:
        return attachments
    return [replace(attachment, files=_inner_files(node), not_opened=node.not_opened,
                    container_problem=node.container_problem)
            for attachment, node in paired]


def numbered_parts(message: Message, tree: message_tree.Part) -> dict[str, Attachment]:
    """The message's numbered files (no files inside them) by the path of their node in
    `tree`, the message page's tree of the whole stored `message`: the page shows each
    under its number and name as `show` does and links download N (review r9 F6). Empty
    where the two cannot be paired (_numbered_nodes): a number is never another file's."""
    return {node.path: attachment
            for attachment, node in _numbered_nodes(_attachments(message), tree)}


def _numbered_nodes(attachments: list[Attachment], tree: message_tree.Part
                    ) -> list[tuple[Attachment, message_tree.Part]]:
    """Each numbered file with its node in the page's `tree`: the tree's outermost files
    (_files_in) are the numbered ones, in their order (mime's rule). [] where the two
    counts differ (a tree cut at message_tree.MAX_DEPTH before some numbered file)."""
    nodes = _files_in(tree)
    return list(zip(attachments, nodes)) if len(nodes) == len(attachments) else []


def _files_in(node: message_tree.Part) -> list[message_tree.Part]:
    """The outermost files of the page's tree below `node`: its children that are files
    (Part.attachment), and those below the others (a multipart, body text holding
    uuencoded files, an x-uuencode attachment holding several, the message a message/*
    part holds -- a message itself, not a file of it -- the entity an S/MIME object
    signs)."""
    found = []
    for child in node.children:
        if child.attachment and node.shown_as != "message":
            found.append(child)
        else:
            found.extend(_files_in(child))
    return found


def _inner_files(node: message_tree.Part) -> tuple[Attachment, ...]:
    """The files the page lists inside file `node`, each with its own, unnumbered."""
    return tuple(Attachment(None, inner.filename, inner.content_type, inner.size,
                            named=inner.filename is not None, files=_inner_files(inner),
                            not_opened=inner.not_opened, unreadable=inner.unreadable,
                            container_problem=inner.container_problem)
                 for inner in _files_in(node))


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


def _size(part: Message) -> int:
    """len(_part_bytes(part)): an attached message's sized, not copied."""
    return forwarded.message_size(part) if _is_attached_message(part) \
        else len(_part_bytes(part))


def _is_attached_message(part: Message) -> bool:
    return not isinstance(part, FoundFile) \
        and safely(part.get_content_maintype, "") == "message" and part.is_multipart()


def _part_bytes(part: Message) -> bytes:
    """The decoded content of a leaf; an attached message as its bytes."""
    if isinstance(part, FoundFile):
        return part.data
    if _is_attached_message(part):
        # (its bytes in the stored message, decoded when a mailer encoded it, as the
        # message tree reads them)
        return forwarded.message_bytes(part)
    return attachment_content(part)


def _body_text(message: Message) -> str:
    plain, html = None, None
    for part in message_parts(message):
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
