"""Results sorted by date, size, sender and subject, either way; each hit names its first
recipients and counts the rest."""
import pytest

from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search
from services.archive.store import Envelope
from tests.integration.archive.test_search import mail

pytestmark = pytest.mark.integration

MAILS = {  # name -> (sender, subject, date, body size)
    "a": ("Zoe <zoe@example.com>", "Re: budget", "Mon, 01 Jan 2024 10:00:00 +0000", 10),
    # An accented display name (RFC 2047 in the phrase; never in the address: RFC 2047
    # section 5, so an encoded word there stays as it is and would sort as "=?utf-8...").
    "b": ("Émile <emile@example.com>", "Agenda", "Tue, 02 Jan 2024 10:00:00 +0000", 5000),
    "c": ("adam@example.com", "FW: Zebra crossing", "Wed, 03 Jan 2024 10:00:00 +0000", 300),
    "d": ("Eve <eve@example.com>", "budget", "Thu, 04 Jan 2024 10:00:00 +0000", 20000),
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = Archive(tmp_path_factory.mktemp("data"), 450)
    names = {}
    for name, (sender, subject, date, size) in MAILS.items():
        raw = mail(sender, "to1@example.com, To Two <to2@example.com>", subject, "x" * size,
                   date, cc="cc@example.com", bcc="hidden@example.com")
        names[opened.store.put(raw, Envelope("s@example.com", ["env@example.com"]), "smtp")] = name
    with ExtractionPool(opened.profile.attachment_text_bytes) as pool:
        Indexer(opened.store, opened.index_dir(), pool).catch_up()
    opened.names = names
    yield opened
    opened.close()


def order(archive, **options):
    return "".join(archive.names[hit.digest] for hit in search(archive.index_dir(), "",
                                                               **options).hits)


@pytest.mark.parametrize("sort, descending, expected", [
    ("date", None, "dcba"), ("date", False, "abcd"),
    ("size", None, "dbca"), ("size", False, "acbd"),
    # case and accents folded ("Émile" among the e), Re:/FW: ignored
    ("from", None, "cbda"), ("from", True, "adbc"),
    ("subject", None, "bdac"), ("subject", True, "cdab"),
])
def test_sorted_either_way(archive, sort, descending, expected):
    assert order(archive, sort=sort, descending=descending) == expected


def test_oldest_first_is_date_ascending_and_pages_follow_the_order(archive):
    assert order(archive, oldest_first=True) == "abcd"
    assert order(archive, sort="subject", limit=2, offset=2) == "ac"


def test_an_unknown_sort_is_an_error(archive):
    with pytest.raises(ValueError, match="sort: expected one of date, size, from, subject"):
        search(archive.index_dir(), "", sort="recipient")


def test_a_hit_names_its_first_recipients_and_counts_them_all(archive):
    hit = search(archive.index_dir(), "", limit=1).hits[0]
    assert hit.to == ("to1@example.com", "To Two <to2@example.com>", "cc@example.com")
    assert hit.recipients == 5  # to1, to2, cc, hidden (Bcc), env (envelope only)
