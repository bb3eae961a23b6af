"""A hung company directory (a real TCP listener that accepts and never answers) must not
slow anything else: at most directory.concurrency sign-ins wait for it, more are refused
at once with 503 "directory busy", and local sign-ins and the status page answer while
those wait. No timings: the test checks that the local sign-in and the status page are
answered while the directory's sign-ins are still waiting, then lets those go (EOF)."""
from __future__ import annotations

import dataclasses
import threading

import pytest

from services.common.config import DirectoryConfig
from tests.integration.black_hole import BlackHole
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (PASSWORD, Client, ThreadedServer, build_archive,
                                            web_config)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration]

LOGINS = 20
CONCURRENCY = 2


@pytest.fixture
def hung_site(tmp_path):
    data = tmp_path / "data"
    archive, _ = build_archive(data)
    with BlackHole("silent") as hole:
        directory = DirectoryConfig(uri=f"ldap://127.0.0.1:{hole.port}", base_dn="dc=example,dc=com",
                                    timeout_seconds=600, concurrency=CONCURRENCY)
        config = dataclasses.replace(web_config(data, free_port()), directory=directory)
        server = ThreadedServer(config, archive).start()
        server.hole = hole
        try:
            yield server
        finally:
            hole.release()  # the waiting sign-ins get EOF and end
            server.stop()
            archive.close()


def test_a_hung_directory_never_holds_up_local_sign_ins_or_the_status_page(hung_site):
    replies: dict[int, object] = {}

    def directory_login(number: int) -> None:
        client = Client(hung_site.url, source=f"127.0.{number // 200 + 20}.{number % 200 + 1}")
        replies[number] = client.log_in(f"directory-user-{number}", "Some-Password-1")

    threads = [threading.Thread(target=directory_login, args=(n,), daemon=True)
               for n in range(LOGINS)]
    for thread in threads:
        thread.start()
    # all in: the directory holds CONCURRENCY connections, the others were refused at once
    wait_until(lambda: hung_site.hole.accepted >= CONCURRENCY
               and len(replies) >= LOGINS - CONCURRENCY, timeout=60,
               what="the directory's sign-ins to be held or refused")
    refused = list(replies.values())
    assert all(reply.status == 503 for reply in refused)
    assert all("directory busy" in reply.json()["error"] for reply in refused)

    local = Client(hung_site.url, source="127.0.9.1")
    assert local.log_in("bob", PASSWORD).status == 200
    admin = Client(hung_site.url, source="127.0.9.2")
    assert admin.log_in("admin", PASSWORD).status == 200
    status = admin.get("/status")
    assert status.status == 200
    page = status.body.decode()
    assert "busy" in page and "passwords cross the network in clear" in page
    api_status = admin.get("/api/status").json()["directory"]
    assert api_status["state"] == "busy"
    # ...all while the directory's sign-ins were still waiting for it
    still_waiting = [n for n, thread in enumerate(threads) if thread.is_alive()]
    assert len(still_waiting) == CONCURRENCY and len(replies) == LOGINS - CONCURRENCY
    assert hung_site.hole.accepted == CONCURRENCY  # none of the refused ones connected

    hung_site.hole.release()
    for thread in threads:
        thread.join(timeout=60)
    for number in still_waiting:
        reply = replies[number]
        assert reply.status == 503 and "cannot be reached" in reply.json()["error"]
