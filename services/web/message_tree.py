"""A stored message as a tree of parts, for the message view: every part with a path,
its name, type and size, whether the indexer read its text, and how it can be shown;
attached (forwarded) messages are parts whose one child is the message inside: message/*
parts, and the files the indexer reads as forwarded messages (a .eml sent
application/octet-stream, extract.reads_as_message), whose download is the file as sent.

Paths: the parts of a multipart are numbered from 1 and the message inside a
message/rfc822 part is its child 1, so "2.1.3" is the third part of the message attached
as part 2. The root message is "". Paths are stable: the same bytes always parse into
the same tree.

Containers are opened as the indexer opens them (services.archive.containers): a message
whose whole body is one entity that is not text (a scanner's PDF, an S/MIME object) or is
an attachment (a named text file, a forwarded message sent as a file:
mime.whole_body_is_attachment) has that entity as its part 1, and no body; an S/MIME
opaque-signed object (RFC 8551 signed-data) holds the signed MIME entity as its child 1
and that is the message's body; a TNEF file
(winmail.dat) and a zip archive hold the files inside them as their children (a .eml among
them is a forwarded message, as the indexer reads it; one that could not be read out of
it -- encrypted, compressed in a way zipfile cannot undo, corrupt, over a limit -- says why,
as the indexer's failure does, and has no size and no content to show or download:
Part.unreadable). A view opens each distinct container
content once (_Openings: the same hostile object attached a thousand times costs one
opening), within its budgets; one past them is the file it is, downloadable, and its node
says so (Part.not_opened). Containers (forwarded messages among them) nest as deep as the
indexer opens them, and a tool opens as many of them as it does (extract.opens_nested,
containers.ReadBudget.tool_refusal): one past either is the file it is too, said so in
the indexer's words, so that the views list the files search finds. Encrypted S/MIME
(enveloped-data) cannot be opened without the key: it is said so, and downloadable. A part
of body text holding uuencoded files (mime.is_body_text, mime.uuencoded_files: old mailers,
or a body sent x-uuencode) holds them as its children, and a message whose whole body is such a part
has them as its parts 1, 2, ...: the files extraction reads, in its order, and their
encoded lines (or the file an x-uuencode body decodes to) no body text. An attachment sent
x-uuencode holding two or more files (mime.attachment_files) holds them so too, the first
under the part's own name; a message whose whole body is one has them as its parts.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from email.message import Message

import magic
from PIL import Image

from services.archive import containers, tools
from services.archive.extract import (NESTED_TOO_DEEP, REPORT_TYPES, container_problem,
                                      effective_type, opens_nested, read_type_of,
                                      reads_as_message, reads_text_of)
from services.archive.index import PARTLY_INDEXED
from services.archive.mime import (SPLIT_KEYS, FoundFile, attachment_content,
                                   attachment_files, attachment_name,
                                   body_text_of, charsets_of, decode_header_text,
                                   decode_text, filename_of, header,
                                   is_attachment, is_body_text, message_parts, parse_message,
                                   read_uuencoded_files, safely, uuencoded_files,
                                   whole_body_is_attachment)
from services.archive.store import NotFound
from services.common.terminal import BIDI_CONTROLS
from services.web import forwarded
from services.web.formatting import visible
from services.web.sanitize import content_id_key

RASTER_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
MAX_DEPTH = 60  # deeper trees are shown to here; the message itself is still downloadable
# Distinct containers (TNEF, zip, S/MIME signed-data) a view of a message opens: as many as
# the indexer reads attachments of a message (containers.ReadBudget); the rest are shown as
# the files they are, downloadable. Their members are read within that one budget too, as
# the indexer reads them (review r7 F1: a fresh budget each).
CONTAINERS_OPENED = containers.MESSAGE_ATTACHMENTS
# Of those, the ones a tool process opens (containers.TOOL_KINDS) are the indexer's first
# containers.TOOL_CONTAINERS_OPENED distinct ones (ReadBudget.tool_refusal): every view (the
# page, the API's JSON, `archiver show`) pays their runs again, and lists what they read.
_BUDGET_KEY = "_containers_openings"  # where a part keeps its message's _Openings
# How many containers hold a part, as the indexer counts them (extract.opens_nested): 0 for
# the stored message's own parts; children() gives each part it finds its count.
_NESTING_KEY = "_containers_nesting"
_NOT_OPENED_KEY = "_not_opened"  # why a container part was not opened (Part.not_opened)
_HELD_KEY = "_held_message"  # a message a message/* part or a forward holds (_inner)
_KIND_KEY = "_container_kind"  # a container leaf's kind (_container_kind), if it is one
_PROBLEM_KEY = "_container_problem"  # a container part's Part.container_problem
BODY_TYPES = ("text/plain", "text/html")  # a message's whole body shown as its body
ENCRYPTED = "encrypted: cannot be read without the key"
# Images shown inline (and cid: images of HTML bodies) have at most this many pixels: a
# 380 KB PNG can say 20000x20000 and cost the reader's browser gigabytes to decode.
MAX_IMAGE_PIXELS = 16_000_000


@dataclass
class Part:
    path: str
    content_type: str
    filename: str | None
    size: int | None               # decoded bytes; a message: its bytes; None: unreadable
    attachment: bool
    text: str                      # "text read", "text not read: REASON", "partly indexed:
                                   # REASON", "no text: ..."
    shown_as: str | None = None    # image, pdf, text, html, message, or None (download)
    content_id: str | None = None
    children: list["Part"] = field(default_factory=list)
    subject: str | None = None     # an attached message's
    problem: str | None = None     # why it is not shown though of a kind that is
    not_opened: str | None = None  # a container's: why its files are not listed here
    container_problem: str | None = None  # a container's problem as a whole, in the
                                   # indexer's words: why it could not be opened, or
                                   # why some of its files are not listed
    unreadable: str | None = None  # a container's member: why it could not be read out
                                   # of it (no content: nothing to show or download)

    @property
    def label(self) -> str:
        """How the part is named in the page where no HTML is (an attribute): control and
        bidi characters of a stranger's names escaped (services.web.formatting.visible)."""
        return self._named(visible)

    @property
    def label_text(self) -> str:
        """The label as text of the page: its bidirectional controls left as they are, for
        the `isolated` filter to mark (never shown without it); other control and format
        characters escaped as in `label`."""
        return self._named(lambda text: visible(text, keep=BIDI_CONTROLS))

    def _named(self, escaped) -> str:
        # (a file's name first, a .eml's too: what `show` and the API list it by; the
        # page gives its subject beside it)
        if self.filename:
            return escaped(self.filename)
        if self.shown_as == "message":
            return f"{escaped(self.subject or '(no subject)')} (message)"
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


def children(part: Message, top: bool = False) -> list[Message]:
    """The parts a multipart holds; the message a message/* part holds; what a container
    holds (module docstring); the files uuencoded in a part of body text; else none.
    `top`: `part` is a message itself (the stored one, or one inside a message/* part): a
    whole body that is body text holding uuencoded files has them as its parts; one that is
    not body text (of a type other than BODY_TYPES, or an attachment) is its one part."""
    found, inside = _children(part, top)
    openings, nesting = _openings(part), _nesting(part) + inside
    for child in found:  # (one budget for all the containers of the stored message)
        child.__dict__.setdefault(_BUDGET_KEY, openings)
        child.__dict__.setdefault(_NESTING_KEY, nesting)
    return found


def _nesting(part: Message) -> int:
    """How many containers hold `part` (_NESTING_KEY): 0 for the stored message's own."""
    return part.__dict__.get(_NESTING_KEY, 0)


def _children(part: Message, top: bool) -> tuple[list[Message], int]:
    """(what `part` holds, 1 when it holds it as a container the indexer counts -- the
    message of a message/* part or of a forward that is a file, what a zip, a TNEF or
    signed-data holds -- else 0: a multipart's parts, uuencoded files, a whole body, a
    message's own message/* body, read at the nesting of `part`, as the indexer reads
    them)."""
    if top and _sent_as_file(part):
        return [_whole_body(part)], 0
    if is_message_part(part):
        if _is_a_message(part):
            return _inner(part), 0
        return _unless_too_deep(part, _inner), 1
    if _is_report(part):  # (its blocks of fields are its content, no parts)
        return [], 0
    if part.is_multipart():
        payload = part.get_payload()
        return [child for child in payload if isinstance(child, Message)] \
            if isinstance(payload, list) else [], 0
    if top:
        if whole_body_is_attachment(part):  # (one of two or more files: them, mime's rule)
            return attachment_files(part) or [_whole_body(part)], 0
        files = uuencoded_files(part) if is_body_text(part) else []
        if files:
            return files, 0
        return [] if safely(part.get_content_type, "text/plain") in BODY_TYPES \
            else [_whole_body(part)], 0
    if _forwards(part):
        return _unless_too_deep(part, _inner), 1
    opened = _opened(part)
    return opened, 1 if part.__dict__.get(_KIND_KEY) else 0


def _is_a_message(part: Message) -> bool:
    """Whether `part` is a message itself (the stored one, or the one a message/* part or
    a forward holds, _inner), not a part of one: the indexer reads a message whose body
    is a message/* entity as that entity's parts, at its own nesting."""
    return _NESTING_KEY not in part.__dict__ or part.__dict__.get(_HELD_KEY, False)


def _unless_too_deep(part: Message, opened) -> list[Message]:
    """opened(part), unless container `part` is nested too deep to open
    (extract.opens_nested, as the indexer reads it): then none, and `part` says why
    (Part.not_opened)."""
    if opens_nested(_nesting(part)):
        return opened(part)
    part.__dict__[_NOT_OPENED_KEY] = NESTED_TOO_DEEP
    return []


def _holds_message(part: Message, top: bool, content: bytes | None = None) -> bool:
    """Whether the child 1 of `part` is a message (the views show `part` as one): a
    message/* part's, or a file's the indexer reads as a forwarded message (_forwards;
    `content`: its decoded bytes, if read). A message itself (`top`: its whole body is its
    part 1) only as a message/* part whose message is not sent as a file (_sent_as_file:
    that file is its part 1)."""
    if top:
        return is_message_part(part) and not _sent_as_file(part)
    return is_message_part(part) or _forwards(part, content)


def _sent_as_file(message: Message) -> bool:
    """Whether a message's whole body is a forwarded message sent as a file
    (mime.whole_body_is_attachment of a message/* body): the file is its part 1, the
    message inside that file's child 1."""
    return message.is_multipart() and whole_body_is_attachment(message)


def is_message_part(part: Message) -> bool:
    """Whether `part` is a message/* part that holds a message (RFC 2046 5.2), as the
    parser reads it: one of a type message/* but a report's fields (a delivery status, a
    disposition, a feedback report: blocks of fields, no message -- a file of its own,
    extract.REPORT_TYPES), and no file found in a text or a container (a FoundFile is
    typed by its name's extension: a .eml is a message where the indexer reads one,
    _forwards)."""
    return not isinstance(part, FoundFile) \
        and safely(part.get_content_maintype, "") == "message" \
        and not _is_report(part)


def _is_report(part: Message) -> bool:
    return not isinstance(part, FoundFile) \
        and safely(part.get_content_type, "") in REPORT_TYPES


def _forwards(part: Message, content: bytes | None = None) -> bool:
    """Whether `part`, a file of the message (an attachment, a uuencoded file, a
    container's member) that is no message/* part (is_message_part), is one the indexer
    reads as a forwarded message: a .eml sent application/octet-stream, or of another
    generic type that libmagic finds a message (extract.reads_as_message: its one rule);
    then it holds that message, as a message/rfc822 part does. Read once a part
    (`content`: its decoded bytes, if the caller read them: not decoded again)."""
    if "_forwards" not in part.__dict__:
        part.__dict__["_forwards"] = not part.is_multipart() and is_attachment(part) \
            and not holds_files(part) and reads_as_message(part, content)
    return part.__dict__["_forwards"]


class _Openings:
    """What one view of a stored message may still open and what it opened: the indexer's
    budget of members, bytes and tool runs (`budget`, of which `attachments` counts
    distinct containers, CONTAINERS_OPENED; its tool_refusal the indexer's), and each
    container's files by (kind, SHA-256 of its content, its nesting): a content opened
    once is not opened again, and costs no budget again (at another nesting its files are
    found anew, nested as there, but counted once)."""

    def __init__(self):
        self.budget = containers.ReadBudget(0, attachments=CONTAINERS_OPENED)
        self.counted: set[tuple[str, str]] = set()
        self.opened: dict[tuple[str, str, int], tuple[list[Message], str | None]] = {}

    def refusal(self, kind: str, sha256_hex: str) -> str | None:
        """Why one more container of `kind` whose content has this SHA-256 (hex) may not be
        opened, or None: then it counts (once a content)."""
        if (kind, sha256_hex) in self.counted:
            return None
        budget = self.budget
        if budget.attachments <= 0 or budget.members <= 0 or budget.read_bytes <= 0:
            return ("not opened in this view: the message's containers used up what one "
                    "view reads; download it")
        if kind in containers.TOOL_KINDS:
            refusal = budget.tool_refusal(kind, sha256_hex)
            if refusal is not None:
                return refusal
        budget.attachments -= 1
        self.counted.add((kind, sha256_hex))
        return None


def _openings(part: Message) -> _Openings:
    """The _Openings of the message `part` is in: children() hands a part's own to the
    parts it finds, so every part reached from the stored message shares the one made for
    it (the message's parts are reached so: tree, part_at, body)."""
    if _BUDGET_KEY not in part.__dict__:
        part.__dict__[_BUDGET_KEY] = _Openings()
    return part.__dict__[_BUDGET_KEY]


def _inner(part: Message) -> list[Message]:
    """[the message a message/* part holds] (forwarded.inner_message: parsed from the
    bytes its download serves), read once per part object
    (an encoded or .eml one is parsed anew each time it is read), its uuencoded files
    counted in the page's (mime.read_uuencoded_files within the part); [] for none."""
    if "_inner" not in part.__dict__:
        inner = forwarded.inner_message(part)
        if isinstance(inner, Message):
            read_uuencoded_files(inner, within=part)
            inner.__dict__[_HELD_KEY] = True
        else:
            part.__dict__[_NOT_OPENED_KEY] = forwarded.not_opened(part)
        part.__dict__["_inner"] = [inner] if isinstance(inner, Message) else []
    return part.__dict__["_inner"]


def holds_files(part: Message) -> bool:
    """Whether `part` is an attachment sent x-uuencode holding two or more files
    (mime.attachment_files): a node holding them, as a part of body text holds its own."""
    return not isinstance(part, FoundFile) and bool(attachment_files(part))


def _whole_body(message: Message) -> Message:
    """The entity of a message whose body is one non-text part: its Content-* headers
    and its content, as a part of its own (the same object each time it is asked for).
    It is of the parser's message class (mime._Message, the policy's factory), so its type
    is read as the message's is (services.archive.media_types), not as the stdlib reads it
    (review 175 F2: a folded 16 KB "type" with CR LF)."""
    if "_whole_body" not in message.__dict__:
        entity = (message.policy.message_factory or Message)(policy=message.policy)
        entity._headers = [(name, value) for name, value in message._headers
                           if name.lower().startswith("content-")]
        # the payload as parsed (8-bit bytes kept as surrogates): get_payload() would turn
        # them into U+FFFD by the charset, and the part's download would not be the file
        entity.set_payload(message._payload)
        # (the message's split of its uuencoded files, if read: the entity is the same
        # content, and a view splits it once, review r5 F3)
        # and where its content lies in the stored message: a forward sent as a file is
        # served as the bytes it is, not re-serialized (forwarded.CONTENT_KEYS)
        entity.__dict__.update({key: value for key, value in message.__dict__.items()
                                if key in SPLIT_KEYS or key in forwarded.CONTENT_KEYS})
        message.__dict__["_whole_body"] = entity
    return message.__dict__["_whole_body"]


def _opened(part: Message) -> list[Message]:
    """What a container leaf holds (S/MIME signed-data: the signed entity; TNEF: its
    files), read once per part object; none when it cannot be read."""
    if "_opened" not in part.__dict__:
        part.__dict__["_opened"] = _open(part)
    return part.__dict__["_opened"]


def _open(part: Message) -> list[Message]:
    if is_body_text(part):
        return uuencoded_files(part)
    if holds_files(part):
        return attachment_files(part)
    data = decoded(part)
    kind = part.__dict__[_KIND_KEY] = _container_kind(part, data)
    if kind is None:
        return []
    if not opens_nested(_nesting(part)):  # (before the budget: it opens nothing)
        part.__dict__[_NOT_OPENED_KEY] = NESTED_TOO_DEEP
        return []
    digest, openings = hashlib.sha256(data).hexdigest(), _openings(part)
    key = (kind, digest, _nesting(part))
    if key not in openings.opened:
        refusal = openings.refusal(kind, digest)
        if refusal is not None:
            part.__dict__[_NOT_OPENED_KEY] = refusal
            return []
        openings.opened[key] = _files_of_container(kind, data, part, openings.budget)
    files, part.__dict__[_PROBLEM_KEY] = openings.opened[key]
    return files


def _container_kind(part: Message, data: bytes) -> str | None:
    """"signed-data", "tnef" or "zip" for a container a view opens, else None: a file the
    indexer reads as one (extract.read_type_of its content `data`: a winmail.dat in a zip
    is a TNEF, a zip named .bin a zip, review r11 F6), signed-data of S/MIME alone."""
    kind = read_type_of(part, data)
    if kind in containers.CMS_TYPES:
        return "signed-data" if _opens_signed(part, data) else None
    return "tnef" if kind in containers.TNEF_TYPES else "zip" if kind in containers.ZIP_TYPES \
        else None


def _files_of_container(kind: str, data: bytes, part: Message,
                        budget: containers.ReadBudget) -> tuple[list[Message], str | None]:
    """(the signed entity of signed-data, or the files of a TNEF or zip: FoundFile each,
    a .eml a forwarded message where the indexer reads one; the container's problem as a
    whole or None), read as the indexer reads them (services.archive.containers), the
    problem in the words it records (extract.container_problem): no files when the
    container cannot be read (shown as the file it is, downloadable), or some of them
    left out ("600 members; the first 500 are listed")."""
    try:
        if kind == "signed-data":
            signed = parse_message(containers.signed_content(data))
            read_uuencoded_files(signed, within=part)  # (in the page's bound, review r5 F2)
            return [signed], None
        if kind == "tnef":
            _, members, problem = containers.tnef_read(data, budget)
        else:
            members, problem = containers.zip_members(data, budget)
    except (tools.ToolFailed, ValueError) as exc:
        return [], container_problem(exc)
    return [FoundFile(member.name, member.content() or b"", unreadable=None
                      if member.readable() else member.problem or "not read")
            for member in members], problem


def _cms_kind(part: Message, content: bytes | None = None) -> str | None:
    """containers.cms_kind of S/MIME `part`, of its `content` (decoded here when None)."""
    return containers.cms_kind(decoded(part) if content is None else content,
                               safely(lambda: part.get_param("smime-type"), None))


def _opens_signed(part: Message, content: bytes) -> bool:
    """Whether S/MIME `part`, of decoded `content`, is signed-data holding the entity it
    signs (not a detached signature, not certificates alone: containers.holds_no_content),
    as the indexer opens."""
    kind = _cms_kind(part, content)
    return kind == "signed-data" and not containers.holds_no_content(content, kind)


def part_at(message: Message, path: str) -> Message:
    """The part at `path`; NotFound for a path the message does not have."""
    return _located(message, path)[0]


def held_message(message: Message, path: str) -> Message | None:
    """The message the part at `path` holds, its child 1 (the views show the part as one:
    a message/* part, or a .eml file the indexer reads as a forwarded message,
    _holds_message), or None when it holds none (or one the view does not open); the path
    walked once. NotFound for a path the message does not have."""
    part, top = _located(message, path)
    inner = children(part) if _holds_message(part, top) else []
    return inner[0] if inner else None


def _located(message: Message, path: str) -> tuple[Message, bool]:
    """(the part at `path`, whether it is a message itself: the stored one, or the one a
    part holds); NotFound for a path the message does not have."""
    read_uuencoded_files(message)  # (each text part's, as many as the message may list)
    part, top = message, True
    for step in path.split(".") if path else []:
        found = children(part, top)
        if not step.isdigit() or not 1 <= int(step) <= len(found):
            raise NotFound(f"the message has no part {path}")
        top = _holds_message(part, top)
        part = found[int(step) - 1]
    return part, top


def decoded(part: Message) -> bytes:
    """A leaf's content, transfer encoding undone; a message/* part's inner message as
    the stored message carries it (forwarded.message_bytes); b"" for what cannot be
    decoded."""
    if isinstance(part, FoundFile):
        return part.data
    if safely(part.get_content_maintype, "") == "message":
        return forwarded.message_bytes(part)
    return attachment_content(part)


def tree(message: Message, failures: list[str] | None, root_path: str = "") -> Part:
    """The tree of `message` (or of the part at root_path in it). `failures`: the store's
    "extraction_failures" of the message ("NAME: reason" each), which say what the indexer
    could not read."""
    failed = _failures_by_name(failures or [])
    part, top = _located(message, root_path)
    return _node(part, root_path, failed, depth=0, root=not root_path, top=top)


def _node(part: Message, path: str, failed: dict[str, str], depth: int, root: bool,
          top: bool = False) -> Part:
    content_type = safely(part.get_content_type, "application/octet-stream")
    # (a file's name as extraction gives it: an x-uuencode one's begin line may name it)
    filename = attachment_name(part) if is_attachment(part) else filename_of(part)
    maintype = content_type.split("/")[0]
    # (an x-uuencode attachment of two or more files holds them: they are the attachments)
    attached = not root and (maintype == "message" or is_attachment(part)
                             and not holds_files(part))
    # (a message/* part sized, not copied: a chain of forwards would copy all below each)
    content = None if is_message_part(part) \
        else b"" if part.is_multipart() and maintype != "message" else decoded(part)
    size = forwarded.message_size(part) if content is None else len(content)
    node = Part(path, content_type, filename, size, attached, "", None,
                decode_header_text(header(part, "content-id")).strip("<> ") or None)
    node.unreadable = part.unreadable if isinstance(part, FoundFile) else None
    if node.unreadable:  # (its b"" is no content: neither sized, read nor shown)
        node.size = None
        return node
    node.text = _text_status(node, failed, part)
    holder = _holds_message(part, root or top, content)
    del content  # (not held while the parts below are read: review r11, 22 forwards of a
    #              27 MB file held 600 MB)
    node.shown_as = "message" if holder else _shown_as(node, part)
    if node.shown_as == "message":
        inner = children(part)
        node.subject = decode_header_text(header(inner[0], "subject"),
                                          charsets_of(inner[0])) if inner else None
        if not inner and _NOT_OPENED_KEY in part.__dict__:
            node.shown_as = None  # (a message not opened has no page: a file to download)
    if depth < MAX_DEPTH:
        node.children = [_node(child, f"{path}.{number}" if path else str(number), failed,
                               depth + 1, root=False, top=holder)
                         for number, child in enumerate(children(part, root or top), 1)]
        node.not_opened = part.__dict__.get(_NOT_OPENED_KEY)
        node.container_problem = part.__dict__.get(_PROBLEM_KEY)
        if node.text in {f"text not read: {why}"
                         for why in (node.container_problem, node.not_opened) if why}:
            node.text = ""  # (the indexer's failure of it is that problem: said once)
    return node


def _text_status(node: Part, failed: dict[str, str], part: Message) -> str:
    if not node.attachment:
        return "text read" if node.content_type.startswith(("text/", "message/")) else ""
    if node.content_type in containers.CMS_TYPES and containers.is_sealed(_cms_kind(part)):
        return ENCRYPTED
    reason = failed.get(node.filename or node.content_type)
    if reason is not None:  # a limit's cut says "partly indexed: ..." itself
        return reason if reason.startswith(PARTLY_INDEXED) else f"text not read: {reason}"
    if reads_text_of(node.content_type, node.filename):
        return "text read"
    return "no text: found by its name and type"


def _shown_as(node: Part, part: Message) -> str | None:
    """How a part that holds no message (_holds_message) is shown."""
    kind = effective_type(node.content_type, node.filename)
    if not node.attachment or part.is_multipart():
        return None
    if kind in RASTER_IMAGES:
        sniffed = safely(lambda: magic.from_buffer(decoded(part)[:4096], mime=True), "")
        if sniffed not in RASTER_IMAGES:
            return None
        node.problem = image_too_large(decoded(part))
        return None if node.problem else "image"
    if kind == "application/pdf":
        return "pdf"
    if kind == "text/html":
        return "html"
    if kind.startswith("text/"):
        return "text"
    return None


def image_too_large(data: bytes) -> str | None:
    """Why a raster image is not shown inline (over MAX_IMAGE_PIXELS, a decompression
    bomb, unreadable), or None. Reads the image's header only (PIL's lazy open), never
    its pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        return "too large to show: a decompression bomb (over PIL's pixel limit)"
    except Exception as exc:  # PIL raises many kinds for a stranger's bytes
        return f"cannot be shown: {str(exc)[:200] or type(exc).__name__}"
    if width * height > MAX_IMAGE_PIXELS:
        return (f"too large to show: {width}\u00d7{height} pixels, over the "
                f"{MAX_IMAGE_PIXELS:,} shown inline")
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
    encrypted: bool = False  # the body is S/MIME encrypted: not readable without the key


def body(message: Message, path: str = "") -> Body:
    """The body of the message at `path` ("" the root, else a message/* part's inner
    message): its first HTML and first plain text part that are not attachments;
    attachments of attached messages are not its body."""
    root, top = _located(message, path)  # (which reads the message's uuencoded files)
    a_message = not path or _holds_message(root, top)
    if path and a_message:
        root = children(root)[0] if children(root) else Message()
    for _ in range(MAX_DEPTH):  # S/MIME opaque-signed: the signed entity is the body
        if safely(root.get_content_type, "") not in containers.CMS_TYPES:
            break
        if containers.is_sealed(_cms_kind(root)):
            return Body(None, None, {}, encrypted=True)
        opened = children(root)  # (nested as the tree nests it: no deeper than it opens)
        if not opened:
            break
        root = opened[0]
    html = text = None
    images = {}
    for part in message_parts(root):
        if part.is_multipart():
            continue
        content_type = safely(part.get_content_type, "text/plain")
        content_id = header(part, "content-id")
        if content_id and content_type.startswith("image/") \
                and not image_too_large(decoded(part)):
            images[content_id_key(decode_header_text(content_id))] = (content_type, decoded(part))
        # the part asked for is read as a body (an HTML attachment's frame), unless it is
        # a message whose whole body is a file: that is its part 1, not its body
        if is_attachment(part) and (part is not root or a_message):
            continue
        charset = safely(part.get_content_charset, None)
        if content_type == "text/html" and html is None:
            html = decode_text(decoded(part), charset)
        elif content_type.startswith("text/") and content_type != "text/html" and text is None:
            text = decode_text(_body_text_bytes(part), charset)
    return Body(html, text, images)


def _body_text_bytes(part: Message) -> bytes:
    """A text part's bytes as the body shows them: of body text (mime.is_body_text), the
    text around its uuencoded files, as extraction reads it (their encoded lines, or the
    file an x-uuencode body decodes to, are no text); of any other its content."""
    return body_text_of(part) if is_body_text(part) else decoded(part)
