"""Where a message's retention starts: evidence its sender cannot set (its arrival) for mail
received live, its own date for imported mail but never after its import, and for a mirror
copy what its origin counts from."""
import pytest

from services.policy.retention_clock import live_arrival, retention_start

ARRIVED = 1_800_000_000.0
LONG_AGO, FAR_AHEAD = 1_400_000_000.0, 7_200_000_000.0  # 2014; 2198


def meta(source: str, sent_date: float | None, **more) -> dict:
    return {"source": source, "received": ARRIVED, "sent_date": sent_date, **more}


@pytest.mark.parametrize("source", ["smtp", "journal:ops", "journal:with:colons"])
@pytest.mark.parametrize("sent_date", [LONG_AGO, FAR_AHEAD, None])
def test_live_mail_starts_at_its_arrival_whatever_its_date(source, sent_date):
    assert retention_start(meta(source, sent_date)) == ARRIVED
    assert live_arrival(meta(source, sent_date)) == ARRIVED


@pytest.mark.parametrize("sent_date, start", [(LONG_AGO, LONG_AGO), (FAR_AHEAD, ARRIVED),
                                              (None, ARRIVED), (ARRIVED, ARRIVED)])
def test_imported_mail_starts_at_its_date_but_never_after_its_import(sent_date, start):
    assert retention_start(meta("import", sent_date)) == start
    assert live_arrival(meta("import", sent_date)) is None


def test_metadata_without_a_source_reads_as_imported():
    assert retention_start({"received": ARRIVED, "sent_date": FAR_AHEAD}) == ARRIVED


@pytest.mark.parametrize("sent_date", [LONG_AGO, FAR_AHEAD])
def test_a_copy_starts_at_its_origins_live_arrival(sent_date):
    copy = meta("mirror:node-a", sent_date, origin_received=ARRIVED - 5000)
    assert retention_start(copy) == live_arrival(copy) == ARRIVED - 5000


@pytest.mark.parametrize("sent_date, start", [(LONG_AGO, LONG_AGO), (FAR_AHEAD, ARRIVED)])
def test_a_copy_without_its_origins_arrival_counts_as_imported_mail(sent_date, start):
    for copy in (meta("mirror:node-a", sent_date),  # older firmware's: no such key
                 meta("mirror:node-a", sent_date, origin_received=None)):
        assert retention_start(copy) == start and live_arrival(copy) is None


@pytest.mark.parametrize("claimed, start", [
    (1e300, ARRIVED),            # after the copy arrived here: it cannot have been
    (ARRIVED + 86400, ARRIVED),  # a peer's clock a day ahead
    (0.0, LONG_AGO),             # a clock reset to 1970: the message's date decides
    (-1e12, LONG_AGO),
])
def test_a_peers_claimed_arrival_is_believed_only_within_what_can_be(claimed, start):
    """A peer's clock far off, or a hostile peer, made its copies expire at once or never."""
    copy = meta("mirror:node-a", LONG_AGO, origin_received=claimed)
    assert retention_start(copy) == start


def test_mail_stored_while_the_clock_read_1970_counts_from_its_date():
    for source in ("smtp", "import"):
        assert retention_start({"source": source, "received": 1000.0,
                                "sent_date": LONG_AGO}) == LONG_AGO


def test_mail_stored_under_a_1970_clock_with_no_date_of_its_own_is_kept():
    """Its date is then its arrival (message_date's last resort), 1970 too: it expired at
    the next run."""
    for source in ("smtp", "import", "mirror:node-a"):
        assert retention_start({"source": source, "received": 3600.0, "sent_date": 3600.0,
                                "date_source": "arrival"}) == float("inf")
