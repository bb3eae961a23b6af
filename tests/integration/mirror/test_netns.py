"""The network-namespace lab: nodes reach each other, cut() isolates one, exit cleans up."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from pyroute2 import netns

from tests.integration.netns import Lab
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

PORT = 7007

ECHO_SERVER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    connection, _ = server.accept()
    with connection:
        connection.sendall(connection.recv(1024))
"""

# Prints {"echo": ...} or {"errno": ..., "seconds": ...}; the test decides what is right.
ECHO_CLIENT = """
import json, socket, sys, time
started = time.monotonic()
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])),
                                  timeout=float(sys.argv[3])) as connection:
        connection.sendall(b"ping")
        print(json.dumps({"echo": connection.recv(1024).decode()}))
except OSError as error:
    print(json.dumps({"errno": error.errno, "seconds": time.monotonic() - started}))
"""


@pytest.fixture
def lab():
    with Lab(["a", "b", "c"], prefix="nt") as lab:
        for node in ("a", "b", "c"):
            server = lab.popen(node, [sys.executable, "-c", ECHO_SERVER, lab.address(node), PORT],
                               stdout=subprocess.PIPE, text=True)
            assert server.stdout.readline() == "listening\n"
        yield lab


def connect(lab: Lab, source: str, target: str, timeout: float = 5) -> dict:
    done = lab.run(source, [sys.executable, "-c", ECHO_CLIENT, lab.address(target), PORT,
                            timeout], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie that pid 1 has yet to reap."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def test_every_node_reaches_every_other(lab):
    for source in ("a", "b", "c"):
        for target in ("a", "b", "c"):
            if source != target:
                assert connect(lab, source, target) == {"echo": "ping"}, (source, target)


def test_cut_isolates_one_node_and_restore_brings_it_back(lab):
    assert connect(lab, "a", "b") == {"echo": "ping"}  # a now has b's MAC cached
    lab.cut("b")
    to_b = connect(lab, "a", "b")
    assert to_b["errno"] == errno.EHOSTUNREACH and to_b["seconds"] < 5, to_b
    from_b = connect(lab, "b", "c")
    assert from_b["errno"] == errno.ENETUNREACH and from_b["seconds"] < 1, from_b
    assert connect(lab, "a", "c") == {"echo": "ping"}
    lab.restore("b")
    assert connect(lab, "a", "b") == {"echo": "ping"}
    assert connect(lab, "b", "c") == {"echo": "ping"}


def test_nodes_have_no_way_out(lab):
    outside = lab.run("a", [sys.executable, "-c", ECHO_CLIENT, "192.0.2.1", 53, 1],
                      capture_output=True, text=True, check=True)
    assert json.loads(outside.stdout)["errno"] == errno.ENETUNREACH


def test_node_shares_files_environment_and_working_directory(lab, tmp_path):
    (tmp_path / "note").write_text("same file")
    probe = "import os; print(os.environ['ARCHIVER_PROBE'], os.getcwd(), open('note').read())"
    done = lab.run("a", [sys.executable, "-c", probe], capture_output=True, text=True,
                   cwd=tmp_path, env={**os.environ, "ARCHIVER_PROBE": "passed"}, check=True)
    assert done.stdout.split(" ", 2) == ["passed", str(tmp_path), "same file\n"]


def test_exit_kills_processes_and_removes_namespaces():
    with Lab(["a", "b"], prefix="nt") as lab:
        # The child outlives its shell's session leader only if exit kills the whole group.
        sleeper = lab.popen("a", ["sh", "-c", "sleep 600 & echo $!; wait"],
                            stdout=subprocess.PIPE, text=True)
        child = int(sleeper.stdout.readline())
        assert set(netns.listnetns()) >= {*lab.namespaces.values(), lab.switch}
    assert sleeper.returncode is not None
    # SIGKILL is delivered asynchronously: on a loaded machine the orphan may still be
    # listed for a moment after the group was signalled.
    wait_until(lambda: not alive(child), 30, f"the orphaned sleep {child} to be killed")
    assert not [name for name in netns.listnetns() if name.startswith(lab.owner)]


def test_enter_removes_namespaces_left_by_a_crashed_run_with_the_same_pid():
    leftover = Lab(["a"], prefix="nt")  # never entered: its stem stands for a crashed run
    stale = f"{leftover.stem}-a"
    netns.create(stale)
    try:
        with Lab(["a"], prefix="nt") as lab:
            assert stale not in netns.listnetns()
            assert lab.namespaces["a"] in netns.listnetns()
    finally:
        if stale in netns.listnetns():
            netns.remove(stale)
