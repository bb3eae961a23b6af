"""The one address parser, by property: generated address-list headers (display names,
comments, quoted strings, groups, malformed entries, huge lists) in which some addresses
are real and others appear only where no address is (a display name, a comment, a group's
name, a malformed entry, the body). The parser, the summary, the index's address terms
and so the access filter must find exactly the real ones."""
from __future__ import annotations

import string

import xapian
from hypothesis import HealthCheck, given, settings, strategies as st

from services.archive.addresses import lowercase_ascii, parse_address_list
from services.archive.extract import extract
from services.archive.index import ADDRESS_PREFIX, addresses_of, build_document
from services.archive.mime import addresses, summarize_headers

REAL_DOMAIN, DECOY_DOMAIN = "real.example", "decoy.example"
PAD_BYTES = 64 * 1024
WORD = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
ATEXT_WORD = st.text(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~",
                     min_size=1, max_size=8)


@st.composite
def addr(draw, domain: str) -> str:
    """An addr-spec: a dot-atom local part, sometimes quoted, sometimes with a space."""
    local = ".".join(draw(st.lists(ATEXT_WORD, min_size=1, max_size=3)))
    kind = draw(st.sampled_from(["atom", "atom", "quoted-atom", "quoted-space"]))
    if kind == "quoted-atom":
        local = f'"{local}"'  # the same address as unquoted (RFC 5322 3.4.1)
    elif kind == "quoted-space":
        local = f'"{local} x"'
    return f"{local}@{draw(WORD)}.{domain}"


def canonical(address: str) -> str:
    """What the parser must return for an addr(): lowercased, needless quotes dropped."""
    local, _, domain = address.rpartition("@")
    if local.startswith('"') and " " not in local:
        local = local[1:-1]
    return f"{local}@{domain}".lower()


def decoy_text(draw) -> str:
    """Text holding a decoy address, to hide in names, comments and junk."""
    before, after = draw(WORD), draw(WORD)
    return f"{before} {draw(addr(DECOY_DOMAIN))} {after}".replace('"', "")


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(draw) -> str:
    inner = decoy_text(draw).replace("(", "").replace(")", "")
    return f"({inner} (nested {draw(WORD)}))" if draw(st.booleans()) else f"({inner})"


@st.composite
def mailbox(draw) -> tuple[str, str]:
    """(header text, its real address) of one well-formed mailbox."""
    real = draw(addr(REAL_DOMAIN))
    name_kind = draw(st.sampled_from(["none", "unquoted", "quoted", "encoded", "comment"]))
    if name_kind == "none":
        text = real
    elif name_kind == "unquoted":  # invalid RFC 5322, common in the wild: still only a name
        text = f"{decoy_text(draw)} <{real}>"
    elif name_kind == "quoted":
        text = f"{quoted(decoy_text(draw))} <{real}>"
    elif name_kind == "encoded":
        encoded = decoy_text(draw).replace(" ", "_").replace("@", "=40")
        text = f"=?utf-8?q?{encoded}?= <{real}>"
    else:
        text = f"{comment(draw)} {real}"
    if draw(st.booleans()):
        text = f"{text} {comment(draw)}"
    return text, canonical(real)


@st.composite
def malformed(draw) -> str:
    """An entry that is no mailbox, holding a decoy where a loose parser finds one."""
    decoy, other = draw(addr(DECOY_DOMAIN)), draw(addr(DECOY_DOMAIN))
    return draw(st.sampled_from([
        f"{decoy} {other}", f"<{decoy}", f"{decoy}>", f"<{decoy}> trailing {other}",
        f"<{decoy}> <{other}>", f"@{decoy}", f"{decoy}@extra", f"{decoy.split('@')[0]}@",
        f"{decoy} <", f"<<{decoy}>>", f"{decoy}..x", f"[{decoy}", f"{decoy}\x00",
        f"\\{decoy}", f"{decoy}]", f".{decoy}", f"nested: group: {decoy};",
    ]))


@st.composite
def entry(draw) -> tuple[str, list[str]]:
    """(text, real addresses) of one list entry: a mailbox, a group, or a malformed one."""
    kind = draw(st.sampled_from(["mailbox", "mailbox", "group", "malformed"]))
    if kind == "mailbox":
        text, real = draw(mailbox())
        return text, [real]
    if kind == "malformed":
        return draw(malformed()), []
    members = draw(st.lists(mailbox(), max_size=3))
    name = draw(st.sampled_from([decoy_text(draw), quoted(decoy_text(draw)), "undisclosed"]))
    return f"{name}: {', '.join(text for text, _ in members)};", [r for _, r in members]


@st.composite
def address_list(draw) -> tuple[str, list[str], bool]:
    """(header value, its real addresses in order, whether it ends in an unclosed quote or
    comment: text to the end of the header). Sometimes padded past 64 KiB."""
    entries = draw(st.lists(entry(), min_size=1, max_size=8))
    texts, reals = [text for text, _ in entries], [r for _, found in entries for r in found]
    if draw(st.integers(0, 3)) == 0:
        pad = [f"pad{n}@pad.{REAL_DOMAIN}" for n in range(PAD_BYTES // 24)]
        at = draw(st.integers(0, len(texts)))
        texts[at:at] = pad
        before = sum(len(found) for _, found in entries[:at])
        reals[before:before] = pad
    separator = draw(st.sampled_from([", ", ",", " , ", ",\r\n\t"]))
    value = separator.join(texts)
    if draw(st.booleans()):
        value += separator + draw(st.sampled_from(['"', "("])) + decoy_text(draw)
    return value, reals


PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(address_list())
def test_the_parser_finds_exactly_the_real_addresses(generated):
    value, reals = generated
    assert [mailbox.address for mailbox in parse_address_list(value)] == reals


@settings(PROPERTY, max_examples=40)
@given(address_list(), address_list(), st.sampled_from(["to", "cc", "bcc", "from"]))
def test_whose_mail_it_is_never_comes_from_names_comments_or_the_body(first, second, field):
    """The summary, the index's address terms (the search filter) and the per-message check
    all read the same: the real addresses of every header and envelope, nothing else."""
    (value, reals), (other_value, other_reals) = first, second
    body = f"Write to {DECOY_DOMAIN} people: pay@{DECOY_DOMAIN}, <boss@{DECOY_DOMAIN}>"
    raw = (f"{field.capitalize()}: {value}\r\nReply-To: x@{DECOY_DOMAIN}\r\n"
           f"Cc: {other_value}\r\nSubject: s\r\n\r\n{body}\r\n").encode()
    envelope = [f"env@{REAL_DOMAIN}"]
    expected = set(reals) | set(other_reals) | set(envelope)
    assert addresses_of(summarize_headers(raw), envelope) == expected
    document = build_document("0" * 64, {"recipients": envelope, "size": len(raw),
                                         "received": 0.0}, extract(raw, 1 << 20))
    terms = {term.term.decode() for term in document.termlist()}
    indexed = {term[len(ADDRESS_PREFIX):] for term in terms if term.startswith(ADDRESS_PREFIX)}
    assert indexed == {address for address in expected if len(address.encode()) <= 200}


def test_the_examples_of_the_issue():
    pad = ", ".join(f"someone{n}@example.org" for n in range(PAD_BYTES // 20))
    for value in ("bob@example.com <dave@example.com>",
                  '"bob@example.com" <dave@example.com>, <malformed',
                  '"bob@example.com" <dave@example.com>, ' + pad):
        found = {address for _, address in addresses(value)}
        assert "dave@example.com" in found and "bob@example.com" not in found
    assert addresses("bob@example.com <dave@example.com>") == [
        ("bob@example.com", "dave@example.com")]


def test_raw_8bit_addresses_are_utf8_and_encoded_words_never_addresses():
    value = "j\udcc3\udcb6rg@example.de, =?utf-8?q?bob=40example.com?= <dave@example.com>"
    assert addresses(value) == [("", "jörg@example.de"), ("bob@example.com", "dave@example.com")]
    assert addresses("=?utf-8?q?bob=40example.com?=") == []  # an atom without '@'


def test_obsolete_forms_still_read():
    assert [m.address for m in parse_address_list(
        "John Q. Public <@relay.example:JQP@Example.com>, a . b @ c . d, x@[192.0.2.1]")] \
        == ["jqp@example.com", "a.b@c.d", "x@[192.0.2.1]"]


def test_a_huge_damaged_header_is_read_in_one_pass():
    """Quarter megabytes of junk, open comments, colons: no recursion, no exception, nothing
    found; and a megabyte of plain addresses, every one found."""
    for value in ("(" * 2**18, ":" * 2**17 + "a@b.c", "\\" * 2**18, "[a" * 2**17,
                  '"' + "a" * 2**18, "<" * 2**18, "a." * 2**17, "a@" * 2**17, ",;" * 2**17):
        assert parse_address_list(value) == []
    assert len(parse_address_list("a@b.c, " * 150_000)) == 150_000


# Not ASCII, but lower(), upper() or casefold() gives ASCII letters: U+212A KELVIN SIGN ('k'),
# U+0130 ('i' and a dot), U+0131 and U+017F (upper 'I', 'S'), U+00DF ('ss'), ligatures...
# -> the ASCII letters they stand for, lowercased.
LOOKALIKES = {
    chr(code): letters
    for code in range(0x80, 0x110000)
    for letters in {"".join(c for c in form if c in string.ascii_letters).lower()
                    for form in (chr(code).lower(), chr(code).upper(), chr(code).casefold())}
    if letters
}
ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def test_the_lookalikes_are_the_known_ones():
    """The set the properties draw from holds the characters the attack used."""
    assert {"\u212a": "k", "\u0130": "i", "\u017f": "s", "\u0131": "i",
            "\u00df": "ss", "\ufb01": "fi"}.items() <= LOOKALIKES.items()


@st.composite
def spoofed(draw) -> tuple[str, str]:
    """(a user's address, the same with some of its letters written as lookalikes and the
    rest in any ASCII case, in the local part or the domain): never the same address."""
    lookalike = draw(st.lists(st.sampled_from(sorted(LOOKALIKES)), min_size=1, max_size=3))
    words = [draw(WORD) for _ in range(len(lookalike) + 1)]
    real = words[0] + "".join(LOOKALIKES[c] + word for c, word in zip(lookalike, words[1:]))
    spoof = words[0] + "".join(c + word for c, word in zip(lookalike, words[1:]))
    spoof = "".join(c.translate(ASCII_UPPER) if draw(st.booleans()) else c for c in spoof)
    if draw(st.booleans()):  # the domain is the spoofed part
        return f"kate@{real}.example", f"Kate@{spoof}.EXAMPLE"
    return f"{real}@{REAL_DOMAIN}", f"{spoof}@{REAL_DOMAIN.upper()}"


@PROPERTY
@given(spoofed(), st.sampled_from(["{}", "Name <{}>", "a@x.org, {}", "g: {};", "{} (c)"]))
def test_a_lookalike_of_an_address_is_never_that_address(pair, form):
    """U+212A KELVIN SIGN in `\u212aate@example.com` is no 'K': kate@example.com gets none
    of it, from any header or the envelope. Addresses are lowercased in ASCII only."""
    user, spoof = pair
    shouted = spoof.translate(ASCII_UPPER)
    raw = (f"To: {form.format(spoof)}\r\nCc: {form.format(shouted)}\r\n"
           f"Subject: s\r\n\r\nfor {user}\r\n").encode()
    assert user not in {m.address for m in parse_address_list(form.format(spoof))}
    assert user not in addresses_of(summarize_headers(raw), [spoof, shouted])
    document = build_document("0" * 64, {"recipients": [spoof], "size": len(raw),
                                         "received": 0.0}, extract(raw, 1 << 20))
    assert ADDRESS_PREFIX + user not in {term.term.decode() for term in document.termlist()}
    assert lowercase_ascii(spoof) != user and lowercase_ascii(shouted) != user


def test_ascii_case_still_does_not_matter():
    assert [m.address for m in parse_address_list(
        'KATE@Example.COM, <Kate@EXAMPLE.com>, "KATE"@example.com')] == ["kate@example.com"] * 3
    assert "kate@example.com" in addresses_of(summarize_headers(b"To: x@y.z\r\n\r\n"),
                                              [" KATE@Example.COM"])
    assert lowercase_ascii("J\u00d6RG@\u212aate.EXAMPLE") == "j\u00d6rg@\u212aate.example"


def test_the_atext_and_junk_classes_are_the_sets_rfc_5322_and_6532_name():
    """addresses._ATEXT and _JUNK are written as what they are not (quick to compile): over
    every code point they must be exactly the spelled-out sets."""
    import re

    from services.archive import addresses as module
    atext = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\u0080-\\U0010ffff"
    spelled = {"atext": re.compile(f"[{atext}]"),
               "junk": re.compile(f'[^{atext} \\t\\r\\n"(\\[<>@:;,.]')}
    written = {"atext": re.compile(module._ATEXT), "junk": re.compile(module._JUNK)}
    for name in spelled:
        differ = [hex(code) for code in range(0x110000)
                  if bool(spelled[name].match(chr(code))) != bool(written[name].match(chr(code)))]
        assert differ == [], (name, differ[:20])


# Characters near the plain path's rules: atext, whitespace (and what str.split() would
# take for it), the specials, non-ASCII (atext under RFC 6532).
NEAR_THE_PLAIN_PATH = (list("abAB09!#$%&'*+-/=?^_`{|}~") * 3 + list(" \t\r\n") * 3
                       + list("<>@.,[]\\)") * 2 + ["\xa0", "\u2028", "\x1c", "\u00e9", "\x00"])
PLAIN_SHAPES = ["Alice Example <alice.x@example.com>", "Bob<b@x.org>", "c@y.example",
                "Dee  Dee\t<d.d@z.example>", "E <e@x>", "F <f@x.>", "G <@g.example>",
                "H < h@x.org >", "I <i@x.org> J", "x" * 300 + " <long@x.org>",
                " ".join(["w"] * 130) + " <many@x.org>", " ".join(["w"] * 260) + " <m@x.org>",
                "K.L <k@x.org>", "Ann\xa0Lee <a@x.org>", "Ann\u2028 Lee <a@x.org>",
                "Ann \x1c Lee\r\n <a@x.org>", "\xa0Bob <b@x>", "Bob\u3000<b@x>",
                "\u2028<b@x>", "Bob \xa0<b@x>", ".".join(["a"] * 126) + "@b",
                ".".join(["a"] * 127) + "@b", ".".join(["a"] * 128) + "@b",
                "a@" + ".".join(["b"] * 127), "a@" + ".".join(["b"] * 128)]


def generated_plain_value(rng) -> str:
    entries = []
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            entries.append(rng.choice(PLAIN_SHAPES))
        else:
            entries.append("".join(rng.choice(NEAR_THE_PLAIN_PATH)
                                   for _ in range(rng.randint(0, 30))))
    return ",".join(entries)


def test_the_plain_paths_shortcuts_find_what_reading_token_by_token_finds():
    """Lists without groups, quotes or comments are read an entry at a time, the commonest
    entries with one match each (addresses._plain_mailboxes); reading them a token at a time
    is the definition, and must give the same mailboxes, names included."""
    import random
    from services.archive import addresses as parser
    rng = random.Random(31)
    differ = []
    for _ in range(40_000):
        value = generated_plain_value(rng)
        if not parser._NO_GROUPS_QUOTES_OR_COMMENTS.fullmatch(value):
            continue
        token_by_token = [mailbox for mailbox in map(
            parser._mailbox, parser._entries(parser._tokens(value))) if mailbox is not None]
        if parse_address_list(value) != token_by_token:
            differ.append(value)
    assert differ == [], differ[:5]
