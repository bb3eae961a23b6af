"""A stored message as a tree of parts, for the message view: every part with a path,
its name, type and size, whether the indexer read its text, and how it can be shown;
attached (forwarded) messages are parts whose one child is the message inside.

Paths: the parts of a multipart are numbered from 1 and the message inside a
message/rfc822 part is its child 1, so "2.1.3" is the third part of the message attached
as part 2. The root message is "". Paths are stable: the same bytes always parse into
the same tree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

import magic

from services.archive.extract import effective_type, inner_message, reads_text_of
from services.archive.mime import (decode_header_text, decode_text, filename_of, header,
                                   is_attachment, iter_parts, safely)
from services.archive.store import NotFound
from services.web.sanitize import content_id_key

RASTER_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
MAX_DEPTH = 60  # deeper trees are shown to here; the message itself is still downloadable


@dataclass
class Part:
    path: str
    content_type: str
    filename: str | None
    size: int                      # decoded bytes; a message: its bytes
    attachment: bool
    text: str                      # "text read", "text not read: REASON", "no text: ..."
    shown_as: str | None = None    # image, pdf, text, html, message, or None (download)
    content_id: str | None = None
    children: list["Part"] = field(default_factory=list)
    subject: str | None = None     # an attached message's

    @property
    def label(self) -> str:
        if self.shown_as == "message":
            return f"{self.subject or '(no subject)'} (message)"
        if self.filename:
            return self.filename
        if not self.attachment and self.content_type in ("text/plain", "text/html"):
            return "body HTML" if self.content_type == "text/html" else "body text"
        return f"part {self.path}"

    def walk(self, into_messages: bool = True):
        """This part and those inside it, depth first; with into_messages False, not the
        parts of attached messages (they have their own page)."""
        yield self
        if into_messages or self.shown_as != "message":
            for child in self.children:
                yield from child.walk(into_messages)


def children(part: Message) -> list[Message]:
    """The parts a multipart holds; the message a message/* part holds; else none."""
    if safely(part.get_content_maintype, "") == "message":
        inner = inner_message(part)
        return [inner] if isinstance(inner, Message) else []
    if part.is_multipart():
        payload = part.get_payload()
        return [child for child in payload if isinstance(child, Message)] \
            if isinstance(payload, list) else []
    return []


def part_at(message: Message, path: str) -> Message:
    """The part at `path`; NotFound for a path the message does not have."""
    part = message
    for step in path.split(".") if path else []:
        found = children(part)
        if not step.isdigit() or not 1 <= int(step) <= len(found):
            raise NotFound(f"the message has no part {path}")
        part = found[int(step) - 1]
    return part


def decoded(part: Message) -> bytes:
    """A leaf's content, transfer encoding undone; a message/* part's inner message as
    bytes; b"" for what cannot be decoded."""
    if safely(part.get_content_maintype, "") == "message":
        inner = children(part)
        return safely(lambda: inner[0].as_bytes(), b"") if inner else b""
    data = safely(lambda: part.get_payload(decode=True), None)
    return data if isinstance(data, bytes) else b""


def tree(message: Message, failures: list[str] | None, root_path: str = "") -> Part:
    """The tree of `message` (or of the part at root_path in it). `failures`: the store's
    "extraction_failures" of the message ("NAME: reason" each), which say what the indexer
    could not read."""
    failed = _failures_by_name(failures or [])
    return _node(part_at(message, root_path), root_path, failed, depth=0, root=not root_path)


def _node(part: Message, path: str, failed: dict[str, str], depth: int, root: bool) -> Part:
    content_type = safely(part.get_content_type, "application/octet-stream")
    filename = filename_of(part)
    maintype = content_type.split("/")[0]
    attached = not root and (maintype == "message" or is_attachment(part))
    node = Part(path, content_type, filename, 0 if part.is_multipart() and maintype != "message"
                else len(decoded(part)), attached, "", None,
                decode_header_text(header(part, "content-id")).strip("<> ") or None)
    node.text = _text_status(node, failed)
    node.shown_as = _shown_as(node, part)
    if node.shown_as == "message":
        inner = children(part)
        node.subject = decode_header_text(header(inner[0], "subject")) if inner else None
    if depth < MAX_DEPTH:
        node.children = [_node(child, f"{path}.{number}" if path else str(number), failed,
                               depth + 1, root=False)
                         for number, child in enumerate(children(part), 1)]
    return node


def _text_status(node: Part, failed: dict[str, str]) -> str:
    if not node.attachment:
        return "text read" if node.content_type.startswith(("text/", "message/")) else ""
    reason = failed.get(node.filename or node.content_type)
    if reason is not None:
        return f"text not read: {reason}"
    if reads_text_of(node.content_type, node.filename):
        return "text read"
    return "no text: found by its name and type"


def _shown_as(node: Part, part: Message) -> str | None:
    kind = effective_type(node.content_type, node.filename)
    if kind.startswith("message/"):
        return "message"
    if not node.attachment or part.is_multipart():
        return None
    if kind in RASTER_IMAGES:
        sniffed = safely(lambda: magic.from_buffer(decoded(part)[:4096], mime=True), "")
        return "image" if sniffed in RASTER_IMAGES else None
    if kind == "application/pdf":
        return "pdf"
    if kind == "text/html":
        return "html"
    if kind.startswith("text/"):
        return "text"
    return None


def _failures_by_name(failures: list[str]) -> dict[str, str]:
    found = {}
    for failure in failures:
        name, separator, reason = failure.partition(": ")
        if separator:
            found.setdefault(name, reason)
    return found


@dataclass
class Body:
    """What a message says: its HTML (to render) and its plain text, either may be None,
    and the inline images its HTML may name (Content-ID -> (type, bytes))."""
    html: str | None
    text: str | None
    images: dict[str, tuple[str, bytes]]


def body(message: Message, path: str = "") -> Body:
    """The body of the message at `path` ("" the root, else a message/* part's inner
    message): its first HTML and first plain text part that are not attachments;
    attachments of attached messages are not its body."""
    root = part_at(message, path)
    if path and safely(root.get_content_maintype, "") == "message":
        root = children(root)[0] if children(root) else Message()
    html = text = None
    images = {}
    for part in iter_parts(root, into_messages=False):
        if part.is_multipart():
            continue
        content_type = safely(part.get_content_type, "text/plain")
        content_id = header(part, "content-id")
        if content_id and content_type.startswith("image/"):
            images[content_id_key(decode_header_text(content_id))] = (content_type, decoded(part))
        if part is not root and is_attachment(part):
            continue
        charset = safely(part.get_content_charset, None)
        if content_type == "text/html" and html is None:
            html = decode_text(decoded(part), charset)
        elif content_type.startswith("text/") and content_type != "text/html" and text is None:
            text = decode_text(decoded(part), charset)
    return Body(html, text, images)
