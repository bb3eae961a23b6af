"""directory.ca_file removed while the web service runs (it is checked only when the config
is loaded): directory sign-ins are refused as with the directory down (503), local ones
work, and the status answers, naming the file. Each was an HTTP 500 (ldap3's
LDAPSSLConfigurationError). Against a real slapd of the test's own."""
from __future__ import annotations

import dataclasses

import pytest

from tests.integration import slapd
from tests.integration.slapd import server  # noqa: F401  (a fixture: one slapd per module)
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (PASSWORD, Client, ThreadedServer, build_archive,
                                            web_config)

pytestmark = [pytest.mark.integration]


@pytest.fixture
def site(server, tmp_path):
    data = tmp_path / "data"
    archive, _ = build_archive(data)
    loaded, ca_file = server.loaded_config(tmp_path)
    config = dataclasses.replace(web_config(data, free_port()), directory=loaded.directory)
    running = ThreadedServer(config, archive).start()
    running.ca_file = ca_file
    try:
        yield running
    finally:
        running.stop()
        archive.close()


def test_a_ca_file_removed_while_running_is_a_directory_that_cannot_be_reached(site):
    assert Client(site.url).log_in("carol", slapd.PASSWORDS["carol"]).status == 200
    site.ca_file.unlink()
    reply = Client(site.url).log_in("carol", slapd.PASSWORDS["carol"])
    assert reply.status == 503 and "directory cannot be reached" in reply.json()["error"]
    admin = Client(site.url)
    assert admin.log_in("admin", PASSWORD).status == 200
    status = admin.get("/api/status")
    assert status.status == 200
    directory = status.json()["directory"]
    assert directory["state"] == "unreachable"
    assert f"directory.ca_file {site.ca_file}: cannot be read" in directory["error"]
    page = admin.get("/status")
    assert page.status == 200 and str(site.ca_file).encode() in page.body
    metrics = admin.get("/metrics")
    assert metrics.status == 200
