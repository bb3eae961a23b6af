"""What mail a user may read. Admins and auditors read all of it; a user reads only mail
from or to one of their addresses (From, To, Cc, Bcc headers, envelope recipients).

Checked twice, so that one mistake does not leak mail: every search is filtered in Xapian
by exact address terms (services.archive.index.ADDRESS_PREFIX), and every message fetched by
digest is checked again against its own headers and envelope. Another user's message is
"not found", never "forbidden": its existence is not theirs to learn either.
"""
from __future__ import annotations

import xapian

from services.archive.addresses import lowercase_ascii
from services.archive.archive import Archive
from services.archive.index import address_term, addresses_of
from services.archive.mime import summarize_headers
from services.archive.store import NotFound
from services.appliance.users import User

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


def may_read(user: User, raw: bytes, meta: dict) -> bool:
    if reads_all_mail(user):
        return True
    mine = {lowercase_ascii(address) for address in user.emails}
    return bool(mine & addresses_of(summarize_headers(raw), meta.get("recipients", [])))


def read_message(archive: Archive, user: User, digest: str) -> tuple[bytes, dict]:
    """The raw bytes and metadata of a message `user` may read; NotFound otherwise."""
    meta = archive.store.meta(digest)
    raw = archive.store.get(digest)
    if not may_read(user, raw, meta):
        raise NotFound(f"no message with digest {digest}")
    return raw, meta
