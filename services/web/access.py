"""What mail a user may read. Admins and auditors read all of it; a user reads only mail
from or to one of their addresses (From, To, Cc, Bcc headers, their Resent- kin of RFC
5322 3.6.6, envelope recipients).

Checked twice, so that one mistake does not leak mail: every search is filtered in Xapian
by exact address terms (services.archive.index.ADDRESS_PREFIX), and every message fetched by
digest is checked again against its own headers and envelope. Another user's message is
"not found", never "forbidden": its existence is not theirs to learn either.

A message's hidden recipients (its Bcc and Resent-Bcc fields, the envelope recipients no
To, Cc, Resent-To or Resent-Cc field shows) are a user's to see only in mail they sent,
and where they are the user's own addresses, as their mailbox would show them: a search
matches no mail by the others (services.archive.query.Reader), and the copy a user reads
(the page, the API, the .eml download, an export) leaves them out (`as_read`), the trace
fields that name them too (Delivered-To and its kin, a Received field's FOR clause): a
hidden recipient's own delivered copy names them there. What is stored stays byte-exact.
"""
from __future__ import annotations

import re
from email.utils import getaddresses

import xapian

from services.archive.addresses import lowercase_ascii
from services.archive.archive import Archive
from services.archive.index import SENDER_PREFIX, address_term, addresses_of, shown_addresses
from services.archive.mime import header_end, summarize_headers
from services.archive.query import Reader
from services.archive.store import NotFound
from services.appliance.users import User

# A line of the top-level header block with its end. Lines end where the parser that shows
# the message ends them (services.archive.mimetree.LINE_END, the feedparser's): at CR LF, LF
# or a bare CR, so a field after a bare CR ("To: carol\rBcc: frank") is one the page and
# the API show, and is judged as any other.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")  # RFC 5322 3.6.8 ftext; 4.5.3 WSP before ":"
# Fields that name hidden recipients and nothing else (RFC 5322 3.6.3, 3.6.6).
HIDDEN_FIELDS = (b"bcc", b"resent-bcc")
# Trace fields MTAs add naming the envelope recipient a copy was delivered to (RFC 9228
# Delivered-To; Postfix X-Original-To; Exim Envelope-to; others' X-Envelope-To, X-Rcpt-To,
# Apparently-To; Fastmail's X-Delivered-to and X-Resolved-to; Gmail's X-Gm-Original-To and,
# forwarding, X-Forwarded-To and X-Forwarded-For; Yahoo's X-Apparently-To; Pigeonhole
# Sieve's X-Sieve-Redirected-From; Exchange's X-MS-Exchange-Organization-
# OriginalEnvelopeRecipients; RFC 3798 Original-Recipient and its X- form; procmail
# recipes' X-Loop): a hidden recipient's own delivered copy names them there.
RECIPIENT_TRACE_FIELDS = (b"delivered-to", b"x-original-to", b"envelope-to", b"x-envelope-to",
                          b"x-rcpt-to", b"apparently-to", b"x-delivered-to", b"x-resolved-to",
                          b"x-gm-original-to", b"x-forwarded-to", b"x-forwarded-for",
                          b"x-apparently-to", b"x-sieve-redirected-from",
                          b"x-ms-exchange-organization-originalenveloperecipients",
                          b"original-recipient", b"x-original-recipient",
                          b"x-envelope-recipient", b"x-loop")
# The fields a message is composed with (RFC 5322 3.6.1-3.6.5, RFC 2045's MIME-Version):
# what a delivery adds in transit lies above the first of them, as MTAs prepend.
COMPOSED_FIELDS = (b"date", b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc",
                   b"message-id", b"in-reply-to", b"references", b"subject", b"comments",
                   b"keywords", b"mime-version")
# A Received field's FOR clause (RFC 5321 4.4: "FOR" FWS (Path / Mailbox)), as MTAs write
# it and worse: a path in angle brackets whatever it holds (a quoted local part with white
# space, a source route, obsolete white space around "@"), a quoted local part, a bare one
# (Dovecot LMTP's "for <frank>", fetchmail's "for frank"), comments before it, and a list
# ("for a@x, b@y"). Gmail's X-Received and its kin have them too (RECEIVED_FIELDS).
_FOR_ITEM = rb'<[^<>]*>|"(?:[^"\\]|\\.)*"@[^\s<>;(),]*|[^\s<>;()",]+'
_FOR_CLAUSE = re.compile(rb'(?i)(?<![\w.@-])for(?:[ \t\r\n]|\((?:[^()\\]|\\.)*\))+((?:'
                         + _FOR_ITEM + rb')(?:[ \t\r\n]*,[ \t\r\n]*(?:' + _FOR_ITEM + rb'))*)')
_FOR_ADDRESS = re.compile(_FOR_ITEM)
RECEIVED_FIELDS = (b"received", b"x-received")

READ_ALL_MAIL = ("admin", "auditor")


def reads_all_mail(user: User) -> bool:
    return user.role in READ_ALL_MAIL


def mail_filter(user: User) -> xapian.Query | None:
    """The filter ANDed to every query of `user`; None when they may read everything.
    Built from the account's stored addresses as terms, never parsed from text."""
    if reads_all_mail(user):
        return None
    terms = [xapian.Query(address_term(address)) for address in user.emails]
    if not terms:
        return xapian.Query.MatchNothing
    return xapian.Query(xapian.Query.OP_OR, terms)


def reader(user: User) -> Reader | None:
    """What `user` may match of a message's recipients (query.Reader); None for one who
    reads all mail."""
    if reads_all_mail(user):
        return None
    own = frozenset(lowercase_ascii(address) for address in user.emails)
    sent = [xapian.Query(address_term(address, SENDER_PREFIX)) for address in sorted(own)]
    return Reader(xapian.Query(xapian.Query.OP_OR, sent) if sent else xapian.Query.MatchNothing,
                  own)


def as_read(user: User, raw: bytes, meta: dict) -> tuple[bytes, dict] | None:
    """The copy of a message (raw bytes, store metadata) `user` reads, None when it is not
    theirs to read (may_read): whole for one who reads all mail or sent it; for another
    user, with only the envelope recipients To or Cc shows or that are theirs, and a header
    block without what names others (_shown_fields; module docstring). The header block is
    parsed once, and not at all for one who reads all mail."""
    if reads_all_mail(user):
        return raw, meta
    summary = summarize_headers(raw)
    mine = {lowercase_ascii(address) for address in user.emails}
    if not mine & addresses_of(summary, meta.get("recipients", [])):
        return None
    if mine & set(summary.header_addresses.get("from", [])):
        return raw, meta
    shown = mine | shown_addresses(summary)
    recipients = [r for r in meta.get("recipients", []) if lowercase_ascii(r.strip()) in shown]
    end = header_end(raw)
    return (b"".join(_shown_fields(raw[:end], shown)) + raw[end:],
            {**meta, "recipients": recipients})


def _shown_fields(header: bytes, shown: set[str]):
    """The fields (bytes, folded lines and line ends included) of a header block as a user
    who may see only the addresses `shown` reads it: no Bcc or Resent-Bcc field, a trace
    field of recipients only when it names shown addresses alone, no FOR clause of a
    Received field that names another; and in another's delivered copy (a trace field
    names them) none of the fields the delivery put above the message as composed, whose
    hosts (`by mx.their-domain`, Authentication-Results) would name their domain."""
    fields = list(_fields(header))
    names = [_field_name(field) for field in fields]
    others = [_names_other(name, field, shown) for name, field in zip(names, fields)]
    if any(others):
        # no field of the message as composed (not even its MIME ones): all of it is trace
        # (but the empty line that ends the block)
        composed = next((at for at, name in enumerate(names) if _composed(name)),
                        len(fields) - (fields[-1:] in ([b"\r\n"], [b"\n"], [b"\r"])))
        fields, names, others = fields[composed:], names[composed:], others[composed:]
    for name, field, names_other in zip(names, fields, others):
        if name in HIDDEN_FIELDS or names_other and name not in RECEIVED_FIELDS:
            continue
        if name in RECEIVED_FIELDS:
            field = _FOR_CLAUSE.sub(lambda clause: clause.group(0) if _for_shown(
                clause.group(1), shown) else b"", field)
        yield field


def _composed(name: bytes) -> bool:
    return name in COMPOSED_FIELDS or name.startswith(b"content-")


def _for_shown(clause: bytes, shown: set[str]) -> bool:
    """Whether a FOR clause's addresses are all in `shown`."""
    return all(_address(address) in shown for address in _FOR_ADDRESS.findall(clause))


def _field_name(field: bytes) -> bytes:
    """The lowercased name of a field; a first line that begins with white space (a
    continuation of nothing, which the page's parser drops but the .eml keeps) is judged
    by the field it spells."""
    name = _FIELD_NAME.match(field.lstrip(b" \t"))
    return name.group(1).lower() if name else b""


def _names_other(name: bytes, field: bytes, shown: set[str]) -> bool:
    """Whether a trace field names a recipient not in `shown` (or one it cannot read)."""
    if name in RECIPIENT_TRACE_FIELDS:
        return not _names_only(field[field.index(b":") + 1:], shown)
    if name in RECEIVED_FIELDS:
        return not all(_for_shown(clause.group(1), shown)
                       for clause in _FOR_CLAUSE.finditer(field))
    return False


def _fields(header: bytes):
    """The header block's fields: each line with the lines that continue it (folded: they
    begin with white space, RFC 5322 2.2.3)."""
    field = b""
    for line in _LINE.findall(header):
        if field and not line[:1] in (b" ", b"\t"):
            yield field
            field = b""
        field += line
    if field:
        yield field


def _names_only(value: bytes, shown: set[str]) -> bool:
    """Whether a field value names one or more addresses, all of them in `shown`, and
    nothing else: a display name or comment ("carol@x (Frank Z)") may name another."""
    pairs = getaddresses([_text(value)])
    named = {_address(address) for _, address in pairs} - {""}
    return bool(named) and named <= shown and not any(name for name, _ in pairs)


def _address(address: bytes | str) -> str:
    return lowercase_ascii(_text(address).strip().strip("<>"))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def may_read(user: User, raw: bytes, meta: dict) -> bool:
    if reads_all_mail(user):
        return True
    mine = {lowercase_ascii(address) for address in user.emails}
    return bool(mine & addresses_of(summarize_headers(raw), meta.get("recipients", [])))


def read_message(archive: Archive, user: User, digest: str) -> tuple[bytes, dict]:
    """The raw bytes and metadata of a message `user` may read, as they read it (as_read);
    NotFound otherwise."""
    copy = as_read(user, archive.store.get(digest), archive.store.meta(digest))
    if copy is None:
        raise NotFound(f"no message with digest {digest}")
    return copy
