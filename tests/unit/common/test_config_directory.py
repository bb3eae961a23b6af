"""archiver.yaml's directory: and two_factor: sections: defaults by kind, and every bad
value named by file, key and what was expected."""
import pytest

from firmware.strict import ConfigError
from services.common.config import DIRECTORY_PRESETS, load_config
from tests.integration.certificates import TestCA

GOOD = """\
directory:
  kind: ad
  uri: ldaps://dc1.corp.example.com
  ca_file: {ca}
  bind_dn: CN=archiver,CN=Users,DC=corp,DC=example,DC=com
  bind_password_file: /etc/archiver/directory.secret
  base_dn: DC=corp,DC=example,DC=com
  admin_groups: ["CN=Archive Admins,OU=Groups,DC=corp,DC=example,DC=com"]
  auditor_groups: ["CN=Legal,CN=Users,DC=corp,DC=example,DC=com"]
  refresh_seconds: 120
two_factor:
  required_for: [admin]
"""


@pytest.fixture
def write(tmp_path):
    ca = TestCA(tmp_path).cert_path  # a real one: the file is loaded as the config is

    def written(text: str):
        path = tmp_path / "archiver.yaml"
        path.write_text(text.replace("{ca}", str(ca)))
        return path
    return written


def test_the_documented_examples_name_groups_by_dn():
    """config.py's and README's examples load: a group's name alone is refused."""
    import re
    from services.common import config
    from tests.conftest import TREE
    for text in (config.__doc__, (TREE / "README.md").read_text()):
        for line in re.findall(r"(?:admin|auditor)_groups: \[.*\]", text):
            assert "=" in line and "DC=" in line.upper(), line


def test_the_documented_example_loads_with_the_defaults_of_its_kind(write):
    config = load_config(write(GOOD))
    directory = config.directory
    assert directory.kind == "ad" and directory.refresh_seconds == 120
    assert directory.login_attributes == ["sAMAccountName", "userPrincipalName"]
    assert directory.mail_attributes == ["mail", "proxyAddresses"]
    assert directory.nested_groups == "recursive"
    assert config.two_factor.required_for == ["admin"]


def test_openldap_is_the_default_kind_and_given_keys_win_over_its_defaults(write):
    config = load_config(write("directory: {uri: 'ldap://ldap.example.com', "
                               "base_dn: 'dc=example,dc=com', mail_attributes: [mail, "
                               "mailAlternateAddress]}\n"))
    directory = config.directory
    assert directory.kind == "openldap" and directory.bind_dn is None
    assert directory.login_attributes == DIRECTORY_PRESETS["openldap"]["login_attributes"]
    assert directory.mail_attributes == ["mail", "mailAlternateAddress"]
    assert directory.nested_groups == "recursive"


def test_no_directory_and_no_two_factor_by_default(write):
    config = load_config(write("model: 450\n"))
    assert config.directory is None and config.two_factor.required_for == []


@pytest.mark.parametrize("change, key, expected", [
    (("uri: ldaps://dc1.corp.example.com", "uri: https://dc1.corp.example.com"),
     "directory.uri", "expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]"),
    (("uri: ldaps://dc1.corp.example.com", "uri: ldaps://dc1:99999"), "directory.uri",
     "expected ldap://HOST"),
    (("uri: ldaps://dc1.corp.example.com", "uri: ldap://dc1/dc=x?uid"), "directory.uri",
     "expected ldap://HOST"),
    (("kind: ad", "kind: novell"), "directory.kind", "expected openldap or ad, got 'novell'"),
    (("  base_dn: DC=corp,DC=example,DC=com\n", ""), "directory.base_dn", "(the key is missing)"),
    (("refresh_seconds: 120", "refresh_seconds: 0"), "directory.refresh_seconds",
     "expected a positive number of seconds"),
    (("refresh_seconds: 120", "refresh_seconds: soon"), "directory.refresh_seconds",
     "expected a positive number of seconds"),
    (("kind: ad", "kind: ad\n  start_tls: true"), "directory.start_tls",
     "expected false with an ldaps:// uri"),
    (("bind_password_file:", "bind_password: x\n  bind_password_file:"),
     "directory.bind_password_file", "expected either bind_password or bind_password_file"),
    (("  bind_dn: CN=archiver,CN=Users,DC=corp,DC=example,DC=com\n", ""), "directory.bind_dn",
     "expected bind_dn together with bind_password"),
    (("  bind_password_file: /etc/archiver/directory.secret\n", ""),
     "directory.bind_password", "expected bind_dn together with bind_password"),
    (("ca_file: {ca}", "ca_file: /nonexistent/ca.pem"), "directory.ca_file",
     "expected a PEM file that exists, got '/nonexistent/ca.pem'"),
    (("kind: ad", "kind: ad\n  user_filter: objectClass=user"), "directory.user_filter",
     "expected an LDAP filter in parentheses"),
    (("kind: ad", "kind: ad\n  user_filter: (&(objectClass=user)"), "directory.user_filter",
     "expected an LDAP filter in parentheses"),
    (("kind: ad", "kind: ad\n  login_attributes: []"), "directory.login_attributes",
     "expected a non-empty list of attribute names"),
    (("kind: ad", "kind: ad\n  mail_attributes: [mail, 'proxy addresses']"),
     "directory.mail_attributes", "expected a non-empty list of attribute names"),
    (("kind: ad", "kind: ad\n  nested_groups: deep"), "directory.nested_groups",
     "expected in_chain or recursive"),
    (("kind: ad", "kind: ad\n  admins: [x]"), "directory.admins", "expected one of the known keys"),
    (("admin_groups: [\"CN=Archive Admins,OU=Groups,DC=corp,DC=example,DC=com\"]",
      "admin_groups: [Archive Admins]"), "directory.admin_groups",
     "expected a list of group DNs like cn=Archive Admins,ou=Groups,dc=example,dc=com, "
     "got ['Archive Admins']"),
    (("auditor_groups: [\"CN=Legal,CN=Users,DC=corp,DC=example,DC=com\"]",
      "auditor_groups: [Legal, 'cn=Legal']"), "directory.auditor_groups",
     "expected a list of group DNs like cn="),
    (("auditor_groups: [\"CN=Legal,CN=Users,DC=corp,DC=example,DC=com\"]",
      "auditor_groups: ['CN=Legal,CN=Users,DC=other,DC=com']"), "directory.auditor_groups",
     "expected group DNs under base_dn (DC=corp,DC=example,DC=com)"),
    (("refresh_seconds: 120", "refresh_seconds: 120\n  concurrency: 0"),
     "directory.concurrency", "expected a whole number 1-4"),
    (("refresh_seconds: 120", "refresh_seconds: 120\n  concurrency: 2.5"),
     "directory.concurrency", "expected a whole number 1-4, got 2.5"),
    (("required_for: [admin]", "required_for: [root]"), "two_factor.required_for",
     "expected a list of roles (admin, auditor, user)"),
    (("required_for: [admin]", "required_for: admin"), "two_factor.required_for",
     "expected a list of roles"),
])
def test_each_bad_value_names_file_key_and_expectation(write, change, key, expected):
    path = write(GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: key '{key}': "), message
    assert expected in message, message


def test_a_bind_password_never_appears_in_an_error(write):
    path = write(GOOD.replace("bind_password_file: /etc/archiver/directory.secret",
                              "bind_password: [hunter2-secret]"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value) and "directory.bind_password" in str(caught.value)
