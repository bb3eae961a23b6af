"""The views (services.web.message_tree, mail_view) open containers as deep and as often as
the indexer (services.archive.extract) does, by one rule each:

- nesting: a container (forwarded message, zip, TNEF, S/MIME signed-data) inside more than
  extract.MAX_NESTED_CONTAINERS others is listed, not opened, by both (extract.opens_nested;
  the views had opened some 60 deep, listing files no search finds), and both say so
  (extract.NESTED_TOO_DEEP: the indexer's failure, the views' not_opened);
- tool runs: a message has at most containers.TOOL_CONTAINERS_OPENED distinct S/MIME
  signed-data and TNEF contents opened by a process (`openssl cms`, `tnef`), by the indexer
  (which had run openssl for every one) as by each view; those past it are the files they
  are, and both say so (containers.ReadBudget.tool_refusal).

A generated corpus: chains of every container kind in every other (and in itself), around
the limit, attached, as a message's whole body and in a message whose body is a message;
messages of distinct and repeated signed-data and TNEF objects, at the top, in zips and in
forwards, around the cap. Each asserts the files the views list are those the indexer read
(name and the container each was found in), where each side stopped, and the runs counted.
Counted, never timed."""
from __future__ import annotations

import itertools
import random

import pytest

from services.archive import containers
from services.archive.extract import (MAX_NESTED_CONTAINERS, MAX_NESTED_MESSAGES,
                                      NESTED_TOO_DEEP, extract)
from services.web import forwarded, mail_view, message_tree
from tests import reading_corpus as corpus
from tests.unit.web.test_containers_in_containers import (KINDS, USUAL_NAME, as_attachment,
                                                          indexed, listed, nested)
from tests.unit.web.test_review_r10 import HEAD, attached, message

LIMIT = MAX_NESTED_CONTAINERS
PLACES = ("attached", "whole-body", "in-message-body")


def placed(where: str, kinds: list[str], names: list[str], own_type: bool) -> bytes:
    """A message holding the chain `kinds` (kinds[0] outermost, each holding a leaf and the
    next) `where`: attached beside a body; as the message's whole body (sent as a file);
    attached in a message that is the body of a message/rfc822 message."""
    name, data = nested(kinds, names)
    part = as_attachment(kinds[0], name, data, own_type)
    if where == "whole-body":
        return HEAD.format(s="whole").encode() + part
    raw = message("deep", [part])
    if where == "in-message-body":
        return HEAD.format(s="outer").encode() + b"Content-Type: message/rfc822\r\n\r\n" + raw
    return raw


def _chains() -> list[tuple[str, list[str], str, list[str], bool]]:
    """(id, kinds, place, names, own type): every kind alternating with every kind (itself
    too) and the four kinds in turn from each, LIMIT to LIMIT + 3 deep, in every place;
    usual names or names that say nothing, own types or application/octet-stream, by a
    seeded draw."""
    rng, cases = random.Random(18), []
    patterns = [[a, b] for a, b in itertools.product(KINDS, repeat=2)]
    patterns += [list(KINDS[at:] + KINDS[:at]) for at in range(len(KINDS))]
    for pattern, depth, where in itertools.product(patterns, range(LIMIT, LIMIT + 4), PLACES):
        if len(set(pattern)) == len(KINDS) and depth < LIMIT + 2:
            continue  # (the four in turn: past the limit only, the pairs cover the rest)
        kinds = [pattern[at % len(pattern)] for at in range(depth)]
        names = [USUAL_NAME[kind] if rng.random() < 0.7 else f"data-{at}.bin"
                 for at, kind in enumerate(kinds)]
        own_type = rng.random() < 0.5
        label = f"{'-in-'.join(pattern)}-x{depth}-{where}-{'typed' if own_type else 'generic'}"
        cases.append((label, kinds, where, names, own_type))
    return cases


CHAINS = _chains()


def _walk(files, depth=0):
    for file in files:
        yield depth, file
        yield from _walk(file.files, depth + 1)


@pytest.mark.parametrize("label, kinds, where, names, own_type", CHAINS,
                         ids=[case[0] for case in CHAINS])
def test_the_views_open_containers_as_deep_as_the_indexer(label, kinds, where, names,
                                                          own_type):
    raw = placed(where, kinds, names, own_type)
    assert listed(raw) == indexed(raw)
    # container k (nesting k) holds leaf-k: opened to LIMIT, by both
    leaves = sorted(name for name, _ in listed(raw) if name and name.startswith("leaf-"))
    assert leaves == sorted(f"leaf-{at}.txt" for at in range(min(len(kinds), LIMIT + 1)))
    # where they stopped, both say so, at the same file and nowhere else
    stopped = len(kinds) > LIMIT + 1
    files = list(_walk(mail_view.files(raw)))
    assert [(depth, file.filename) for depth, file in files if file.not_opened] == \
        ([(LIMIT + 1, names[LIMIT + 1])] if stopped else [])
    assert all(file.not_opened == NESTED_TOO_DEEP for _, file in files if file.not_opened)
    entries = extract(raw, 1 << 20).attachments
    said = [entry for entry in entries if entry.error == NESTED_TOO_DEEP or (
        entry.cut and f"nested deeper than {MAX_NESTED_MESSAGES} levels" in entry.cut)]
    assert [(entry.filename, entry.container) for entry in said] == \
        ([(names[LIMIT + 1], names[LIMIT])] if stopped else [])


@pytest.mark.parametrize("label, kinds, where, names, own_type", CHAINS[::5],
                         ids=[case[0] for case in CHAINS[::5]])
def test_the_page_lists_the_same_files_and_says_where_it_stopped_once(label, kinds, where,
                                                                      names, own_type):
    raw = placed(where, kinds, names, own_type)
    failures = extract(raw, 1 << 20).failures
    page = message_tree.tree(forwarded.parse(raw), failures)
    nodes = [node for node in page.walk() if node.attachment and node.filename]
    assert sorted(node.filename for node in nodes) == \
        sorted(name for name, _ in listed(raw) if name)
    unopened = [node for node in nodes if node.not_opened]
    assert [node.not_opened for node in unopened] == \
        ([NESTED_TOO_DEEP] if len(kinds) > LIMIT + 1 else [])
    for node in unopened:  # (the indexer's failure of it is that reason: said once)
        assert NESTED_TOO_DEEP not in node.text and not node.children


# -- tool runs: distinct signed-data and TNEF objects, repeated, at the top, in zips ------

class ToolRuns:
    """Processes run (`openssl cms`, `tnef`) with an empty memo of their results, so that
    each distinct content opened is one run."""

    def __init__(self, monkeypatch):
        self.count = 0
        real_signed, real_tnef = containers._unwrap_signed, containers._unpack_tnef

        def unwrap_signed(data):
            self.count += 1
            return real_signed(data)

        def unpack_tnef(data, limit):
            self.count += 1
            return real_tnef(data, limit)
        monkeypatch.setattr(containers, "_unwrap_signed", unwrap_signed)
        monkeypatch.setattr(containers, "_unpack_tnef", unpack_tnef)
        self.monkeypatch = monkeypatch
        self.forget()

    def forget(self) -> None:
        self.count = 0
        self.monkeypatch.setattr(containers, "TOOL_MEMO",
                                 containers.ToolMemo(containers.TOOL_MEMO_BYTES))


def tool_object(kind: str, at: int) -> tuple[str, bytes]:
    """(name, content) of distinct object `at` of `kind`, holding a file named for it."""
    if kind == "signed":
        entity = (f'Content-Type: multipart/mixed; boundary="S{at}"\r\n\r\n--S{at}\r\n'
                  f'Content-Type: text/plain\r\n\r\nsigned {at}\r\n--S{at}\r\n'
                  f'Content-Type: text/plain\r\nContent-Disposition: attachment; '
                  f'filename="in-signed-{at}.txt"\r\n\r\nfile {at}\r\n--S{at}--\r\n')
        return f"signed-{at}.p7m", corpus.smime_signed_data(entity.encode())
    return f"winmail-{at}.dat", corpus.tnef([(f"in-tnef-{at}.txt", b"t%d" % at)])


def tool_message(rng: random.Random, distinct: int, copies: int, where: str
                 ) -> tuple[bytes, list[str]]:
    """(a message of `copies` objects, `distinct` of them distinct, signed-data and TNEF
    drawn, shuffled, placed `where`: attached, in zips, or in a forward; the names of the
    distinct ones in the order first met)."""
    objects = [tool_object(rng.choice(["signed", "tnef"]), at) for at in range(distinct)]
    order = list(range(distinct)) + [rng.randrange(distinct) for _ in range(copies - distinct)]
    rng.shuffle(order)
    files = [objects[at] for at in order]
    if where == "zips":  # (a zip of a few, then a zip of the rest)
        cut = len(files) // 3
        parts = [attached(f"pack-{n}.zip", corpus.zip_archive(chunk))
                 for n, chunk in enumerate([files[:cut], files[cut:]])]
    else:
        parts = [attached(name, data) for name, data in files]
        if where == "forward":
            parts = [b'Content-Type: message/rfc822\r\nContent-Disposition: attachment; '
                     b'filename="fwd.eml"\r\n\r\n' + message("inner", parts)]
    first_met = list(dict.fromkeys(objects[at][0] for at in order))
    return message(f"tools-{where}", parts), first_met


def _tool_cases() -> list[tuple[str, int, int, str, int]]:
    """(id, distinct, copies, place, seed) around a cap of 4 (set by the test)."""
    cases = []
    for seed, (distinct, where) in enumerate(itertools.product(
            (3, 4, 5, 9), ("attached", "zips", "forward"))):
        copies = distinct + seed % 3 * 2
        cases.append((f"{distinct}-of-{copies}-{where}", distinct, copies, where, seed))
    return cases


TOOL_CASES = _tool_cases()
CAP = 4


def _refused(text: str | None) -> bool:
    return bool(text) and "distinct S/MIME and TNEF objects are opened" in text


@pytest.mark.parametrize("label, distinct, copies, where, seed", TOOL_CASES,
                         ids=[case[0] for case in TOOL_CASES])
def test_the_indexer_and_the_views_open_the_same_first_tool_objects(
        monkeypatch, label, distinct, copies, where, seed):
    monkeypatch.setattr(containers, "TOOL_CONTAINERS_OPENED", CAP)
    raw, first_met = tool_message(random.Random(seed), distinct, copies, where)
    runs = ToolRuns(monkeypatch)
    extracted = extract(raw, 1 << 20)
    assert runs.count == min(distinct, CAP)
    runs.forget()
    files = list(_walk(mail_view.files(raw)))
    assert runs.count == min(distinct, CAP)
    assert listed(raw) == indexed(raw)
    # the same files refused, by both, and only those past the first CAP distinct ones
    refused_indexed = [entry.filename for entry in extracted.attachments
                       if _refused(entry.error)]
    refused_listed = [file.filename for _, file in files if _refused(file.not_opened)]
    assert refused_indexed == refused_listed
    assert set(refused_listed) == set(first_met[CAP:])
    # the message says what was not opened, as its other failures
    assert all(any(failure.startswith(f"{name}: not opened") for failure in
                   extracted.failures) for name in refused_indexed[:10])


def test_the_cap_is_the_one_constant_at_its_value(monkeypatch):
    """The brief's case: a zip of 33 distinct signed-data objects, at the real cap."""
    cap = containers.TOOL_CONTAINERS_OPENED
    objects = [tool_object("signed", at) for at in range(cap + 1)]
    raw = message("at-cap", [attached("many.zip", corpus.zip_archive(objects))])
    runs = ToolRuns(monkeypatch)
    extracted = extract(raw, 1 << 20)
    assert runs.count == cap
    runs.forget()
    listing = list(_walk(mail_view.files(raw)))
    assert runs.count == cap
    assert [entry.filename for entry in extracted.attachments if _refused(entry.error)] == \
        [file.filename for _, file in listing if _refused(file.not_opened)] == \
        [objects[cap][0]]
