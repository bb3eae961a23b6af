"""`archiver netconfig apply`: the appliance's network from /etc/archiver/network.yaml,
applied with pyroute2 (archiver-netconfig.service).

    interface: eth0                 # optional; --interface overrides it
    mode: static                    # static or dhcp
    address: 10.0.0.10/24           # static: address and prefix length (IPv4 or IPv6)
    gateway: 10.0.0.1               # static, optional: the default route
    dns: [10.0.0.1, 10.0.0.2]       # static, optional: written to /etc/resolv.conf
    search: [example.com]           # static, optional: DNS search domains

Static: the interface comes up with exactly that address of its family (others of the
family are removed), the default route through the gateway (or none), and resolv.conf.
DHCP: the interface comes up without static addresses and the system's DHCP client
(dhclient) takes over, addresses, routes and resolv.conf included.

The file is checked whole, and the interface looked up, before anything changes: a bad
file leaves the network as it is, and the error names the file, the key and what was
expected.
"""
from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from firmware.errors import ArchiverError
from firmware.strict import ConfigError, build, field, load_yaml

from services.common.atomic_file import atomic_output

DEFAULT_FILE = Path("/etc/archiver/network.yaml")
DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")
DHCP_CLIENT = "dhclient"


class NetconfigError(ArchiverError):
    pass


def _address_with_prefix(value: str) -> bool:
    return "/" in value and _parses(ipaddress.ip_interface, value)


def _addresses(values: list[str]) -> bool:
    return all(_parses(ipaddress.ip_address, value) for value in values)


def _parses(parse, value) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class NetworkConfig:
    mode: str = field("static or dhcp", check=lambda v: v in ("static", "dhcp"),
                      expected="static or dhcp")
    interface: str = field("the network interface", default="eth0")
    address: str | None = field("static address and prefix length", check=_address_with_prefix,
                                expected="ADDRESS/PREFIX, e.g. 10.0.0.10/24", default=None)
    gateway: str | None = field("the default gateway", check=lambda v: _addresses([v]),
                                expected="an IP address, e.g. 10.0.0.1", default=None)
    dns: list[str] = field("DNS servers", check=_addresses,
                           expected="a list of IP addresses, e.g. [10.0.0.1]",
                           default_factory=list)
    search: list[str] = field("DNS search domains", default_factory=list)


def load_network_config(path: Path) -> NetworkConfig:
    data = load_yaml(path)
    config = build(NetworkConfig, data if data is not None else {}, file=path)
    _check_consistent(config, path)
    return config


def _check_consistent(config: NetworkConfig, path: Path) -> None:
    if config.mode == "dhcp":
        for key in ("address", "gateway", "dns", "search"):
            if getattr(config, key):
                raise ConfigError(path, key, "nothing with mode: dhcp (the DHCP server gives "
                                             "it); remove the key or use mode: static")
        return
    if config.address is None:
        raise ConfigError(path, "address", "ADDRESS/PREFIX with mode: static, e.g. "
                                           "10.0.0.10/24 (the key is missing)")
    network = ipaddress.ip_interface(config.address).network
    if config.gateway is not None and ipaddress.ip_address(config.gateway) not in network:
        raise ConfigError(path, "gateway", f"an address in {network} (the address's network)",
                          got=config.gateway)


@dataclass
class Applied:
    interface: str
    mode: str
    address: str | None = None
    gateway: str | None = None
    resolv_conf: str | None = None
    dhcp_client: str | None = None


def apply(config: NetworkConfig, resolv_conf: Path = DEFAULT_RESOLV_CONF,
          wait_seconds: float = 0) -> Applied:
    with IPRoute() as ipr:
        index = _wait_for_link(ipr, config.interface, wait_seconds)
        if config.mode == "dhcp":
            client = _dhcp_client()  # found before anything changes
            _set_addresses(ipr, index, None, socket.AF_INET)
            ipr.link("set", index=index, state="up")
            return Applied(config.interface, "dhcp", dhcp_client=_start_dhcp(client, config))
        return _apply_static(ipr, index, config, resolv_conf)


def _wait_for_link(ipr: IPRoute, name: str, wait_seconds: float) -> int:
    deadline = time.monotonic() + wait_seconds
    while not (found := ipr.link_lookup(ifname=name)):
        if time.monotonic() >= deadline:
            known = ", ".join(sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links()))
            raise NetconfigError(f"there is no network interface {name!r} (there are: {known}); "
                                 "the network is left as it is")
        time.sleep(0.2)
    return found[0]


def _apply_static(ipr: IPRoute, index: int, config: NetworkConfig, resolv_conf: Path) -> Applied:
    wanted = ipaddress.ip_interface(config.address)
    family = socket.AF_INET if wanted.version == 4 else socket.AF_INET6
    ipr.link("set", index=index, state="up")
    _set_addresses(ipr, index, wanted, family)
    _set_default_route(ipr, index, config.gateway, family)
    written = None
    if config.dns or config.search:
        write_resolv_conf(resolv_conf, config.dns, config.search)
        written = str(resolv_conf)
    return Applied(config.interface, "static", str(wanted), config.gateway, written)


def _set_addresses(ipr: IPRoute, index: int, wanted: ipaddress.IPv4Interface | None,
                   family: int) -> None:
    """Exactly `wanted` (or none) among the interface's global addresses of `family`.
    The others go first: removing a subnet's primary address takes the secondary ones
    with it, which a new address added first would be."""
    present = {ipaddress.ip_interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
               for a in ipr.get_addr(index=index, family=family) if a["scope"] == 0}
    for old in present - {wanted}:
        ipr.addr("del", index=index, address=str(old.ip), prefixlen=old.network.prefixlen)
    if wanted is not None and wanted not in present:
        ipr.addr("add", index=index, address=str(wanted.ip), prefixlen=wanted.network.prefixlen)


def _set_default_route(ipr: IPRoute, index: int, gateway: str | None, family: int) -> None:
    default = "0.0.0.0/0" if family == socket.AF_INET else "::/0"
    if gateway is not None:
        ipr.route("replace", dst=default, gateway=gateway, oif=index, family=family)
        return
    for route in ipr.get_routes(family=family, oif=index, dst_len=0):
        ipr.route("del", dst=default, oif=index, family=family,
                  gateway=route.get_attr("RTA_GATEWAY"))


def write_resolv_conf(path: Path, servers: list[str], search: list[str]) -> None:
    """Replace `path` whole (a symlink to a resolver's file included) in one rename."""
    lines = ["# written by archiver netconfig (/etc/archiver/network.yaml)"]
    lines += [f"search {' '.join(search)}"] if search else []
    lines += [f"nameserver {server}" for server in servers]
    with atomic_output(path, mode=0o644) as output:
        output.write(("\n".join(lines) + "\n").encode())


def _dhcp_client() -> str:
    client = shutil.which(DHCP_CLIENT)
    if client is None:
        raise NetconfigError(f"mode: dhcp needs a DHCP client and there is none ({DHCP_CLIENT} "
                             "is not installed); the network is left as it is")
    return client


def _start_dhcp(client: str, config: NetworkConfig) -> str:
    """dhclient -nw: it goes to the background at once and keeps the lease renewed."""
    subprocess.run([client, "-nw", config.interface], check=True, timeout=30)
    return client
