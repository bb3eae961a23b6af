"""What mail a user may read. Admins and auditors read all of it; a user reads only mail
from or to one of their addresses (From, To, Cc, Bcc headers, envelope recipients).

Checked twice, so that one mistake does not leak mail: every search is filtered in Xapian
by exact address terms (services.archive.index.ADDRESS_PREFIX), and every message fetched by
digest is checked again against its own headers and envelope. Another user's message is
"not found", never "forbidden": its existence is not theirs to learn either.

A message's hidden recipients (its Bcc and Resent-Bcc fields, the envelope recipients no
To or Cc field shows) are a user's to see only in mail they sent, and where they are the
user's own addresses, as their mailbox would show them: a search matches no mail by the
others (services.archive.query.Reader), and the copy a user reads (the page, the API, the
.eml download, an export) leaves them out (`as_read`). What is stored stays byte-exact.
"""
from __future__ import annotations

import re

import xapian

from services.archive.addresses import lowercase_ascii
from services.archive.archive import Archive
from services.archive.index import SENDER_PREFIX, address_term, addresses_of, shown_addresses
from services.archive.mime import header_end, summarize_headers
from services.archive.query import Reader
from services.archive.store import NotFound
from services.appliance.users import User

# A Bcc or Resent-Bcc field of the top-level header block (RFC 5322 3.6.3, 3.6.6; white
# space before the colon: 4.5.3), its folded lines included. Lines end where the parser
# that shows the message ends them (services.archive.mimetree.LINE_END, the feedparser's):
# at CR LF, LF or a bare CR, so a field after a bare CR ("To: carol\rBcc: frank") is one
# the page and the API show, and is removed too.
_HIDDEN_FIELD = re.compile(
    rb"(?i)(?:\A|(?<=[\r\n]))(?:resent-)?bcc[ \t]*:[^\r\n]*"
    rb"(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*(?:\r\n|\r|\n)?")

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
    user, without the Bcc and Resent-Bcc fields of its header block and with only the
    envelope recipients To or Cc shows or that are theirs (module docstring). The header
    block is parsed once, and not at all for one who reads all mail."""
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
    return _HIDDEN_FIELD.sub(b"", raw[:end]) + raw[end:], {**meta, "recipients": recipients}


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
