"""The loopback ports the integration tests give their servers (tests.integration.processes.
free_port): never the same port twice in one run, even while the first server has not bound
its port yet (a Dovecot's four listeners once got two equal ports: "duplicate listener"),
and never one the kernel may give an outgoing connection meanwhile."""
import socket

from qemu.machine import HOST_PORTS
from tests.integration.processes import TEST_PORTS, free_port


def ephemeral_ports() -> range:
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    return range(low, high + 1)


def test_no_port_is_handed_out_twice_and_none_is_ephemeral_or_a_vms():
    ports = [free_port() for _ in range(1000)]  # more than a test module asks for
    assert len(set(ports)) == len(ports)
    ephemeral = ephemeral_ports()
    assert not any(port in ephemeral or port in HOST_PORTS for port in ports)
    assert all(port in TEST_PORTS for port in ports)


def test_a_port_something_is_bound_to_is_never_handed_out():
    taken = []
    try:
        for port in TEST_PORTS[:200]:
            holder = socket.socket()
            try:
                holder.bind(("127.0.0.1", port))
            except OSError:
                holder.close()
                continue
            taken.append(holder)
        bound = {holder.getsockname()[1] for holder in taken}
        assert not bound & {free_port() for _ in range(500)}
    finally:
        for holder in taken:
            holder.close()
