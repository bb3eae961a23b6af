"""Review of the refusal of a peer's entries (Replicated.merge): a peer that re-sends many
refused entries at every hello (each ~10 s) must not write a log line per entry per hello.
Found by review: one warning per refused entry, so a peer with N bad entries wrote N lines
every hello, without bound (LOW: log spam filling the journal)."""
import logging

from tests.unit.policy.test_hold_chains import peer_entry
from tests.unit.policy.test_hold_clash import replicas


def test_many_refused_entries_are_logged_in_a_bounded_number_of_lines(tmp_path, caplog):
    (a,) = replicas(tmp_path, "a")
    sent = {f"hold:{n:016x}": peer_entry("not a hold") for n in range(500)}
    sent["saved:x"] = peer_entry({"query": "from:carol"})
    with caplog.at_level(logging.WARNING, logger="services.policy.replicated"):
        assert a.merge(sent) == 1
    lines = [record for record in caplog.records if "refused" in record.getMessage()]
    assert 1 <= len(lines) <= 3
    assert "500" in " ".join(record.getMessage() for record in lines)  # how many, told
