"""`archiver mirror join` as an operator runs it: a strong secret made and shown once when
none is given, weak ones refused with the rule's reason, and archiver.yaml held to the same
rule."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from services.archive.store import Store
from services.common.mirror_secret import problem
from services.mirror.state import SECRET_KEY

pytestmark = pytest.mark.integration

PEER = "10.0.0.2:8443"


def stored_secret(data) -> str | None:
    store = Store(data / "store", map_size=1 << 30)
    try:
        return store.setting(SECRET_KEY)
    finally:
        store.close()


def test_join_without_a_secret_makes_a_strong_one_and_shows_it_once(archiver, tmp_path):
    data = tmp_path / "data"
    joined = archiver("mirror", "join", "--peer", PEER, "--data", data, check=0)
    shown = re.findall(r"^    ([a-z2-7]{4}(?:-[a-z2-7]{4}){7})$", joined.stdout, re.M)
    assert len(shown) == 1, joined.stdout
    assert problem(shown[0]) is None and stored_secret(data) == shown[0]
    # Joining another peer keeps the secret and shows it no more.
    again = archiver("mirror", "join", "--peer", "10.0.0.3:8443", "--data", data, check=0)
    assert shown[0] not in again.stdout + again.stderr
    assert stored_secret(data) == shown[0]
    status = archiver("mirror", "status", "--data", data, check=0).stdout
    assert shown[0] not in status and "WARNING" not in status


@pytest.mark.parametrize("weak", ["sixteen chars!!!", "a shared secret of 16+",
                                  "Password1234567890!!", "mirror secret mirror secret"])
@pytest.mark.parametrize("how", ["--secret", "--secret-file"])
def test_join_refuses_a_weak_secret_saying_why(archiver, tmp_path, weak, how):
    data = tmp_path / "data"
    given = weak
    if how == "--secret-file":
        given = tmp_path / "secret"
        given.write_text(weak + "\n")
    refused = archiver("mirror", "join", how, given, "--peer", PEER, "--data", data)
    assert refused.returncode != 0
    assert refused.stderr.startswith("archiver: the mirror secret ")
    assert ("too easy to guess" in refused.stderr or "at least 20 characters" in refused.stderr)
    assert weak not in refused.stderr + refused.stdout
    assert not (data / "store").exists() or stored_secret(data) is None


def test_join_takes_a_strong_secret_as_given(archiver, tmp_path):
    data = tmp_path / "data"
    secret = "quartz-lantern-vivid-saddle-prism-otter"
    joined = archiver("mirror", "join", "--secret", secret, "--peer", PEER, "--data", data,
                      check=0)
    assert secret not in joined.stdout and stored_secret(data) == secret


def test_join_takes_a_secret_files_first_line_as_typed(archiver, tmp_path):
    """--secret-file stripped the secret's spaces: a peer joined with " secret " by the API
    or the web form, and one joined with that line in a file, held different secrets."""
    data, given = tmp_path / "data", tmp_path / "secret"
    secret = " quartz-lantern-vivid-saddle-prism-otter "
    given.write_text(secret + "\n")
    archiver("mirror", "join", "--secret-file", given, "--peer", PEER, "--data", data, check=0)
    assert stored_secret(data) == secret


def test_a_weak_secret_in_archiver_yaml_is_refused_naming_file_and_key(archiver, tmp_path):
    config = tmp_path / "archiver.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                      "mirror": {"secret": "mirror secret mirror secret"}}))
    refused = archiver("mirror", "status", "--config", config)
    assert refused.returncode != 0
    assert f"{config}: key 'mirror.secret': expected a secret of at least 20 characters" \
        in refused.stderr
    assert "mirror secret mirror secret" not in refused.stderr


def test_a_secret_changed_in_archiver_yaml_is_the_one_in_use_and_join_takes_no_other(
        archiver, tmp_path):
    """An admin rotating a leaked secret in archiver.yaml found the one `mirror join` had
    stored still in use, with no warning."""
    from services.common.config import load_config
    from services.mirror.state import settings
    data, config = tmp_path / "data", tmp_path / "archiver.yaml"
    old, new = "tulip-gravel-mosaic-ninja-orbit-fjord", "quartz-lantern-vivid-saddle-prism-otter"
    archiver("mirror", "join", "--secret", old, "--peer", PEER, "--data", data, check=0)
    config.write_text(yaml.safe_dump({"data_dir": str(data), "mirror": {"secret": new}}))
    store = Store(data / "store", map_size=1 << 30)
    try:
        assert settings(load_config(config), store).secret == new
    finally:
        store.close()
    refused = archiver("mirror", "join", "--secret", old, "--peer", "10.0.0.3:8443",
                       "--config", config)
    assert refused.returncode != 0 and "archiver.yaml sets mirror.secret" in refused.stderr
    assert old not in refused.stderr and stored_secret(data) == old  # nothing changed
    status = archiver("mirror", "status", "--config", config, check=0).stdout
    assert "WARNING: the secret `archiver mirror join` stored is not in use" in status
    assert old not in status and new not in status
    as_json = archiver("mirror", "status", "--json", "--config", config, check=0)
    assert "WARNING: the secret" in as_json.stderr  # stdout stays JSON for scripts
    assert all(json.loads(line) for line in as_json.stdout.splitlines())
    archiver("mirror", "join", "--secret", new, "--peer", "10.0.0.3:8443", "--config", config,
             check=0)
    assert "WARNING" not in archiver("mirror", "status", "--config", config, check=0).stdout
