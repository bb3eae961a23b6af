"""`archiver search` as a user types it: errors saying what and where (exit 2), --explain,
exact counts, and days in the time zone of archiver.yaml (shown by `archiver status`)."""
import json
from email.message import EmailMessage

import pytest
from tests import search_output

pytestmark = pytest.mark.integration


def mail(name, date, body="status report"):
    message = EmailMessage()
    message["From"], message["To"] = "Jörg Müller <joerg@example.org>", "ops@example.net"
    message["Subject"], message["Message-ID"] = name, f"<{name}@example.org>"
    message["Date"] = date
    message.set_content(body)
    return message.as_bytes()


@pytest.fixture
def data(tmp_path, archiver):
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "late.eml").write_bytes(mail("late", "Tue, 05 Mar 2024 23:30:00 +0000",
                                           "We found a race condition."))
    (folder / "noon.eml").write_bytes(mail("noon", "Tue, 05 Mar 2024 12:00:00 +0000"))
    archiver("import", "--data", tmp_path / "data", "--json", folder, check=0)
    return tmp_path / "data"


def config(tmp_path, text: str) -> dict:
    path = tmp_path / "archiver.yaml"
    path.write_text(text)
    return {"ARCHIVER_CONFIG": str(path)}


@pytest.mark.parametrize("query, says, column", [
    ("foo:bar", 'unknown field "foo:"', 1),
    ("muller after:2024-13-01", "after:2024-13-01: '2024-13-01' is not a date", 14),
    ("date:2024-03-05..2024-03-01", "date:2024-03-05..2024-03-01: the range is reversed", 6),
    ('body:"race condition', "unbalanced quote", 6),
    ("(race OR condition", "unbalanced parenthesis", 1),
])
def test_a_query_the_syntax_does_not_know_exits_2_saying_what_and_where(archiver, data,
                                                                       query, says, column):
    done = archiver("search", query, "--data", data, check=2)
    assert done.stdout == ""
    first, *pointer = done.stderr.splitlines()
    assert first.startswith(f"archiver: cannot parse query: {says}")
    assert first.endswith(f"(column {column})")
    assert pointer == [f"  {query}", f"  {' ' * (column - 1)}^"]
    export = archiver("export", query, "--format", "mbox", "-o", data.parent / "x.mbox",
                      "--data", data, check=2)
    assert says in export.stderr and not (data.parent / "x.mbox").exists()


def test_counts_are_exact(archiver, data):
    done = archiver("search", "muller", "--data", data, check=0)
    assert done.stderr.strip().endswith("(1-2 of 2)")
    assert len(done.stdout.splitlines()) == 2
    assert archiver("search", "nothing", "--data", data, check=0).stderr.strip() == \
        "(none of 0)"


def test_json_ends_with_a_summary_telling_no_match_from_a_cut_page(archiver, data, tmp_path):
    page = archiver("search", "muller", "--limit", 1, "--data", data, "--json", check=0)
    assert len(search_output.hits(page.stdout)) == 1
    assert page.stdout.splitlines()[-1] == json.dumps({"summary": {
        "total": 2, "more": False, "total_text": "2", "offset": 0, "shown": 1,
        "not_indexed": 0, "notice": None}})
    last = search_output.summary(archiver("search", "muller", "--offset", 2, "--data", data,
                                          "--json", check=0).stdout)
    assert (last["total"], last["offset"], last["shown"]) == (2, 2, 0)
    nothing = archiver("search", "nothing", "--data", data, "--json", check=0).stdout
    assert [json.loads(line) for line in nothing.splitlines()] == [{"summary": {
        "total": 0, "more": False, "total_text": "0", "offset": 0, "shown": 0,
        "not_indexed": 0, "notice": None}}]
    (tmp_path / "later.eml").write_bytes(mail("later", "Wed, 06 Mar 2024 09:00:00 +0000"))
    archiver("import", "--no-index", "--data", data, tmp_path / "later.eml", check=0)
    behind = archiver("search", "later", "--data", data, "--json", check=0)
    summary = search_output.summary(behind.stdout)
    assert (summary["total"], summary["not_indexed"]) == (0, 1)
    assert "not indexed yet" in summary["notice"] and "not indexed yet" in behind.stderr


def test_explain_prints_how_the_query_is_understood(archiver, data):
    done = archiver("search", "--explain", 'from:muller body:"race condition" date:7d',
                    "--data", data, check=0)
    lines = done.stdout.splitlines()
    assert lines[0] == 'query: from:muller body:"race condition" date:7d'
    assert lines[1] == "days are days in UTC; case and accents are ignored"
    assert lines[2:5] == ["matches messages with", "  all of:",
                          '    a sender: the word "muller" in a name or address, or "muller" '
                          "as the whole local part or domain of an address"]
    assert '    the phrase "race condition" in the body' in done.stdout
    assert "    date:7d: sent on or after " in done.stdout
    assert lines[-1].startswith("Xapian query: Query(")
    understood = json.loads(archiver("search", "--explain", "--json", "Müller", "--data", data,
                                     check=0).stdout)
    assert understood["explanation"] == [
        'the word "Müller" anywhere (as "muller": case and accents ignored)']
    assert understood["xapian"] == "Query((muller OR XBmuller OR XAmuller))"
    assert understood["timezone"] == "UTC"
    assert "unknown field" in archiver("search", "--explain", "x:y", "--data", data,
                                       check=2).stderr


def test_days_are_days_of_the_configured_time_zone(archiver, data, tmp_path):
    utc = archiver("search", "date:2024-03-06", "--data", data, "--json", check=0)
    assert search_output.hits(utc.stdout) == []
    assert search_output.summary(utc.stdout)["total"] == 0
    berlin = config(tmp_path, "timezone: Europe/Berlin\n")
    found = archiver("search", "date:2024-03-06", "--data", data, env=berlin, check=0)
    assert len(found.stdout.splitlines()) == 1 and "  2024-03-06  " in found.stdout
    assert "days are days in Europe/Berlin" in archiver(
        "search", "--explain", "date:today", "--data", data, env=berlin, check=0).stdout
    status = archiver("status", "--data", data, env=berlin, check=0)
    assert ", time zone Europe/Berlin" in status.stdout.splitlines()[0]
    report = json.loads(archiver("status", "--json", "--data", data, env=berlin, check=0).stdout)
    assert report["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("value", ["Mars/Olympus", "UTC+2", "5"])
def test_a_bad_time_zone_names_the_file_the_key_and_what_was_expected(archiver, data, tmp_path,
                                                                     value):
    bad = config(tmp_path, f"timezone: {value}\n")
    done = archiver("status", "--data", data, env=bad, check=2)
    assert str(tmp_path / "archiver.yaml") in done.stderr and "timezone" in done.stderr
    assert "IANA time zone name" in done.stderr or "expected a string" in done.stderr


@pytest.mark.parametrize("zone, recorded", [("UTC", 2), ("Europe/Berlin", 1)])
def test_a_hold_records_the_days_of_the_appliances_time_zone(archiver, data, tmp_path, zone,
                                                             recorded):
    """`late` (23:30 UTC) is sent on 6 March in Berlin: a hold placed on "date:2024-03-05",
    and the record an edit of a held search makes, count days as retention and search do."""
    env = config(tmp_path, f"timezone: {zone}\n")

    def save(name, query):
        archiver("search", "--save", name, query, "--data", data, env=env, check=0)

    def hold(name):
        archiver("hold", "add", "--saved", name, "--data", data, env=env, check=0)

    save("placed", "date:2024-03-05")
    hold("placed")
    save("edited", "nothing-matches-this")
    hold("edited")
    save("edited", "date:2024-03-05")
    save("edited", "date:2024-03-07")  # what date:2024-03-05 matched is recorded first
    listed = archiver("hold", "list", "--json", "--data", data, env=env, check=0).stdout
    held = {hold["saved"]: hold["held_at_placement"] for hold in map(json.loads,
                                                                       listed.splitlines())}
    assert held == {"placed": recorded, "edited": recorded}


def test_saving_and_deleting_a_search_under_json_answer_in_json(archiver, data):
    """--save and --delete-saved printed their words on stdout under --json too: a script
    reading it got no JSON."""
    saved = archiver("search", "--json", "--save", "reports", "status", "--data", data, check=0)
    assert json.loads(saved.stdout) == {"saved": "reports", "query": "status"}
    listed = archiver("search", "--json", "--list-saved", "--data", data, check=0)
    assert json.loads(listed.stdout) == {"name": "reports", "query": "status"}
    deleted = archiver("search", "--json", "--delete-saved", "reports", "--data", data, check=0)
    assert json.loads(deleted.stdout) == {"deleted": "reports"}
    kept = archiver("search", "--save", "reports", "status", "--data", data, check=0)
    assert kept.stdout == "saved 'reports': status\n"
