"""A lab of network namespaces for host integration tests of mirroring (needs root).

    with Lab(["a", "b"]) as lab:
        server = lab.popen("b", [ARCHIVER, "run", "--config", config_b], env=env)
        lab.cut("b")       # b's link goes down: nobody reaches it, it reaches nobody
        lab.restore("b")

Topology: a namespace "<stem>.switch" holds a Linux bridge; every node has a namespace
"<stem>-<name>" with loopback up and `eth0`, a veth whose peer is a port of that bridge, with
the node's address from `subnet` (the first node gets .2). There is no default route and no
link to the host's namespace, so nodes reach each other and nothing else. The stem is
`<prefix><pid>-<lab number>`, so parallel test runs never share a namespace; entering a lab
first removes namespaces left by a crashed earlier run that had the same pid.

What a process started with popen()/run() (through `ip netns exec`) sees:
- The host's files: only the network is separate (`ip netns exec` also gives it a mount
  namespace of its own, to mount a /sys that shows the node's interfaces, and would
  bind-mount /etc/netns/<namespace>/* over /etc, which the lab never creates).
- The caller's environment and working directory, unchanged: `ip netns exec` execs the
  program with them, so ARCHIVER_* variables passed as env= reach the archiver. The pid
  Popen returns is the program's own (no intermediate process stays around).

cut(name) sets the node's own `eth0` down (not the bridge port), because that fails TCP
connections promptly in both directions, which a bridge-side cut does not:
- from the node: at once, ENETUNREACH (its connected route goes with the link). With only
  the bridge port down, the node keeps its route, loses carrier and waits ~70 s for
  EHOSTUNREACH.
- to the node: EHOSTUNREACH after ~3 s of unanswered ARP, because cut() also drops the
  node's entry from the other nodes' neighbour tables; a peer that had just talked to it
  would otherwise keep sending to the cached MAC and fail only after ~70 s.
- established connections are not reset, as with a pulled cable: they fail only through
  the application's own timeouts (read timeout, TCP_USER_TIMEOUT, keepalive).
The node's address stays configured, so its services keep listening (and can restart and
bind) while it is cut. restore(name) brings the link up; connections work at once.
throttle(name, rate) shapes what the node sends (tc tbf on its `eth0`); unthrottle(name) ends it.
No sysctl is needed: the bridge forwards with STP off, and nothing is routed.
"""
from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess

from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
NODE_LINK = "eth0"
BRIDGE = "br0"

_lab_numbers = itertools.count()
_open_stems: set[str] = set()  # labs open in this process, which stale cleanup must spare


class Lab:
    """Nodes in network namespaces on one bridge; everything goes away on exit."""

    def __init__(self, names: list[str], subnet: str = "10.77.0.0/24", prefix: str = "arch"):
        if len(set(names)) != len(names) or not all(re.fullmatch(r"[\w.]+", n) for n in names):
            raise ValueError(f"node names must be unique words: {names}")
        self.network = ipaddress.ip_network(subnet)
        hosts = itertools.islice(self.network.hosts(), 1, None)  # .1 stays free, like a gateway
        self.addresses = dict(zip(names, map(str, hosts)))
        if len(self.addresses) < len(names):
            raise ValueError(f"{subnet} is too small for {len(names)} nodes")
        self.owner = f"{prefix}{os.getpid()}-"
        self.stem = f"{self.owner}{next(_lab_numbers)}"
        self.switch = f"{self.stem}.switch"
        self.namespaces = {name: f"{self.stem}-{name}" for name in names}
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Lab":
        _remove_stale_namespaces(self.owner)
        _open_stems.add(self.stem)
        try:
            self._build()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._teardown()

    def address(self, name: str) -> str:
        return self.addresses[name]

    def cut(self, name: str) -> None:
        """Take the node's link down: connections to and from it fail (see module doc)."""
        self._set_link_state(name, "down")
        for other in self.namespaces:
            if other != name:
                self._forget_neighbour(other, self.addresses[name])

    def restore(self, name: str) -> None:
        self._set_link_state(name, "up")

    def throttle(self, name: str, rate: str) -> None:
        """Shape what the node sends to `rate` (tc's units, e.g. "16mbit") with a token
        bucket filter, so that a transfer takes long enough for a test to act mid-way."""
        self._qdisc(name, "replace", "root", "tbf", "rate", rate,
                    "burst", "64kb", "latency", "500ms")

    def unthrottle(self, name: str) -> None:
        self._qdisc(name, "del", "root")

    def command(self, name: str, argv) -> list[str]:
        return [IP, "netns", "exec", self.namespaces[name], *map(str, argv)]

    def popen(self, name: str, argv, **kwargs) -> subprocess.Popen:
        """A process in the node's namespace, in a session of its own so that exit can kill
        it with its children."""
        process = subprocess.Popen(self.command(name, argv), start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def run(self, name: str, argv, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(name, argv), **kwargs)

    def _build(self) -> None:
        for namespace in [self.switch, *self.namespaces.values()]:
            netns.create(namespace)
        with NetNS(self.switch, flags=0) as switch:
            switch.link("add", ifname=BRIDGE, kind="bridge")
            bridge = switch.link_lookup(ifname=BRIDGE)[0]
            for number, namespace in enumerate(self.namespaces.values()):
                port = f"port{number}"
                # The peer is born in the node's namespace: no name ever exists on the host.
                switch.link("add", ifname=port, kind="veth",
                            peer={"ifname": NODE_LINK, "net_ns_fd": namespace})
                switch.link("set", index=switch.link_lookup(ifname=port)[0],
                            master=bridge, state="up")
            switch.link("set", index=bridge, state="up")
        for name, namespace in self.namespaces.items():
            with NetNS(namespace, flags=0) as node:
                node.link("set", index=node.link_lookup(ifname="lo")[0], state="up")
                link = node.link_lookup(ifname=NODE_LINK)[0]
                node.addr("add", index=link, address=self.addresses[name],
                          prefixlen=self.network.prefixlen)
                node.link("set", index=link, state="up")

    def _set_link_state(self, name: str, state: str) -> None:
        with NetNS(self.namespaces[name], flags=0) as node:
            node.link("set", index=node.link_lookup(ifname=NODE_LINK)[0], state=state)

    def _qdisc(self, name: str, *arguments: str) -> None:
        self.run(name, [TC, "qdisc", arguments[0], "dev", NODE_LINK, *arguments[1:]],
                 check=True, capture_output=True)

    def _forget_neighbour(self, name: str, address: str) -> None:
        """Drop a cached MAC so the next packet asks ARP again and fails within seconds."""
        with NetNS(self.namespaces[name], flags=0) as node:
            try:
                node.neigh("del", dst=address, ifindex=node.link_lookup(ifname=NODE_LINK)[0])
            except NetlinkError as error:
                if error.code != errno.ENOENT:
                    raise

    def _teardown(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                _ignore_gone(os.killpg, process.pid, signal.SIGKILL)
            process.wait()
        _remove_namespaces([self.switch, *self.namespaces.values()])
        _open_stems.discard(self.stem)


def _remove_stale_namespaces(owner: str) -> None:
    """Namespaces named for this pid that no open lab of this process owns are left over
    from a crashed run that had the same pid."""
    stale = [name for name in netns.listnetns()
             if name.startswith(owner) and _stem(owner, name) not in _open_stems]
    _remove_namespaces(stale)


def _stem(owner: str, namespace: str) -> str:
    return owner + re.match(r"\d*", namespace[len(owner):]).group()


def _remove_namespaces(namespaces: list[str]) -> None:
    """Kill whatever still runs in them (a daemon that left its session would otherwise keep
    the namespace alive after its name is gone), then remove them."""
    pids = netns.ns_pids()
    for namespace in namespaces:
        for pid in pids.get(namespace, []):
            _ignore_gone(os.kill, pid, signal.SIGKILL)
        _ignore_gone(netns.remove, namespace)


def _ignore_gone(action, *args) -> None:
    try:
        action(*args)
    except (ProcessLookupError, FileNotFoundError):
        pass
