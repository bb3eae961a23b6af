"""Who gets an SMTP session: per client address (IPv6 per /64), a share reserved for
trusted servers, the model's concurrency over all."""
import pytest

from firmware.models import SmtpLimits
from services.intake.smtp_sessions import NoSessionSlot, SessionSlots, client_of

LIMITS = SmtpLimits(concurrency=10, max_message_mb=1, sessions_per_address=3,
                    reserved_for_trusted=4, data_memory_mb=20)
TRUSTED = {"10.0.0.5"}


def slots() -> SessionSlots:
    return SessionSlots(LIMITS, lambda ip: ip in TRUSTED)


@pytest.mark.parametrize("peer, client", [
    ("203.0.113.9", "203.0.113.9"), ("::ffff:203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"), ("fe80::1%eth0", "fe80::/64"), ("garbage", "garbage")])
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(peer, client):
    assert client_of(peer) == client


def test_one_stranger_gets_sessions_per_address_and_no_more():
    sessions = slots()
    taken = [sessions.take("203.0.113.9") for _ in range(3)]
    with pytest.raises(NoSessionSlot, match="too many connections from 203.0.113.9 \\(3 at once\\)"):
        sessions.take("203.0.113.9")
    with pytest.raises(NoSessionSlot):  # the same host by another address of its /64
        [sessions.take(f"2001:db8::{n}") for n in range(1, 5)]
    sessions.give_back(taken[0])
    sessions.take("203.0.113.9")  # a slot given back is free again


def test_strangers_never_take_the_sessions_reserved_for_trusted_servers():
    sessions = slots()
    for n in range(6):  # concurrency 10 - 4 reserved
        sessions.take(f"203.0.113.{n}")
    with pytest.raises(NoSessionSlot, match="not trusted \\(6 at once\\)"):
        sessions.take("203.0.113.99")
    trusted = [sessions.take("10.0.0.5") for _ in range(4)]  # no per-address limit for them
    with pytest.raises(NoSessionSlot, match="too many connections \\(10 at once\\)"):
        sessions.take("10.0.0.5")
    sessions.give_back(trusted[0])
    with pytest.raises(NoSessionSlot):  # the freed session is still the trusted share
        sessions.take("203.0.113.99")
    sessions.take("10.0.0.5")


def test_trusted_servers_may_use_every_session_when_strangers_do_not():
    sessions = slots()
    held = [sessions.take("10.0.0.5") for _ in range(10)]
    with pytest.raises(NoSessionSlot):
        sessions.take("203.0.113.1")
    for slot in held:
        sessions.give_back(slot)
    assert (sessions.active, sessions.untrusted, dict(sessions.by_client)) == (0, 0, {})
