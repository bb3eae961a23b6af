"""The message view: headers (the common ones, or all), the envelope and the archive's own
facts, the body (HTML sanitized in a sandboxed frame, or text, the query's words marked),
the tree of parts with attached messages opening as messages, and previews of images,
PDFs (pages rendered by poppler) and text. Every route reads the message through the
access check (services.web.access) and writes its audit entry.

Routes: /message/D (?part=P: the message attached as part P; ?q=: words to mark;
?headers=all; ?view=text), /message/D/frame (the HTML body's document, ?part, ?q,
?remote=1), /message/D/part/P (download), /message/D/part/P/inline (an image or text
attachment), /message/D/part/P/page/N (page N of a PDF attachment, PNG).

PDFs are read and rendered on the render pool (services.web.renders), never on the
threads the page itself, downloads and logins use.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email.message import Message

from aiohttp import web

from services.appliance.users import User
from services.archive import message_date
from services.archive.archive import Archive
from services.archive.highlight import Highlighter, Segment
from services.archive.mime import (charsets_of, decode_header_text, decode_text, parse_message,
                                   safely)
from services.archive.store import NotFound
from services.policy import audit
from services.common.terminal import BIDI_CONTROLS
from services.web import admin_actions, forwarded, mail_view, message_tree, pdf_pages, sanitize
from services.web.access import read_message
from services.web.formatting import visible
from services.web.mail_view import RESENT_HEADERS, shown_headers
from services.web.message_tree import Body, Part
from services.web.renders import RenderFailed, Renders, RendersBusy
from services.web.transfers import Transfers
from services.web.ui import app_context, page, render

COMMON_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Date", "Subject",
                  "Message-ID", "In-Reply-To", *RESENT_HEADERS)
TEXT_SHOWN = 512 * 1024  # characters of a body or text attachment shown; downloads have all


@dataclass
class Preview:
    part: Part
    kind: str                                # image, pdf, text, html
    pages: list[int] = field(default_factory=list)
    page_count: int = 0
    text: list[Segment] = field(default_factory=list)
    problem: str | None = None
    data: bytes = field(default=b"", repr=False)  # a PDF's, for counting its pages


@dataclass(frozen=True)
class NumberedFile:
    """A file of the stored message as `archiver show` lists it: its number (the page's
    download /message/D/attachment/N, the API's) and the words that name it, "(no name,
    saved as attachment-N)" for an unnamed one; a name escaped as Part.label_text is."""
    number: int
    label_text: str


@dataclass
class MessageModel:
    meta: dict
    path: str                                # "" the stored message, else an attached one
    subject: str
    headers: list[tuple[str, str]]
    all_headers: bool
    body: Body
    body_text: list[Segment]                 # the plain text, the query's words marked
    remote_images: int
    tree: Part
    previews: list[Preview]
    holds: list[dict]
    date_source: str
    numbered: dict[str, NumberedFile]        # by part path; none on an attached message's page


# -- routes --------------------------------------------------------------------------------

@page("GET", "/message/{digest}")
async def message_page(request: web.Request, user: User) -> web.Response:
    config, archive = app_context(request)
    query = request.query
    model = await asyncio.to_thread(
        message_model, archive, user, request.match_info["digest"], query.get("part", ""),
        query.get("q", ""), query.get("headers") == "all", config.timezone)
    for preview in model.previews:
        if preview.kind == "pdf":
            await _count_pages(request.app["renders"], user, preview)
    show_text = query.get("view") == "text" or model.body.html is None
    return render(request, "message.html", m=model, query=query.get("q", ""),
                  show_text=show_text, timezone=config.timezone,
                  request_remote=query.get("remote") == "1",
                  staff=user.role in ("admin", "auditor"))


@page("GET", "/message/{digest}/frame")
async def message_frame(request: web.Request, user: User) -> web.Response:
    """The sanitized HTML of the body (or of an HTML attachment) as its own document,
    under frame_policy: shown only inside the sandboxed iframe of the message page."""
    _, archive = app_context(request)
    remote = request.query.get("remote") == "1"
    cleaned = await asyncio.to_thread(
        frame_document, archive, user, request.match_info["digest"],
        request.query.get("part", ""), request.query.get("q", ""), remote)
    return web.Response(text=cleaned.document, content_type="text/html", headers={
        "Content-Security-Policy": sanitize.frame_policy(remote),
        "X-Frame-Options": "SAMEORIGIN"})


@page("GET", "/message/{digest}/part/{path}")
async def part_download(request: web.Request, user: User) -> web.StreamResponse:
    """A part as a download, fetched and sent on the transfer pool (services.web.transfers)
    in one of the user's slots, as whole messages and attachments are."""
    _, archive = app_context(request)
    transfers: Transfers = request.app["transfers"]
    async with transfers.slot(user):
        found, data = await transfers.run(part_bytes, archive, user,
                                          request.match_info["digest"],
                                          request.match_info["path"], "download")
        return await _download(request, transfers, found, data)


async def _download(request: web.Request, transfers: Transfers, found: Part, data: bytes
                    ) -> web.StreamResponse:
    return await transfers.send(request, data, found.filename or f"part-{found.path}",
                                "application/octet-stream")


@page("GET", "/message/{digest}/part/{path}/inline")
async def part_inline(request: web.Request, user: User) -> web.StreamResponse:
    """An image attachment as its image (raster types only, checked by content), or a text
    attachment as UTF-8 text, answered like a page (a message page shows several at once,
    more than a user's transfer slots); anything else is a download on the transfer pool."""
    _, archive = app_context(request)
    found, data = await asyncio.to_thread(part_bytes, archive, user,
                                          request.match_info["digest"],
                                          request.match_info["path"], "inline")
    if found.shown_as == "image":
        return web.Response(body=data, content_type=found.content_type)
    if found.shown_as == "text":
        return web.Response(text=decode_text(data, None), content_type="text/plain",
                            charset="utf-8")
    transfers: Transfers = request.app["transfers"]
    async with transfers.slot(user):
        return await _download(request, transfers, found, data)


@page("GET", "/message/{digest}/part/{path}/page/{number}")
async def pdf_page(request: web.Request, user: User) -> web.Response:
    _, archive = app_context(request)
    number = request.match_info["number"]
    if not (number.isascii() and number.isdigit() and len(number) <= 7
            and 1 <= int(number) <= pdf_pages.MAX_PAGES):
        raise web.HTTPNotFound(reason=f"pages are numbered from 1 to {pdf_pages.MAX_PAGES}")
    found, data = await asyncio.to_thread(part_bytes, archive, user,
                                          request.match_info["digest"],
                                          request.match_info["path"],
                                          "pdf" if number == "1" else None)
    if found.shown_as != "pdf":
        raise web.HTTPNotFound(reason=f"part {found.path} is not a PDF")
    renders: Renders = request.app["renders"]
    try:
        png = await renders.render(user, data, ("page", int(number)), pdf_pages.render_page,
                                   data, int(number), errors=(pdf_pages.PdfUnreadable,))
    except RenderFailed as exc:
        raise web.HTTPNotFound(reason=f"page {number} cannot be shown: {exc}") from None
    return web.Response(body=png, content_type="image/png")


async def _count_pages(renders: Renders, user: User, preview: Preview) -> None:
    """The PDF's page count, on the render pool (poppler reads a stranger's document):
    sets the pages shown, or the problem (also when the user's render slots are taken)."""
    try:
        count = await renders.render(user, preview.data, ("pages",), pdf_pages.page_count,
                                     preview.data, errors=(pdf_pages.PdfUnreadable,))
    except (RenderFailed, RendersBusy) as exc:
        preview.problem = str(exc)
        return
    preview.page_count = count
    preview.pages = list(range(1, min(count, pdf_pages.SHOWN_PAGES) + 1))


# -- what the routes do (blocking) -----------------------------------------------------------

def message_model(archive: Archive, user: User, digest: str, path: str, query: str,
                  all_headers: bool, timezone: str) -> MessageModel:
    """Everything the message page shows; NotFound for a message the user may not read or
    a part it does not have. The view is audited."""
    raw, meta = read_message(archive, user, digest)
    message = forwarded.parse(raw)
    shown = _shown_message(message, path)
    highlighter = Highlighter.of_query(query)
    body = message_tree.body(message, path)
    remote = 0
    if body.html is not None:
        remote = sanitize.sanitize(body.html, body.images, False).remote_images
    tree = message_tree.tree(message, meta.get("extraction_failures"), path)
    audit.record(archive.store, user.actor, "view", digest=digest, **({"part": path} if path else {}))
    return MessageModel(
        meta, path, decode_header_text(_header(shown, "subject"), charsets_of(shown))
        or meta.get("subject", ""),
        _headers(shown, all_headers), all_headers, body,
        highlighter.segments((body.text or "")[:TEXT_SHOWN]) if body.text else [],
        remote, tree, _previews(message, tree, highlighter, set(body.images)),
        admin_actions.holds_covering(archive, user, digest, timezone) if not path else [],
        _date_source(meta), {} if path else _numbered(message, tree))


def frame_document(archive: Archive, user: User, digest: str, path: str, query: str,
                   remote: bool) -> sanitize.Sanitized:
    """The sanitized document of the HTML body of the message at `path` (or of the HTML
    attachment at `path`); NotFound when there is none."""
    raw, _ = read_message(archive, user, digest)
    message = parse_message(raw)
    body = message_tree.body(message, path)
    if body.html is None:
        raise NotFound(f"the message has no HTML body at part {path or 'root'}")
    if remote:  # the sender of a tracking image learns the mail was read: on the record
        audit.record(archive.store, user.actor, "view", digest=digest, remote_images=True,
                     **({"part": path} if path else {}))
    return sanitize.sanitize(body.html, body.images, remote, Highlighter.of_query(query))


def part_bytes(archive: Archive, user: User, digest: str, path: str, audited_as: str | None
               ) -> tuple[Part, bytes]:
    """A part's node and decoded bytes (a message/* part: the inner message's bytes)."""
    raw, meta = read_message(archive, user, digest)
    message = forwarded.parse(raw)
    if not path:
        raise NotFound("the message itself is downloaded as .eml (/raw)")
    node = message_tree.tree(message, meta.get("extraction_failures"), path)
    if node.unreadable:  # (no content: never an empty file in its name)
        raise NotFound(f"part {path} could not be read out of its container "
                       f"({visible(node.unreadable)}); download the container, part "
                       f"{path.rpartition('.')[0]}")
    data = message_tree.decoded(message_tree.part_at(message, path))
    if audited_as:
        audit.record(archive.store, user.actor, "view", digest=digest, part=path,
                     shown=audited_as)
    return node, data


def _numbered(message: Message, tree: Part) -> dict[str, NumberedFile]:
    """The stored message's numbered files by the path of their part in its page's `tree`
    (mail_view.numbered_parts), named in show's words (review r9 F6)."""
    return {path: NumberedFile(file.number, visible(file.filename, keep=BIDI_CONTROLS)
                               if file.named else f"(no name, saved as {file.filename})")
            for path, file in mail_view.numbered_parts(message, tree).items()}


def _shown_message(message: Message, path: str) -> Message:
    """The message at `path`: the stored one, or the one inside a message/* part or a
    .eml file the indexer reads as a forwarded message (message_tree.held_message)."""
    if not path:
        return message
    inner = message_tree.held_message(message, path)
    if inner is None:
        raise NotFound(f"part {path} is not an attached message")
    return inner


def _header(message: Message, name: str) -> str:
    values = safely(lambda: message.get_all(name), None) or [""]
    return values[0] if isinstance(values[0], str) else ""


def _headers(message: Message, every: bool) -> list[tuple[str, str]]:
    if every:
        items = safely(message.items, []) or []
        return [(str(name), decode_header_text(value, charsets_of(message)))
                for name, value in items
                if isinstance(value, str)]
    return shown_headers(message, COMMON_HEADERS)


def _previews(message: Message, tree: Part, highlighter: Highlighter,
              in_body: set[str]) -> list[Preview]:
    """Previews of the shown message's own attachments (an attached message's are on its
    page), less the images its HTML body shows itself (cid:)."""
    found = []
    top = tree.children[0] if tree.shown_as == "message" and tree.children else tree
    for node in top.walk(into_messages=False):
        if node is top or (node.content_id and sanitize.content_id_key(node.content_id)
                           in in_body and node.shown_as == "image"):
            continue
        if node.shown_as == "image" or node.shown_as == "html":
            found.append(Preview(node, node.shown_as))
        elif node.problem:  # an image too large to show: said, and downloadable
            found.append(Preview(node, "image", problem=node.problem))
        elif node.shown_as == "text":
            data = message_tree.decoded(message_tree.part_at(message, node.path))
            text = decode_text(data[:TEXT_SHOWN * 2], None)[:TEXT_SHOWN]
            found.append(Preview(node, "text", text=highlighter.segments(text)))
        elif node.shown_as == "pdf":
            found.append(_pdf_preview(message, node))
    return found


def _pdf_preview(message: Message, node: Part) -> Preview:
    """Its pages are counted on the render pool (_count_pages)."""
    return Preview(node, "pdf", data=message_tree.decoded(message_tree.part_at(message, node.path)))


DATE_SOURCES = {  # services.archive.message_date's sources, in words
    message_date.DATE_HEADER: "the Date header",
    message_date.RECEIVED_HEADER: "the topmost Received header (no readable Date header)",
    message_date.FROM_LINE: "the mbox From_ line it was filed under (no readable Date or "
                            "Received header)",
    message_date.ARRIVAL: "the time it was received (no readable date in the message)",
}


def _date_source(meta: dict) -> str:
    """Where the message's date came from, in words; metadata of older code has no
    date_source: the Date header when it had a date, else the arrival time."""
    recorded = meta.get("date_source")
    if recorded:
        return DATE_SOURCES.get(recorded, str(recorded))
    return DATE_SOURCES[message_date.DATE_HEADER if meta.get("sent_date") else
                        message_date.ARRIVAL]
