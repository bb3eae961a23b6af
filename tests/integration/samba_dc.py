"""A private Active Directory domain controller (Debian's Samba), provisioned by the test,
for directory sign-in tests (needs root).

`samba-tool domain provision` writes the whole domain into a directory of the test's own
(--targetdir: smb.conf, sam.ldb, logs); /etc/samba, /var/lib/samba and any system Samba
are never touched. The DC runs in a network namespace of its own, so its fixed ports
(389, 636, and whatever else it would open) never meet the host's: a veth pair links the
namespace (DC_ADDRESS) to the host (HOST_ADDRESS), and nothing else. Only Samba's LDAP
server runs (server services = ldap), with a certificate from the test's CA.

The people (PASSWORDS), added over LDAPS as Administrator:
  alice    mail alice@example.com; proxyAddresses SMTP:alice@example.com,
           smtp:a.liddell@example.com, smtp:alice.l@example.org, and entries of other
           types that are not mail addresses (X500:, SIP:alice.voice@example.com)
  bob      bob@example.com
  carol    in IT, which is in Archive Admins: an admin through nesting
  dave     in Legal: an auditor
  mallory  disabled (userAccountControl ACCOUNTDISABLE)
  erin     erin@example.com (for tests that remove someone)
"""
from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import ldap3
from pyroute2 import IPRoute, NetNS, netns

from tests.integration.certificates import TestCA
from tests.integration.processes import stop_process_group, wait_for_port

SAMBA, SAMBA_TOOL = "/usr/sbin/samba", "/usr/bin/samba-tool"
REALM, DOMAIN = "CORP.EXAMPLE.TEST", "CORP"
BASE = "DC=corp,DC=example,DC=test"
USERS = f"CN=Users,{BASE}"
ADMIN_PASSWORD = "Adm1n-Passw0rd!"
SERVICE_NAME, SERVICE_PASSWORD = "archiver-svc", "Svc-Passw0rd-77"
PASSWORDS = {"alice": "Wonder-Land-42", "bob": "Builder-Bob-77", "carol": "Carol-Admin-99",
             "dave": "Dave-Legal-33", "mallory": "Mallory-Off-55", "erin": "Erin-Leaves-66"}
ACCOUNTDISABLE, NORMAL_ACCOUNT = 0x2, 0x200


def _subnet() -> tuple[str, str]:
    """A /30 for the veth pair, from the pid, so parallel runs do not share one."""
    pid = os.getpid()
    third, fourth = (pid // 64) % 256, (pid % 64) * 4
    return f"10.215.{third}.{fourth + 1}", f"10.215.{third}.{fourth + 2}"


class SambaDC:
    def __init__(self, tmp_path: Path):
        self.dir = Path(tmp_path) / "samba"
        self.dir.mkdir(parents=True)
        self.host_address, self.address = _subnet()
        self.namespace = f"archdc{os.getpid()}"
        self.host_link = f"adc{os.getpid() % 100000}"
        self.ca = TestCA(self.dir / "tls")
        self.cert, self.key = self.ca.issue("dc", dns_names=[f"dc1.{REALM.lower()}"],
                                            ip_addresses=[self.address])
        self.config_path = self.dir / "etc" / "smb.conf"
        self.log = self.dir / "samba.log"
        self.process: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://{self.address}"

    def settings(self, **changes) -> dict:
        """The archiver's `directory:` section for this DC."""
        return {"kind": "ad", "uri": self.ldaps_uri, "ca_file": str(self.ca.cert_path),
                "bind_dn": f"CN={SERVICE_NAME},{USERS}", "bind_password": SERVICE_PASSWORD,
                "base_dn": BASE, "admin_groups": [f"CN=Archive Admins,{USERS}"],
                "auditor_groups": [f"CN=Legal,{USERS}"], **changes}

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> "SambaDC":
        started = time.monotonic()
        self._provision()
        self.timings["provision_seconds"] = time.monotonic() - started
        self._link_namespace()
        self.run()
        self.timings["start_seconds"] = time.monotonic() - started - self.timings["provision_seconds"]
        self._add_people()
        self.timings["total_seconds"] = time.monotonic() - started
        return self

    def run(self) -> None:
        """Start the provisioned DC (again, after stop()) and wait for its LDAPS port."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, SAMBA, "--foreground",
                 "--no-process-group", "--debug-stdout", "--debuglevel=1",
                 "--model=single", "--configfile", self.config_path],
                stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.address, 636, timeout=120)
        self._admin_when_ready().unbind()

    def stop(self) -> None:
        stop_process_group(self.process, timeout=30)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        pids = netns.ns_pids().get(self.namespace, [])
        for pid in pids:  # whatever of Samba's left its process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            netns.remove(self.namespace)  # takes the veth pair with it
        except FileNotFoundError:
            pass

    def admin(self) -> ldap3.Connection:
        """Administrator over LDAPS, to change the domain under a running test."""
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca.cert_path))
        server = ldap3.Server(self.address, port=636, use_ssl=True, tls=tls,
                              get_info=ldap3.NONE, connect_timeout=10)
        return ldap3.Connection(server, f"Administrator@{REALM.lower()}", ADMIN_PASSWORD,
                                auto_bind=True, raise_exceptions=True)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # -- steps --------------------------------------------------------------------------

    def _provision(self) -> None:
        options = {"interfaces": "lo eth0", "bind interfaces only": "yes",
                   "server services": "ldap", "dcerpc endpoint servers": "",
                   "log file": str(self.dir / "log.%m"), "tls enabled": "yes",
                   "tls certfile": str(self.cert), "tls keyfile": str(self.key),
                   "tls cafile": "", "dns forwarder": "none"}
        command = [SAMBA_TOOL, "domain", "provision", f"--targetdir={self.dir}",
                   f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
                   "--dns-backend=NONE", f"--adminpass={ADMIN_PASSWORD}", "--host-name=dc1",
                   f"--host-ip={self.address}"]
        command += [f"--option={key} = {value}" for key, value in options.items()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"samba-tool domain provision failed:\n{done.stdout[-3000:]}"
                               f"\n{done.stderr[-3000:]}")

    def _link_namespace(self) -> None:
        stale = [name for name in netns.listnetns() if name == self.namespace]
        for name in stale:
            netns.remove(name)
        netns.create(self.namespace)
        with IPRoute() as host:
            host.link("add", ifname=self.host_link, kind="veth",
                      peer={"ifname": "eth0", "net_ns_fd": self.namespace})
            index = host.link_lookup(ifname=self.host_link)[0]
            host.addr("add", index=index, address=self.host_address, prefixlen=30)
            host.link("set", index=index, state="up")
        with NetNS(self.namespace, flags=0) as inside:
            inside.link("set", index=inside.link_lookup(ifname="lo")[0], state="up")
            index = inside.link_lookup(ifname="eth0")[0]
            inside.addr("add", index=index, address=self.address, prefixlen=30)
            inside.link("set", index=index, state="up")

    def _add_people(self) -> None:
        connection = self._admin_when_ready()
        self._user(connection, SERVICE_NAME, SERVICE_PASSWORD, {})
        self._user(connection, "alice", PASSWORDS["alice"], {
            "mail": "alice@example.com",
            "proxyAddresses": ["SMTP:alice@example.com", "smtp:a.liddell@example.com",
                               "smtp:Alice.L@Example.org", "X500:/o=Example/ou=Exchange/cn=alice",
                               "SIP:alice.voice@example.com"]})
        for name in ("bob", "carol", "dave", "erin"):
            self._user(connection, name, PASSWORDS[name], {"mail": f"{name}@example.com"})
        self._user(connection, "mallory", PASSWORDS["mallory"],
                   {"mail": "mallory@example.com"}, control=NORMAL_ACCOUNT | ACCOUNTDISABLE)
        self._group(connection, "IT", [f"CN=carol,{USERS}"])
        self._group(connection, "Archive Admins", [f"CN=IT,{USERS}"])
        self._group(connection, "Legal", [f"CN=dave,{USERS}"])
        connection.unbind()

    def _admin_when_ready(self) -> ldap3.Connection:
        deadline = time.monotonic() + 120
        while True:  # the port opens a little before the directory answers binds
            try:
                return self.admin()
            except ldap3.core.exceptions.LDAPException:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"Samba does not answer:\n{self.log_tail()}") from None
                time.sleep(0.5)

    @staticmethod
    def _user(connection: ldap3.Connection, name: str, password: str, attributes: dict,
              control: int = NORMAL_ACCOUNT) -> None:
        connection.add(f"CN={name},{USERS}", ["top", "person", "organizationalPerson", "user"],
                       {"sAMAccountName": name, "userPrincipalName": f"{name}@{REALM.lower()}",
                        "unicodePwd": f'"{password}"'.encode("utf-16-le"),
                        "userAccountControl": control, **attributes})

    @staticmethod
    def _group(connection: ldap3.Connection, name: str, members: list[str]) -> None:
        connection.add(f"CN={name},{USERS}", ["top", "group"],
                       {"sAMAccountName": name.replace(" ", "-").lower(), "member": members})


def samba_available() -> bool:
    return all(Path(tool).exists() for tool in (SAMBA, SAMBA_TOOL)) and shutil.which("ip")
