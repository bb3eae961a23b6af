"""A private OpenLDAP slapd (Debian's) with a company's people and groups, for directory
sign-in tests.

Everything lives in a directory of its own (slapd.conf, the mdb database, TLS files); it
listens on loopback only, on free ports: ldap:// (StartTLS offered) and ldaps://, with a
certificate from a CA the test made. /etc/ldap and any system slapd are never touched.

The people (PASSWORDS; their password hashes are {SSHA}, as a real directory keeps them):
  alice    mail alice@example.com and the alias a.liddell@example.com; group Staff
  bob      bob@example.com
  carol    carol@example.com; in IT, which is in Archive Admins: an admin through nesting
  dave     dave@example.com; in Legal: an auditor
  mallory  mallory@example.com; locked by ppolicy (pwdAccountLockedTime)
  sam      two entries (ou=people and ou=contractors) answer to uid=sam: ambiguous
  erin     erin@example.com (for tests that remove someone)
The service account cn=archiver,ou=services searches; cn=admin is the rootdn.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import ldap3
import pytest
import yaml

from services.common.config import Config, load_config
from tests.integration.certificates import TestCA
from tests.integration.processes import free_port, stop_process_group, wait_for_port

SLAPD, SLAPADD = "/usr/sbin/slapd", "/usr/sbin/slapadd"
HOST = "127.0.0.1"
BASE = "dc=example,dc=com"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{BASE}", "root-secret-1"
SERVICE_DN, SERVICE_PASSWORD = f"cn=archiver,ou=services,{BASE}", "service-secret-1"
PASSWORDS = {"alice": "Wonderland-42", "bob": "Builder-Bob-7", "carol": "Carol-Admin-9",
             "dave": "Dave-Legal-3", "mallory": "Mallory-Locked-5", "sam": "Sam-Twice-8",
             "erin": "Erin-Leaves-6"}

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
maxsize 33554432
suffix "{base}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/db
overlay ppolicy
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="{service_dn}" read
  by self read
  by * none
"""


def ssha(password: str) -> str:
    """RFC 2307-style {SSHA} (salted SHA-1), as slappasswd makes by default."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def person(uid: str, mail: list[str], ou: str = "people", **extra) -> str:
    lines = [f"dn: uid={uid},ou={ou},{BASE}", "objectClass: inetOrgPerson", f"uid: {uid}",
             f"cn: {uid.title()}", f"sn: {uid.title()}",
             f"userPassword: {ssha(PASSWORDS[uid])}"]
    lines += [f"mail: {address}" for address in mail]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    return "\n".join(lines)


def group(name: str, members: list[str]) -> str:
    return "\n".join([f"dn: cn={name},ou=groups,{BASE}", "objectClass: groupOfNames",
                      f"cn: {name}"] + [f"member: {member}" for member in members])


def people_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{BASE}"


DATA = "\n\n".join([
    f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
    *(f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}"
      for ou in ("people", "contractors", "groups", "services")),
    f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
    f"cn: archiver\nuserPassword: {SERVICE_PASSWORD}",
    person("alice", ["alice@example.com", "A.Liddell@Example.com"]),
    person("bob", ["bob@example.com"]),
    person("carol", ["carol@example.com"]),
    person("dave", ["dave@example.com"]),
    person("mallory", ["mallory@example.com"], pwdAccountLockedTime="000001010000Z"),
    person("sam", ["sam@example.com"]),
    person("erin", ["erin@example.com"]),
    person("sam", ["sam.contractor@example.com"], ou="contractors"),
    group("Staff", [people_dn("alice"), people_dn("bob")]),
    group("IT", [people_dn("carol")]),
    group("Archive Admins", [f"cn=IT,ou=groups,{BASE}"]),
    group("Legal", [people_dn("dave")]),
    # a loop of groups must not loop the search
    group("Loop A", [f"cn=Loop B,ou=groups,{BASE}", people_dn("bob")]),
    group("Loop B", [f"cn=Loop A,ou=groups,{BASE}"]),
]) + "\n"


class Slapd:
    def __init__(self, tmp_path: Path, dns_names=("localhost",), ip_addresses=(HOST,)):
        """`dns_names`, `ip_addresses`: what the server's certificate is for."""
        self.dir = Path(tmp_path) / "slapd"
        (self.dir / "db").mkdir(parents=True)
        self.ca = TestCA(self.dir / "tls")
        cert, key = self.ca.issue("server", dns_names=dns_names, ip_addresses=ip_addresses)
        self.ldap_port, self.ldaps_port = free_port(), free_port()
        self.config_path = self.dir / "slapd.conf"
        self.config_path.write_text(CONFIG.format(
            dir=self.dir, ca=self.ca.cert_path, cert=cert, key=key, base=BASE,
            root_dn=ROOT_DN, root_password=ROOT_PASSWORD, service_dn=SERVICE_DN))
        self.log = self.dir / "slapd.log"
        self.process: subprocess.Popen | None = None
        ldif = self.dir / "data.ldif"
        ldif.write_text(DATA)
        subprocess.run([SLAPADD, "-f", self.config_path, "-l", ldif], check=True,
                       capture_output=True)

    @property
    def ldap_uri(self) -> str:
        return f"ldap://{HOST}:{self.ldap_port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://{HOST}:{self.ldaps_port}"

    def settings(self, **changes) -> dict:
        """The archiver's `directory:` section for this server (ldaps:// by default)."""
        return {"kind": "openldap", "uri": self.ldaps_uri, "ca_file": str(self.ca.cert_path),
                "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD, "base_dn": BASE,
                "admin_groups": [f"cn=Archive Admins,ou=groups,{BASE}"],
                "auditor_groups": [f"cn=Legal,ou=groups,{BASE}"],
                **changes}

    def loaded_config(self, folder: Path, **changes) -> tuple[Config, Path]:
        """An archiver.yaml in `folder` whose directory is this server, its ca_file a copy
        of the test's CA in `folder` (for a test to remove or spoil), loaded as the
        appliance loads it: (the config, the CA file)."""
        ca_file = Path(folder) / "directory-ca.pem"
        shutil.copyfile(self.ca.cert_path, ca_file)
        path = Path(folder) / "archiver.yaml"
        path.write_text(yaml.safe_dump({"data_dir": str(Path(folder) / "data"), "model": 450,
                                        "directory": self.settings(ca_file=str(ca_file),
                                                                   **changes)}))
        return load_config(path), ca_file

    def start(self) -> "Slapd":
        urls = f"{self.ldap_uri}/ {self.ldaps_uri}/"
        with self.log.open("ab") as log:
            # -d: stay in the foreground (the test owns the process); "stats": one line per
            # operation in the log, for a failing test to show
            self.process = subprocess.Popen([SLAPD, "-f", self.config_path, "-h", urls,
                                             "-d", "stats"], stdout=log, stderr=log,
                                            start_new_session=True)
        wait_for_port(HOST, self.ldap_port)
        wait_for_port(HOST, self.ldaps_port)
        return self

    run = start  # again, after stop()

    def stop(self) -> None:
        stop_process_group(self.process, timeout=20)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir / "db", ignore_errors=True)

    def admin(self) -> ldap3.Connection:
        """A connection as the rootdn, to change the directory under a running test."""
        server = ldap3.Server(HOST, port=self.ldap_port, get_info=ldap3.NONE)
        return ldap3.Connection(server, ROOT_DN, ROOT_PASSWORD, auto_bind=True,
                                raise_exceptions=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A private slapd for the tests of one module (imported there as a fixture)."""
    started = Slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield started.start()
    finally:
        started.cleanup()
