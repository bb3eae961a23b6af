"""What litigation holds recorded, mirrored between two appliances (processes in network
namespaces): in bounded pages, whatever a hold recorded. The records are generated into
each store (services.policy.hold_records) while its node is stopped: indexing 200k
messages would only take longer and test nothing more."""
import hashlib
import json

import pytest

from services.archive.archive import Archive
from services.policy import hold_records
from tests.integration.mirror.test_mirror import pair  # noqa: F401 (a fixture)
from tests.integration.mirror_nodes import MIRROR_PORT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# A hello carries each hold's count and fingerprint, not its records: far under this
# whatever a hold recorded (the old hello carried 67 bytes per recorded digest).
HANDSHAKE_BOUND = 64 * 1024


def digests(count: int, seed: str) -> list[str]:
    return [hashlib.sha256(f"{seed}{n}".encode()).hexdigest() for n in range(count)]


def recorded_counts(node) -> dict[str, int]:
    shown = [json.loads(line) for line in node.cli("hold", "list", "--json").stdout.splitlines()]
    return {hold["id"]: hold["held_at_placement"] for hold in shown}


def place_hold_on_both(a, b) -> str:
    a.cli("search", "--save", "case", "from:lawyer")
    hold_id = a.cli("hold", "add", "--saved", "case").stdout.strip()
    wait_until(lambda: hold_id in recorded_counts(b), 60, "the hold to reach b")
    return hold_id


def record(node, hold_id: str, recorded: list[str]) -> None:
    archive = Archive(node.data, 450)
    try:
        for start in range(0, len(recorded), hold_records.CHUNK):
            hold_records.add(archive.store, hold_id, recorded[start:start + hold_records.CHUNK])
    finally:
        archive.close()


def records_of(node, hold_id: str) -> tuple[hold_records.Summary, list[str]]:
    archive = Archive(node.data, 450)
    try:
        return (hold_records.summary(archive.store, hold_id),
                list(hold_records.iterate(archive.store, hold_id)))
    finally:
        archive.close()


def test_records_merge_across_the_pair_through_bounded_handshakes(pair):  # noqa: F811
    a, b = pair
    a.start(), b.start()
    hold_id = place_hold_on_both(a, b)
    a.stop(), b.stop()
    only_a, only_b, both = digests(200_000, "a"), digests(1000, "b"), digests(500, "both")
    record(a, hold_id, only_a + both)
    record(b, hold_id, only_b + both)
    a.start(), b.start()
    union = len(only_a) + len(only_b) + len(both)
    wait_until(lambda: recorded_counts(a)[hold_id] == recorded_counts(b)[hold_id] == union,
               600, "both to hold the union of the records")
    wait_until(lambda: not a.peer_status(b)["settings_differ"]
               and not b.peer_status(a)["settings_differ"], 60, "the peers to agree")
    a_to_b, b_to_a = a.peer_status(b), b.peer_status(a)
    assert 0 < a_to_b["handshake_bytes"] < HANDSHAKE_BOUND
    assert 0 < b_to_a["handshake_bytes"] < HANDSHAKE_BOUND
    assert a_to_b["hold_records_taken"] + b_to_a["hold_records_given"] == len(only_b)
    assert a_to_b["hold_records_given"] + b_to_a["hold_records_taken"] == len(only_a)
    a.stop(), b.stop()
    (summary_a, on_a), (summary_b, on_b) = records_of(a, hold_id), records_of(b, hold_id)
    assert summary_a == summary_b and summary_a.count == union
    assert on_a == on_b == sorted(only_a + only_b + both)


def test_a_hold_removed_on_one_side_drops_its_records_on_both(pair):  # noqa: F811
    a, b = pair
    a.start(), b.start()
    hold_id = place_hold_on_both(a, b)
    a.stop(), b.stop()
    record(a, hold_id, digests(5000, "a"))
    record(b, hold_id, digests(3000, "b"))
    a.start(), b.start()
    wait_until(lambda: recorded_counts(a)[hold_id] == recorded_counts(b)[hold_id] == 8000,
               300, "both to hold the union of the records")
    b.cli("hold", "remove", hold_id)
    wait_until(lambda: hold_id not in recorded_counts(a), 60, "the removal to reach a")
    a.stop(), b.stop()
    for node in (a, b):
        assert records_of(node, hold_id) == (hold_records.EMPTY, [])


STRANGER = """
import socket, ssl, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
for attempt in range(120):  # until the node listens
    try:
        connection = socket.create_connection((host, port), timeout=20)
        break
    except ConnectionRefusedError:
        time.sleep(0.5)
tls = context.wrap_socket(connection)
tls.sendall(f"POST {path} HTTP/1.1\\r\\nHost: {host}\\r\\nContent-Type: application/json\\r\\n"
            f"Content-Length: 50000000\\r\\n\\r\\n".encode() + b"[" * 1000)
try:
    print(tls.recv(200).split(b"\\r\\n")[0].decode())
except socket.timeout:
    print("no answer")
"""


@pytest.mark.parametrize("path", ["/v1/hold-records/add", "/v1/hold-records/page",
                                  "/v1/hold-records/settled"])
def test_a_stranger_is_refused_before_its_body_is_read(pair, path):  # noqa: F811
    """A client without a pinned certificate announces 50 MB and sends 1 KB: the server
    answers at once, without waiting for (and buffering) the rest."""
    a, b = pair
    b.start()
    answer = a.lab.run("a", ["python3", "-c", STRANGER, a.lab.address("b"), str(MIRROR_PORT), path],
                       capture_output=True, text=True, timeout=60)
    assert answer.stdout.strip() == "HTTP/1.1 403 Forbidden", answer
