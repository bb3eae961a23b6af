"""Every operator of the query syntax, against a real store and a real Xapian index."""
import re
from email.message import EmailMessage

import pytest

from services.archive.query import EXPANSION_LIMIT
from services.archive.search import QuerySyntaxError, search
from services.archive.store import Envelope
from tests.integration.archive.indexed import indexed_archive, names_found

pytestmark = pytest.mark.integration


def mail(sender, to, subject, body, date=None, cc=None, bcc=None, attachment=None):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.com>"
    if date:
        msg["Date"] = date
    if cc:
        msg["Cc"] = cc
    if bcc:
        msg["Bcc"] = bcc
    msg.set_content(body)
    if attachment:
        name, text = attachment
        msg.add_attachment(text.encode(), maintype="text", subtype="plain", filename=name)
    return msg.as_bytes()


MAILS = {
    "report": (mail("Alice Smith <alice@example.com>", "bob@example.com", "Quarterly archive report",
                    "The architecture review is scheduled.", "Fri, 15 Mar 2024 09:00:00 +0000",
                    cc="carol@example.com", attachment=("report.txt", "confidential merger plans")),
               None),
    "lunch": (mail("bob@example.com", "alice@example.com", "Lunch", "Let us meet for lunch at noon",
                   "Sat, 01 Jul 2023 12:00:00 +0000", bcc="dave@example.com"), None),
    "invoice": (mail("carol@example.com", "alice@example.com", "Invoice 4711", "Please pay the invoice",
                     "Mon, 10 Jan 2022 08:00:00 +0000",
                     attachment=("invoice-4711.txt", "amount due 500 EUR")),
                Envelope("journal@example.com", ["erin@example.com"])),
    "undated": (mail("frank@example.com", "alice@example.com", "Undated archive dump",
                     "archive " + "filler text " * 20000), None),
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = indexed_archive(tmp_path_factory.mktemp("data"), MAILS)
    yield opened
    opened.close()


found = names_found


@pytest.mark.parametrize("query, expected", [
    ("lunch", ["lunch"]),
    ("LUNCH", ["lunch"]),
    ('"architecture review"', ["report"]),
    ('"review architecture"', []),
    ("arch*", ["undated", "report"]),
    ("lunch OR invoice", ["lunch", "invoice"]),
    ("lunch or invoice", ["lunch", "invoice"]),
    ("archive AND NOT report", ["undated"]),
    ("archive and not report", ["undated"]),
    ("NOT archive", ["lunch", "invoice"]),
    ("(lunch OR invoice) AND from:carol", ["invoice"]),
    ("from:alice", ["report"]),
    ("from:alice@example.com", ["report"]),
    ('from:"alice smith"', ["report"]),
    ("to:bob", ["report"]),
    ("to:dave", ["lunch"]),
    ("to:erin@example.com", ["invoice"]),
    ("cc:carol", ["report"]),
    ("bcc:dave", ["lunch"]),
    ("bcc:erin", ["invoice"]),
    ("bcc:bob", []),
    ("subject:invoice", ["invoice"]),
    ("Subject:Invoice", ["invoice"]),
    ("body:noon", ["lunch"]),
    ("body:merger", []),
    ("attachment:merger", ["report"]),
    ("merger", ["report"]),
    ("filename:report.txt", ["report"]),
    ("filename:invoice*", ["invoice"]),
    ("date:2023-01-01..2023-12-31", ["lunch"]),
    ("date:2023-07-01..2023-07-01", ["lunch"]),
    ("date:..2022-12-31", ["invoice"]),
    ("date:2022..2023", ["lunch", "invoice"]),
    ("date:2024-03", ["report"]),
    ("size:100k..", ["undated"]),
    ("size:..100k AND alice", ["report", "lunch", "invoice"]),
    ("has:attachment", ["report", "invoice"]),
    ("HAS:Attachment", ["report", "invoice"]),
    ("source:smtp AND has:attachment AND NOT invoice", ["report"]),
])
def test_each_operator(archive, query, expected):
    assert found(archive, query) == expected


def test_results_are_newest_first_with_paging(archive):
    everything = found(archive, "")
    assert everything == ["undated", "report", "lunch", "invoice"]  # undated: received now
    assert found(archive, "", limit=2, offset=1) == ["report", "lunch"]
    assert found(archive, "", oldest_first=True) == list(reversed(everything))


@pytest.mark.parametrize("query", ["date:2024-13-45", "date:someday", "size:big..", "date:.."])
def test_bad_ranges_are_refused_with_the_reason(archive, query):
    with pytest.raises(QuerySyntaxError, match="cannot parse query"):
        search(archive.index_dir(), query)


# --- schema 4: body and attachment text indexed once, still found by bare words -----------

BARE = {
    "body-only": mail("ann@example.com", "bob@example.com", "one",
                      "plan the e-mail-migration of 東京都 before zebrafish season"),
    "attachment-only": mail("ann@example.com", "bob@example.com", "two", "see attached",
                            attachment=("a.txt", "quokka e-mail-migration 大阪府 sizing")),
    "subject-only": mail("ann@example.com", "bob@example.com", "zebrafish quokka", "nothing"),
}


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    opened = indexed_archive(tmp_path_factory.mktemp("bare"), BARE)
    yield opened
    opened.close()


@pytest.mark.parametrize("query, expected", [
    ("zebrafish", ["subject-only", "body-only"]),
    ("quokka", ["subject-only", "attachment-only"]),
    ("zebra*", ["subject-only", "body-only"]),
    ("quok*", ["subject-only", "attachment-only"]),
    ("e-mail-migration", ["attachment-only", "body-only"]),
    ("e-mail-mig*", ["attachment-only", "body-only"]),
    ("東京", ["body-only"]),
    ("大阪府", ["attachment-only"]),
    ('"the e-mail-migration"', ["body-only"]),
    ("body:quokka", []),
    ("attachment:zebrafish", []),
    ("subject:zebra*", ["subject-only"]),
    ("sizing AND season", []),
    ("zebrafish AND NOT body:zebrafish", ["subject-only"]),
])
def test_bare_words_find_text_indexed_only_under_its_field(bare, query, expected):
    assert sorted(found(bare, query)) == sorted(expected)


def distinct_words(stem: str, count: int, start: int = 0) -> str:
    return " ".join(f"{stem}{n:05d}" for n in range(start, start + count))


@pytest.fixture(scope="module")
def wordy(tmp_path_factory):
    """Six thousand zy- words in a body and six thousand others in an attachment; the same
    six thousand zw- words in a body and an attachment; ten thousand and one zx- words in a
    body."""
    opened = indexed_archive(tmp_path_factory.mktemp("wordy"), {
        "body": mail("ann@example.com", "bob@example.com", "one", distinct_words("zy", 6000)),
        "attached": mail("ann@example.com", "bob@example.com", "two", "see attached",
                         attachment=("a.txt", distinct_words("zy", 6000, start=6000))),
        "both": mail("ann@example.com", "bob@example.com", "four", distinct_words("zw", 6000),
                     attachment=("b.txt", distinct_words("zw", 6000))),
        "zx": mail("ann@example.com", "bob@example.com", "three",
                   distinct_words("zx", EXPANSION_LIMIT + 1))})
    yield opened
    opened.close()


def test_one_wildcard_stands_for_at_most_the_limit_wherever_its_words_are(wordy):
    """EXPANSION_LIMIT bounds one wildcard's terms in all the places a bare word is looked
    up together (a bare zy* would otherwise cost two expansions of 6,000); the refusal
    names the wildcard as typed, never an index prefix."""
    from services.archive.search import PatternTooBroad
    assert sorted(found(wordy, "body:zy*")) == ["body"]
    assert sorted(found(wordy, "attachment:zy*")) == ["attached"]
    assert found(wordy, "zy00001") == ["body"] and found(wordy, "zy06001") == ["attached"]
    for query, typed in (("zy*", '"zy*"'), ("body:zx*", '"body:zx*"'), ("zx*", '"zx*"')):
        with pytest.raises(PatternTooBroad,
                           match=re.escape(f"wildcard {typed} stands for more than")) as refused:
            found(wordy, query)
        assert "XB" not in str(refused.value) and "XA" not in str(refused.value)
    assert found(wordy, "zy0000*") == ["body"]  # a narrower one is answered
    assert found(wordy, "zw*") == ["both"]  # 6,000 words, twice indexed, are 6,000 words
