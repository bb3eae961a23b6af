import pytest

from firmware.strict import ConfigError
from services.common.config import Config, load_config

GOOD = """\
data_dir: /srv/archive
model: 650
smtp:
  listen: 0.0.0.0:25
  trusted_servers: [10.0.0.5/32, "fd00::/8"]
  local_domains: [example.com]
  forwarding: false
  journal_recipient: journal@archive.example.com
  tls: {cert: /etc/archiver/tls.crt, key: /etc/archiver/tls.key}
journal_accounts:
  - {name: exchange, protocol: imap, host: mail.example.com, port: 993, tls: tls,
     user: journal, password: "s3cret", keep_on_server: false, poll_seconds: 60}
  - {name: backup, protocol: pop3, host: pop.example.com, port: 110, tls: starttls,
     user: j, password: p}
"""


def write(tmp_path, text):
    path = tmp_path / "archiver.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.model == 650 and config.data_dir == "/srv/archive"
    assert config.smtp.tls.cert == "/etc/archiver/tls.crt"
    assert [a.name for a in config.journal_accounts] == ["exchange", "backup"]
    assert config.journal_accounts[1].poll_seconds == 60 and not config.journal_accounts[1].keep_on_server
    assert config.source == str(tmp_path / "archiver.yaml")


def test_no_file_at_the_default_place_means_the_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    monkeypatch.setattr("services.common.config.DEFAULT_CONFIG", tmp_path / "absent.yaml")
    assert load_config() == Config()


def test_a_named_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="absent.yaml: top level: expected a readable file"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("change, key, expected", [
    (("listen: 0.0.0.0:25", "listen: port25"), "smtp.listen", "expected HOST:PORT"),
    (("listen: 0.0.0.0:25", "listen: 0.0.0.0:99999"), "smtp.listen", "expected HOST:PORT"),
    (("10.0.0.5/32", "10.0.0.500/32"), "smtp.trusted_servers", "expected a list of IP addresses or CIDR networks"),
    (("forwarding: false", "forwarding: maybe"), "smtp.forwarding", "expected true or false, got 'maybe'"),
    (("model: 650", "model: 651"), "model", "expected one of the models 150, 350, 450"),
    (("model: 650", "model: big"), "model", "expected an integer, got 'big'"),
    (("protocol: imap", "protocol: smtp"), "journal_accounts[0].protocol", "expected imap or pop3"),
    (("port: 993", "port: 0"), "journal_accounts[0].port", "expected a port number"),
    (("tls: tls,", "tls: yes,"), "journal_accounts[0].tls", "expected tls, starttls or none, got True"),
    (("poll_seconds: 60", "poll_seconds: -5"), "journal_accounts[0].poll_seconds", "expected a positive integer"),
    (("name: backup", "name: exchange"), "journal_accounts[1].name", "expected a name no other account has"),
    (("user: j, ", ""), "journal_accounts[1].user", "(the key is missing)"),
    (("key: /etc/archiver/tls.key", "kee: x"), "smtp.tls.kee", "expected one of the known keys cert, key"),
    (("forwarding: false", "forwarding: false\n  relay: true"), "smtp.relay", "expected one of the known keys"),
])
def test_each_bad_value_names_file_key_and_expectation(tmp_path, change, key, expected):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: key '{key}': "), message
    assert expected in message, message


def test_a_journal_accounts_ca_file_is_checked_when_the_config_is_loaded(tmp_path):
    """Not at its first poll, where a missing or spoiled file was a warning every poll."""
    spoiled = tmp_path / "spoiled.pem"
    spoiled.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    for ca_file, expected in ((tmp_path / "gone.pem", "expected a PEM file that exists"),
                              (tmp_path, "expected a PEM file that exists"),
                              (spoiled, "expected a PEM file of CA certificates (")):
        path = write(tmp_path, GOOD.replace("user: j, ", f"user: j, ca_file: '{ca_file}', "))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: key 'journal_accounts[1].ca_file': "), message
        assert expected in message and str(ca_file) in message, message


def test_the_web_section_is_strict_and_defaults_to_port_8000(tmp_path):
    assert Config().web.listen == "0.0.0.0:8000" and Config().web.tls is None
    config = load_config(write(tmp_path, "web: {listen: 127.0.0.1:8080, plain_http: true}\n"))
    assert config.web.listen == "127.0.0.1:8080" and config.web.plain_http
    with pytest.raises(ConfigError, match="web.listen.*HOST:PORT"):
        load_config(write(tmp_path, "web: {listen: 8000}\n"))
    with pytest.raises(ConfigError, match="web.port"):
        load_config(write(tmp_path, "web: {port: 8000}\n"))
