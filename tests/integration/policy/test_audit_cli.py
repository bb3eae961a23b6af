"""The audit log as an auditor reads it: `archiver audit show --limit`, and what a search
adds to it (a search that ran, never one that was refused)."""
import json

import pytest

from services.appliance import users
from services.archive.search import QuerySyntaxError
from services.policy import audit
from services.web import actions
from tests.integration.web.fixtures import build_archive

pytestmark = pytest.mark.integration


def mail(n: int) -> bytes:
    return (f"From: a{n}@example.com\nTo: b@example.com\nSubject: note {n}\n"
            f"Message-ID: <note{n}@example.com>\nDate: Tue, 01 Feb 2022 10:00:00 +0000\n\n"
            f"body {n}\n").encode()


@pytest.fixture
def data(tmp_path, archiver):
    for n in range(2):
        (tmp_path / f"{n}.eml").write_bytes(mail(n))
    archiver("import", "--data", tmp_path / "data", tmp_path / "0.eml", tmp_path / "1.eml",
             check=0)
    return tmp_path / "data"


def actions_logged(archiver, data, *options) -> list[str]:
    shown = archiver("audit", "show", "--json", "--data", data, *options, check=0).stdout
    return [json.loads(line)["action"] for line in shown.splitlines()]


@pytest.mark.parametrize("limit", ["0", "-1", "none"])
def test_audit_show_refuses_a_limit_under_one(archiver, data, limit):
    for query in ("note", "body"):
        archiver("search", query, "--data", data, check=0)
    refused = archiver("audit", "show", "--limit", limit, "--data", data)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--limit: expected a number of entries (1 or more)" in refused.stderr
    assert actions_logged(archiver, data, "--limit", "1") == ["search"]
    assert len(actions_logged(archiver, data)) == 2


def test_a_refused_cli_search_writes_no_audit_entry(archiver, data):
    refused = archiver("search", "foo:bar", "--data", data)
    assert refused.returncode == 2 and 'unknown field "foo:"' in refused.stderr
    assert actions_logged(archiver, data) == []
    archiver("search", "note", "--data", data, check=0)
    shown = archiver("audit", "show", "--json", "--data", data, check=0).stdout
    assert [json.loads(line)["details"] for line in shown.splitlines()] == [{"query": "note"}]


def test_a_refused_web_search_writes_no_audit_entry(tmp_path):
    archive, _ = build_archive(tmp_path / "data")
    try:
        auditor = users.get(archive, "audrey")
        before = len(audit.entries(archive.store))
        with pytest.raises(QuerySyntaxError):
            actions.search(archive, auditor, "foo:bar", 50, 0, False, "UTC")
        assert len(audit.entries(archive.store)) == before
        actions.search(archive, auditor, "hello", 50, 0, False, "UTC")
        (entry,) = audit.entries(archive.store)[before:]
        assert (entry["action"], entry["details"]["query"]) == ("search", "hello")
    finally:
        archive.close()


def test_audit_show_prints_each_entry_on_its_line(archiver, data):
    """A failed login records the name as typed (anyone who reaches the login form), a
    search its query as typed: a line break in them forged an entry of its own in `audit
    show`, and a U+202E turned the rest of the line around; each is shown as an escape."""
    from services.archive.archive import Archive
    store = Archive(data).store
    forged = "\n    99  2026-12-03 07:00:00  admin        delete       reason=retention"
    audit.record(store, audit.Actor(("x" + forged)[:64], "unknown"), "login-failed",
                 client="192.0.2.1", via="form")
    audit.record(store, audit.Actor("carol", "user"), "search", query="q\r" + forged + "\u202e")
    shown = archiver("audit", "show", "--data", data, check=0).stdout
    lines = shown.splitlines()
    assert len(lines) == 2 and not any("    99  " in line[:10] for line in lines)
    assert "x\\n    99" in lines[0] and "login-failed" in lines[0]
    assert "query=q\\r\\n    99" in lines[1] and "\\u202e" in lines[1] and "\u202e" not in shown
