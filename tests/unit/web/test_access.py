"""The per-message access check (services.web.access.may_read) and the index's address
terms (the search filter) decide from the same addresses: lowercased in ASCII only, read
from the same bounded header block whatever the header's size, so that no message grants a
user in one path and not the other, and a header cut at the limit grants nobody."""
from __future__ import annotations

import pytest

from services.appliance import users
from services.appliance.directory import addresses as directory_addresses
from services.archive.extract import extract, fallback
from services.archive.index import ADDRESS_PREFIX, build_document
from services.archive.mime import SUMMARY_HEADER_LIMIT, header_block
from services.web.access import may_read

BOB, DAVE = "bob@example.com", "dave@example.com"
HEAD = b"From: x@outside.org\r\nSubject: cut\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
# The last header field, which the limit cuts somewhere: bob is a real address in none.
CUT_FIELDS = [
    b"To: dave@example.com, bob@example.community",          # the reviewer's example
    b"To: bob@example.com\r\n <dave@example.com>",            # a name, folded before its <>
    b"Cc: dave@example.com,\r\n\tbob@example.com.evil.org",   # folded, a longer domain
    b'Bcc: "bob@example.com\r\n quoted" <dave@example.com>',  # a folded quoted name
    b"To: dave@example.com (bob@example.com\r\n comment)",     # a folded comment
]


def user(name: str, *emails: str) -> users.User:
    return users.User(name, "user", tuple(emails), {})


def indexed_addresses(raw: bytes, envelope: list[str], extracted) -> set[str]:
    """The address terms (the search filter) of the document `raw` is indexed as."""
    document = build_document("0" * 64, {"recipients": envelope, "size": len(raw),
                                         "received": 0.0}, extracted)
    terms = (term.term.decode() for term in document.termlist())
    return {term[len(ADDRESS_PREFIX):] for term in terms if term.startswith(ADDRESS_PREFIX)}


def cut_message(field: bytes, cut: int) -> bytes:
    """A message whose header block passes SUMMARY_HEADER_LIMIT inside `field`, `cut`
    bytes after the field's start; padded with X-Pad lines before it."""
    start = SUMMARY_HEADER_LIMIT - cut
    pad, line = b"", b"X-Pad: " + b"a" * 990 + b"\r\n"
    while len(HEAD) + len(pad) + len(line) + 40 < start:
        pad += line
    pad += b"X-Pad: " + b"b" * (start - len(HEAD) - len(pad) - 9) + b"\r\n"
    raw = HEAD + pad + field + b"\r\nX-After: 1\r\n\r\nbody for bob@example.com\r\n"
    assert raw[start:].startswith(field)
    return raw


def test_the_reviewers_example_cut_at_256_KiB_grants_bob_nothing():
    raw = cut_message(CUT_FIELDS[0], len(b"To: dave@example.com, bob@example.com"))
    assert raw[:SUMMARY_HEADER_LIMIT].endswith(b"bob@example.com")
    assert not may_read(user("bob", BOB), raw, {"recipients": [DAVE]})
    assert BOB not in indexed_addresses(raw, [DAVE], extract(raw, 1 << 20))
    assert may_read(user("dave", DAVE), raw, {"recipients": [DAVE]})  # the envelope's


@pytest.mark.parametrize("field", CUT_FIELDS)
def test_a_header_cut_anywhere_grants_the_same_in_both_paths_and_never_bob(field):
    """Every cut inside the last field: the access check, the index of a whole extraction
    and of a fallback (services.archive.extract.fallback, 4 MiB) read the same addresses;
    none of them is bob's, and the envelope's still counts."""
    envelope = ["carol@example.com"]
    for cut in range(1, len(field) + 1):
        raw = cut_message(field, cut)
        by_index = indexed_addresses(raw, envelope, extract(raw, 1 << 20))
        assert by_index == indexed_addresses(raw, envelope, fallback(raw, "test")), cut
        for address in (BOB, DAVE, "x@outside.org", "carol@example.com"):
            granted = may_read(user("u", address), raw, {"recipients": envelope})
            assert granted == (address in by_index), (cut, address)
        assert BOB not in by_index and "carol@example.com" in by_index


def test_a_field_that_ends_before_the_limit_is_read_whole():
    raw = cut_message(CUT_FIELDS[0], len(CUT_FIELDS[0]) + 2)  # it and its CRLF end there
    assert header_block(raw).endswith(b"bob@example.community\r\n")
    assert not may_read(user("bob", BOB), raw, {"recipients": []})
    assert may_read(user("bob", "bob@example.community"), raw, {"recipients": []})


def test_a_header_of_one_line_past_the_limit_is_read_as_no_header():
    raw = b"To: " + b"a" * SUMMARY_HEADER_LIMIT + b" bob@example.com\r\n\r\nbody\r\n"
    assert header_block(raw) == b""
    assert not may_read(user("bob", BOB), raw, {"recipients": []})


@pytest.mark.parametrize("lookalike", ["\u212aate", "KATE", "\u212aATE"])
def test_the_kelvin_sign_is_no_k(lookalike):
    """`\u212aate@example.com` (U+212A KELVIN SIGN) is not kate's, in a header or the
    envelope; `KATE@example.com` is."""
    address = f"{lookalike}@Example.com"
    raw = f"To: {address}\r\nSubject: s\r\n\r\nbody\r\n".encode()
    kate = user("kate", "kate@example.com")
    expected = lookalike.isascii()
    assert may_read(kate, raw, {"recipients": []}) == expected
    assert may_read(kate, b"To: x@y.org\r\n\r\n", {"recipients": [address]}) == expected
    assert ("kate@example.com" in indexed_addresses(raw, [address], extract(raw, 1 << 20))) \
        == expected


def test_a_users_own_addresses_are_lowercased_in_ascii_only(tmp_path):
    """An account (users.add) or a directory entry given `\u212aate@...` does not become
    kate@...: it keeps the Kelvin sign, and reads only that address's mail."""
    from services.archive.archive import Archive
    archive = Archive(tmp_path / "data", 450)
    try:
        added = users.add(archive, "k", "user", ["\u212aATE@Example.COM", "Kate@Example.com"],
                          "a long enough password")
    finally:
        archive.close()
    assert added.emails == ("\u212aate@example.com", "kate@example.com")
    found = directory_addresses({"mail": ["\u212aate@Example.com"],
                                 "proxyaddresses": ["SMTP:\u212aATE@x.org"]},
                                ["mail", "proxyAddresses"])
    assert found == ["\u212aate@example.com", "\u212aate@x.org"]
