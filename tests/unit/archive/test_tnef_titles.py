"""A TNEF attachment's title is the sender's: whatever it holds, each file of a winmail.dat
is listed under its own title with its own bytes, in order, none hidden (review r10 F1:
titles were split out of `tnef --verbose`'s text on "\\t|\\t" and line breaks, so one title
could name another file's bytes, hide its own, or lose all but its last line). Titles
are generated over every character tnef escapes in a file name, the listing's own
separators, escapes typed literally and names tnef numbers, for the indexer's reading
(containers.tnef_read) and the search it feeds."""
from __future__ import annotations

import random
import string

import pytest

from services.archive import containers
from services.archive.containers import ReadBudget
from services.archive.extract import extract
from tests import reading_corpus as corpus
from tests.unit.archive.test_extract import CAP, mail

CONTROLS = [chr(c) for c in range(1, 32)] + ["\x7f"]
ESCAPED = list("\\/:*?\"<>|% ;`'[]{}()")  # tnef's unsanitary and unsavory characters, and %
PIECES = CONTROLS + ESCAPED + ["\t|\t", "\t|\t\n", "%09", "%7C", "%2F", "%25", ".1", ".txt",
                               "files/a.txt", "unknown\t|\t", "body", "tnef-tmp"]


def titles(seed: int, count: int = 12) -> list[str]:
    """`count` titles (cp1252, as corpus.tnef writes them) of random letters and PIECES;
    some of them twice, which tnef writes as NAME and NAME.1."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        title = "".join(rng.choice([rng.choice(string.ascii_letters), rng.choice(PIECES)])
                        for _ in range(rng.randint(1, 8)))
        made.append(title)
    return made + rng.sample(made, 3)


def listed(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    body, members, problem = containers.tnef_read(corpus.tnef(files), ReadBudget(CAP))
    assert problem is None and body is None
    return [(member.name, member.data) for member in members]


@pytest.mark.parametrize("seed", range(40))
def test_every_file_is_listed_under_its_own_title_with_its_own_bytes(seed):
    files = [(title, f"bytes of file {at}: {title!r}".encode())
             for at, title in enumerate(titles(seed))]
    assert listed(files) == files


@pytest.mark.parametrize("title", ["evil.exe\t|\tfiles/a.txt", "hidden.txt\t|\t",
                                   "nl\nsecond.txt", "a.txt.1", "a.txt", "%61.txt"])
def test_a_title_that_looks_like_another_file_takes_nothing_of_it(title):
    files = [("a.txt", b"harmless"), (title, b"MZ its own bytes")]
    assert listed(files) == files


def test_a_hidden_files_words_and_title_are_indexed():
    winmail = corpus.tnef([("a.txt", b"harmless"), ("hidden.txt\t|\t", b"concealedword")])
    raw = mail(attachments=[(winmail, "application/ms-tnef", "winmail.dat")]).as_bytes()
    extracted = extract(raw, CAP)
    texts = {a.filename: a.text for a in extracted.attachments}
    assert "concealedword" in texts.get("hidden.txt\t|\t", "")
