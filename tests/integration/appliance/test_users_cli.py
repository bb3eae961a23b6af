"""`archiver user add|passwd|list|remove` as an operator runs them."""
import json

import pytest

pytestmark = pytest.mark.integration


def test_user_commands(archiver, tmp_path):
    data = tmp_path / "data"
    secret = tmp_path / "password"
    secret.write_text("a good password\n")
    archiver("user", "add", "alice", "--role", "user", "--email", "alice@example.com",
             "--email", "a.l@example.com", "--password-file", secret, "--data", data, check=0)
    archiver("user", "add", "audrey", "--role", "auditor", "--password-file", secret,
             "--data", data, check=0)
    archiver("user", "passwd", "admin", "--password-file", secret, "--data", data, check=0)
    listed = archiver("user", "list", "--json", "--data", data, check=0)
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {"name": "admin", "role": "admin", "emails": []},
        {"name": "alice", "role": "user", "emails": ["alice@example.com", "a.l@example.com"]},
        {"name": "audrey", "role": "auditor", "emails": []}]
    refused = archiver("user", "add", "bob", "--role", "user", "--password-file", secret,
                       "--data", data)
    assert refused.returncode == 2 and "at least one --email" in refused.stderr
    asked = archiver("user", "passwd", "alice", "--data", data, input="")
    assert asked.returncode == 2 and "--password-file" in asked.stderr
    archiver("user", "remove", "alice", "--data", data, check=0)
    assert "alice" not in archiver("user", "list", "--data", data, check=0).stdout
    shown = archiver("audit", "show", "--json", "--data", data, check=0).stdout
    assert [json.loads(line)["action"] for line in shown.splitlines()] == [
        "user-add", "user-add", "user-passwd", "user-remove"]
    assert "a good password" not in (data / "admin.json").read_text()
