"""`archiver netconfig apply` in a network namespace of its own (pyroute2, needs root)."""
import json
import shutil

import pytest
from pyroute2 import NetNS

from tests.conftest import ARCHIVER
from tests.integration.netns import NODE_LINK, Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def node():
    with Lab(["n"], subnet="10.78.0.0/24", prefix="netcfg") as lab:
        yield lab


def apply(lab, tmp_path, text: str, *options):
    network = tmp_path / "network.yaml"
    network.write_text(text)
    return lab.run("n", [ARCHIVER, "netconfig", "apply", "--file", network, "--resolv-conf",
                         tmp_path / "resolv.conf", *options], capture_output=True, text=True,
                   timeout=60)


def addresses(lab) -> set[str]:
    with NetNS(lab.namespaces["n"], flags=0) as ns:
        index = ns.link_lookup(ifname=NODE_LINK)[0]
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in ns.get_addr(index=index, family=2)}


def default_gateway(lab) -> str | None:
    with NetNS(lab.namespaces["n"], flags=0) as ns:
        routes = ns.get_routes(family=2, dst_len=0, table=254)
        return routes[0].get_attr("RTA_GATEWAY") if routes else None


def test_a_static_address_gateway_and_dns_are_applied(node, tmp_path):
    done = apply(node, tmp_path, "mode: static\naddress: 10.78.0.50/24\ngateway: 10.78.0.1\n"
                                 "dns: [10.78.0.1]\nsearch: [example.com]\n", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["address"] == "10.78.0.50/24"
    assert addresses(node) == {"10.78.0.50/24"}      # the lab's 10.78.0.2 is gone
    assert default_gateway(node) == "10.78.0.1"
    assert (tmp_path / "resolv.conf").read_text().splitlines()[1:] == [
        "search example.com", "nameserver 10.78.0.1"]
    assert (tmp_path / "resolv.conf").stat().st_mode & 0o777 == 0o644  # resolvers read it
    again = apply(node, tmp_path, "mode: static\naddress: 10.78.0.51/24\n")  # no gateway now
    assert again.returncode == 0, again.stderr
    assert addresses(node) == {"10.78.0.51/24"} and default_gateway(node) is None


@pytest.mark.parametrize("text, says", [
    ("mode: static\naddress: 10.78.0.60/24\ngateway: 10.99.0.1\n", "key 'gateway'"),
    ("mode: static\naddres: 10.78.0.60/24\n", "key 'addres'"),
    ("mode: static\naddress: [10.78.0.60/24\n", "valid YAML"),
])
def test_a_bad_file_leaves_the_network_as_it_was(node, tmp_path, text, says):
    before = addresses(node)
    done = apply(node, tmp_path, text)
    assert done.returncode == 2 and says in done.stderr and "network.yaml" in done.stderr
    assert addresses(node) == before == {"10.78.0.2/24"}
    assert not (tmp_path / "resolv.conf").exists()


def test_an_unknown_interface_changes_nothing_and_says_which_there_are(node, tmp_path):
    done = apply(node, tmp_path, "mode: static\naddress: 10.78.0.60/24\n", "--interface", "eth7")
    assert done.returncode == 2 and "no network interface 'eth7'" in done.stderr
    assert "eth0" in done.stderr and addresses(node) == {"10.78.0.2/24"}


@pytest.mark.skipif(shutil.which("dhclient") is not None, reason="a DHCP client is installed")
def test_dhcp_without_a_dhcp_client_says_so_and_changes_nothing(node, tmp_path):
    done = apply(node, tmp_path, "mode: dhcp\n")
    assert done.returncode == 2 and "needs a DHCP client" in done.stderr
    assert addresses(node) == {"10.78.0.2/24"}
