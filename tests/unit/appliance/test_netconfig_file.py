"""network.yaml is checked whole before anything changes; errors name file, key, expectation."""
import pytest

from firmware.strict import ConfigError
from services.appliance.netconfig import load_network_config


def load(tmp_path, text: str):
    path = tmp_path / "network.yaml"
    path.write_text(text)
    return load_network_config(path)


def test_a_static_configuration(tmp_path):
    config = load(tmp_path, "mode: static\ninterface: eth1\naddress: 10.0.0.10/24\n"
                            "gateway: 10.0.0.1\ndns: [10.0.0.1, '2001:db8::53']\n"
                            "search: [example.com]\n")
    assert (config.interface, config.address, config.gateway) == ("eth1", "10.0.0.10/24",
                                                                  "10.0.0.1")
    assert config.dns == ["10.0.0.1", "2001:db8::53"] and config.search == ["example.com"]


def test_dhcp_needs_nothing_else_and_the_interface_defaults_to_eth0(tmp_path):
    config = load(tmp_path, "mode: dhcp\n")
    assert (config.mode, config.interface, config.address) == ("dhcp", "eth0", None)


@pytest.mark.parametrize("text, key, expected", [
    ("mode: manual\naddress: 10.0.0.10/24\n", "mode", "static or dhcp"),
    ("address: 10.0.0.10/24\n", "mode", "static or dhcp (the key is missing)"),
    ("mode: static\n", "address", "ADDRESS/PREFIX with mode: static"),
    ("mode: static\naddress: 10.0.0.10\n", "address", "ADDRESS/PREFIX"),
    ("mode: static\naddress: 10.0.0.300/24\n", "address", "ADDRESS/PREFIX"),
    ("mode: static\naddress: 10.0.0.10/24\ngateway: 10.1.0.1\n", "gateway",
     "an address in 10.0.0.0/24"),
    ("mode: static\naddress: 10.0.0.10/24\ngateway: router\n", "gateway", "an IP address"),
    ("mode: static\naddress: 10.0.0.10/24\ndns: 10.0.0.1\n", "dns", "a list of IP addresses"),
    ("mode: static\naddress: 10.0.0.10/24\ndns: [ns1.example.com]\n", "dns",
     "a list of IP addresses"),
    ("mode: dhcp\naddress: 10.0.0.10/24\n", "address", "nothing with mode: dhcp"),
    ("mode: static\naddress: 10.0.0.10/24\nnetmask: 255.255.255.0\n", "netmask",
     "one of the known keys"),
    ("mode: static\nmode: dhcp\n", "mode", "each key once"),
])
def test_a_bad_file_names_the_key_and_what_was_expected(tmp_path, text, key, expected):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert error.value.key == key and expected in error.value.expected
    assert str(tmp_path / "network.yaml") in str(error.value)
