"""Each change of a retention setting, a hold or a saved search is written in one
transaction with its audit entry: an entry that cannot be written (here: record_in raising,
as a crash at that point would end it) leaves the change unmade, never made and
unrecorded. The CLI's and the web's ways in, each."""
import argparse
from types import SimpleNamespace

import pytest

from firmware.errors import ArchiverError

from services.cli import archive as cli_archive
from services.cli import policy as cli
from services.policy import audit, editing, holds, retention, saved_searches
from services.web import actions
from tests.integration.policy.test_retention import (  # noqa: F401 (fixtures)
    ADMIN, archive, arrivals, lawyers_case_past_retention)

pytestmark = pytest.mark.integration


class Crash(Exception):
    pass


@pytest.fixture
def crashing(monkeypatch):
    """Audit entries fail from now on (call the fixture's result to start)."""
    def start():
        def crash(*args, **kwargs):
            raise Crash("the audit entry was not written")
        monkeypatch.setattr(audit, "record_in", crash)
    return start


@pytest.fixture
def cli_on(monkeypatch, archive):
    monkeypatch.setattr(cli, "_context",
                        lambda args, create=False: (archive, archive.replicated, ADMIN))
    monkeypatch.setattr(cli, "_admin_context",
                        lambda args, doing, create=False: (archive, archive.replicated, ADMIN))
    monkeypatch.setattr(cli, "cli_actor", lambda: ADMIN)
    monkeypatch.setattr(cli_archive, "cli_actor", lambda: ADMIN)
    return archive


def state(archive) -> tuple:
    return (retention.policies(archive.replicated), sorted(holds.all_holds(archive.replicated)),
            saved_searches.all_saved(archive.replicated), len(audit.entries(archive.store)))


def attempts(archive, hold_id):
    web = SimpleNamespace(actor=ADMIN)
    return {
        "cli retention enable": lambda: cli._set_enabled(argparse.Namespace(), False),
        "cli retention set --global-days": lambda: cli.cmd_retention_set(argparse.Namespace(
            saved=None, days=cli._NOT_GIVEN, global_days=10)),
        "cli retention set --saved": lambda: cli.cmd_retention_set(argparse.Namespace(
            saved="case", days=5, global_days=None)),
        "cli hold add": lambda: cli.cmd_hold_add(argparse.Namespace(saved="case",
                                                                    until=None)),
        "cli hold remove": lambda: cli.cmd_hold_remove(argparse.Namespace(
            hold_id=hold_id, created=holds.UNSTATED)),
        "saved-search edit": lambda: editing.save_search(
            archive.store, archive.index_dir(), "case", "from:bob", ADMIN),
        "web retention": lambda: actions.set_retention(archive, web, {
            "enabled": False, "global_days": 7}),
        "web saved retention": lambda: actions.set_saved_retention(archive, web, "case", 3),
        "web hold add": lambda: actions.add_hold(archive, web, "case", None, "m", "r", "UTC"),
        "web hold remove": lambda: actions.remove_hold(archive, web, hold_id, None),
        "web saved-search delete": lambda: actions.delete_saved(archive, web, "spare"),
        "cli search --delete-saved": lambda: cli_archive._saved_searches(argparse.Namespace(
            save=None, delete_saved="spare2", json=False), archive),
    }


def test_a_change_whose_audit_entry_fails_is_not_made(archive, cli_on, crashing):
    lawyers_case_past_retention(archive)
    saved_searches.save(archive.replicated, "spare", "from:nobody", ADMIN)
    saved_searches.save(archive.replicated, "spare2", "from:no-one", ADMIN)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    crashing()
    made = []
    for name, attempt in attempts(archive, hold_id).items():
        before = state(archive)
        try:
            attempt()
        except (Crash, ArchiverError):  # an earlier change made (unfixed): UnknownHold
            pass
        if state(archive) != before:
            made.append(name)
    assert made == []


def test_each_change_is_recorded_with_its_entry(archive, cli_on, capsys):
    lawyers_case_past_retention(archive)
    saved_searches.save(archive.replicated, "spare", "from:nobody", ADMIN)
    saved_searches.save(archive.replicated, "spare2", "from:no-one", ADMIN)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    before = len(audit.entries(archive.store))
    for name, attempt in attempts(archive, hold_id).items():
        if name == "web hold remove":
            continue  # the CLI's removed it already
        attempt()
    actions_recorded = [entry["action"] for entry in audit.entries(archive.store)[before:]]
    assert actions_recorded == ["retention"] * 3 + ["hold-add", "hold-remove",
                                                    "saved-search"] + ["retention"] * 2 + [
        "hold-add", "saved-search-delete", "saved-search-delete"]
